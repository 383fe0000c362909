//! Scenario 6: persistent QoS 1 into offline sessions, durability on.
//!
//! 1. [`prepare`]: `sessions` clients connect with clean session 0,
//!    subscribe at QoS 1 to `bench/persist/<n>` and go away.
//! 2. [`publish`]: `publishers` connections send `per_session` QoS 1
//!    messages to each topic, each with a window; each PUBACK is the broker's promise to deliver.
//! 3. The runner restarts the broker (SIGTERM, start again).
//! 4. [`drain`]: every session comes back (clean session 0) and receives
//!    what was queued for it; anything missing was lost.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::conn::{Conn, Endpoint, Hello};
use crate::mqtt::{self, Packet};
use crate::stats::{now_nanos, Percentiles, Samples};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistConfig {
    pub sessions: usize,
    pub per_session: usize,
    pub payload: usize,
    /// Unacknowledged QoS 1 messages each publisher keeps.
    pub window: usize,
    /// Publishing connections sharing the messages.
    pub publishers: usize,
    /// 1 or 2: the publishes' QoS and the subscriptions'. At QoS 2 the
    /// promise is the PUBREC (the latency measured) and a message counts
    /// once its PUBCOMP came back.
    pub qos: u8,
    /// Bound on each phase.
    pub phase_limit: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PersistResult {
    pub sessions: usize,
    pub published: u64,
    /// PUBACKs per second while publishing into the offline sessions.
    pub accepted_per_sec: f64,
    /// PUBLISH to PUBACK.
    pub ack_latency: Percentiles,
    /// Sessions the broker still had after the restart.
    pub sessions_present: u64,
    /// Distinct messages delivered after the restart.
    pub delivered: u64,
    pub lost: u64,
    pub drain_secs: f64,
    pub drained_per_sec: f64,
    /// fleetmq only (its `/metrics`): store commits, one fsync each,
    /// during the publishing phase, per second of it.
    pub fsyncs_per_sec: Option<f64>,
    /// Messages acknowledged per store commit during the publishing phase.
    pub msgs_per_fsync: Option<f64>,
    /// Store commits per second during the drain (removals of delivered
    /// messages; nothing waits for them).
    pub drain_fsyncs_per_sec: Option<f64>,
}

/// fleetmq's store counters from its `/metrics` at `addr`:
/// (`fleetmq_store_commits_total`, `fleetmq_store_committed_ops_total`).
/// `None` for brokers without them.
pub async fn store_counters(addr: std::net::SocketAddr) -> Option<(u64, u64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await.ok()?;
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()??;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some((
        value("fleetmq_store_commits_total ")?,
        value("fleetmq_store_committed_ops_total ")?,
    ))
}

fn client_id(n: usize) -> String {
    format!("persist-{n}")
}

fn topic(n: usize) -> String {
    format!("bench/persist/{n}")
}

/// Phase 1: the persistent sessions and their subscriptions.
pub async fn prepare(endpoint: &Endpoint, config: &PersistConfig) -> Result<()> {
    for n in 0..config.sessions {
        let id = client_id(n);
        let hello = Hello {
            client_id: &id,
            clean_session: false,
            keep_alive_secs: 600,
        };
        let (mut conn, _) = Conn::open(endpoint, n, None, &hello, config.phase_limit).await?;
        mqtt::subscribe(&mut conn.out, 1, &topic(n), config.qos);
        conn.flush().await?;
        match conn.recv().await? {
            Packet::SubAck { granted, .. } if granted == config.qos => {}
            other => bail!(
                "session {id}: subscribe at QoS {} answered {other:?}",
                config.qos
            ),
        }
        conn.close().await;
    }
    Ok(())
}

/// Phase 2: fills the offline sessions; fills in the publishing figures.
/// `publishers` connections share the messages (message k goes from
/// publisher k % publishers to session k % sessions), each with its own
/// window, all started together; the rate is all messages over the time
/// until the last PUBACK.
pub async fn publish(
    endpoint: &Endpoint,
    config: &PersistConfig,
    result: &mut PersistResult,
) -> Result<()> {
    let total = config.sessions * config.per_session;
    let publishers = config.publishers.clamp(1, total.max(1));
    let mut conns = Vec::with_capacity(publishers);
    for p in 0..publishers {
        let id = format!("persist-publisher-{p}");
        let hello = Hello {
            client_id: &id,
            clean_session: true,
            keep_alive_secs: 600,
        };
        conns.push(
            Conn::open(endpoint, p, None, &hello, config.phase_limit)
                .await?
                .0,
        );
    }
    let started = Instant::now();
    let deadline = started + config.phase_limit;
    let mut tasks = JoinSet::new();
    for (p, conn) in conns.into_iter().enumerate() {
        let config = config.clone();
        let share: Vec<usize> = (p..total).step_by(publishers).collect();
        tasks.spawn(async move { publish_share(conn, &config, share, deadline).await });
    }
    let mut acks = Samples::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        acks.merge(joined??);
    }
    let seconds = started.elapsed().as_secs_f64();
    result.sessions = config.sessions;
    result.published = total as u64;
    result.accepted_per_sec = total as f64 / seconds;
    result.ack_latency = acks.percentiles();
    Ok(())
}

/// One publisher's messages (`share`: their numbers k), `window` at a
/// time; PUBLISH-to-PUBACK (QoS 2: PUBLISH-to-PUBREC) times.
async fn publish_share(
    mut conn: Conn,
    config: &PersistConfig,
    share: Vec<usize>,
    deadline: Instant,
) -> Result<Samples> {
    let total = share.len();
    let topics: Vec<String> = (0..config.sessions).map(topic).collect();
    let mut sent_at = vec![0u64; 65536];
    let mut acks = Samples::with_capacity(total);
    let (mut sent, mut acked, mut inflight) = (0usize, 0usize, 0usize);
    let mut next_id: u16 = 1;
    while acked < total {
        while inflight < config.window && sent < total {
            let now = now_nanos();
            sent_at[next_id as usize] = now;
            let k = share[sent];
            // Message k goes to session k % sessions; its tag is k.
            mqtt::publish(
                &mut conn.out,
                &topics[k % config.sessions],
                config.qos,
                next_id,
                now,
                k as u64,
                config.payload,
            );
            next_id = next_id.checked_add(1).unwrap_or(1);
            sent += 1;
            inflight += 1;
        }
        conn.flush().await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let packet = match tokio::time::timeout(remaining, conn.recv()).await {
            Ok(packet) => packet?,
            Err(_) => bail!(
                "{acked} of {total} QoS {} publishes acknowledged in time",
                config.qos
            ),
        };
        let mut handle = |out: &mut Vec<u8>, packet: Packet| match packet {
            Packet::PubAck { packet_id } => {
                acks.push_nanos(now_nanos().saturating_sub(sent_at[packet_id as usize]));
                acked += 1;
                inflight = inflight.saturating_sub(1);
            }
            Packet::PubRec { packet_id } => {
                acks.push_nanos(now_nanos().saturating_sub(sent_at[packet_id as usize]));
                mqtt::pubrel(out, packet_id);
            }
            Packet::PubComp { .. } => {
                acked += 1;
                inflight = inflight.saturating_sub(1);
            }
            _ => {}
        };
        handle(&mut conn.out, packet);
        while let Some(packet) = conn.try_recv()? {
            handle(&mut conn.out, packet);
        }
    }
    conn.close().await;
    Ok(acks)
}

/// Phase 4: every session comes back and takes what was queued.
pub async fn drain(
    endpoint: &Endpoint,
    config: &PersistConfig,
    result: &mut PersistResult,
) -> Result<()> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..config.sessions {
        let endpoint = endpoint.clone();
        let config = config.clone();
        tasks.spawn(async move { drain_one(&endpoint, &config, n).await });
    }
    let (mut delivered, mut present) = (0u64, 0u64);
    while let Some(joined) = tasks.join_next().await {
        let (count, session_present) = joined??;
        delivered += count;
        present += u64::from(session_present);
    }
    result.drain_secs = started.elapsed().as_secs_f64();
    result.sessions_present = present;
    result.delivered = delivered;
    result.lost = result.published.saturating_sub(delivered);
    result.drained_per_sec = delivered as f64 / result.drain_secs.max(1e-9);
    Ok(())
}

/// One session's distinct deliveries (duplicates from redelivery count
/// once) and whether the broker still had the session.
async fn drain_one(endpoint: &Endpoint, config: &PersistConfig, n: usize) -> Result<(u64, bool)> {
    let id = client_id(n);
    let hello = Hello {
        client_id: &id,
        clean_session: false,
        keep_alive_secs: 600,
    };
    let (mut conn, timing) = Conn::open(endpoint, n, None, &hello, config.phase_limit).await?;
    let mut seen = HashSet::with_capacity(config.per_session);
    let deadline = Instant::now() + config.phase_limit;
    while seen.len() < config.per_session {
        let packet = match conn.try_recv()? {
            Some(packet) => packet,
            None => {
                conn.flush().await?;
                // Quiet for a second with messages missing: they are not
                // coming.
                let wait =
                    Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now()));
                match tokio::time::timeout(wait, conn.recv()).await {
                    Ok(packet) => packet?,
                    Err(_) => break,
                }
            }
        };
        match packet {
            Packet::Publish {
                qos,
                packet_id,
                tag,
                ..
            } => {
                seen.insert(tag);
                match qos {
                    1 => mqtt::puback(&mut conn.out, packet_id),
                    2 => mqtt::pubrec(&mut conn.out, packet_id),
                    _ => {}
                }
            }
            Packet::PubRel { packet_id } => mqtt::pubcomp(&mut conn.out, packet_id),
            _ => {}
        }
    }
    conn.flush().await?;
    conn.close().await;
    Ok((seen.len() as u64, timing.session_present))
}
