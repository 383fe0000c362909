//! Failed token attempts, per client IP: after [`MAX_FAILURES`] within
//! [`WINDOW`], the IP is locked out for [`LOCKOUT`] — every request from it
//! that needs the token gets 429, even with the right token, so guessing
//! runs at most [`MAX_FAILURES`] tries per [`LOCKOUT`] per address instead
//! of thousands per second. Failures are logged, at most one line per IP
//! per window plus one when a lockout starts.
//!
//! The limit: an attacker with many addresses gets that many times the
//! rate (the 128-bit token needed off loopback, `config::weak_token`, is
//! what holds there), and users behind the attacker's address (same NAT)
//! wait out the lockout too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures counted per IP within this window.
pub(super) const WINDOW: Duration = Duration::from_secs(60);
/// Failures within [`WINDOW`] that lock an IP out.
pub(super) const MAX_FAILURES: u32 = 10;
/// How long a lockout lasts.
pub(super) const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses tracked at most; expired entries go first, then the table is
/// cleared of all but lockouts, so a spray of addresses cannot grow memory.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    window_start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

/// Failed attempts by IP.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    table: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// How long `ip` is still locked out, if it is.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let table = self.table.lock();
        let until = table.get(&ip)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failed attempt from `ip` by `how` ("bearer token",
    /// "login form") and logs it.
    pub fn failed(&self, ip: IpAddr, how: &str, now: Instant) {
        let mut table = self.table.lock();
        if table.len() >= MAX_TRACKED && !table.contains_key(&ip) {
            table.retain(|_, entry| {
                entry.locked_until.is_some_and(|until| until > now)
                    || now.saturating_duration_since(entry.window_start) < WINDOW
            });
            if table.len() >= MAX_TRACKED {
                table.retain(|_, entry| entry.locked_until.is_some_and(|until| until > now));
            }
        }
        let entry = table.entry(ip).or_insert(Failures {
            window_start: now,
            count: 0,
            locked_until: None,
        });
        if now.saturating_duration_since(entry.window_start) >= WINDOW {
            *entry = Failures {
                window_start: now,
                count: 0,
                locked_until: entry.locked_until.filter(|until| *until > now),
            };
        }
        entry.count = entry.count.saturating_add(1);
        let count = entry.count;
        let locks = count == MAX_FAILURES;
        if locks {
            entry.locked_until = Some(now + LOCKOUT);
        }
        drop(table);
        if locks {
            tracing::warn!(
                peer = %ip,
                "Dashboard: {count} wrong tokens from {ip} within {} s; refusing it for {} s \
                 (429). If that is you, check the token (http.token / http.token_file).",
                WINDOW.as_secs(),
                LOCKOUT.as_secs()
            );
        } else if count == 1 {
            tracing::warn!(
                peer = %ip,
                "Dashboard: wrong token from {ip} ({how}); {MAX_FAILURES} within {} s lock it \
                 out.",
                WINDOW.as_secs()
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_in_a_minute_lock_out_that_ip_only() {
        let throttle = Throttle::default();
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let start = Instant::now();
        for second in 0..MAX_FAILURES - 1 {
            throttle.failed(
                attacker,
                "bearer token",
                start + Duration::from_secs(second.into()),
            );
            assert!(throttle.locked(attacker, start).is_none());
        }
        throttle.failed(attacker, "bearer token", start + Duration::from_secs(10));
        assert!(throttle
            .locked(attacker, start + Duration::from_secs(11))
            .is_some());
        assert!(throttle
            .locked(other, start + Duration::from_secs(11))
            .is_none());
        assert!(throttle
            .locked(attacker, start + Duration::from_secs(10) + LOCKOUT)
            .is_none());
    }

    #[test]
    fn failures_spread_over_windows_do_not_lock() {
        let throttle = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let start = Instant::now();
        for index in 0..20u32 {
            let at = start + WINDOW / 2 * index;
            throttle.failed(ip, "login form", at);
            assert!(throttle.locked(ip, at).is_none(), "{index}");
        }
    }
}
