//! The broker's own time on a handshake: how long each poll of the
//! handshake future ran (the answer to the ClientHello is computed before
//! the future exists, in `into_stream`, and timed there). rustls does its cryptography (key exchange,
//! signing, chain and CertificateVerify checks) synchronously inside those
//! polls, and the future yields whenever it waits for the peer or for a
//! handshake slot, so the sum of poll durations is the time the broker
//! spent working on the handshake, not waiting (decision 0142).
//!
//! Owns: timing polls. Must not: change what the inner future does or
//! when it is woken.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Polls kept one by one; a handshake takes a handful. Beyond this (a
/// peer dribbling its bytes), later polls count as after every mark.
const MAX_POLLS: usize = 64;

/// When each poll started and how long it ran.
#[derive(Debug, Default, Clone)]
pub struct PollLog {
    polls: Vec<(Instant, Duration)>,
    late: Duration,
}

impl PollLog {
    /// Poll time before `mark`, and from it on (all of it before, without
    /// a mark).
    pub fn split(&self, mark: Option<Instant>) -> (Duration, Duration) {
        let (mut before, mut after) = match mark {
            Some(_) => (Duration::ZERO, self.late),
            None => (self.late, Duration::ZERO),
        };
        for (start, ran) in &self.polls {
            // A poll the mark falls in (the one that read the reply and
            // then worked on it) is divided at the mark.
            let ended = *start + *ran;
            match mark {
                Some(mark) if mark <= *start => after += *ran,
                Some(mark) if mark < ended => {
                    before += mark - *start;
                    after += ended - mark;
                }
                _ => before += *ran,
            }
        }
        (before, after)
    }
}

/// `inner`, with each of its polls timed.
pub struct PollTimed<F> {
    inner: F,
    log: PollLog,
}

impl<F> PollTimed<F> {
    pub fn new(inner: F) -> PollTimed<F> {
        PollTimed {
            inner,
            log: PollLog::default(),
        }
    }
}

impl<F: Future + Unpin> Future for PollTimed<F> {
    type Output = (F::Output, PollLog);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let start = Instant::now();
        let polled = Pin::new(&mut this.inner).poll(cx);
        let ran = start.elapsed();
        if this.log.polls.len() < MAX_POLLS {
            this.log.polls.push((start, ran));
        } else {
            this.log.late += ran;
        }
        polled.map(|output| (output, std::mem::take(&mut this.log)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Works 20 ms, waits 50 ms (yielding; woken by another thread),
    /// works 10 ms.
    struct Worker {
        step: u8,
    }

    impl Future for Worker {
        type Output = u8;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u8> {
            if self.step == 0 {
                std::thread::sleep(Duration::from_millis(20));
                self.step = 1;
                let waker = cx.waker().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    waker.wake();
                });
                return Poll::Pending;
            }
            std::thread::sleep(Duration::from_millis(10));
            Poll::Ready(7)
        }
    }

    #[tokio::test]
    async fn poll_time_counts_work_not_waiting() {
        let began = Instant::now();
        let (value, log) = PollTimed::new(Worker { step: 0 }).await;
        assert_eq!(value, 7);
        let elapsed = began.elapsed();
        let (all, none) = log.split(None);
        assert_eq!(none, Duration::ZERO);
        assert!(all >= Duration::from_millis(30), "{all:?}");
        assert!(
            all + Duration::from_millis(40) <= elapsed,
            "{all:?} of {elapsed:?}"
        );
        let (before, after) = log.split(Some(began + Duration::from_millis(40)));
        assert!(before >= Duration::from_millis(20), "{before:?}");
        assert!(after >= Duration::from_millis(10), "{after:?}");
        assert!(before + after == all);
    }
}
