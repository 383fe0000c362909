//! Acknowledgements that promise durability wait for the store: each is
//! queued with the commit ticket of the records it promises and leaves in
//! arrival order once that ticket is committed [MQTT-4.6.0-2]; one whose
//! commit failed becomes a refusal (`refusal`). The protocol only reads the
//! store's progress; waiting for it to move is the IO loop's.
//!
//! On a cluster node an acknowledgement of a client's QoS >= 1 PUBLISH
//! also waits for JetStream's, through the message's [`ClusterAck`] cell
//! (decision 0158): it leaves when both are done, and is refused when
//! either failed.

use std::sync::Arc;

use super::{ClientProtocol, Exit};
use crate::cluster::{AckState, ClusterAck};
use crate::store::TicketState;
use fleetmq_codec::Packet;

/// An acknowledgement and what it waits for.
#[derive(Debug)]
pub(super) struct PendingAck {
    /// The store ticket of the records it promises (0: none).
    ticket: u64,
    /// JetStream's acknowledgement of the message, on a cluster node.
    cluster: Option<Arc<ClusterAck>>,
    packet: Packet,
}

impl ClientProtocol {
    /// Sends an acknowledgement once `ticket` is committed (at once for 0),
    /// never ahead of an earlier one; a failed commit turns it into a
    /// refusal.
    pub(super) fn send_ack(&mut self, ticket: u64, packet: Packet) -> Result<(), Exit> {
        self.send_ack_after(ticket, None, packet)
    }

    /// [`ClientProtocol::send_ack`] that also waits for the cluster's
    /// acknowledgement `cluster` (none: only the ticket).
    pub(super) fn send_ack_after(
        &mut self,
        ticket: u64,
        cluster: Option<Arc<ClusterAck>>,
        packet: Packet,
    ) -> Result<(), Exit> {
        self.pending_acks.push_back(PendingAck {
            ticket,
            cluster,
            packet,
        });
        self.on_commit()
    }

    /// True while acknowledgements wait for the store: the IO loop then
    /// waits for its progress and calls [`ClientProtocol::on_commit`].
    pub fn has_pending_acks(&self) -> bool {
        !self.pending_acks.is_empty()
    }

    /// The store made progress: sends the acknowledgements whose records
    /// are now durable, and refuses those whose commit failed, in order.
    pub fn on_commit(&mut self) -> Result<(), Exit> {
        let progress = self.committed.as_ref().map(|c| *c.borrow());
        while let Some(pending) = self.pending_acks.front() {
            let stored = progress.map_or(TicketState::Committed, |p| p.state(pending.ticket));
            let clustered = pending
                .cluster
                .as_ref()
                .map_or(AckState::Stored, |c| c.state());
            let state = match (stored, clustered) {
                (TicketState::Failed, _) | (_, AckState::Failed) => TicketState::Failed,
                (TicketState::Pending, _) | (_, AckState::Pending) => TicketState::Pending,
                _ => TicketState::Committed,
            };
            if state == TicketState::Pending {
                break;
            }
            let Some(pending) = self.pending_acks.pop_front() else {
                break;
            };
            if state == TicketState::Committed {
                self.send(&pending.packet);
            } else {
                self.refuse_ack(pending.packet)?;
            }
        }
        Ok(())
    }
}
