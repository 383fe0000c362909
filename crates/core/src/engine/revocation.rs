//! Closing the connections whose client certificate a reloaded CRL now
//! revokes (decision 0089): the handshake checks a CRL only once, so
//! without this a revoked device stays connected until it drops.
//!
//! The caller reads the CRLs; this only matches the certificates of the
//! attached connections against them and asks those connections to close
//! through their control mailbox. Their sessions stay (a persistent
//! session expires as usual; the device cannot come back with a revoked
//! certificate, and a new certificate of the same identity is its owner).

use super::{Engine, Stats};
use crate::peer::RevokedSerials;
use fleetmq_codec::ReasonCode;

impl Engine {
    /// Asks every attached connection whose certificate `revoked` names to
    /// close (5.0: DISCONNECT 0x87 Not authorized); logs each and counts
    /// it in `fleetmq_revoked_disconnects_total`. Returns how many.
    pub fn disconnect_revoked(&self, revoked: &RevokedSerials) -> usize {
        if revoked.is_empty() {
            return 0;
        }
        self.disconnect_where(
            ReasonCode::NOT_AUTHORIZED,
            |attachment| {
                attachment
                    .certificate
                    .as_ref()
                    .is_some_and(|certificate| revoked.contains(certificate))
            },
            |session, attachment| {
                Stats::add(&self.stats.revoked_disconnects, 1);
                if let Some(certificate) = &attachment.certificate {
                    tracing::info!(
                        client = %session.client_id,
                        serial = %certificate.serial,
                        "Client {} disconnected: certificate revoked (serial {}, issuer {}).",
                        session.client_id,
                        certificate.serial,
                        certificate.issuer,
                    );
                }
            },
        )
    }
}
