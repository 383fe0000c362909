//! Prometheus metrics of the bridges, built at each scrape from their
//! status: `fleetmq_bridge_connected`, `fleetmq_bridge_queued`,
//! `fleetmq_bridge_sent_total`, `fleetmq_bridge_received_total`,
//! `fleetmq_bridge_connect_failures_total` and `fleetmq_bridge_dropped_total`,
//! labelled by bridge name.
//!
//! It must not hold state of its own.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::Bridges;
use fleetmq_core::engine::Engine;

/// The families, gauges first: name and help.
const FAMILIES: [(&str, &str); 6] = [
    (
        "fleetmq_bridge_connected",
        "1 while the bridge is connected to its remote.",
    ),
    (
        "fleetmq_bridge_queued",
        "Messages waiting for the remote in the bridge's local session.",
    ),
    ("fleetmq_bridge_sent_total", "PUBLISHes sent to the remote."),
    (
        "fleetmq_bridge_received_total",
        "PUBLISHes received from the remote.",
    ),
    (
        "fleetmq_bridge_connect_failures_total",
        "Connects to the remote that failed.",
    ),
    (
        "fleetmq_bridge_dropped_total",
        "Messages dropped because the bridge's local queue was full.",
    ),
];

/// The bridges' families, for the broker's Prometheus registry.
pub struct BridgeCollector {
    broker: Arc<Engine>,
    bridges: Arc<Bridges>,
    /// Declared so the registry tells this collector from the broker's.
    descs: Vec<Desc>,
}

impl BridgeCollector {
    pub fn new(broker: Arc<Engine>, bridges: Arc<Bridges>) -> BridgeCollector {
        let descs = FAMILIES
            .iter()
            .filter_map(|(name, help)| {
                Desc::new(
                    (*name).to_string(),
                    (*help).to_string(),
                    vec!["bridge".to_string()],
                    std::collections::HashMap::new(),
                )
                .ok()
            })
            .collect();
        BridgeCollector {
            broker,
            bridges,
            descs,
        }
    }
}

impl Collector for BridgeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = Vec::new();
        let links = &self.bridges.links;
        if links.is_empty() {
            return families;
        }
        for (index, (name, help)) in FAMILIES[..2].iter().enumerate() {
            let Ok(metric) = IntGaugeVec::new(Opts::new(*name, *help), &["bridge"]) else {
                continue;
            };
            for link in links {
                let value = match index {
                    0 => i64::from(link.is_connected()),
                    _ => i64::try_from(link.queued(&self.broker)).unwrap_or(i64::MAX),
                };
                metric.with_label_values(&[link.name.as_str()]).set(value);
            }
            families.extend(metric.collect());
        }
        for (index, (name, help)) in FAMILIES[2..].iter().enumerate() {
            let Ok(metric) = IntCounterVec::new(Opts::new(*name, *help), &["bridge"]) else {
                continue;
            };
            for link in links {
                let value = match index {
                    0 => link.sent.load(Ordering::Relaxed),
                    1 => link.received.load(Ordering::Relaxed),
                    2 => link.failures.load(Ordering::Relaxed),
                    _ => link.dropped(&self.broker),
                };
                metric
                    .with_label_values(&[link.name.as_str()])
                    .inc_by(value);
            }
            families.extend(metric.collect());
        }
        families
    }
}
