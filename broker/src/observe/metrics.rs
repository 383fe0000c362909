//! Prometheus metrics, named per the Prometheus conventions (`fleetmq_`
//! prefix, base units, `_total` for counters).
//!
//! Two kinds of source:
//! - connection events (connects, handshake and CONNECT->CONNACK
//!   durations, handshake failures), recorded by the watcher task into
//!   ordinary prometheus counters and histograms;
//! - the broker's own atomics and tables (messages, bytes, sessions,
//!   subscriptions, retained and queued messages, ACL denials, connected
//!   clients per listener, certificate expiry), read only when `/metrics` is
//!   scraped by [`BrokerCollector`], so the data path pays nothing extra.
//!
//! In cluster mode every series carries a `node` label, the node's
//! `cluster.node_name` (a registry-wide const label, decision 0185).
//!
//! Labelled series whose label values are known up front (listeners, auth
//! modes, failure reasons) start at 0, so `rate()` and `increase()` see the
//! first event. This module must not take broker locks outside a scrape.

use std::borrow::Cow;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    TextEncoder,
};

use super::connect_series::{ConnectLabels, ConnectTable, ConnectVecs};
use super::handshakes::DURATION_BUCKETS;
use super::Registry;
use crate::tls::ChainCacheCounters;
use fleetmq_core::engine::{Engine, Stats};
use fleetmq_core::events::{AclAction, Connected, Event};
use fleetmq_core::peer::AuthMode;

/// Every reason label a failed TLS handshake may carry (see
/// [`crate::tls::HandshakeFailure::reason`]); others are counted too, just
/// not pre-initialized.
pub const FAILURE_REASONS: [&str; 16] = [
    "timeout",
    "reply_timeout",
    "unknown_ca",
    "expired",
    "revoked",
    "no_certificate",
    "bad_certificate",
    "v1_refused",
    "weak_key",
    "signature_algorithm",
    "protocol_version",
    "no_shared_cipher",
    "peer_alert",
    "closed",
    "malformed",
    "io",
];

/// A listener as the metrics label it.
#[derive(Debug, Clone)]
pub struct ListenerLabel {
    pub name: Arc<str>,
    pub tls: bool,
    /// `mqtt` or `websockets`: the `transport` label of its connections.
    pub transport: &'static str,
    /// The client-certificate chain cache counters of a TLS listener.
    pub chain_cache: Option<Arc<ChainCacheCounters>>,
}

/// The broker's metrics registry.
pub struct Metrics {
    registry: prometheus::Registry,
    connects: IntCounterVec,
    tls_handshake: HistogramVec,
    /// The handshake's parts (decision 0142), by `part`.
    tls_parts: HistogramVec,
    tls_failures: IntCounterVec,
    /// Connects with a client certificate, by its X.509 version.
    client_cert_versions: IntCounterVec,
    connect_to_connack: HistogramVec,
    events_lost: IntCounter,
    /// The connect series, resolved once per label set. Locked by the
    /// watcher only, for one event, never across an await.
    connect_series: Mutex<ConnectTable>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric; `listeners` are the bound MQTT listeners.
    pub fn new(
        broker: Arc<Engine>,
        registry: Arc<Registry>,
        listeners: &[ListenerLabel],
    ) -> Result<Metrics, prometheus::Error> {
        let connects = IntCounterVec::new(
            Opts::new(
                "fleetmq_connects_total",
                "Clients that completed CONNECT/CONNACK, by listener and TLS authentication.",
            ),
            &["listener", "auth"],
        )?;
        let tls_handshake = HistogramVec::new(
            HistogramOpts::new(
                "fleetmq_tls_handshake_seconds",
                "TCP accept to TLS handshake complete, for clients that went on to connect.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["listener", "auth", "resumed"],
        )?;
        let tls_parts = HistogramVec::new(
            HistogramOpts::new(
                "fleetmq_tls_handshake_part_seconds",
                "Where TLS handshakes of clients that connected spent their time: part is broker_flight (the broker's work up to its flight), client_wait (its flight to the client's reply), network_rtt (the kernel's smoothed round trip), device (client_wait less one round trip) broker_verify (the broker's work on the reply) broker_queue (waiting for a handshake slot) or broker_scheduling (the broker's task waiting to run before its flight).",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["listener", "auth", "resumed", "version", "key_type", "part"],
        )?;
        let tls_failures = IntCounterVec::new(
            Opts::new(
                "fleetmq_tls_handshake_failures_total",
                "TLS handshakes that failed, by listener and reason.",
            ),
            &["listener", "reason"],
        )?;
        let client_cert_versions = IntCounterVec::new(
            Opts::new(
                "fleetmq_tls_client_certificates_total",
                "Connects with a client certificate, by listener and X.509 version (v1, v3).",
            ),
            &["listener", "version"],
        )?;
        let connect_to_connack = HistogramVec::new(
            HistogramOpts::new(
                "fleetmq_connect_to_connack_seconds",
                "CONNECT received to CONNACK written.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["listener", "auth"],
        )?;
        let events_lost = IntCounter::new(
            "fleetmq_observe_events_lost_total",
            "Connection events the registry and these metrics missed by falling behind.",
        )?;
        for listener in listeners {
            let name = &*listener.name;
            let auths: &[AuthMode] = if listener.tls {
                &[AuthMode::OneWay, AuthMode::Mutual]
            } else {
                &[AuthMode::Plain]
            };
            for auth in auths {
                connects.with_label_values(&[name, auth.as_str()]);
                connect_to_connack.with_label_values(&[name, auth.as_str()]);
                if listener.tls {
                    for resumed in ["false", "true"] {
                        tls_handshake.with_label_values(&[name, auth.as_str(), resumed]);
                    }
                }
            }
            if listener.tls {
                for reason in FAILURE_REASONS {
                    tls_failures.with_label_values(&[name, reason]);
                }
            }
        }
        // A cluster node labels every series with its node name
        // (decision 0185), so one Prometheus tells the nodes apart.
        let cluster = &broker.config.cluster;
        let prometheus = if cluster.backend == fleetmq_core::config::ClusterBackend::None {
            prometheus::Registry::new()
        } else {
            let node = [("node".to_string(), cluster.node_name.clone())];
            prometheus::Registry::new_custom(None, Some(node.into_iter().collect()))?
        };
        prometheus.register(Box::new(connects.clone()))?;
        prometheus.register(Box::new(tls_handshake.clone()))?;
        prometheus.register(Box::new(tls_parts.clone()))?;
        prometheus.register(Box::new(tls_failures.clone()))?;
        prometheus.register(Box::new(client_cert_versions.clone()))?;
        prometheus.register(Box::new(connect_to_connack.clone()))?;
        prometheus.register(Box::new(events_lost.clone()))?;
        prometheus.register(Box::new(BrokerCollector {
            broker,
            registry,
            listeners: listeners
                .iter()
                .map(|l| (Arc::clone(&l.name), l.transport))
                .collect(),
            chain_caches: listeners
                .iter()
                .filter_map(|l| Some((Arc::clone(&l.name), Arc::clone(l.chain_cache.as_ref()?))))
                .collect(),
        }))?;
        #[cfg(target_os = "linux")]
        prometheus.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry: prometheus,
            connects,
            tls_handshake,
            tls_parts,
            tls_failures,
            client_cert_versions,
            connect_to_connack,
            events_lost,
            connect_series: Mutex::new(ConnectTable::default()),
        })
    }

    /// Registers metrics another part of the broker keeps (the
    /// provisioning service's certificate gauges, the bridges).
    pub fn register(&self, collector: Box<dyn Collector>) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// Updates the event-driven metrics.
    pub fn record(&self, event: &Event) {
        match event {
            Event::Connected(connected) => self.record_connect(connected),
            Event::HandshakeFailed {
                listener, reason, ..
            } => self
                .tls_failures
                .with_label_values(&[&**listener, reason])
                .inc(),
            Event::Disconnected { .. }
            | Event::Subscribed { .. }
            | Event::Unsubscribed { .. }
            | Event::DeviceReport { .. } => {}
        }
    }

    /// Updates the series of one connect, resolved once per label set
    /// ([`ConnectTable`]).
    fn record_connect(&self, connected: &Connected) {
        let tls = connected.tls.as_ref();
        let cert = tls.and_then(|t| t.client_cert.as_ref());
        let labels = ConnectLabels {
            listener: Arc::clone(&connected.listener),
            auth: tls.map_or(AuthMode::Plain, |t| t.auth),
            resumed: tls.is_some_and(|t| t.resumed),
            version: tls.map_or(Cow::Borrowed(""), |t| t.version.clone()),
            // What the device signs with; few values in a fleet.
            key_type: cert.map_or(Cow::Borrowed("none"), |c| c.key_type.clone()),
        };
        let vecs = ConnectVecs {
            connects: &self.connects,
            client_cert_versions: &self.client_cert_versions,
            tls_handshake: &self.tls_handshake,
            tls_parts: &self.tls_parts,
            connect_to_connack: &self.connect_to_connack,
        };
        let mut table = self.connect_series.lock();
        let series = table.series(&labels);
        series.connects(&vecs, &labels).inc();
        if let Some(cert) = cert {
            series.cert_version(&vecs, &labels, cert.version).inc();
        }
        if let (Some(_), Some(duration)) = (tls, connected.timing.tls_total) {
            series
                .handshake(&vecs, &labels)
                .observe(duration.as_secs_f64());
        }
        if let (Some(_), Some(split)) = (tls, connected.timing.split) {
            // In the order of `PARTS`.
            let parts = [
                Some(split.broker_flight),
                Some(split.client_wait),
                split.network_rtt,
                split.device(),
                Some(split.broker_verify),
                Some(split.broker_queue),
                Some(split.broker_scheduling),
            ];
            for (index, duration) in parts.into_iter().enumerate() {
                // Resolved only when observed: no empty series.
                let Some(duration) = duration else { continue };
                if let Some(histogram) = series.part(&vecs, &labels, index) {
                    histogram.observe(duration.as_secs_f64());
                }
            }
        }
        if let Some(duration) = connected.timing.connack {
            series
                .connack(&vecs, &labels)
                .observe(duration.as_secs_f64());
        }
    }

    /// Counts events missed by the watcher.
    pub fn events_lost(&self, lost: u64) {
        self.events_lost.inc_by(lost);
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }

    /// The content type of [`Metrics::render`].
    pub fn content_type() -> String {
        TextEncoder::new().format_type().to_string()
    }
}

/// Reads the broker's counters and tables at scrape time.
struct BrokerCollector {
    broker: Arc<Engine>,
    registry: Arc<Registry>,
    listeners: Vec<(Arc<str>, &'static str)>,
    /// Chain cache counters of the TLS listeners, by listener name.
    chain_caches: Vec<(Arc<str>, Arc<ChainCacheCounters>)>,
}

impl Collector for BrokerCollector {
    /// The families are built fresh on each scrape; their names are checked
    /// by tests rather than declared here.
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let broker = &self.broker;
        let stats = &broker.stats;
        let mut families = Vec::new();
        let mut connections: std::collections::BTreeMap<String, u64> = self
            .listeners
            .iter()
            .map(|(name, _)| (name.to_string(), 0))
            .collect();
        connections.extend(self.registry.connections_by_listener());
        families.extend(connections_gauge(&self.listeners, connections));
        let counters: [(&str, &str, u64); 8] = [
            (
                "fleetmq_messages_received_total",
                "PUBLISH packets received from clients.",
                Stats::get(&stats.publish_received),
            ),
            (
                "fleetmq_messages_sent_total",
                "PUBLISH packets sent to clients.",
                Stats::get(&stats.publish_sent),
            ),
            (
                "fleetmq_messages_dropped_total",
                "Messages dropped: session queue full, offline QoS 0, or too large for the client.",
                Stats::get(&stats.publish_dropped),
            ),
            (
                "fleetmq_bytes_received_total",
                "Bytes read from client sockets.",
                Stats::get(&stats.bytes_received),
            ),
            (
                "fleetmq_bytes_sent_total",
                "Bytes written to client sockets.",
                Stats::get(&stats.bytes_sent),
            ),
            (
                "fleetmq_protocol_errors_total",
                "Connections refused or closed for an MQTT protocol violation.",
                Stats::get(&stats.protocol_errors),
            ),
            (
                "fleetmq_revoked_disconnects_total",
                "Connections closed because a reloaded CRL revokes their client certificate.",
                Stats::get(&stats.revoked_disconnects),
            ),
            (
                "fleetmq_memory_refusals_total",
                "PUBLISHes and connections refused because the heap was above limits.memory_limit.",
                Stats::get(&stats.memory_refusals),
            ),
        ];
        for (name, help, value) in counters {
            families.extend(counter(name, help, value));
        }
        families.extend(labelled_counter(
            "fleetmq_acl_denied_total",
            "Publishes and subscriptions refused by an ACL, by action.",
            "action",
            [AclAction::Publish, AclAction::Subscribe, AclAction::Receive]
                .into_iter()
                .map(|a| (a.as_str().to_string(), broker.events.acl_denied_count(a))),
        ));
        families.extend(labelled_counter(
            "fleetmq_tls_chain_cache_hits_total",
            "Client certificate chains accepted from the cache of verified chains, by listener.",
            "listener",
            self.chain_caches
                .iter()
                .map(|(name, counters)| (name.to_string(), counters.hits())),
        ));
        families.extend(labelled_counter(
            "fleetmq_tls_chain_cache_misses_total",
            "Client certificate chains verified in full (not in the cache), by listener.",
            "listener",
            self.chain_caches
                .iter()
                .map(|(name, counters)| (name.to_string(), counters.misses())),
        ));
        let gauges: [(&str, &str, usize); 4] = [
            (
                "fleetmq_sessions",
                "Sessions, connected or not.",
                broker.session_count(),
            ),
            (
                "fleetmq_subscriptions",
                "Subscriptions over all sessions.",
                broker.subscription_count(),
            ),
            (
                "fleetmq_retained_messages",
                "Retained messages.",
                broker.retained_count(),
            ),
            (
                "fleetmq_queued_messages",
                "Messages waiting in session queues (beyond the inflight windows).",
                broker.queued_message_count(),
            ),
        ];
        for (name, help, value) in gauges {
            families.extend(gauge(name, help, value as i64));
        }
        if fleetmq_heap::installed() {
            families.extend(gauge(
                "fleetmq_heap_bytes",
                "Heap bytes in use by the broker (limits.memory_limit applies to this).",
                i64::try_from(fleetmq_heap::in_use()).unwrap_or(i64::MAX),
            ));
        }
        if let Some(secs) = self.registry.min_cert_expiry_secs() {
            families.extend(gauge(
                "fleetmq_client_cert_expiry_seconds",
                "Seconds until the soonest client certificate expiry, over the last connect of \
                 every remembered client id (negative: already expired).",
                secs,
            ));
        }
        if let Some(store) = &broker.store {
            let health = store.health();
            families.extend(gauge(
                "fleetmq_store_healthy",
                "1 while store commits succeed, 0 while they fail (QoS 1/2 publishes refused).",
                i64::from(health.is_healthy()),
            ));
            families.extend(counter(
                "fleetmq_store_commit_failures_total",
                "Store commits (and reopen attempts) that failed.",
                health.failed_commits(),
            ));
            families.extend(counter(
                "fleetmq_store_commits_total",
                "Store commits that wrote something (one fsync each).",
                health.commits(),
            ));
            families.extend(counter(
                "fleetmq_store_committed_ops_total",
                "Changes held by those commits (ops per commit: how well commits group).",
                health.committed_ops(),
            ));
            families.extend(counter(
                "fleetmq_store_checkpoint_waits_total",
                "Times the write-ahead log waited for its checkpointer (more than 4 sealed segments behind); acknowledgements waited with it.",
                health.checkpoint_waits(),
            ));
            families.extend(seconds_counter(
                "fleetmq_store_checkpoint_wait_seconds_total",
                "Seconds the write-ahead log spent in those waits.",
                health.checkpoint_wait_secs(),
            ));
        }
        families.extend(labelled_gauge(
            "fleetmq_build_info",
            "Always 1; the label carries the fleetmq version.",
            "version",
            std::iter::once((env!("CARGO_PKG_VERSION").to_string(), 1)),
        ));
        families
    }
}

fn counter(name: &str, help: &str, value: u64) -> Vec<MetricFamily> {
    match IntCounter::new(name, help) {
        Ok(metric) => {
            metric.inc_by(value);
            metric.collect()
        }
        Err(error) => skipped(name, error),
    }
}

fn seconds_counter(name: &str, help: &str, value: f64) -> Vec<MetricFamily> {
    match prometheus::Counter::new(name, help) {
        Ok(metric) => {
            metric.inc_by(value);
            metric.collect()
        }
        Err(error) => skipped(name, error),
    }
}

fn gauge(name: &str, help: &str, value: i64) -> Vec<MetricFamily> {
    match IntGauge::new(name, help) {
        Ok(metric) => {
            metric.set(value);
            metric.collect()
        }
        Err(error) => skipped(name, error),
    }
}

fn labelled_counter(
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (String, u64)>,
) -> Vec<MetricFamily> {
    match IntCounterVec::new(Opts::new(name, help), &[label]) {
        Ok(metric) => {
            for (value, count) in values {
                metric.with_label_values(&[value.as_str()]).inc_by(count);
            }
            metric.collect()
        }
        Err(error) => skipped(name, error),
    }
}

fn labelled_gauge(
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (String, i64)>,
) -> Vec<MetricFamily> {
    match IntGaugeVec::new(Opts::new(name, help), &[label]) {
        Ok(metric) => {
            for (value, count) in values {
                metric.with_label_values(&[value.as_str()]).set(count);
            }
            metric.collect()
        }
        Err(error) => skipped(name, error),
    }
}

/// `fleetmq_connections{listener, transport}`: clients connected now.
fn connections_gauge(
    listeners: &[(Arc<str>, &'static str)],
    connections: std::collections::BTreeMap<String, u64>,
) -> Vec<MetricFamily> {
    let name = "fleetmq_connections";
    let help = "Clients connected now, by listener and transport (mqtt, websockets).";
    match IntGaugeVec::new(Opts::new(name, help), &["listener", "transport"]) {
        Ok(metric) => {
            for (listener, count) in connections {
                let transport = listeners
                    .iter()
                    .find(|(name, _)| **name == *listener)
                    .map_or("mqtt", |(_, transport)| transport);
                metric
                    .with_label_values(&[listener.as_str(), transport])
                    .set(count as i64);
            }
            metric.collect()
        }
        Err(error) => skipped(name, error),
    }
}

/// A metric whose definition is wrong: a bug, logged rather than unwrapped.
fn skipped(name: &str, error: prometheus::Error) -> Vec<MetricFamily> {
    tracing::error!("Metric {name} cannot be built: {error}.");
    Vec::new()
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
