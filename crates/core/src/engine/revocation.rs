//! Closing the connections whose client certificate a reloaded CRL now
//! revokes (decision 0089): the handshake checks a CRL only once, so
//! without this a revoked device stays connected until it drops.
//!
//! The caller reads the CRLs; this only matches the certificates of the
//! attached connections against them and asks those connections to close
//! through their control mailbox. Their sessions stay (a persistent
//! session expires as usual; the device cannot come back with a revoked
//! certificate, and a new certificate of the same identity is its owner).

use std::sync::Arc;

use super::{Engine, Stats};
use crate::peer::RevokedSerials;
use crate::session::{Control, Session};
use fleetmq_codec::ReasonCode;

impl Engine {
    /// Asks every attached connection whose certificate `revoked` names to
    /// close (5.0: DISCONNECT 0x87 Not authorized); logs each and counts
    /// it in `fleetmq_revoked_disconnects_total`. Returns how many.
    pub fn disconnect_revoked(&self, revoked: &RevokedSerials) -> usize {
        if revoked.is_empty() {
            return 0;
        }
        // Sessions are copied out so no session lock is taken under the
        // table's lock for longer than one look.
        let sessions: Vec<Arc<Session>> = self.sessions.read().values().cloned().collect();
        let mut closed = 0;
        for session in sessions {
            let state = session.lock();
            let Some(attachment) = state.attachment() else {
                continue;
            };
            let Some(certificate) = &attachment.certificate else {
                continue;
            };
            if !revoked.contains(certificate) {
                continue;
            }
            if attachment
                .control
                .send(Control::Disconnect(ReasonCode::NOT_AUTHORIZED))
                .is_err()
            {
                // Already closing on its own.
                continue;
            }
            closed += 1;
            Stats::add(&self.stats.revoked_disconnects, 1);
            tracing::info!(
                client = %session.client_id,
                serial = %certificate.serial,
                "Client {} disconnected: certificate revoked (serial {}, issuer {}).",
                session.client_id,
                certificate.serial,
                certificate.issuer,
            );
        }
        closed
    }
}
