//! Acknowledgements that promise durability wait for the store: each is
//! queued with the commit ticket of the records it promises and leaves in
//! arrival order once that ticket is committed [MQTT-4.6.0-2]; one whose
//! commit failed becomes a refusal (`refusal`). The protocol only reads the
//! store's progress; waiting for it to move is the IO loop's.

use super::{ClientProtocol, Exit};
use crate::store::TicketState;
use fleetmq_codec::Packet;

impl ClientProtocol {
    /// Sends an acknowledgement once `ticket` is committed (at once for 0),
    /// never ahead of an earlier one; a failed commit turns it into a
    /// refusal.
    pub(super) fn send_ack(&mut self, ticket: u64, packet: Packet) -> Result<(), Exit> {
        self.pending_acks.push_back((ticket, packet));
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
        while let Some((ticket, _)) = self.pending_acks.front() {
            let state = progress.map_or(TicketState::Committed, |p| p.state(*ticket));
            if state == TicketState::Pending {
                break;
            }
            let Some((_, packet)) = self.pending_acks.pop_front() else {
                break;
            };
            if state == TicketState::Committed {
                self.send(&packet);
            } else {
                self.refuse_ack(packet)?;
            }
        }
        Ok(())
    }
}
