//! Wills: the one owner of the rule for when a will is published, used by
//! a connection that ends and by a restart that finds stored wills.
//!
//! The rule [MQTT-3.1.3-9, MQTT-3.1.2-8]: a will goes out when its Will
//! Delay Interval (capped by the session's expiry interval) has passed,
//! unless by then the session it belongs to was resumed by another
//! connection; a session that ended meanwhile (clean start elsewhere,
//! expiry) does not keep it back. A delayed will is kept in the store until
//! it is published or dropped, so a restart during the delay still
//! publishes it (decision 0107). This module decides nothing about access
//! (the connection checks the will's topic before handing it over).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Engine;
use crate::message::Message;
use crate::session::Session;
use crate::store::Op;
use fleetmq_codec::LastWill;

/// A will a closing connection hands to the broker.
#[derive(Debug)]
pub struct PendingWill {
    /// The session of the connection that ended.
    pub session: Arc<Session>,
    /// That connection's generation.
    pub generation: u64,
    /// The will, ready to publish.
    pub message: Arc<Message>,
    /// Its Will Delay Interval in seconds (0: none).
    pub delay_interval: u32,
    /// False when the connection had been taken over already.
    pub was_attached: bool,
}

impl PendingWill {
    /// A closing connection's will, built at `now` (for its expiry).
    pub fn new(
        session: Arc<Session>,
        generation: u64,
        will: LastWill,
        was_attached: bool,
        now: Instant,
    ) -> PendingWill {
        let delay_interval = will.delay_interval.unwrap_or(0);
        PendingWill {
            message: will_message(&session.client_id, will, now),
            session,
            generation,
            delay_interval,
            was_attached,
        }
    }
}

impl Engine {
    /// Publishes a closing connection's will now, or schedules it after
    /// its delay (capped by the session expiry: a session that ends
    /// publishes its will). A connection that was taken over leaves the
    /// will to the session's fate: unsent when it was resumed, sent now
    /// when the new connection started clean. Must run inside the runtime.
    pub fn schedule_will(self: &Arc<Self>, will: PendingWill) {
        let (expiry, alive) = {
            let state = will.session.lock();
            (state.expiry_interval(), state.is_alive())
        };
        let delay = will.delay_interval.min(expiry);
        if delay == 0 {
            self.publish(will.message);
            return;
        }
        if !will.was_attached {
            if !alive {
                self.publish(will.message);
            }
            return;
        }
        let client_id = Arc::clone(&will.session.client_id);
        let publish_at_ms = crate::store::now_ms() + u64::from(delay) * 1000;
        self.persist(|| {
            Op::WillPut(
                Arc::clone(&client_id),
                Arc::clone(&will.message),
                publish_at_ms,
            )
        });
        self.publish_will_after(
            Some(will.session),
            will.generation,
            client_id,
            will.message,
            Duration::from_secs(u64::from(delay)),
        );
    }

    /// Schedules a will the store held at startup, due after `delay`: it
    /// belongs to the restored session of its client, if there is one.
    pub(super) fn schedule_stored_will(
        self: &Arc<Self>,
        client_id: Arc<str>,
        message: Arc<Message>,
        delay: Duration,
    ) {
        let session = self.session(&client_id);
        let generation = session.as_ref().map_or(0, |s| s.lock().generation());
        self.publish_will_after(session, generation, client_id, message, delay);
    }

    /// The timer both paths share: after `delay`, publishes the will
    /// unless `session` was resumed since `generation`, then drops its
    /// stored copy.
    fn publish_will_after(
        self: &Arc<Self>,
        session: Option<Arc<Session>>,
        generation: u64,
        client_id: Arc<str>,
        message: Arc<Message>,
        delay: Duration,
    ) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let resumed = session.is_some_and(|s| s.lock().resumed_since(generation));
            if !resumed {
                broker.publish(message);
            }
            broker.persist(|| Op::WillClear(client_id));
        });
    }
}

/// The message a will becomes, published by `client_id` at `now`.
pub fn will_message(client_id: &Arc<str>, will: LastWill, now: Instant) -> Arc<Message> {
    Arc::new(Message {
        expires_at: Message::expiry_deadline(will.properties.message_expiry_interval, now),
        topic: Arc::from(will.topic),
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties: will.properties,
        publisher: Some(Arc::clone(client_id)),
    })
}
