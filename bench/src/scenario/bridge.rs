//! Scenario 7: QoS 1 bridged to a remote broker. The load itself is the
//! fan-in flow ([`crate::scenario::flow::run_between`]): publishers at QoS
//! 1 on the bridging broker, one QoS 1 subscriber on the remote, so every
//! delivery counted and every latency sample (publish to arrival at the
//! remote) went through the bridge.
//!
//! This module owns only what comes before the load: waiting until the
//! bridge forwards ([`wait_forwarding`]). It must not start brokers (the
//! runner does).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::conn::{Conn, Endpoint, Hello};
use crate::mqtt::{self, Packet};
use crate::stats::now_nanos;

/// The topic of the probes: under the bridged `bench/#`, outside the
/// flow's `bench/in/#`, so a late probe never counts as a delivery.
const PROBE_TOPIC: &str = "bench/probe";

/// Publishes a QoS 1 probe on `local` every 200 ms until one arrives at a
/// subscriber on `remote` (the bridge is up and subscribed), at most
/// `limit`. Returns how long that took.
pub async fn wait_forwarding(local: &Endpoint, remote: &Endpoint, limit: Duration) -> Result<f64> {
    let started = Instant::now();
    let deadline = started + limit;
    let timeout = Duration::from_secs(10);
    let hello = |client_id| Hello {
        client_id,
        clean_session: true,
        keep_alive_secs: 600,
    };
    let (mut far, _) = Conn::open(remote, 0, None, &hello("bridge-probe-sub"), timeout).await?;
    mqtt::subscribe(&mut far.out, 1, PROBE_TOPIC, 1);
    far.flush().await?;
    match far.recv().await? {
        Packet::SubAck { granted: 1, .. } => {}
        other => bail!("probe subscribe on the remote answered {other:?}"),
    }
    let (mut near, _) = Conn::open(local, 0, None, &hello("bridge-probe-pub"), timeout).await?;
    let mut next_id: u16 = 1;
    loop {
        if Instant::now() > deadline {
            bail!("the bridge forwarded nothing to the remote in {limit:?}");
        }
        mqtt::publish(&mut near.out, PROBE_TOPIC, 1, next_id, now_nanos(), 0, 16);
        next_id = next_id.checked_add(1).unwrap_or(1);
        near.flush().await?;
        // Acknowledgements on the local side are read and dropped.
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), near.recv()).await {}
        let wait_until = Instant::now() + Duration::from_millis(200);
        while let Ok(packet) = tokio::time::timeout_at(wait_until.into(), far.recv()).await {
            if let Packet::Publish { qos, packet_id, .. } = packet? {
                if qos > 0 {
                    mqtt::puback(&mut far.out, packet_id);
                    far.flush().await?;
                }
                near.close().await;
                far.close().await;
                return Ok(started.elapsed().as_secs_f64());
            }
        }
    }
}
