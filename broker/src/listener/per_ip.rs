//! Per-address admission at accept: how many connections one IP address
//! may hold open (`limits.max_connections_per_ip`) and how fast it may open
//! new ones (`limits.connection_rate_per_ip`, a token bucket of
//! `limits.connection_burst_per_ip`).
//!
//! Checked before TLS and before CONNECT, so a refused peer costs one
//! `accept` and one `close`: no task, no buffer, no handshake. IPv6 peers
//! are counted per /64, because one host usually owns a whole /64 and
//! could otherwise step through addresses.
//!
//! The table holds an entry only while its address has connections open or
//! a bucket that has not refilled yet, and is swept at most once a second,
//! so its size is bounded by the addresses seen in the last burst window.
//! A TLS handshake that stalls after its ClientHello is charged to its
//! address's bucket ([`STALLED_HANDSHAKE_COST`]).
//!
//! One short `parking_lot` lock per accept and per close; never held
//! across an `.await`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use fleetmq_core::config::LimitsConfig;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address already holds `max_connections_per_ip` connections.
    TooManyOpen,
    /// The address spent its bucket of new connections.
    TooFast,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::TooManyOpen => "too many open connections from this address (limits.max_connections_per_ip)",
            Refusal::TooFast => "too many new connections per second from this address (limits.connection_rate_per_ip, connection_burst_per_ip)",
        }
    }
}

/// Least time between two "refusing connections" warnings, so that a flood
/// of refused connections cannot become a flood of log lines.
const REFUSAL_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The "refusing connections" warning, at most once per
/// [`REFUSAL_LOG_INTERVAL`] per listener, so that a flood of refused
/// connections cannot become a flood of log lines.
#[derive(Debug, Default)]
pub struct RefusalLog {
    logged_at: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl RefusalLog {
    pub fn log(&self, listener: &str, peer: SocketAddr, refusal: Refusal) {
        {
            let mut logged_at = self.logged_at.lock();
            if logged_at.is_some_and(|at| at.elapsed() < REFUSAL_LOG_INTERVAL) {
                return;
            }
            *logged_at = Some(std::time::Instant::now());
        }
        tracing::warn!(
            listener = %listener,
            peer = %peer,
            "Refusing connections from {} on listener \"{}\": {} (further refusals are counted in $SYS/broker/connections/refused, logged at most every {}s).",
            peer.ip(),
            listener,
            refusal.describe(),
            REFUSAL_LOG_INTERVAL.as_secs()
        );
    }
}

/// One address's state.
#[derive(Debug)]
struct Entry {
    open: usize,
    /// Connections it may still open now (refills at `rate` per second up
    /// to `burst`).
    tokens: f64,
    refilled_at: Instant,
}

#[derive(Debug)]
struct Table {
    entries: HashMap<IpAddr, Entry>,
    swept_at: Instant,
}

/// The per-address limits and their bookkeeping, shared by all listeners.
#[derive(Debug)]
pub struct PeerLimits {
    max_open: usize,
    rate: f64,
    burst: f64,
    table: Mutex<Table>,
}

/// Counts one admitted connection against its address until dropped.
#[derive(Debug)]
pub struct PeerSlot {
    limits: Option<Arc<PeerLimits>>,
    key: IpAddr,
}

/// What a TLS handshake that stalled after its ClientHello costs its
/// address, in new connections from its bucket: the broker did the work of
/// a server flight for nothing, and the peer's next attempt would cost the
/// same. An address may stall a tenth of `connection_rate_per_ip` per
/// second for free; one that keeps doing it is refused at accept until its
/// bucket refills, so its stalls stop coming back as waves of handshakes
/// that slow everyone else (decision 0086).
pub const STALLED_HANDSHAKE_COST: f64 = 10.0;

impl PeerSlot {
    /// Charges this connection's address for a handshake that stalled
    /// after its ClientHello (no effect without a rate limit).
    pub fn charge_stalled_handshake(&self) {
        let Some(limits) = &self.limits else {
            return;
        };
        if limits.rate == 0.0 {
            return;
        }
        let mut table = limits.table.lock();
        if let Some(entry) = table.entries.get_mut(&self.key) {
            entry.tokens -= STALLED_HANDSHAKE_COST;
        }
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Some(limits) = &self.limits {
            let mut table = limits.table.lock();
            if let Some(entry) = table.entries.get_mut(&self.key) {
                entry.open = entry.open.saturating_sub(1);
            }
        }
    }
}

/// The key an address is counted under: itself, or its /64 for IPv6
/// (IPv4-mapped IPv6 addresses count as the IPv4 address). The TLS
/// handshake slots take turns by the same key.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
    }
}

impl PeerLimits {
    pub fn new(limits: &LimitsConfig) -> PeerLimits {
        PeerLimits {
            max_open: limits.max_connections_per_ip,
            rate: f64::from(limits.connection_rate_per_ip),
            burst: f64::from(limits.connection_burst_per_ip.max(1)),
            table: Mutex::new(Table {
                entries: HashMap::new(),
                swept_at: Instant::now(),
            }),
        }
    }

    fn is_unlimited(&self) -> bool {
        self.max_open == 0 && self.rate == 0.0
    }

    /// Admits or refuses a new connection from `ip`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<PeerSlot, Refusal> {
        let key = address_key(ip);
        if self.is_unlimited() {
            return Ok(PeerSlot { limits: None, key });
        }
        let mut table = self.table.lock();
        self.sweep(&mut table, now);
        let entry = table.entries.entry(key).or_insert(Entry {
            open: 0,
            tokens: self.burst,
            refilled_at: now,
        });
        if self.max_open != 0 && entry.open >= self.max_open {
            return Err(Refusal::TooManyOpen);
        }
        if self.rate > 0.0 {
            let elapsed = now.saturating_duration_since(entry.refilled_at);
            entry.tokens = (entry.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
            entry.refilled_at = now;
            if entry.tokens < 1.0 {
                return Err(Refusal::TooFast);
            }
            entry.tokens -= 1.0;
        }
        entry.open += 1;
        Ok(PeerSlot {
            limits: Some(Arc::clone(self)),
            key,
        })
    }

    /// Drops entries with nothing open whose bucket is full again, at most
    /// once a second.
    fn sweep(&self, table: &mut Table, now: Instant) {
        if now.saturating_duration_since(table.swept_at).as_secs() < 1 {
            return;
        }
        table.swept_at = now;
        let (rate, burst) = (self.rate, self.burst);
        table.entries.retain(|_, entry| {
            let refilled = rate == 0.0
                || entry.tokens
                    + now
                        .saturating_duration_since(entry.refilled_at)
                        .as_secs_f64()
                        * rate
                    >= burst;
            entry.open > 0 || !refilled
        });
        if table.entries.capacity() > 64 && table.entries.len() < table.entries.capacity() / 4 {
            table.entries.shrink_to_fit();
        }
    }

    /// Addresses tracked now (for tests and statistics).
    pub fn tracked(&self) -> usize {
        self.table.lock().entries.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_open: usize, rate: u32, burst: u32) -> Arc<PeerLimits> {
        let config = LimitsConfig {
            max_connections_per_ip: max_open,
            connection_rate_per_ip: rate,
            connection_burst_per_ip: burst,
            ..LimitsConfig::default()
        };
        Arc::new(PeerLimits::new(&config))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn open_connections_are_capped_per_address_and_freed_on_drop() {
        let limits = limits(2, 0, 1);
        let now = Instant::now();
        let a = limits.admit(ip("10.0.0.1"), now).unwrap();
        let _b = limits.admit(ip("10.0.0.1"), now).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.1"), now).unwrap_err(),
            Refusal::TooManyOpen
        );
        // Another address is not affected.
        let _c = limits.admit(ip("10.0.0.2"), now).unwrap();
        drop(a);
        assert!(limits.admit(ip("10.0.0.1"), now).is_ok());
    }

    #[test]
    fn rate_allows_a_burst_then_refills() {
        let limits = limits(0, 10, 3);
        let start = Instant::now();
        for _ in 0..3 {
            drop(limits.admit(ip("10.0.0.1"), start).unwrap());
        }
        assert_eq!(
            limits.admit(ip("10.0.0.1"), start).unwrap_err(),
            Refusal::TooFast
        );
        // 10 per second: one token after 100 ms.
        let later = start + Duration::from_millis(110);
        assert!(limits.admit(ip("10.0.0.1"), later).is_ok());
        assert!(limits.admit(ip("10.0.0.1"), later).is_err());
    }

    #[test]
    fn a_stalled_handshake_costs_its_address_ten_connections() {
        let limits = limits(0, 10, 20);
        let start = Instant::now();
        let slot = limits.admit(ip("10.0.0.1"), start).unwrap();
        slot.charge_stalled_handshake();
        slot.charge_stalled_handshake();
        // 20 - 1 - 2 * 10: refused until a token refills (10/s).
        assert_eq!(
            limits.admit(ip("10.0.0.1"), start).unwrap_err(),
            Refusal::TooFast
        );
        assert!(limits.admit(ip("10.0.0.2"), start).is_ok());
        let later = start + Duration::from_millis(250);
        assert!(limits.admit(ip("10.0.0.1"), later).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limits = limits(1, 0, 1);
        let now = Instant::now();
        let _a = limits.admit(ip("2001:db8:1:2::1"), now).unwrap();
        assert!(limits.admit(ip("2001:db8:1:2:ffff::9"), now).is_err());
        assert!(limits.admit(ip("2001:db8:1:3::1"), now).is_ok());
        let _v4 = limits.admit(ip("192.0.2.7"), now).unwrap();
        assert!(limits.admit(ip("::ffff:192.0.2.7"), now).is_err());
    }

    #[test]
    fn idle_entries_are_swept_so_the_table_stays_small() {
        let limits = limits(10, 100, 5);
        let start = Instant::now();
        for n in 0..1000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            drop(limits.admit(addr, start).unwrap());
        }
        assert_eq!(limits.tracked(), 1000);
        // After the buckets refill (5 tokens at 100/s: 50 ms) and a second
        // has passed since the last sweep, the next accept sweeps them.
        let later = start + Duration::from_secs(2);
        let _held = limits.admit(ip("10.9.9.9"), later).unwrap();
        assert_eq!(limits.tracked(), 1);
    }

    #[test]
    fn zero_limits_track_nothing() {
        let limits = limits(0, 0, 1);
        let now = Instant::now();
        let slots: Vec<_> = (0..100)
            .map(|_| limits.admit(ip("10.0.0.1"), now).unwrap())
            .collect();
        assert_eq!(slots.len(), 100);
        assert_eq!(limits.tracked(), 0);
    }
}
