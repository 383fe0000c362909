//! What the engine knows of a cluster backend (docs/decisions/0156 to
//! 0158): the reversible topic <-> NATS subject mapping ([`subject`]) and
//! the [`ClusterLink`] through which the engine hands messages to the
//! broker's NATS publisher and learns when JetStream has them ([`link`]),
//! and the [`SessionDirectory`] a connection asks before it attaches a
//! session ([`directory`]), and the [`WillKeeper`] that decides which node
//! publishes each will ([`wills`]).
//!
//! Nothing here does IO or depends on a NATS client: the connection,
//! streams and consumers live in the `fleetmq` binary (`broker/src/cluster`)
//! and feed the engine through its ordinary methods.

pub mod directory;
pub mod link;
pub mod share_ready;
pub mod subject;
pub mod wills;

pub use directory::{Admission, AdmitFuture, RecordFuture, SessionDirectory};
pub use link::{AckState, ClusterAck, ClusterLink, LinkBackend, Outbound, Settler};
pub use share_ready::SharedReadiness;
pub use wills::{ArmedWill, WillKeeper};
