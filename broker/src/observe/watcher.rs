//! The task that feeds the registry and the event-driven metrics from the
//! event channel: off the data path, one event at a time.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::{Metrics, Registry};
use fleetmq_core::engine::Engine;
use fleetmq_core::events::Event;

/// Starts the watcher. `events` must be subscribed before the listeners
/// accept, so no connect is missed. The task ends at shutdown or when the
/// broker is dropped.
pub fn spawn_watcher(
    broker: Arc<Engine>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    mut events: broadcast::Receiver<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                _ = shutdown.changed() => break,
            };
            match received {
                Ok(event) => {
                    metrics.record(&event);
                    registry.record(&event);
                    if let Event::Connected(connected) = &event {
                        if !connected.clean_start {
                            let subscriptions =
                                session_subscriptions(&broker, &connected.client_id);
                            registry.restore_subscriptions(
                                &connected.client_id,
                                connected.connection,
                                subscriptions,
                            );
                        }
                    }
                }
                Err(RecvError::Lagged(lost)) => {
                    tracing::warn!(
                        "The device registry fell behind and missed {lost} connection events; \
                         the dashboard and connect metrics may be incomplete."
                    );
                    metrics.events_lost(lost);
                    registry.reconcile(lost, |client_id, connection| {
                        broker
                            .session(client_id)
                            .is_some_and(|session| session.lock().is_attached(connection))
                    });
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// The subscriptions a session holds now (filter -> granted QoS).
fn session_subscriptions(broker: &Engine, client_id: &str) -> BTreeMap<String, u8> {
    let Some(session) = broker.session(client_id) else {
        return BTreeMap::new();
    };
    let state = session.lock();
    state
        .subscriptions()
        .map(|(filter, subscription)| (filter.clone(), subscription.options.qos as u8))
        .collect()
}
