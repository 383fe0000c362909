//! Asking attached connections to close, chosen by a predicate: the one
//! loop behind CRL revocation (`revocation.rs`) and dynamic-security
//! changes (`dynsec.rs`). It only sends `Control::Disconnect` through each
//! connection's mailbox; sessions stay, and the connection task does the
//! closing. It must not hold the sessions table's lock while it looks at a
//! session.

use std::sync::Arc;

use super::Engine;
use crate::session::{Attachment, Control, Session};
use fleetmq_codec::ReasonCode;

impl Engine {
    /// Sends DISCONNECT `reason` to every attached connection `concerned`
    /// picks, calls `closed` for each one that was still there to be
    /// asked, and returns how many were.
    pub(super) fn disconnect_where(
        &self,
        reason: ReasonCode,
        concerned: impl Fn(&Attachment) -> bool,
        closed: impl Fn(&Session, &Attachment),
    ) -> usize {
        // Sessions are copied out so no session lock is taken under the
        // table's lock for longer than one look.
        let sessions: Vec<Arc<Session>> = self.sessions.read().values().cloned().collect();
        let mut count = 0;
        for session in sessions {
            let state = session.lock();
            let Some(attachment) = state.attachment() else {
                continue;
            };
            // A send error means the connection is already closing on its own.
            if concerned(attachment) && attachment.control.send(Control::Disconnect(reason)).is_ok()
            {
                count += 1;
                closed(&session, attachment);
            }
        }
        count
    }
}
