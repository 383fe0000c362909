//! Mosquitto's state carried over: `fleetmq migrate mosquitto --db FILE`
//! imports a Mosquitto 1.6/2.0 persistence file (`mosquitto.db`): retained
//! messages, persistent sessions with their subscriptions, and their queued
//! and in-flight QoS 1/2 messages (decisions 0130, 0131).
//!
//! - `reader` splits the file into records, strictly (offsets and chunk
//!   types in every error, no panic on any input).
//! - `plan` turns records into fleetmq's messages, sessions and
//!   deliveries, and says what it leaves behind and why.
//! - `import` writes a plan into the store in one transaction.
//!
//! - `at_start` runs `import` once at the first start, before the broker
//!   opens its store (`store.import_mosquitto_db`).
//!
//! It must not be used by the running broker: it is a command, run while
//! the broker is stopped, or before the broker opens its store.

pub mod at_start;
pub mod import;
pub mod plan;
pub mod reader;

pub use import::{import, ImportError, Report};
