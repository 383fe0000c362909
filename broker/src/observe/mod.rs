//! The consumers of the connection events (the event bus itself, `Event`
//! and `Events`, is `fleetmq_core::events`):
//!
//! - [`registry`] is the device registry: who is connected, since when,
//!   how the handshake went, who left recently, the last connects per
//!   client id, handshake statistics. It is fed by one task
//!   ([`spawn_watcher`]) and read by the HTTP side.
//! - [`metrics`] is the Prometheus view of the same events plus the
//!   broker's counters, read at scrape time.
//!
//! This module must not slow the data path: it runs in the watcher task or
//! when someone asks, never in a connection task.

pub(crate) mod clock;
mod connect_series;
mod device_report;
mod handshakes;
pub mod metrics;
pub mod registry;
mod view;
mod watcher;

pub use handshakes::{HandshakeGroup, HandshakeSummary, DURATION_BUCKETS};
pub use metrics::Metrics;
pub use registry::Registry;
pub use view::{ClientDetail, ClientView, ConnectRecord};
pub use watcher::spawn_watcher;
