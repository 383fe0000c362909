//! Handshake slots (`tls.max_concurrent_handshakes` per listener), handed
//! out fairly across peer addresses.
//!
//! When every slot is busy, waiting handshakes queue per address (IPv6:
//! per /64, as the per-IP limits count) and a freed slot goes to the next
//! address in turn, not to the oldest waiter: a few addresses with a
//! thousand queued ClientHellos cannot make a device from another address
//! wait behind all of them (decision 0086). Within one address, first come
//! first served.
//!
//! One short `parking_lot` lock per acquire and release, never held across
//! an `.await` or while waking a waiter. A waiter that gave up (its
//! deadline passed) is skipped when its turn comes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::listener::per_ip::address_key;

/// The slots of one listener.
#[derive(Debug)]
pub struct HandshakeSlots {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Slots held, or handed to a waiter and not yet received.
    in_use: usize,
    /// Waiters per address key, oldest first.
    waiting: HashMap<IpAddr, VecDeque<oneshot::Sender<SlotPermit>>>,
    /// Addresses with waiters, in the order their turns come.
    /// Invariant: not empty only while every slot is in use.
    turns: VecDeque<IpAddr>,
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub struct SlotPermit {
    /// `None` once disarmed (a hand-off that did not happen).
    slots: Option<Arc<HandshakeSlots>>,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

impl HandshakeSlots {
    /// `capacity` slots (at least one).
    pub fn new(capacity: usize) -> Arc<HandshakeSlots> {
        Arc::new(HandshakeSlots {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// Waits for a slot for a handshake from `peer`. `None` only if the
    /// slots went away, which does not happen while `self` is held.
    pub async fn acquire(self: Arc<Self>, peer: IpAddr) -> Option<SlotPermit> {
        let key = address_key(peer);
        let receiver = {
            let mut state = self.state.lock();
            if state.turns.is_empty() && state.in_use < self.capacity {
                state.in_use += 1;
                drop(state);
                return Some(SlotPermit { slots: Some(self) });
            }
            let (sender, receiver) = oneshot::channel();
            let queue = state.waiting.entry(key).or_default();
            let first_of_its_address = queue.is_empty();
            queue.push_back(sender);
            if first_of_its_address {
                state.turns.push_back(key);
            }
            receiver
        };
        receiver.await.ok()
    }

    /// Slots held now (for tests and statistics).
    pub fn in_use(&self) -> usize {
        self.state.lock().in_use
    }

    /// Hands the slot to the next address's oldest waiter, or frees it.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self.state.lock();
                loop {
                    let Some(key) = state.turns.pop_front() else {
                        state.in_use = state.in_use.saturating_sub(1);
                        return;
                    };
                    let Some(queue) = state.waiting.get_mut(&key) else {
                        continue;
                    };
                    let next = queue.pop_front();
                    if queue.is_empty() {
                        state.waiting.remove(&key);
                    } else {
                        state.turns.push_back(key);
                    }
                    match next {
                        Some(sender) if !sender.is_closed() => break sender,
                        _ => {}
                    }
                }
            };
            // Sent outside the lock: a permit dropped on the way releases.
            match next.send(SlotPermit {
                slots: Some(Arc::clone(self)),
            }) {
                Ok(()) => return,
                Err(mut unsent) => {
                    // The waiter gave up meanwhile: the slot is still ours
                    // to hand on.
                    unsent.slots = None;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A freed slot goes to the next address in turn: one waiter from a
    /// quiet address is served before a crowd from a busy one.
    #[tokio::test]
    async fn a_freed_slot_goes_to_the_next_address_not_the_oldest_waiter() {
        let slots = HandshakeSlots::new(1);
        let held = Arc::clone(&slots).acquire(ip("10.0.0.1")).await.unwrap();
        let mut crowd = Vec::new();
        for _ in 0..50 {
            crowd.push(tokio::spawn(Arc::clone(&slots).acquire(ip("10.0.0.1"))));
        }
        tokio::task::yield_now().await;
        let device = tokio::spawn(Arc::clone(&slots).acquire(ip("10.0.0.9")));
        tokio::task::yield_now().await;
        // The crowd's first waiter has its turn first, then the device.
        drop(held);
        let first = crowd.remove(0).await.unwrap().unwrap();
        drop(first);
        let device = tokio::time::timeout(Duration::from_secs(1), device)
            .await
            .expect("device served second")
            .unwrap()
            .unwrap();
        assert_eq!(slots.in_use(), 1);
        drop(device);
        for waiter in crowd {
            drop(waiter.await.unwrap().unwrap());
        }
        assert_eq!(slots.in_use(), 0);
    }

    /// A waiter that gave up is skipped, and its slot is not lost.
    #[tokio::test]
    async fn a_waiter_that_gave_up_is_skipped() {
        let slots = HandshakeSlots::new(1);
        let held = Arc::clone(&slots).acquire(ip("10.0.0.1")).await.unwrap();
        let gave_up = tokio::time::timeout(
            Duration::from_millis(10),
            Arc::clone(&slots).acquire(ip("10.0.0.2")),
        )
        .await;
        assert!(gave_up.is_err());
        let waiting = tokio::spawn(Arc::clone(&slots).acquire(ip("10.0.0.3")));
        tokio::task::yield_now().await;
        drop(held);
        let permit = waiting.await.unwrap().unwrap();
        assert_eq!(slots.in_use(), 1);
        drop(permit);
        assert_eq!(slots.in_use(), 0);
        // Free again: taken at once.
        let _again = Arc::clone(&slots).acquire(ip("10.0.0.4")).await.unwrap();
    }
}
