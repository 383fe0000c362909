//! Messages to the client: moving queued messages into the write buffer
//! within the inflight window, and retransmitting unacknowledged ones when
//! a session resumes.
//!
//! A first send names its topic by an outbound alias where the client
//! accepts them; a resend always names it in full.
//!
//! Every delivery, first send or resend, is checked against this
//! connection's read rights; one it may not read is neither sent nor
//! forgotten (it stays in the session for its owner, see `session::held`).
//! The session lock is taken once per drain; the outbox is written by the
//! IO loop after it.

use std::sync::Arc;
use std::time::Instant;

use super::topic_alias_out::AliasUse;
use super::{ClientProtocol, WRITE_BUDGET};
use crate::auth::Action;
use crate::engine::{AuthState, Stats};
use crate::events::ClientCounters;
use crate::session::{OutFlight, Queued};
use fleetmq_codec::{self as codec, Packet, PubResponse, Publish, QoS};

impl ClientProtocol {
    /// Builds the PUBLISH one subscriber receives for a queued message.
    /// None when the message lies outside this listener's mount point.
    fn publish_for(
        &self,
        item: &Queued,
        packet_id: Option<u16>,
        dup: bool,
        now: Instant,
    ) -> Option<Publish> {
        let message = &item.message;
        let topic = self.unmount_topic(&message.topic)?;
        let mut properties = message.properties.clone();
        properties
            .subscription_identifiers
            .clone_from(&item.subscription_ids);
        properties.message_expiry_interval = message.remaining_expiry(now);
        Some(Publish {
            dup,
            qos: item.qos,
            retain: item.retain,
            topic,
            packet_id,
            payload: message.payload.clone(),
            properties,
        })
    }

    /// Whether this connection may receive a message on `topic` under
    /// `rules` (fetched once per batch by the caller); a denial goes
    /// through [`crate::engine::Engine::allows`] again for its event and
    /// log line.
    fn may_read(&self, rules: &AuthState, topic: &str) -> bool {
        rules.check(&self.identity, Action::Receive, topic).allowed
            || self.broker.allows(&self.identity, Action::Receive, topic)
    }

    /// Encodes a first send of a PUBLISH, its topic named by an outbound
    /// alias where the client accepts them (see [`super::topic_alias_out`]),
    /// unless it exceeds the client's Maximum Packet Size, in which case it
    /// is dropped as if delivered [MQTT-3.1.2-25].
    fn send_publish(&mut self, publish: Publish) -> bool {
        let mut planned = self
            .outbound_aliases
            .as_deref()
            .and_then(|aliases| aliases.plan(&publish.topic));
        let topic = planned.map(|_| Arc::clone(&publish.topic));
        let mut packet = Packet::Publish(publish);
        if let (Some(aliases), Some(how), Packet::Publish(publish)) =
            (self.outbound_aliases.as_deref(), planned, &mut packet)
        {
            aliases.apply(publish, how);
        }
        if !self.fits_client(&packet) {
            // A new alias adds 3 bytes: the plain PUBLISH may still fit.
            let plain_fits = match (planned, &mut packet) {
                (Some(AliasUse::New(_)), Packet::Publish(publish)) => {
                    publish.properties.topic_alias = None;
                    planned = None;
                    self.fits_client(&packet)
                }
                _ => false,
            };
            if !plain_fits {
                Stats::add(&self.broker.stats.publish_dropped, 1);
                tracing::debug!(client = %self.client_id, "Dropped a message larger than client {}'s maximum packet size.", self.client_id);
                return false;
            }
        }
        let written_before = self.out.len();
        self.send(&packet);
        // Only a PUBLISH that was written teaches the client an alias.
        if let (Some(aliases), Some(how), Some(topic), true) = (
            self.outbound_aliases.as_deref_mut(),
            planned,
            topic,
            self.out.len() > written_before,
        ) {
            aliases.commit(&topic, how);
        }
        Stats::add(&self.broker.stats.publish_sent, 1);
        ClientCounters::add(&self.counters.messages_out, 1);
        true
    }

    /// Whether `packet` is within the client's Maximum Packet Size.
    fn fits_client(&self, packet: &Packet) -> bool {
        self.client_max_packet == usize::MAX
            || codec::encoded_len(packet, self.version)
                .is_ok_and(|len| len <= self.client_max_packet)
    }

    /// Moves queued messages into the write buffer: QoS 0 freely, QoS 1/2
    /// while the inflight window has room, at most [`WRITE_BUDGET`] bytes a
    /// turn. Expired messages are discarded [MQTT-3.3.2-5].
    pub fn drain(&mut self, now: Instant) {
        // Messages queued after an acknowledgement that waits for the store
        // (retained messages after a SUBACK) must not overtake it.
        if !self.pending_acks.is_empty() {
            return;
        }
        // The rules, fetched at the first message: most turns (every read
        // of a publisher) find the queue empty.
        let mut auth = None;
        let session = Arc::clone(&self.session);
        let mut state = session.lock();
        while self.out.len() < WRITE_BUDGET {
            let Some(item) = state.next_queued() else {
                break;
            };
            if item.message.is_expired(now) {
                self.broker.record(state.delivery_done(&item));
                continue;
            }
            // Checked per message, so a permitted wildcard never leaks a
            // topic this client may not read, and rules reloaded later
            // apply to existing subscriptions too.
            let rules = auth.get_or_insert_with(|| self.broker.auth());
            if self.unmount_topic(&item.message.topic).is_none() {
                // Outside the mount point: never for this client.
                self.broker.record(state.delivery_done(&item));
                continue;
            }
            if !self.may_read(rules, &item.message.topic) {
                // Not for this connection, but not lost either: kept for
                // the next connection of the session's owner.
                let (given_up, ops) = state.hold(item);
                Stats::add(&self.broker.stats.publish_dropped, given_up as u64);
                for op in ops {
                    self.broker.record(Some(op));
                }
                continue;
            }
            let packet_id = if item.qos == QoS::AtMostOnce {
                None
            } else {
                let max_bytes = self.broker.config.limits.max_inflight_bytes;
                let Some(id) = state.allocate_in_window(self.send_window, max_bytes) else {
                    // Window full: wait for an acknowledgement.
                    state.requeue_front(item);
                    break;
                };
                Some(id)
            };
            let publish = self.publish_for(&item, packet_id, false, now);
            let Some(publish) = publish else {
                continue;
            };
            if !self.send_publish(publish) {
                self.broker.record(state.delivery_done(&item));
                continue;
            }
            if let Some(id) = packet_id {
                self.broker.record(state.mark_sent(id, item));
            }
        }
        if state.settle_queue() {
            // Back under its bounds: publishers held back may read again.
            session.space.notify_waiters();
        }
        if self.out.len() >= WRITE_BUDGET && !state.queue_is_empty() {
            // Budget spent: come back after this batch is written.
            self.session.wakeup.notify_one();
        }
    }

    /// Sends again every unacknowledged PUBLISH (with DUP) and PUBREL, in
    /// their original order, after a session resumed [MQTT-4.4.0-1].
    /// A resent PUBLISH names its topic in full: aliases belong to the
    /// connection that first sent it [MQTT-3.3.2-7].
    /// A PUBLISH this connection may not read is not sent: it keeps its
    /// packet id and stays for a connection of the owner that may (a
    /// PUBREL carries no message and always goes).
    pub fn resend_inflight(&mut self, now: Instant) {
        let session = Arc::clone(&self.session);
        let state = session.lock();
        let rules = self.broker.auth();
        let pending: Vec<Packet> = state
            .inflight_in_order()
            .filter_map(|(id, entry)| match entry {
                OutFlight::Publish(item) => self
                    .may_read(&rules, &item.message.topic)
                    .then(|| self.publish_for(item, Some(id), true, now))
                    .flatten()
                    .map(Packet::Publish),
                OutFlight::Release(_) => Some(Packet::PubRel(PubResponse::success(id))),
            })
            .collect();
        drop(state);
        for packet in &pending {
            self.send(packet);
        }
    }
}
