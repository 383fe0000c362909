//! The cluster backend's Prometheus metrics (decision 0185), beside the
//! broker's (which carry a `node` const label in cluster mode):
//!
//! - `fleetmq_cluster_nats_connected`: 1 while the NATS client is
//!   connected;
//! - `fleetmq_cluster_ready`: 1 while this node accepts QoS 1/2 publishes
//!   (streams, consumer, retained index and node name in place);
//! - `fleetmq_cluster_publish_acks_total{outcome}`: QoS >= 1 messages
//!   JetStream `stored`, or `failed` to store (error or timeout), each a
//!   refused acknowledgement;
//! - `fleetmq_cluster_connect_admission_seconds`: a CONNECT's time in the
//!   session directory (its ownership claim and, when it resumes a session
//!   from elsewhere, the record), i.e. its key-value round trips.
//!
//! Gauges and counters are read at scrape time from the link and the
//! client; only the histogram is recorded as CONNECTs pass. It changes
//! nothing.

use std::sync::{Arc, Weak};
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};

use fleetmq_core::cluster::{AdmitFuture, RecordFuture, SessionDirectory};
use fleetmq_core::engine::Engine;

use super::view::ClusterView;

/// Key-value round trips on loopback take well under a millisecond; a
/// CONNECT during a leader election may wait seconds.
const ADMISSION_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// The metrics recorded as things happen.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    pub admission: Histogram,
}

impl ClusterMetrics {
    pub fn new() -> Result<ClusterMetrics, prometheus::Error> {
        let admission = Histogram::with_opts(
            HistogramOpts::new(
                "fleetmq_cluster_connect_admission_seconds",
                "Time a CONNECT spent claiming its client id (and reading a session held elsewhere) in the cluster's key-value buckets.",
            )
            .buckets(ADMISSION_BUCKETS.to_vec()),
        )?;
        Ok(ClusterMetrics { admission })
    }
}

/// The session directory with its admission time recorded.
#[derive(Debug)]
pub struct Metered {
    pub inner: Arc<dyn SessionDirectory>,
    pub histogram: Histogram,
}

impl SessionDirectory for Metered {
    fn admit<'a>(
        &'a self,
        client_id: &'a str,
        clean_start: bool,
        expiry_interval: u32,
    ) -> AdmitFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let admission = self
                .inner
                .admit(client_id, clean_start, expiry_interval)
                .await;
            self.histogram.observe(started.elapsed().as_secs_f64());
            admission
        })
    }

    fn record<'a>(&'a self, client_id: &'a str) -> RecordFuture<'a> {
        self.inner.record(client_id)
    }
}

/// Reads the link and the client at scrape time.
pub struct ClusterCollector {
    view: Arc<ClusterView>,
    broker: Weak<Engine>,
    /// The families' descriptions (the registry tells collectors apart
    /// by them).
    descs: Vec<Desc>,
}

const CONNECTED: (&str, &str) = (
    "fleetmq_cluster_nats_connected",
    "1 while this node's NATS client is connected.",
);
const READY: (&str, &str) = (
    "fleetmq_cluster_ready",
    "1 while this node accepts QoS 1/2 publishes (JetStream streams, consumer and node name in place).",
);
const ACKS: (&str, &str) = (
    "fleetmq_cluster_publish_acks_total",
    "QoS 1/2 messages handed to JetStream, by outcome: stored (acknowledged to the publisher) or failed (refused).",
);

impl ClusterCollector {
    pub fn new(
        view: Arc<ClusterView>,
        broker: &Arc<Engine>,
    ) -> Result<ClusterCollector, prometheus::Error> {
        let mut descs: Vec<Desc> = view.metrics.admission.desc().into_iter().cloned().collect();
        for ((name, help), labels) in [
            (CONNECTED, vec![]),
            (READY, vec![]),
            (ACKS, vec!["outcome".to_string()]),
        ] {
            descs.push(Desc::new(
                name.into(),
                help.into(),
                labels,
                Default::default(),
            )?);
        }
        Ok(ClusterCollector {
            view,
            broker: Arc::downgrade(broker),
            descs,
        })
    }
}

impl Collector for ClusterCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.view.metrics.admission.collect();
        let link = self.broker.upgrade().and_then(|broker| {
            let link = broker.cluster()?;
            Some((link.is_ready(), link.ack_outcomes()))
        });
        let (ready, (stored, failed)) = link.unwrap_or((false, (0, 0)));
        for ((name, help), value) in [(CONNECTED, self.view.nats_connected()), (READY, ready)] {
            if let Ok(gauge) = IntGauge::new(name, help) {
                gauge.set(i64::from(value));
                families.extend(gauge.collect());
            }
        }
        if let Ok(acks) = IntCounterVec::new(Opts::new(ACKS.0, ACKS.1), &["outcome"]) {
            acks.with_label_values(&["stored"]).inc_by(stored);
            acks.with_label_values(&["failed"]).inc_by(failed);
            families.extend(acks.collect());
        }
        families
    }
}
