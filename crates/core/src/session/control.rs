//! The broker's requests to the connection attached to a session
//! (take-over, kick, shutdown): a one-slot mailbox.
//!
//! A connection acts on the first request only (it closes), so one atomic
//! slot and a `Notify` replace a channel: every held connection has one,
//! and an unbounded channel's first block costs about 500 bytes of memory
//! per connection where this costs about 64. It owns no policy: what a
//! request means is decided by the connection.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use fleetmq_codec::ReasonCode;

/// A request from the broker to the connection attached to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Close the connection; 5.0 clients get DISCONNECT with this reason
    /// (session taken over, administrative action, server shutting down).
    Disconnect(ReasonCode),
}

/// Slot value: nothing requested yet.
const EMPTY: u16 = u16::MAX;
/// Slot value: the sender is gone without a request.
const SENDER_GONE: u16 = u16::MAX - 1;

#[derive(Debug)]
struct Slot {
    /// [`EMPTY`], [`SENDER_GONE`] or a reason code.
    value: AtomicU16,
    receiver_alive: AtomicBool,
    notify: Notify,
}

/// The broker's end, kept in the session's attachment.
#[derive(Debug)]
pub struct ControlSender {
    slot: Arc<Slot>,
}

/// The connection's end.
#[derive(Debug)]
pub struct ControlReceiver {
    slot: Arc<Slot>,
}

/// The connection went away: nobody will act on the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionGone;

/// A new mailbox.
pub fn control_link() -> (ControlSender, ControlReceiver) {
    let slot = Arc::new(Slot {
        value: AtomicU16::new(EMPTY),
        receiver_alive: AtomicBool::new(true),
        notify: Notify::new(),
    });
    (
        ControlSender {
            slot: Arc::clone(&slot),
        },
        ControlReceiver { slot },
    )
}

impl ControlSender {
    /// Asks the connection to act; the first request wins. Fails when the
    /// connection has already ended.
    pub fn send(&self, request: Control) -> Result<(), ConnectionGone> {
        if !self.slot.receiver_alive.load(Ordering::Acquire) {
            return Err(ConnectionGone);
        }
        let Control::Disconnect(reason) = request;
        let _ = self.slot.value.compare_exchange(
            EMPTY,
            u16::from(reason.0),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.slot.notify.notify_one();
        Ok(())
    }
}

impl Drop for ControlSender {
    fn drop(&mut self) {
        let _ = self.slot.value.compare_exchange(
            EMPTY,
            SENDER_GONE,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.slot.notify.notify_one();
    }
}

impl ControlReceiver {
    /// Waits for a request; `None` when the broker dropped its end without
    /// one. Cancel-safe: a request is never consumed, only read.
    pub async fn recv(&mut self) -> Option<Control> {
        loop {
            match self.slot.value.load(Ordering::Acquire) {
                // `notify_one` keeps a permit when nobody waits, so a
                // request between the load and the wait is not missed.
                EMPTY => self.slot.notify.notified().await,
                SENDER_GONE => return None,
                code => {
                    let code = u8::try_from(code).unwrap_or(ReasonCode::UNSPECIFIED_ERROR.0);
                    return Some(Control::Disconnect(ReasonCode(code)));
                }
            }
        }
    }
}

impl Drop for ControlReceiver {
    fn drop(&mut self) {
        self.slot.receiver_alive.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_request_wins_and_is_seen_even_when_sent_before_the_wait() {
        let (sender, mut receiver) = control_link();
        assert_eq!(
            sender.send(Control::Disconnect(ReasonCode::SESSION_TAKEN_OVER)),
            Ok(())
        );
        assert_eq!(
            sender.send(Control::Disconnect(ReasonCode::SERVER_SHUTTING_DOWN)),
            Ok(())
        );
        assert_eq!(
            receiver.recv().await,
            Some(Control::Disconnect(ReasonCode::SESSION_TAKEN_OVER))
        );
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken() {
        let (sender, mut receiver) = control_link();
        let waiter = tokio::spawn(async move { receiver.recv().await });
        tokio::task::yield_now().await;
        sender
            .send(Control::Disconnect(ReasonCode::ADMINISTRATIVE_ACTION))
            .ok();
        assert_eq!(
            waiter.await.ok().flatten(),
            Some(Control::Disconnect(ReasonCode::ADMINISTRATIVE_ACTION))
        );
    }

    #[tokio::test]
    async fn a_dropped_sender_reads_as_none_and_a_dropped_receiver_fails_sends() {
        let (sender, mut receiver) = control_link();
        drop(sender);
        assert_eq!(receiver.recv().await, None);
        let (sender, receiver) = control_link();
        drop(receiver);
        assert_eq!(
            sender.send(Control::Disconnect(ReasonCode::SESSION_TAKEN_OVER)),
            Err(ConnectionGone)
        );
    }
}
