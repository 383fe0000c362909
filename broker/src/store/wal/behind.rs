//! How far the checkpointer is behind the appender, in sealed segments,
//! and the wait that bounds it.
//!
//! The checkpointer runs at a lower priority than the broker's other
//! threads (its work is off the acknowledgement path), so under a steady
//! load it may fall behind. Past [`MAX_SEALED`] sealed segments waiting
//! for their checkpoint the appender waits before it starts writing the
//! next one: acknowledgements slow down, the publishers with them, and
//! the checkpointer gets the core. That bounds the log on disk and the
//! checkpointer's backlog in memory.
//!
//! While checkpoints fail (a full disk), or a checkpointed segment
//! cannot be deleted, nothing waits: the log keeps
//! every acknowledged group, as it did before this bound, and the
//! appender meets the full disk itself.
//!
//! It owns the count and the wait; it must not decide when a segment is
//! sealed or checkpointed.

use parking_lot::{Condvar, Mutex};

/// Sealed segments (8 MiB or 1 s each) that may wait for a checkpoint
/// before the appender waits.
pub const MAX_SEALED: usize = 4;

#[derive(Default)]
struct State {
    /// Sealed and sent to the checkpointer, not deleted yet.
    sealed: usize,
    /// The last checkpoint failed.
    failing: bool,
}

/// Shared by the appender (which seals) and the checkpointer.
#[derive(Default)]
pub struct Behind {
    state: Mutex<State>,
    changed: Condvar,
}

impl Behind {
    /// The appender sealed a segment (called before it is sent).
    pub fn sealed(&self) {
        self.state.lock().sealed += 1;
    }

    /// The checkpointer deleted `done` sealed segments; `failing`: its
    /// last checkpoint failed.
    pub fn checkpointed(&self, done: usize, failing: bool) {
        let mut state = self.state.lock();
        state.sealed = state.sealed.saturating_sub(done);
        state.failing = failing;
        drop(state);
        self.changed.notify_all();
    }

    /// Waits while more than [`MAX_SEALED`] segments wait for a
    /// checkpoint that is not failing. True when it had to wait.
    pub fn wait_for_room(&self) -> bool {
        let mut state = self.state.lock();
        let mut waited = false;
        while state.sealed > MAX_SEALED && !state.failing {
            waited = true;
            self.changed.wait(&mut state);
        }
        waited
    }

    /// Sealed segments not checkpointed yet.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.state.lock().sealed
    }
}

/// Lowers the calling thread's scheduling priority by `steps` nice
/// values from where the broker runs (Linux applies a nice value per
/// thread; 19 is the lowest). Failing is harmless: the thread keeps the
/// broker's priority.
pub fn lower_this_thread(steps: i32) {
    let tid = rustix::thread::gettid();
    let lowered = rustix::process::getpriority_process(Some(tid))
        .and_then(|now| rustix::process::setpriority_process(Some(tid), (now + steps).min(19)));
    if let Err(error) = lowered {
        tracing::debug!("Cannot lower the checkpoint thread's priority: {error}.");
    }
}

/// Puts the calling thread under `SCHED_IDLE` (decision 0197): any
/// runnable thread of the normal policy preempts it at once when it
/// wakes, where a nice-19 thread may keep the core for the rest of its
/// slice. Returns whether the whole call succeeded. A thread without
/// privileges may enter `SCHED_IDLE` (not leave it); a refusal (a system
/// call filter) leaves the caller to its nice value. The crate then sets
/// nice 0, which fails without privileges when the broker was started
/// at a higher nice value: the policy has taken by then, and false is
/// returned all the same.
pub fn idle_this_thread() -> bool {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    // With `SCHED_IDLE` the crate also sets nice 0 (its only priority):
    // called before [`lower_this_thread`], that changes nothing.
    match set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    ) {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!("Cannot put the checkpoint thread under SCHED_IDLE: {error:?}.");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// The calling thread's scheduling policy and nice value, from
    /// /proc/thread-self/stat (fields 41 and 19).
    fn policy_and_nice() -> (u32, i32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        (
            fields[41 - 3].parse().unwrap(),
            fields[19 - 3].parse().unwrap(),
        )
    }

    #[test]
    fn the_checkpoint_thread_goes_idle_and_nice_19() {
        let (policy, nice) = std::thread::spawn(|| {
            assert!(idle_this_thread(), "SCHED_IDLE refused");
            lower_this_thread(19);
            policy_and_nice()
        })
        .join()
        .unwrap();
        // 5 is SCHED_IDLE; the nice value is the fallback where it is refused.
        assert_eq!((policy, nice), (5, 19));
        // The calling thread is untouched (Linux schedules threads alone).
        assert_eq!(policy_and_nice().0, 0);
    }

    #[test]
    fn the_appender_waits_past_the_bound_until_a_checkpoint() {
        let behind = Arc::new(Behind::default());
        for _ in 0..MAX_SEALED {
            behind.sealed();
        }
        assert!(!behind.wait_for_room(), "at the bound: no wait");
        behind.sealed();
        let (done, waited) = mpsc::channel();
        let waiter = {
            let behind = Arc::clone(&behind);
            std::thread::spawn(move || done.send(behind.wait_for_room()).unwrap())
        };
        assert!(
            waited.recv_timeout(Duration::from_millis(200)).is_err(),
            "over the bound: the appender must wait"
        );
        behind.checkpointed(2, false);
        assert_eq!(waited.recv_timeout(Duration::from_secs(5)), Ok(true));
        waiter.join().unwrap();
        assert_eq!(behind.pending(), MAX_SEALED - 1);
    }

    #[test]
    fn nothing_waits_while_checkpoints_fail() {
        let behind = Arc::new(Behind::default());
        for _ in 0..MAX_SEALED + 1 {
            behind.sealed();
        }
        let (done, waited) = mpsc::channel();
        let waiter = {
            let behind = Arc::clone(&behind);
            std::thread::spawn(move || done.send(behind.wait_for_room()).unwrap())
        };
        assert!(waited.recv_timeout(Duration::from_millis(100)).is_err());
        // The checkpoint fails: the waiting appender goes on.
        behind.checkpointed(0, true);
        assert_eq!(waited.recv_timeout(Duration::from_secs(5)), Ok(true));
        waiter.join().unwrap();
        behind.sealed();
        assert!(!behind.wait_for_room(), "failing: no wait at all");
        assert_eq!(behind.pending(), MAX_SEALED + 2);
    }

    #[test]
    fn the_priority_is_lowered_for_this_thread_only() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let lowered = std::thread::spawn(|| {
            lower_this_thread(10);
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + 10).min(19));
        assert_eq!(
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap(),
            before
        );
    }
}
