//! The question a connection asks the cluster between a valid CONNECT and
//! attaching its session (docs/decisions/0172, 0173): may this node take
//! the client id now, and is there a session of it elsewhere to bring in
//! first? The broker's NATS backend answers ([`SessionDirectory`]); the
//! connection only acts on the [`Admission`].
//!
//! No IO here and no policy: the trait is the seam that keeps NATS out of
//! the connection code.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use fleetmq_codec::ReasonCode;

/// What the cluster says about a CONNECT it was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Attach as usual: this node owns the client id now, and a session
    /// held elsewhere, if any, was brought into the engine.
    Proceed,
    /// Refuse the CONNECT with this reason; `why` ends the log line.
    Refuse { reason: ReasonCode, why: String },
}

/// The future [`SessionDirectory::admit`] returns.
pub type AdmitFuture<'a> = Pin<Box<dyn Future<Output = Admission> + Send + 'a>>;

/// The future [`SessionDirectory::record`] returns: why the record could
/// not be written, if it was not.
pub type RecordFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// The cluster's registry of who holds which client id and session.
pub trait SessionDirectory: Send + Sync + fmt::Debug {
    /// Claims `client_id` for this node before its session is attached.
    /// `expiry_interval` > 0 or `clean_start` false make it a persistent
    /// session, which is refused when the claim cannot be made durable.
    fn admit<'a>(
        &'a self,
        client_id: &'a str,
        clean_start: bool,
        expiry_interval: u32,
    ) -> AdmitFuture<'a>;

    /// Writes the record of `client_id`'s session as it stands now, just
    /// attached, where every node finds it; `Ok` when there is nothing to
    /// write (not persistent, not claimed here). The CONNACK waits for
    /// it: a device that drops and reconnects on another node at once
    /// resumes its session there.
    fn record<'a>(&'a self, client_id: &'a str) -> RecordFuture<'a>;
}
