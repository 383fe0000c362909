//! Reconnect backoff: exponential growth with random jitter.
//!
//! After a failed or lost connection the device waits before trying again.
//! The ceiling doubles per consecutive failure from `min_ms` up to `max_ms`,
//! and the actual wait is drawn uniformly from the upper half of the ceiling
//! ("equal jitter"): a fleet that lost the broker at the same instant spreads
//! its reconnects out instead of arriving as one storm, while every device
//! still waits at least half the ceiling, so a refused device (revoked
//! certificate) cannot hammer the broker. A connection that reached CONNACK
//! resets the count.

/// Backoff state of one device.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u32,
    max_ms: u32,
    /// Consecutive failures since the last successful CONNACK.
    failures: u32,
}

impl Backoff {
    /// `min_ms` is the first ceiling, `max_ms` the largest (min <= max).
    pub fn new(min_ms: u32, max_ms: u32) -> Backoff {
        let min_ms = min_ms.max(1);
        Backoff {
            min_ms,
            max_ms: max_ms.max(min_ms),
            failures: 0,
        }
    }

    /// The ceiling for the next wait: `min * 2^failures`, capped at `max`.
    pub fn ceiling_ms(&self) -> u32 {
        let shift = self.failures.min(31);
        self.min_ms
            .checked_mul(1u32 << shift)
            .map_or(self.max_ms, |v| v.min(self.max_ms))
    }

    /// Records a failure and returns how long to wait, in `[ceiling/2,
    /// ceiling]`, using `random` as the source of jitter.
    pub fn next_delay_ms(&mut self, random: u32) -> u32 {
        let ceiling = self.ceiling_ms();
        self.failures = self.failures.saturating_add(1);
        let floor = ceiling / 2;
        let span = ceiling - floor;
        floor + (random % (span + 1))
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A connection succeeded: start again from `min_ms`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift32: deterministic randomness for the spread test.
    fn xorshift(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }

    #[test]
    fn delays_grow_exponentially_within_bounds_and_cap() {
        let mut backoff = Backoff::new(2_000, 60_000);
        let mut seed = 7;
        let ceilings = [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000];
        for ceiling in ceilings {
            assert_eq!(backoff.ceiling_ms(), ceiling);
            let delay = backoff.next_delay_ms(xorshift(&mut seed));
            assert!(
                (ceiling / 2..=ceiling).contains(&delay),
                "{delay} outside [{}, {ceiling}]",
                ceiling / 2
            );
        }
        for _ in 0..100 {
            assert!(backoff.next_delay_ms(u32::MAX) <= 60_000);
        }
    }

    #[test]
    fn extreme_random_values_hit_both_ends() {
        let mut backoff = Backoff::new(1_000, 1_000);
        assert_eq!(backoff.next_delay_ms(0), 500);
        assert_eq!(backoff.next_delay_ms(500), 1_000);
    }

    #[test]
    fn jitter_spreads_a_fleet_over_the_window() {
        // 1000 devices failing at once land in all ten 100 ms buckets of
        // [1000, 2000], none holding more than twice its fair share.
        let mut buckets = [0u32; 10];
        let mut seed = 0x1234_5678;
        for _ in 0..1000 {
            let mut backoff = Backoff::new(1_000, 60_000);
            backoff.next_delay_ms(0); // first failure: ceiling 1000
            let delay = backoff.next_delay_ms(xorshift(&mut seed)); // ceiling 2000
            let index = ((delay - 1_000) / 100).min(9) as usize;
            buckets[index] += 1;
        }
        for (i, count) in buckets.iter().enumerate() {
            assert!((50..=200).contains(count), "bucket {i}: {count} of 1000");
        }
    }

    #[test]
    fn reset_after_success_starts_over() {
        let mut backoff = Backoff::new(2_000, 60_000);
        for _ in 0..10 {
            backoff.next_delay_ms(1);
        }
        assert_eq!(backoff.ceiling_ms(), 60_000);
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.ceiling_ms(), 2_000);
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let mut backoff = Backoff::new(u32::MAX / 2, u32::MAX);
        for _ in 0..100 {
            let d = backoff.next_delay_ms(u32::MAX);
            assert!(d >= u32::MAX / 4, "{d}");
        }
    }
}
