//! Bringing back what the store held at startup: retained messages,
//! offline persistent sessions with their subscriptions, queued and inflight
//! deliveries and QoS 2 state, their expiry timers, and delayed wills
//! (handed to the will scheduler, `will.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::router::Router;
use crate::session::Session;
use crate::store::{now_ms, Restored};

impl Engine {
    /// Loads `restored` into an empty broker. Must run inside the runtime
    /// (expiry timers and delayed wills are tasks).
    pub fn restore(self: &Arc<Self>, restored: Restored) {
        let now = now_ms();
        let instant_now = std::time::Instant::now();
        let retained = restored.retained.len();
        {
            let mut store = self.retained.write();
            for message in restored.retained {
                if !message.is_expired(instant_now) {
                    store.set_restored(message);
                }
            }
        }
        let sessions = restored.sessions.len();
        let mut deliveries = 0;
        for stored in restored.sessions {
            let session = Arc::new(Session::new(
                Arc::clone(&stored.client_id),
                self.queue_limits(),
                true,
            ));
            let expiry = stored.meta.expiry_interval;
            // A session that was connected when the broker stopped counts
            // as disconnected now.
            let offline_ms = now.saturating_sub(stored.meta.disconnected_at_ms.unwrap_or(now));
            let left = (u64::from(expiry) * 1000).saturating_sub(offline_ms);
            {
                let mut router = self.router.write();
                let mut state = session.lock();
                let (items, op) = state.restore(stored, now - offline_ms);
                deliveries += items;
                for (filter, sub) in state.subscriptions() {
                    router.subscribe(filter, &session.client_id, *sub);
                }
                self.record(op);
            }
            self.sessions
                .write()
                .insert(Arc::clone(&session.client_id), Arc::clone(&session));
            self.schedule_expiry(&session, 0, expiry, Duration::from_millis(left));
        }
        for will in &restored.wills {
            let delay = Duration::from_millis(will.publish_at_ms.saturating_sub(now));
            self.schedule_stored_will(
                Arc::clone(&will.client_id),
                Arc::clone(&will.message),
                delay,
            );
        }
        if retained + sessions + restored.wills.len() > 0 {
            tracing::info!(
                "Restored {retained} retained messages, {sessions} sessions with {deliveries} pending deliveries, {} delayed wills.",
                restored.wills.len()
            );
        }
    }
}
