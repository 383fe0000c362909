//! Packets from a connected client: PUBLISH and its acknowledgements,
//! SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT.
//!
//! Every check that can fail answers in the client's terms: a 5.0 reason
//! code in the ack, or a DISCONNECT with the reason (see [`Exit`]) where the
//! specification says the connection must close. Store records go
//! through the session's and the engine's methods; acknowledgements that
//! promise them wait for their ticket (`acks`).

use std::sync::Arc;
use std::time::Instant;

use super::{ClientProtocol, Exit};
use crate::auth::Action;
use crate::engine::Stats;
use crate::events::{ClientCounters, Event};
use crate::message::Message;
use crate::router::{
    parse_filter, validate_topic_filter, validate_topic_name, FilterKind, Subscription,
};
use fleetmq_codec::{
    AckProperties, Packet, PubResponse, Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck,
    Unsubscribe,
};

impl ClientProtocol {
    /// Handles one packet from the client, received at `now`.
    pub fn on_packet(&mut self, packet: Packet, now: Instant) -> Result<(), Exit> {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, now),
            Packet::PubAck(ack) => {
                let op = self.session.lock().on_puback(ack.packet_id);
                self.broker.record(op);
                Ok(())
            }
            Packet::PubRec(rec) => {
                if rec.reason.is_error() {
                    // The receiver refused the message: it is done.
                    let op = self.session.lock().on_pubrec_refused(rec.packet_id);
                    self.broker.record(op);
                    return Ok(());
                }
                let outcome = self.session.lock().on_pubrec(rec.packet_id);
                let ticket = self.broker.record(outcome.op);
                let mut rel = PubResponse::success(rec.packet_id);
                if !outcome.known {
                    rel.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                }
                // PUBREL only once the release is durable: after a crash
                // the PUBLISH must not be sent again [MQTT-4.3.3-5].
                self.send_ack(ticket, Packet::PubRel(rel))
            }
            Packet::PubRel(rel) => {
                let (known, op) = self.session.lock().release_incoming(rel.packet_id);
                // PUBCOMP frees the packet id for reuse, so it waits for
                // the removal to be durable: after a crash a restored id
                // would make the client's next message with that id look
                // like a retransmission and be lost.
                let ticket = self.broker.record(op);
                let mut comp = PubResponse::success(rel.packet_id);
                if !known {
                    comp.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                }
                self.send_ack(ticket, Packet::PubComp(comp))
            }
            Packet::PubComp(comp) => {
                let op = self.session.lock().on_pubcomp(comp.packet_id);
                self.broker.record(op);
                Ok(())
            }
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => {
                self.on_unsubscribe(unsubscribe);
                Ok(())
            }
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(disconnect) => {
                if let Some(asked) = disconnect.properties.session_expiry_interval {
                    let cap = self.broker.config.mqtt.max_session_expiry_secs;
                    if self.session.lock().change_expiry(asked, cap).is_err() {
                        return Err(Exit::violation(
                            ReasonCode::PROTOCOL_ERROR,
                            "DISCONNECT sets a session expiry after CONNECT asked for none [MQTT-3.14.2-2]",
                        ));
                    }
                }
                Err(Exit::ClientDisconnect {
                    publish_will: disconnect.reason == ReasonCode::DISCONNECT_WITH_WILL,
                })
            }
            Packet::Auth(_) => Err(Exit::violation(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH without an authentication method in CONNECT",
            )),
            Packet::Connect(_) => Err(Exit::violation(
                ReasonCode::PROTOCOL_ERROR,
                "second CONNECT [MQTT-3.1.0-2]",
            )),
            other => Err(Exit::violation(
                ReasonCode::PROTOCOL_ERROR,
                format!("{} is sent by servers, not clients", other.name()),
            )),
        }
    }

    /// Resolves the topic of an incoming PUBLISH (5.0 topic aliases) and
    /// checks it.
    fn resolve_topic(&mut self, publish: &Publish) -> Result<Arc<str>, Exit> {
        let mut topic = Arc::clone(&publish.topic);
        if let Some(alias) = publish.properties.topic_alias {
            let max = self.broker.config.limits.topic_alias_maximum;
            if alias == 0 || alias > max {
                return Err(Exit::violation(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    format!("topic alias {alias} outside 1..={max} [MQTT-3.3.2-8, MQTT-3.3.2-9]"),
                ));
            }
            if topic.is_empty() {
                let known = self
                    .topic_aliases
                    .as_ref()
                    .and_then(|known| known.get(&alias));
                topic = known.cloned().ok_or_else(|| {
                    Exit::violation(
                        ReasonCode::PROTOCOL_ERROR,
                        format!("topic alias {alias} used before it was set"),
                    )
                })?;
            } else {
                self.topic_aliases
                    .get_or_insert_with(Box::default)
                    .insert(alias, Arc::clone(&topic));
            }
        }
        if let Err(error) = validate_topic_name(&topic, &self.broker.topic_limits) {
            return Err(Exit::violation(
                ReasonCode::TOPIC_NAME_INVALID,
                format!("PUBLISH topic '{}': {error}", topic.escape_debug()),
            ));
        }
        Ok(topic)
    }

    fn on_publish(&mut self, publish: Publish, now: Instant) -> Result<(), Exit> {
        Stats::add(&self.broker.stats.publish_received, 1);
        ClientCounters::add(&self.counters.messages_in, 1);
        let mqtt = &self.broker.config.mqtt;
        if publish.qos as u8 > mqtt.max_qos {
            return Err(Exit::violation(
                ReasonCode::QOS_NOT_SUPPORTED,
                format!(
                    "PUBLISH at QoS {} above the maximum {}",
                    publish.qos as u8, mqtt.max_qos
                ),
            ));
        }
        if publish.retain && !mqtt.retain_available {
            return Err(Exit::violation(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "retained PUBLISH while retain is not available",
            ));
        }
        if !publish.properties.subscription_identifiers.is_empty() {
            return Err(Exit::violation(
                ReasonCode::PROTOCOL_ERROR,
                "PUBLISH from a client carries a subscription identifier [MQTT-3.3.4-6]",
            ));
        }
        let topic = self.resolve_topic(&publish)?;
        let packet_id = publish.packet_id.unwrap_or(0);
        if self.take_device_report(&topic, &publish.payload)
            || self.take_provision_request(&topic, &publish.payload)
            || self.take_ota_message(&topic, &publish.payload)
        {
            // The broker's own topic: acknowledged, never routed.
            return match publish.qos {
                QoS::AtMostOnce => Ok(()),
                QoS::AtLeastOnce => {
                    self.send_ack(0, Packet::PubAck(PubResponse::success(packet_id)))
                }
                QoS::ExactlyOnce => {
                    self.session.lock().accept_incoming(packet_id);
                    self.send_ack(0, Packet::PubRec(PubResponse::success(packet_id)))
                }
            };
        }
        let topic = self.mount_topic(topic);
        if publish.qos == QoS::ExactlyOnce {
            let state = self.session.lock();
            if state.has_incoming(packet_id) {
                // A retransmission of a message we already routed: only
                // acknowledge it again (exactly once, [MQTT-4.3.3-9]).
                drop(state);
                return self.send_ack(0, Packet::PubRec(PubResponse::success(packet_id)));
            }
            if state.incoming_count() >= usize::from(self.broker.config.limits.max_inflight) {
                return Err(Exit::violation(
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    "more unacknowledged QoS 2 messages than the Receive Maximum [MQTT-3.3.4-8]",
                ));
            }
        }
        let max_payload = self.broker.config.limits.max_payload_size;
        let too_large = max_payload > 0 && publish.payload.len() > max_payload as usize;
        // $SYS belongs to the broker, and the ACL decides the rest (after
        // the size, as Mosquitto checks them).
        let denied = !too_large && !self.broker.allows(&self.identity, Action::Publish, &topic);
        let mut ticket = 0;
        let mut cluster_ack = None;
        let reason = if too_large {
            tracing::info!(
                client = %self.client_id,
                "Dropped PUBLISH of {} bytes on '{}' from {}: above limits.max_payload_size {max_payload}.",
                publish.payload.len(),
                topic.escape_debug(),
                self.client_id,
            );
            ReasonCode::PACKET_TOO_LARGE
        } else if denied {
            ReasonCode::NOT_AUTHORIZED
        } else if &*topic == crate::auth::dynsec::command::CONTROL_TOPIC
            && self.broker.dynsec_command(&self.identity, &publish.payload)
        {
            // A dynsec command: answered on the response topic, never
            // routed (decision 0140).
            ReasonCode::SUCCESS
        } else if publish.qos != QoS::AtMostOnce && self.store_refuses_publishes() {
            // Not routed: nothing of it exists anywhere to be lost.
            self.refuse_publish()?
        } else if publish.qos != QoS::AtMostOnce && self.broker.cluster_refuses_publishes() {
            // A cluster node without NATS: refused the same way, never
            // acknowledged silently (decision 0158).
            self.refuse_cluster_publish()?
        } else if self.broker.memory_exhausted() && !(publish.retain && publish.payload.is_empty())
        {
            // Above `limits.memory_limit`: not routed, so nothing new is
            // held; the publisher is told (5.0) or may resend later. A
            // retained message's deletion frees memory: it goes through.
            self.refuse_for_memory(publish.qos)?
        } else {
            let mut properties = publish.properties;
            properties.topic_alias = None;
            // The clock is read only for messages that can expire.
            let expires_at = properties
                .message_expiry_interval
                .and_then(|secs| Message::expiry_deadline(Some(secs), now));
            let message = Arc::new(Message {
                expires_at,
                topic,
                payload: publish.payload,
                qos: publish.qos,
                retain: publish.retain,
                properties,
                publisher: Some(Arc::clone(&self.client_id)),
            });
            // The publisher's QoS 2 packet id is committed with the
            // message's own records: a retransmission after a restart is
            // then recognised exactly when the message was kept
            // [MQTT-4.3.3-9].
            let mut own = Vec::new();
            if publish.qos == QoS::ExactlyOnce {
                own.extend(self.session.lock().incoming_record(packet_id));
            }
            let outcome = self.broker.publish_with(message, own);
            ticket = outcome.ticket;
            cluster_ack = outcome.cluster_ack;
            for session in outcome.pressured {
                if !self.pressure.iter().any(|held| Arc::ptr_eq(held, &session)) {
                    self.pressure.push(session);
                }
            }
            // A node cannot see other nodes' subscribers: a message that
            // went to the cluster may have matched there.
            if outcome.matched == 0 && cluster_ack.is_none() {
                ReasonCode::NO_MATCHING_SUBSCRIBERS
            } else {
                ReasonCode::SUCCESS
            }
        };
        // 3.1.1 cannot say "not authorized" or "too large" in an ack: the
        // message is acknowledged and dropped, as Mosquitto does.
        let mut ack = PubResponse::success(packet_id);
        ack.reason = reason;
        match publish.qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => self.send_ack_after(ticket, cluster_ack, Packet::PubAck(ack)),
            QoS::ExactlyOnce => {
                if !reason.is_error() {
                    self.session.lock().accept_incoming(packet_id);
                }
                self.send_ack_after(ticket, cluster_ack, Packet::PubRec(ack))
            }
        }
    }

    fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), Exit> {
        let max_qos = QoS::from_u8(self.broker.config.mqtt.max_qos).unwrap_or(QoS::ExactlyOnce);
        let mut reasons = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        let mut new_groups: Vec<(String, String)> = Vec::new();
        let mut suback_ticket = 0;
        for (filter, options) in &subscribe.filters {
            if let Err(error) = validate_topic_filter(filter, &self.broker.topic_limits) {
                tracing::info!(client = %self.client_id, "Client {} subscription to '{}' refused: {error}.", self.client_id, filter.escape_debug());
                reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            let mounted = self.mount_filter(filter);
            let filter = &mounted;
            if !self
                .broker
                .allows(&self.identity, Action::Subscribe, filter)
            {
                // 3.1.1 receives 0x80, 5.0 0x87 not authorized.
                reasons.push(ReasonCode::NOT_AUTHORIZED);
                continue;
            }
            let kind = parse_filter(filter);
            let shared = matches!(kind, FilterKind::Shared { .. });
            if shared && options.no_local {
                return Err(Exit::violation(
                    ReasonCode::PROTOCOL_ERROR,
                    format!("no-local on shared subscription '{filter}' [MQTT-3.8.3-4]"),
                ));
            }
            let granted = options.qos.min(max_qos);
            let mut options = *options;
            options.qos = granted;
            let subscription = Subscription {
                options,
                identifier: subscribe.subscription_identifier,
            };
            // limits.max_subscriptions_per_client: refuse this filter only.
            let Ok((is_new, stored)) = self.broker.subscribe(&self.session, filter, subscription)
            else {
                tracing::debug!(client = %self.client_id, "Client {} subscription to '{}' refused: quota of subscriptions exceeded.", self.client_id, filter.escape_debug());
                reasons.push(ReasonCode::QUOTA_EXCEEDED);
                continue;
            };
            suback_ticket = suback_ticket.max(stored);
            if let FilterKind::Shared { group, filter } = kind {
                new_groups.push((group.to_owned(), filter.to_owned()));
            }
            self.broker.events.emit(Event::Subscribed {
                client_id: Arc::clone(&self.client_id),
                filter: filter.clone(),
                qos: granted as u8,
            });
            let send_retained = !shared
                && match options.retain_handling {
                    0 => true,
                    1 => is_new,
                    _ => false,
                };
            if send_retained {
                retained.push((filter.clone(), granted));
            }
            reasons.push(ReasonCode(granted as u8));
        }
        // In a cluster, the SUBACK of a shared group's first member here
        // waits (bounded) until the group's consumer serves this node
        // (decision 0182).
        let groups: Vec<(&str, &str)> = new_groups
            .iter()
            .map(|(group, filter)| (group.as_str(), filter.as_str()))
            .collect();
        let cluster_cell = match self.broker.cluster() {
            Some(link) if !groups.is_empty() => link.shared.waiter(&groups),
            _ => None,
        };
        self.send_ack_after(
            suback_ticket,
            cluster_cell,
            Packet::SubAck(SubAck {
                packet_id: subscribe.packet_id,
                reasons,
                properties: AckProperties::default(),
            }),
        )?;
        // Queued after the SUBACK is in the write buffer, so they follow it.
        for (filter, granted) in retained {
            self.broker.deliver_retained(
                &self.session,
                &filter,
                granted,
                subscribe.subscription_identifier,
            );
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let reasons = unsubscribe
            .filters
            .iter()
            .map(|filter| {
                let mounted = self.mount_filter(filter);
                if validate_topic_filter(filter, &self.broker.topic_limits).is_err() {
                    ReasonCode::TOPIC_FILTER_INVALID
                } else if !self.broker.may_unsubscribe(&self.identity, &mounted) {
                    // Only dynsec has unsubscribe rights (decision 0138).
                    ReasonCode::NOT_AUTHORIZED
                } else if self.broker.unsubscribe(&self.session, &mounted) {
                    self.broker.events.emit(Event::Unsubscribed {
                        client_id: Arc::clone(&self.client_id),
                        filter: filter.clone(),
                    });
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        self.send(&Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reasons,
            properties: AckProperties::default(),
        }));
    }
}
