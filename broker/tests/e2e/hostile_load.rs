//! Hostile clients, load side: 10,000 connections that never send CONNECT,
//! the per-IP connection caps, TLS ClientHellos dribbled one byte per
//! second, ClientHellos that stall from eight addresses (the handshake-slot
//! attack), a subscriber that never reads while a publisher streams, and
//! a slow-HTTP flood of the dashboard under a small descriptor limit.
//!
//! The heavy tests take [`heavy_lock`] so they never share the two cores
//! with each other; each is bounded in time and count, and says what it
//! reached when the machine could not do the full amount.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod attackers;
mod probes;

use attackers::{
    closed_by_peer, connect_from, connect_from_port, fill_window, stall_after_client_hello,
    stream_messages, wait_all_closed,
};
use probes::{device_connect, healthz_ok, mqtt_connect_time, open_fds};

use crate::harness;
use crate::harness::hostile::{
    heavy_lock, raise_fd_limit, rss_kib, subscriber, Watch, ROUND_TRIP_BOUND, RSS_BOUND_KIB,
};
use crate::harness::pki::Pki;
use crate::harness::tls::{self, ANY_VERSION};
use crate::harness::{
    skip_on_mosquitto, Broker, ConnectBuilder, ListenerSpec, Packet, RawClient, ReasonCode, WAIT,
};

/// First source port of the 10,000 silent connections: below the kernel's
/// ephemeral range (32768-60999 by default), so they do not take the ports
/// other tests running beside this one pick with "bind port 0, then listen".
const SILENT_SOURCE_PORT: u16 = 20_000;

/// Stated bound on broker RSS while 10,000 silent connections are open.
const SILENT_RSS_BOUND_KIB: u64 = 256 * 1024;

#[test]
fn ten_thousand_connections_that_never_send_connect() {
    if skip_on_mosquitto("fleetmq limits") {
        return;
    }
    let _heavy = heavy_lock();
    let fd_limit = raise_fd_limit();
    // The test process holds one descriptor per connection, the broker
    // (which inherits the limit) one more; keep room for everything else.
    let wanted = 10_000usize;
    let possible = usize::try_from(fd_limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(500);
    let target = wanted.min(possible);
    if target < wanted {
        eprintln!("RLIMIT_NOFILE is {fd_limit}: opening {target} connections instead of {wanted}");
    }
    // 500 per source address keeps each address inside the default
    // per-IP limits (1000 open, a burst of 500): 20 loopback addresses.
    let per_source = 500;
    let broker = Broker::start_with("[limits]\nconnect_timeout_secs = 20\n");
    let addr = broker.addr();
    let watch = Watch::start(&broker, "silent");
    let rss_before = rss_kib(broker.pid()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opened_at = Instant::now();
    let mut streams = Vec::with_capacity(target);
    let mut failures = 0;
    // In batches of 250 at once, each waited for until the broker holds
    // it (its descriptor count): a batch larger than the accept queue
    // would leave connections the kernel never handed to the broker.
    let pid = broker.pid();
    let broker_fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let base_fds = broker_fds();
    let mut slowest_batch = Duration::ZERO;
    for first in (0..target).step_by(250) {
        let batch_started = Instant::now();
        let fds_before = broker_fds();
        let count = 250.min(target - first);
        let opened: Vec<std::io::Result<TcpStream>> = runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for n in first..first + count {
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n / per_source) as u8));
                let port = SILENT_SOURCE_PORT + (n % per_source) as u16;
                set.spawn(connect_from_port(SocketAddr::new(source, port), addr));
            }
            let mut out = Vec::with_capacity(count);
            while let Some(joined) = set.join_next().await {
                out.push(joined.expect("connect task"));
            }
            out
        });
        for result in opened {
            match result {
                Ok(stream) => streams.push(stream),
                Err(error) => {
                    failures += 1;
                    assert!(failures < 100, "connections keep failing: {error}");
                }
            }
        }
        let accepted_by = Instant::now() + Duration::from_secs(5);
        while broker_fds() < fds_before + count && Instant::now() < accepted_by {
            thread::sleep(Duration::from_millis(5));
        }
        slowest_batch = slowest_batch.max(batch_started.elapsed());
    }
    let held_fds = broker_fds() - base_fds;
    let open_took = opened_at.elapsed();
    // Let the broker accept them all, then see what they cost.
    thread::sleep(Duration::from_secs(1));
    let rss_held = rss_kib(broker.pid()).unwrap();
    let still_open = streams.iter().filter(|s| !closed_by_peer(s)).count();
    eprintln!(
        "{} silent connections opened in {open_took:?} ({failures} failed; slowest batch of 250 \
         {slowest_batch:?}), the broker holding {held_fds} sockets, {still_open} still open 2 s \
         later; broker RSS {rss_before} KiB before, {rss_held} KiB holding them",
        streams.len()
    );
    assert!(streams.len() >= target - 100);
    // Every one is cut off at connect_timeout_secs (20 s), within bounds.
    let left = wait_all_closed(&streams, Duration::from_secs(30));
    let closed_after = opened_at.elapsed();
    assert_eq!(
        left, 0,
        "silent connections still open after the CONNECT timeout"
    );
    drop(streams);
    thread::sleep(Duration::from_secs(1));
    let report = watch.finish();
    eprintln!(
        "all closed {closed_after:?} after the first was opened; broker RSS {} KiB after",
        report.rss_end_kib
    );
    report.assert_within(
        "10,000 silent connections",
        ROUND_TRIP_BOUND,
        SILENT_RSS_BOUND_KIB,
    );
    // A well-behaved client connects normally afterwards.
    let (mut client, connack) = RawClient::connect_v311(addr, "after-silence", true);
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    client.ping();
}

#[test]
fn per_ip_caps_close_excess_connections_at_accept() {
    if skip_on_mosquitto("fleetmq limits") {
        return;
    }
    let broker =
        Broker::start_with("[limits]\nmax_connections_per_ip = 20\nconnection_rate_per_ip = 0\n");
    let addr = broker.addr();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut held: Vec<RawClient> = (0..20)
        .map(|n| {
            let stream = runtime.block_on(connect_from(local, addr)).unwrap();
            let mut client = RawClient::over(harness::Transport::Tcp(stream));
            client.send_connect(&ConnectBuilder::v311(&format!("held-{n}")));
            assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
            client
        })
        .collect();
    // The 21st from the same address: closed before anything is read.
    let stream = runtime.block_on(connect_from(local, addr)).unwrap();
    let mut excess = RawClient::over(harness::Transport::Tcp(stream));
    excess.send_connect(&ConnectBuilder::v311("excess"));
    let closed = excess.wait_closed(WAIT).expect("21st connection kept open");
    assert!(closed.packets.is_empty(), "answered: {:?}", closed.packets);
    broker.assert_log("too many open connections from this address", WAIT);
    // Another address is not affected.
    let stream = runtime.block_on(connect_from(other, addr)).unwrap();
    let mut neighbour = RawClient::over(harness::Transport::Tcp(stream));
    neighbour.send_connect(&ConnectBuilder::v311("neighbour"));
    assert_eq!(neighbour.expect_connack().reason, ReasonCode::SUCCESS);
    // Closing one frees its place.
    held.pop().unwrap().drop_connection();
    thread::sleep(Duration::from_millis(200));
    let stream = runtime.block_on(connect_from(local, addr)).unwrap();
    let mut again = RawClient::over(harness::Transport::Tcp(stream));
    again.send_connect(&ConnectBuilder::v311("again"));
    assert_eq!(again.expect_connack().reason, ReasonCode::SUCCESS);
    drop(broker);

    // Rate: a burst of 10, then 5 per second.
    let broker =
        Broker::start_with("[limits]\nconnection_rate_per_ip = 5\nconnection_burst_per_ip = 10\n");
    let addr = broker.addr();
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let mut outcomes = Vec::new();
    for n in 0..15 {
        let stream = runtime.block_on(connect_from(source, addr)).unwrap();
        let mut client = RawClient::over(harness::Transport::Tcp(stream));
        client.send_connect(&ConnectBuilder::v311(&format!("rate-{n}")));
        outcomes.push(matches!(client.recv_packet(WAIT), Some(Packet::ConnAck(_))));
    }
    let admitted = outcomes.iter().filter(|ok| **ok).count();
    // The burst, plus what refilled while the 15 attempts ran.
    assert!(
        (10..=12).contains(&admitted),
        "{admitted} of 15 rapid connections admitted: {outcomes:?}"
    );
    assert!(!outcomes[14], "the last of a rapid series was admitted");
    thread::sleep(Duration::from_millis(1200));
    let stream = runtime.block_on(connect_from(source, addr)).unwrap();
    let mut later = RawClient::over(harness::Transport::Tcp(stream));
    later.send_connect(&ConnectBuilder::v311("rate-later"));
    assert_eq!(later.expect_connack().reason, ReasonCode::SUCCESS);
    // Refusals show in $SYS.
    let mut sys = subscriber(broker.addr(), "sys", "$SYS/broker/connections/refused", 0);
    let refused: u64 = std::str::from_utf8(&sys.expect_publish().payload)
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 3, "$SYS refused count {refused}");
}

#[test]
fn tls_client_hello_dribbled_one_byte_per_second() {
    if skip_on_mosquitto("TLS listeners are configured the fleetmq way") {
        return;
    }
    const DRIBBLERS: usize = 20;
    const TIMEOUT: Duration = Duration::from_secs(4);
    let pki = Pki::new();
    let toml = pki.listener_toml(&pki.server_ecdsa, "required")
        + &format!("handshake_timeout_secs = {}\n", TIMEOUT.as_secs());
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], "");
    let addr = broker.addr_of("tls");
    let watch = Watch::start(&broker, "dribble");
    // A real ClientHello, sent one byte per second.
    let config = tls::client_config(&pki.ca.cert, None, ANY_VERSION);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut hello = Vec::new();
    rustls::ClientConnection::new(config, name)
        .unwrap()
        .write_tls(&mut hello)
        .unwrap();
    let started = Instant::now();
    let mut dribblers: Vec<(TcpStream, Option<Duration>)> = (0..DRIBBLERS)
        .map(|_| (TcpStream::connect_timeout(&addr, WAIT).unwrap(), None))
        .collect();
    let mut sent = 0;
    let deadline = started + TIMEOUT + Duration::from_secs(4);
    while dribblers.iter().any(|(_, closed)| closed.is_none()) && Instant::now() < deadline {
        if sent < hello.len() {
            for (stream, _) in dribblers.iter_mut().filter(|(_, c)| c.is_none()) {
                let _ = stream.write_all(&hello[sent..=sent]);
            }
            sent += 1;
        }
        // Meanwhile a device completes handshakes and QoS 1 round trips.
        let device = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), ANY_VERSION);
        let transport = tls::connect(addr, device).expect("device handshake during dribble");
        let mut client = RawClient::over(transport);
        client.send_connect(&ConnectBuilder::v311("dev-a"));
        assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS);
        assert_eq!(
            client.publish("fleet/dev-a/up", b"1", 1, false),
            ReasonCode::SUCCESS
        );
        let turn_ends = started + Duration::from_secs(sent as u64);
        thread::sleep(turn_ends.saturating_duration_since(Instant::now()));
        for (stream, closed) in dribblers.iter_mut().filter(|(_, c)| c.is_none()) {
            if closed_by_peer(stream) {
                *closed = Some(started.elapsed());
            }
        }
    }
    let times: Vec<Duration> = dribblers.iter().filter_map(|(_, c)| *c).collect();
    assert_eq!(
        times.len(),
        DRIBBLERS,
        "dribblers left open after {deadline:?}"
    );
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    eprintln!(
        "{DRIBBLERS} peers dribbling a {}-byte ClientHello at 1 byte/s were cut off after {first:?}..{last:?} ({sent} bytes sent each)",
        hello.len()
    );
    assert!(
        *first >= TIMEOUT - Duration::from_millis(100),
        "cut off before the timeout"
    );
    assert!(
        *last <= TIMEOUT + Duration::from_secs(2),
        "cut off late: {last:?}"
    );
    watch
        .finish()
        .assert_within("dribbled ClientHello", ROUND_TRIP_BOUND, RSS_BOUND_KIB);
}

/// Stated bound on how much the broker's RSS may grow while a subscriber
/// never reads (its session queue is capped at 16 MiB by default; twice
/// that for the QoS 1 one, plus the fast subscriber's queue and buffers).
const SLOW_CONSUMER_GROWTH_BOUND_KIB: u64 = 160 * 1024;

#[test]
fn a_subscriber_that_never_reads_costs_bounded_memory_and_slows_nobody() {
    if skip_on_mosquitto("fleetmq limits") {
        return;
    }
    let _heavy = heavy_lock();
    // 1 GiB at 64 MiB/s by default, stopped after FLEETMQ_HOSTILE_SECONDS
    // (20) in CI's debug build; FLEETMQ_HOSTILE_SECONDS=60 (and
    // FLEETMQ_HOSTILE_RATE, bytes per second) for the whole run locally.
    let env = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let budget = env("FLEETMQ_HOSTILE_BYTES", (1u64 << 30) as f64) as u64;
    let seconds = env("FLEETMQ_HOSTILE_SECONDS", 20.0);
    let pace = env("FLEETMQ_HOSTILE_RATE", 64.0 * 1048576.0);
    let broker = Broker::start();
    let addr = broker.addr();
    let payload = vec![b'x'; 64 * 1024];

    // The fast subscriber reads and counts everything, on its own thread.
    let mut fast = subscriber(addr, "fast", "bulk/#", 0);
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reading = {
        let received = Arc::clone(&received);
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Packet::Publish(_)) = fast.recv_packet(Duration::from_millis(200)) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let sent = AtomicU64::new(0);
    let (mut publisher, _) = RawClient::connect_v311(addr, "streamer", true);

    // Two subscribers that never read a byte, QoS 0 and QoS 1.
    let _slow0 = subscriber(addr, "slow-qos0", "bulk/#", 0);
    let _slow1 = subscriber(addr, "slow-qos1", "bulk/#", 1);
    let watch = Watch::start(&broker, "slow");
    let rss_start = rss_kib(broker.pid()).unwrap();
    let started = Instant::now();
    let mut streamed = 0u64;
    let mut rss_at_quarter = None;
    while streamed < budget && started.elapsed().as_secs_f64() < seconds {
        streamed += stream_messages(
            &mut publisher,
            &payload,
            pace,
            Instant::now() + Duration::from_secs(1),
            budget - streamed,
            &sent,
        );
        if rss_at_quarter.is_none() && started.elapsed().as_secs_f64() >= seconds / 4.0 {
            rss_at_quarter = rss_kib(broker.pid());
        }
    }
    let took = started.elapsed();
    let rate = streamed as f64 / took.as_secs_f64();
    // Everything sent reaches the fast subscriber.
    publisher.ping();
    let all = sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < all && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    reading.join().unwrap();
    let got = received.load(Ordering::Relaxed);
    let report = watch.finish();
    let rss_end = report.rss_end_kib;
    let rss_quarter = rss_at_quarter.unwrap_or(rss_end);
    eprintln!(
        "streamed {} MiB in {took:.1?} ({:.1} MiB/s, paced at {:.1}) past two subscribers that \
         never read; the fast subscriber got {got} of {all} messages; broker RSS {rss_start} KiB \
         at start, {rss_quarter} KiB at 1/4, {} KiB max, {rss_end} KiB at end",
        streamed >> 20,
        rate / 1048576.0,
        pace / 1048576.0,
        report.rss_max_kib
    );
    assert_eq!(got, all, "the fast subscriber lost messages");
    assert!(
        rate >= pace * 0.9,
        "the publisher was slowed to {rate:.0} B/s (paced at {pace:.0})"
    );
    assert!(
        report.rss_max_kib <= rss_start + SLOW_CONSUMER_GROWTH_BOUND_KIB,
        "RSS grew by {} KiB",
        report.rss_max_kib - rss_start
    );
    assert!(
        rss_end <= rss_quarter + 32 * 1024,
        "RSS not flat: {rss_quarter} KiB at 1/4, {rss_end} KiB at end"
    );
    report.assert_within(
        "slow consumer",
        ROUND_TRIP_BOUND,
        rss_start + SLOW_CONSUMER_GROWTH_BOUND_KIB,
    );
}

#[test]
fn a_subscriber_whose_window_stays_closed_is_disconnected_after_the_write_timeout() {
    if skip_on_mosquitto("fleetmq write timeout") {
        return;
    }
    let broker = Broker::start_with("[limits]\nwrite_timeout_secs = 2\n");
    let addr = broker.addr();
    let _stalled = subscriber(addr, "stalled", "bulk/#", 0);
    // 32 MiB: more than loopback socket buffers hold, under the 16 MiB
    // session queue plus what is in flight on the socket.
    let started = Instant::now();
    fill_window(addr, "bulk/data", 32 << 20);
    assert!(
        broker.wait_for_log(
            "Client stalled has not read for 2 s (its TCP window stayed closed), disconnecting.",
            Duration::from_secs(20),
        ),
        "the stalled subscriber was not disconnected; log:\n{}",
        broker.logs()
    );
    eprintln!(
        "stalled subscriber disconnected {:.1?} after the flood began",
        started.elapsed()
    );
    // Everyone else is still served.
    let (mut other, _) = RawClient::connect_v311(addr, "after-stall", true);
    other.ping();
}

/// A take-over (or a shutdown) reaches a connection whose write is stuck:
/// the stalled connection is closed at once, not after the write timeout.
#[test]
fn take_over_ends_a_connection_stuck_in_a_write() {
    if skip_on_mosquitto("fleetmq write timeout") {
        return;
    }
    // The default write timeout (30 s) is far longer than this test waits.
    let broker = Broker::start();
    let addr = broker.addr();
    let _stalled = subscriber(addr, "device-7", "bulk/#", 0);
    fill_window(addr, "bulk/data", 32 << 20);
    // Let the broker's write to the stalled socket block.
    thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (mut again, connack) =
        RawClient::connect_with(addr, ConnectBuilder::v311("device-7").clean(true));
    let waited = started.elapsed();
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(
        waited < Duration::from_secs(10),
        "take-over waited {waited:?} for the stalled connection"
    );
    // Closing gives the old socket at most 2 s for its last bytes.
    assert!(
        broker.wait_for_log(
            "Client device-7 disconnected by the broker: session taken over.",
            Duration::from_secs(10),
        ),
        "the stalled connection did not end on take-over; log:\n{}",
        broker.logs()
    );
    again.ping();
}

/// RLIMIT_NOFILE given to the broker in the slow-HTTP test: twice the
/// default `http.max_connections` (256), so the cap leaves MQTT room.
const SLOW_HTTP_FD_LIMIT: u32 = 512;
/// Half-sent HTTP requests of the slow-HTTP attack: more than the limit.
const SLOW_HTTP_CONNECTIONS: usize = 700;
/// Longest the flood may take to open its connections.
const SLOW_HTTP_FLOOD_BUDGET: Duration = Duration::from_secs(5);
/// MQTT clients that must be admitted while the attack holds.
const SLOW_HTTP_MQTT_CLIENTS: usize = 40;

#[test]
fn slow_http_flood_does_not_starve_mqtt_accepts() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let broker = Broker::start();
    let http = broker.http_addr();
    let pid = broker.pid().to_string();
    // The broker gets a small descriptor budget, as on a lab machine with
    // `ulimit -n 1024` and devices connected.
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            &format!("--nofile={SLOW_HTTP_FD_LIMIT}:{SLOW_HTTP_FD_LIMIT}"),
        ])
        .status()
        .expect("prlimit");
    assert!(status.success(), "prlimit --pid {pid} failed");
    let watch = Watch::start(&broker, "slow-http");
    let fds_before = open_fds(broker.pid());

    // Every connection sends half a request and then nothing.
    let started = Instant::now();
    let mut attack = Vec::with_capacity(SLOW_HTTP_CONNECTIONS);
    for _ in 0..SLOW_HTTP_CONNECTIONS {
        // Bounded also when the broker stops accepting (backlog full).
        if started.elapsed() > SLOW_HTTP_FLOOD_BUDGET {
            break;
        }
        // A SYN dropped by a full accept queue is retried after 1 s.
        let Ok(mut stream) = TcpStream::connect_timeout(&http, Duration::from_millis(1500)) else {
            continue;
        };
        let _ = stream.write_all(b"GET /api/clients HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
        attack.push(stream);
    }
    // Let the broker accept what it will.
    thread::sleep(Duration::from_millis(500));
    let fds_attack = open_fds(broker.pid());

    // Admitted clients stay connected: each holds a descriptor.
    let mut times = Vec::new();
    let mut devices = Vec::new();
    let mut failures = Vec::new();
    for index in 0..SLOW_HTTP_MQTT_CLIENTS {
        let id = format!("lab-dev-{index}");
        match mqtt_connect_time(broker.addr(), &id, Duration::from_secs(2)) {
            Ok((time, stream)) => {
                times.push(time);
                devices.push(stream);
            }
            Err(why) => failures.push(why),
        }
    }
    let fds_mqtt = open_fds(broker.pid());
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let max = times.last().copied().unwrap_or_default();
    eprintln!(
        "slow HTTP: {} half-sent requests opened in {:.1?}; broker descriptors {fds_before} before, \
         {fds_attack} under attack, {fds_mqtt} with MQTT clients (RLIMIT_NOFILE {SLOW_HTTP_FD_LIMIT}); \
         MQTT admitted {}/{SLOW_HTTP_MQTT_CLIENTS}, connect time median {median:.1?}, max {max:.1?}; \
         failures: {:?}",
        attack.len(),
        started.elapsed(),
        times.len(),
        failures.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        failures.is_empty(),
        "MQTT clients refused under the slow-HTTP attack: {}/{SLOW_HTTP_MQTT_CLIENTS}",
        failures.len()
    );
    assert!(max < ROUND_TRIP_BOUND, "MQTT connect took {max:?}");
    assert!(
        fds_attack < fds_before + 256 + 16,
        "the dashboard holds {fds_attack} descriptors (cap 256)"
    );
    broker.assert_log("Dashboard busy: all 256 connections", WAIT);
    drop(attack);
    drop(devices);
    // The dashboard serves again once the attack ends.
    let deadline = Instant::now() + WAIT;
    while !healthz_ok(http) {
        assert!(Instant::now() < deadline, "the dashboard did not recover");
        thread::sleep(Duration::from_millis(100));
    }
    watch
        .finish()
        .assert_within("slow HTTP", ROUND_TRIP_BOUND, RSS_BOUND_KIB);
    assert!(!broker.logs().contains("panicked"));
}

/// Attack sockets of the handshake-slot attack, and the addresses they
/// come from (each under the default per-IP limits: 150 open, bursts of
/// 150 within the bucket of 500).
const STALLERS: usize = 1200;
const STALLER_ADDRESSES: u8 = 8;
/// Connects the good device makes under the attack, one every
/// [`DEVICE_EVERY`], each within [`DEVICE_ATTEMPT_TIMEOUT`].
const DEVICE_CONNECTS: usize = 100;
const DEVICE_EVERY: Duration = Duration::from_millis(50);
const DEVICE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Stated bound on the good device's connect p99 under the attack.
const DEVICE_CONNECT_P99_BOUND: Duration = Duration::from_millis(200);

/// Item 7 of the security issue: 1,200 sockets from 8 addresses send a
/// whole ClientHello and stall (reconnecting when cut off). A good
/// device's mutual-TLS connects (full handshakes, TCP connect to CONNACK)
/// must stay fast and all succeed: a stalled handshake holds no slot,
/// slots go round the addresses, stalls are cut off after
/// `client_flight_timeout_secs` and charged to their address (decision
/// 0086). Prints the figures the report quotes.
#[test]
fn client_hello_then_stall_from_eight_addresses_leaves_devices_fast() {
    if skip_on_mosquitto("TLS listeners are configured the fleetmq way") {
        return;
    }
    let _heavy = heavy_lock();
    raise_fd_limit();
    let pki = Pki::new();
    // Default handshake settings: the attack must fail against them.
    let toml = pki.listener_toml(&pki.server_ecdsa, "required");
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &toml)], "");
    let addr = broker.addr_of("tls");
    let mut hello = Vec::new();
    rustls::ClientConnection::new(
        tls::client_config(&pki.ca.cert, Some(&pki.dev_a), ANY_VERSION),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap()
    .write_tls(&mut hello)
    .unwrap();
    let hello = Arc::new(hello);
    let stop = Arc::new(AtomicBool::new(false));
    let hellos = Arc::new(AtomicU64::new(0));
    let flights = Arc::new(AtomicU64::new(0));
    let attack = {
        let (stop, hellos, hello) = (Arc::clone(&stop), Arc::clone(&hellos), Arc::clone(&hello));
        let flights = Arc::clone(&flights);
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for n in 0..STALLERS {
                    let source = IpAddr::V4(Ipv4Addr::new(
                        127,
                        0,
                        0,
                        2 + (n % usize::from(STALLER_ADDRESSES)) as u8,
                    ));
                    set.spawn(stall_after_client_hello(
                        source,
                        addr,
                        Arc::clone(&hello),
                        Arc::clone(&stop),
                        Arc::clone(&hellos),
                        Arc::clone(&flights),
                    ));
                }
                while set.join_next().await.is_some() {}
            });
        })
    };
    // The attack is in place when every socket has had the broker's
    // answer to its ClientHello and stalls.
    let ramp = Instant::now();
    while flights.load(Ordering::Relaxed) < STALLERS as u64
        && ramp.elapsed() < Duration::from_secs(10)
    {
        thread::sleep(Duration::from_millis(20));
    }
    let ramped_after = ramp.elapsed();
    let watch = Watch::start(&broker, "stall");
    let mut device_config = tls::client_config(&pki.ca.cert, Some(&pki.dev_a), ANY_VERSION);
    // Every connect is a full handshake, as a device after a power cycle.
    Arc::make_mut(&mut device_config).resumption = rustls::client::Resumption::disabled();
    let measuring = Instant::now();
    let mut times = Vec::new();
    let mut failures = Vec::new();
    for n in 0..DEVICE_CONNECTS {
        match device_connect(addr, Arc::clone(&device_config), n) {
            Ok(took) => times.push(took),
            Err(error) => failures.push(error),
        }
        if measuring.elapsed() > Duration::from_secs(20) {
            break;
        }
        thread::sleep(DEVICE_EVERY);
    }
    let measured_for = measuring.elapsed();
    let sent = hellos.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    attack.join().unwrap();
    let report = watch.finish();
    let attempts = times.len() + failures.len();
    times.sort();
    // Nearest rank: the smallest time at least p % of the connects took.
    let percentile = |p: usize| {
        times
            .get((times.len() * p).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or(DEVICE_ATTEMPT_TIMEOUT)
    };
    // A failed connect counts as the slowest.
    let p99 = if failures.is_empty() {
        percentile(99)
    } else {
        DEVICE_ATTEMPT_TIMEOUT
    };
    let stalled_cut = broker.count_log_lines(&["on listener \"tls\" failed"]);
    eprintln!(
        "handshake-slot attack: {STALLERS} sockets from {STALLER_ADDRESSES} addresses sent \
         {sent} ClientHellos and stalled (all in place after {ramped_after:?}; {stalled_cut} cut \
         off); good device under it for {measured_for:?}: MQTT accept success {}/{attempts} \
         ({:.1} %), connect p50 {:?}, p99 {p99:?}, max {:?} ({} build); failures: {failures:?}",
        times.len(),
        100.0 * times.len() as f64 / attempts.max(1) as f64,
        percentile(50),
        times.last().copied().unwrap_or_default(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    assert!(
        failures.is_empty(),
        "{} of {attempts} device connects failed: {failures:?}",
        failures.len()
    );
    assert!(
        p99 < DEVICE_CONNECT_P99_BOUND,
        "device connect p99 {p99:?} not under {DEVICE_CONNECT_P99_BOUND:?}"
    );
    report.assert_within(
        "handshake-slot attack",
        ROUND_TRIP_BOUND,
        SILENT_RSS_BOUND_KIB,
    );
}
