//! Helpers for the hostile-client suites (`hostile_*.rs`): what the broker
//! costs while it is attacked, and whether a well-behaved client still gets
//! served.
//!
//! - [`Watch`] runs, for the length of an attack, a probe client doing QoS 1
//!   round trips (PUBLISH to its own topic, PUBACK and the delivery back)
//!   every [`PROBE_EVERY`], and samples the broker's VmRSS; its
//!   [`WatchReport`] is asserted against the stated bounds.
//! - [`heavy_lock`] serializes the heavy tests across test processes, so
//!   two of them never share the machine's two cores.
//! - [`raise_fd_limit`] lifts the soft RLIMIT_NOFILE to the hard one.
//!
//! Every loop here is bounded in time.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{publish, subscribe, Broker, ConnectBuilder, Packet, RawClient};

/// How often the probe does a round trip.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Stated bound on the probe's QoS 1 round trip (PUBLISH -> PUBACK and the
/// message back) while an attack runs. Generous because CI runs the debug
/// build on two shared cores; the figures reached are printed.
pub const ROUND_TRIP_BOUND: Duration = Duration::from_millis(1500);

/// How long the probe waits for one round trip before counting it lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Stated bound on the broker's resident memory during the light attacks
/// (protocol abuse by a handful of clients), in KiB.
pub const RSS_BOUND_KIB: u64 = 128 * 1024;

/// VmRSS of process `pid` in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What a [`Watch`] saw.
#[derive(Debug, Clone)]
pub struct WatchReport {
    /// Completed round trips.
    pub round_trips: usize,
    /// Round trips that did not complete within the probe timeout.
    pub lost: usize,
    pub median: Duration,
    pub max: Duration,
    /// Broker VmRSS when the watch started, and the highest sample.
    pub rss_start_kib: u64,
    pub rss_max_kib: u64,
    pub rss_end_kib: u64,
    pub elapsed: Duration,
}

impl WatchReport {
    /// Asserts the probe was served within `round_trip` every time and the
    /// broker stayed under `rss_kib`; prints the figures either way.
    pub fn assert_within(&self, what: &str, round_trip: Duration, rss_kib: u64) {
        eprintln!("{what}: {self}");
        assert!(
            self.round_trips > 0,
            "{what}: the probe completed no round trip"
        );
        assert_eq!(self.lost, 0, "{what}: probe round trips lost: {self}");
        assert!(
            self.max <= round_trip,
            "{what}: QoS 1 round trip {:?} above the bound {round_trip:?}",
            self.max
        );
        assert!(
            self.rss_max_kib <= rss_kib,
            "{what}: broker RSS {} KiB above the bound {rss_kib} KiB",
            self.rss_max_kib
        );
    }
}

impl std::fmt::Display for WatchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} QoS 1 round trips in {:.1?} (median {:.1?}, max {:.1?}, lost {}); broker RSS {} KiB at start, max {} KiB, {} KiB at end",
            self.round_trips,
            self.elapsed,
            self.median,
            self.max,
            self.lost,
            self.rss_start_kib,
            self.rss_max_kib,
            self.rss_end_kib
        )
    }
}

/// A probe client and an RSS sampler running beside an attack.
pub struct Watch {
    stop: Arc<AtomicBool>,
    probe: thread::JoinHandle<(Vec<Duration>, usize)>,
    sampler: thread::JoinHandle<()>,
    rss_max: Arc<Mutex<u64>>,
    pid: u32,
    rss_start_kib: u64,
    started: Instant,
}

impl Watch {
    /// Starts watching `broker`; the probe connects as `probe-<name>`.
    pub fn start(broker: &Broker, name: &str) -> Watch {
        let pid = broker.pid();
        let rss_start_kib = rss_kib(pid).unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let rss_max = Arc::new(Mutex::new(rss_start_kib));
        let sampler = {
            let stop = Arc::clone(&stop);
            let rss_max = Arc::clone(&rss_max);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_kib(pid) {
                        let mut max = rss_max.lock().unwrap();
                        *max = (*max).max(rss);
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let probe = {
            let stop = Arc::clone(&stop);
            let addr = broker.addr();
            let id = format!("probe-{name}");
            thread::spawn(move || probe_loop(addr, &id, &stop))
        };
        Watch {
            stop,
            probe,
            sampler,
            rss_max,
            pid,
            rss_start_kib,
            started: Instant::now(),
        }
    }

    /// Stops the probe and the sampler and reports.
    pub fn finish(self) -> WatchReport {
        self.stop.store(true, Ordering::Relaxed);
        let (mut times, lost) = self.probe.join().expect("probe thread");
        let _ = self.sampler.join();
        let rss_end_kib = rss_kib(self.pid).unwrap_or(0);
        let rss_max_kib = (*self.rss_max.lock().unwrap()).max(rss_end_kib);
        times.sort();
        WatchReport {
            round_trips: times.len(),
            lost,
            median: times.get(times.len() / 2).copied().unwrap_or_default(),
            max: times.last().copied().unwrap_or_default(),
            rss_start_kib: self.rss_start_kib,
            rss_max_kib,
            rss_end_kib,
            elapsed: self.started.elapsed(),
        }
    }
}

/// QoS 1 round trips until `stop`: returns their durations and how many
/// were lost.
fn probe_loop(addr: SocketAddr, client_id: &str, stop: &AtomicBool) -> (Vec<Duration>, usize) {
    let (mut client, _) = RawClient::connect_v311(addr, client_id, true);
    // A `$` topic: wildcard subscriptions of the attack (`#`) never match
    // it [MQTT-4.7.2-1], so the probe does not feed the attacker.
    let topic = format!("$probe/{client_id}");
    client.send(&subscribe(1, &[(&topic, 1)], false, &[]));
    match client.recv_packet(PROBE_TIMEOUT) {
        Some(Packet::SubAck(_)) => {}
        other => panic!("probe {client_id}: no SUBACK: {other:?}"),
    }
    let mut times = Vec::new();
    let mut lost = 0;
    let mut packet_id: u16 = 1;
    while !stop.load(Ordering::Relaxed) {
        packet_id = packet_id.checked_add(1).unwrap_or(2);
        let sent = Instant::now();
        client.send(
            &publish(&topic, b"probe")
                .qos(1)
                .packet_id(packet_id)
                .build(),
        );
        let (mut acked, mut delivered) = (false, false);
        while !(acked && delivered) {
            let left = PROBE_TIMEOUT.saturating_sub(sent.elapsed());
            match client.recv_packet(left) {
                Some(Packet::PubAck(ack)) if ack.packet_id == packet_id => acked = true,
                Some(Packet::Publish(message)) => {
                    if let Some(id) = message.packet_id {
                        client.send(&super::ack(0x40, id));
                    }
                    delivered |= *message.topic == *topic;
                }
                Some(_) => {}
                None => break,
            }
        }
        if acked && delivered {
            times.push(sent.elapsed());
        } else {
            lost += 1;
            assert!(
                !client.is_closed(),
                "probe {client_id}: the broker closed it"
            );
        }
        thread::sleep(PROBE_EVERY);
    }
    (times, lost)
}

/// Held by a heavy test; dropping it lets the next one run.
pub struct HeavyGuard(#[allow(dead_code)] TcpListener);

/// Waits (up to 15 minutes) until no other heavy test runs: the lock is a
/// listening socket on a fixed loopback port, which the kernel frees if
/// the process dies.
pub fn heavy_lock() -> HeavyGuard {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", 47_313)) {
            return HeavyGuard(listener);
        }
        assert!(Instant::now() < deadline, "heavy test lock not free");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (children,
/// such as the broker, inherit it) with `prlimit`; returns the soft limit
/// in force afterwards.
pub fn raise_fd_limit() -> u64 {
    let pid = std::process::id().to_string();
    let hard = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output=HARD",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(hard) = hard {
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
            .status();
    }
    std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output=SOFT",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// A connected, subscribed 3.1.1 client (QoS `qos` on `filter`).
pub fn subscriber(addr: SocketAddr, client_id: &str, filter: &str, qos: u8) -> RawClient {
    let (mut client, _) = RawClient::connect_with(addr, ConnectBuilder::v311(client_id));
    client.subscribe(1, filter, qos);
    client
}
