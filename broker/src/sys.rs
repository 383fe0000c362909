//! `$SYS/broker/...` statistics, published as retained messages every
//! `mqtt.sys_interval_secs`, with Mosquitto's topic names so existing lab
//! dashboards keep working. A value is republished only when it changed.
//!
//! Also the broker's periodic housekeeping that has no better home: expired
//! retained messages are purged on the same tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use fleetmq_codec::{PublishProperties, QoS};
use fleetmq_core::engine::{Engine, Stats};
use fleetmq_core::message::Message;

/// Starts the `$SYS` publisher unless the interval is 0.
pub fn spawn(broker: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let secs = broker.config.mqtt.sys_interval_secs;
    if secs == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut last: HashMap<&'static str, String> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(secs));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            broker.purge_expired_retained();
            for (topic, value) in snapshot(&broker) {
                if last.get(topic) == Some(&value) {
                    continue;
                }
                publish(&broker, topic, value.clone());
                last.insert(topic, value);
            }
        }
    });
}

/// The current `$SYS` values.
fn snapshot(broker: &Engine) -> Vec<(&'static str, String)> {
    let stats = &broker.stats;
    let connected = Stats::get(&stats.clients_connected);
    let total = broker.session_count() as u64;
    let mut values = vec![
        (
            "$SYS/broker/version",
            format!("fleetmq version {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/uptime",
            format!("{} seconds", broker.started_at.elapsed().as_secs()),
        ),
        ("$SYS/broker/clients/connected", connected.to_string()),
        ("$SYS/broker/clients/active", connected.to_string()),
        ("$SYS/broker/clients/total", total.to_string()),
        (
            "$SYS/broker/clients/disconnected",
            total.saturating_sub(connected).to_string(),
        ),
        (
            "$SYS/broker/clients/maximum",
            Stats::get(&stats.clients_maximum).to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            Stats::get(&stats.messages_received).to_string(),
        ),
        (
            "$SYS/broker/messages/sent",
            Stats::get(&stats.messages_sent).to_string(),
        ),
        (
            "$SYS/broker/publish/messages/received",
            Stats::get(&stats.publish_received).to_string(),
        ),
        (
            "$SYS/broker/publish/messages/sent",
            Stats::get(&stats.publish_sent).to_string(),
        ),
        (
            "$SYS/broker/publish/messages/dropped",
            Stats::get(&stats.publish_dropped).to_string(),
        ),
        (
            "$SYS/broker/bytes/received",
            Stats::get(&stats.bytes_received).to_string(),
        ),
        (
            "$SYS/broker/bytes/sent",
            Stats::get(&stats.bytes_sent).to_string(),
        ),
        (
            "$SYS/broker/subscriptions/count",
            broker.subscription_count().to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            broker.retained_count().to_string(),
        ),
        (
            "$SYS/broker/retained messages/bytes",
            broker.retained_bytes().to_string(),
        ),
        (
            "$SYS/broker/retained messages/refused",
            Stats::get(&stats.retained_refused).to_string(),
        ),
        (
            "$SYS/broker/connections/refused",
            Stats::get(&stats.connections_refused).to_string(),
        ),
        (
            "$SYS/broker/subscriptions/refused",
            Stats::get(&stats.subscriptions_refused).to_string(),
        ),
    ];
    // As Mosquitto's: the heap in use and its high-water mark, in bytes
    // (what `limits.memory_limit` is compared with).
    if fleetmq_heap::installed() {
        values.push((
            "$SYS/broker/heap/current",
            fleetmq_heap::in_use().to_string(),
        ));
        values.push(("$SYS/broker/heap/maximum", fleetmq_heap::peak().to_string()));
    }
    values
}

fn publish(broker: &Engine, topic: &'static str, value: String) {
    broker.publish(Arc::new(Message {
        topic: Arc::from(topic),
        payload: Bytes::from(value),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: PublishProperties::default(),
        expires_at: None::<Instant>,
        publisher: None,
    }));
}
