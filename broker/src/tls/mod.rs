//! TLS for MQTT listeners: rustls server configurations per listener with
//! the client-certificate policy `none | optional | required`, CRLs, a
//! cache of verified client-certificate chains, session resumption (TLS 1.2
//! session ids and tickets, TLS 1.3 tickets, ticket keys kept in the data
//! directory across restarts), bounded and timed handshakes (a handshake
//! slot held only while there is work on the peer's bytes, [`SlotStream`],
//! slots shared fairly across addresses, [`HandshakeSlots`]), reading the
//! client certificate and the CRL files (the facts and the revoked set are
//! plain data in `fleetmq_core::peer`), X.509 v1 client certificates
//! where a listener accepts them, and refusals of a client certificate in
//! the lab's words, and a copy of every distinct client certificate seen
//! (`seen-certificates`, for `certs audit --seen`).
//!
//! It must not know MQTT: it hands a finished [`TlsStream`] plus a `TlsInfo`
//! and the `ConnectClock` (both in `fleetmq_core::peer`) to the connection
//! code.

mod accept;
mod ca_dir;
mod chain_cache;
mod chain_completion;
pub mod cipher_suites;
mod crl;
mod fair_slots;
mod files;
mod poll_timer;
mod refusal;
mod seen;
mod seen_writer;
mod server_config;
mod slot_stream;
mod stream;
mod tickets;
mod v1_client;

pub use accept::{handshake, HandshakeFailure, Refused};
pub use ca_dir::read_ca_certs;
pub use chain_cache::{ChainCacheCounters, MAX_CACHED_CHAINS};
pub use crl::read_revoked;
pub use fair_slots::{HandshakeSlots, SlotPermit};
pub use files::resolve_files;
pub use refusal::{take_last as take_last_refusal, CertificateProblem, CertificateRefused};
pub use seen::{
    note_refused_leaf, take_refused_leaf, SeenCertificates, MAX_REFUSED_KEPT,
    MAX_REFUSED_LEAF_BYTES, MAX_SEEN_CERTIFICATES, SEEN_DIR,
};
pub use server_config::{client_verifier, read_certs, read_key, TlsError, TlsFiles, TlsListener};
pub use slot_stream::SlotStream;
pub use stream::TlsStream;
pub use tickets::{TicketKeys, KEY_ROTATION, TICKET_KEY_FILE, TICKET_LIFETIME_SECS};
pub use v1_client::{verify_v1_leaf, V1ClientVerifier, V1Trust};
