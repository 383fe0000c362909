//! What a connection answers when the store cannot make a message durable:
//! a PUBLISH that arrives while the store is failing, and an
//! acknowledgement whose commit failed (decision 0084).
//!
//! MQTT 5.0 PUBACK/PUBREC carry reason 0x80 (unspecified error): the
//! failure is the broker's, any write error (not only a full disk), so
//! 0x97 "quota exceeded" would point the client at a limit it does not
//! have. Everything else ends the connection: 3.1.1 has no negative
//! PUBACK, PUBREL/PUBCOMP cannot refuse, and a SUBACK's subscription has
//! already taken effect (and will be stored once the store recovers), so a
//! 0x80 there would lie. The client resends after reconnecting, so nothing
//! it was told is durable is lost.
//!
//! Also a PUBLISH that arrives while the heap is above
//! `limits.memory_limit`: there 0x97 is the truth (an administrative
//! limit), and QoS 0 is dropped and counted.
//!
//! This module owns no state; it must not decide health.

use super::{ClientProtocol, Exit};
use crate::engine::Stats;
use fleetmq_codec::{Packet, QoS, ReasonCode};

impl ClientProtocol {
    /// True when a QoS 1/2 PUBLISH must be refused before it is routed:
    /// the store cannot commit now, so its acknowledgement could only lie.
    pub(super) fn store_refuses_publishes(&self) -> bool {
        self.broker
            .store
            .as_ref()
            .is_some_and(|store| !store.health().is_healthy())
    }

    /// The reason a 5.0 PUBACK/PUBREC gets for a PUBLISH refused while the
    /// store is failing; 3.1.1 clients are disconnected instead.
    pub(super) fn refuse_publish(&self) -> Result<ReasonCode, Exit> {
        if self.version.is_v5() {
            Ok(ReasonCode::UNSPECIFIED_ERROR)
        } else {
            Err(Exit::StoreFailed("PUBLISH"))
        }
    }

    /// The reason a 5.0 PUBACK/PUBREC gets for a QoS 1/2 PUBLISH refused
    /// by a cluster node without NATS JetStream (0x80, as for a failing
    /// store); 3.1.1 clients are disconnected instead (decision 0158).
    pub(super) fn refuse_cluster_publish(&self) -> Result<ReasonCode, Exit> {
        if self.version.is_v5() {
            Ok(ReasonCode::UNSPECIFIED_ERROR)
        } else {
            Err(Exit::ClusterUnavailable("PUBLISH"))
        }
    }

    /// The reason a 5.0 PUBACK/PUBREC gets for a PUBLISH refused while the
    /// heap is above `limits.memory_limit` (QoS 0: dropped and counted);
    /// 3.1.1 QoS 1/2 clients are disconnected, as Mosquitto does when it
    /// cannot allocate, and resend after reconnecting.
    pub(super) fn refuse_for_memory(&self, qos: QoS) -> Result<ReasonCode, Exit> {
        Stats::add(&self.broker.stats.memory_refusals, 1);
        if qos == QoS::AtMostOnce {
            Stats::add(&self.broker.stats.publish_dropped, 1);
            return Ok(ReasonCode::QUOTA_EXCEEDED);
        }
        if self.version.is_v5() {
            Ok(ReasonCode::QUOTA_EXCEEDED)
        } else {
            Err(Exit::violation(
                ReasonCode::QUOTA_EXCEEDED,
                "PUBLISH refused: the broker is above limits.memory_limit",
            ))
        }
    }

    /// Answers an acknowledgement whose commit failed.
    pub(super) fn refuse_ack(&mut self, packet: Packet) -> Result<(), Exit> {
        match packet {
            Packet::PubRec(mut rec) => {
                // The flow ends here (5.0) or the client resends after a
                // reconnect (3.1.1): either way the id is free again, in
                // memory and, after the add, on disk.
                self.forget_incoming_qos2(rec.packet_id);
                if !self.version.is_v5() {
                    return Err(Exit::StoreFailed("PUBREC"));
                }
                rec.reason = ReasonCode::UNSPECIFIED_ERROR;
                self.send(&Packet::PubRec(rec));
                Ok(())
            }
            Packet::PubAck(mut ack) if self.version.is_v5() => {
                ack.reason = ReasonCode::UNSPECIFIED_ERROR;
                self.send(&Packet::PubAck(ack));
                Ok(())
            }
            other => Err(Exit::StoreFailed(other.name())),
        }
    }

    fn forget_incoming_qos2(&self, packet_id: u16) {
        let (_, op) = self.session.lock().release_incoming(packet_id);
        self.broker.record(op);
    }
}
