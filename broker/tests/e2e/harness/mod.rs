//! The harness the end-to-end tests share, split by concern:
//!
//! - [`process`]: the broker under test as a process ([`Broker`]): fleetmq
//!   started on free ports in a temporary directory, its logs, stopping and
//!   restarting it; [`service`] is the same for the tests that run the
//!   binary the way systemd or a migrating user does.
//! - [`raw_client`]: [`RawClient`], which writes exactly the bytes a test
//!   gives it and decodes what the broker sends.
//! - [`packets`]: the byte builders for those bytes ([`ConnectBuilder`],
//!   [`PublishBuilder`], [`subscribe`], [`prop`] ...).
//! - [`pki`]: the test PKI (CA, server and device certificates, CRLs, X.509
//!   v1 leaves); [`tls`]: TLS clients over it; [`tools`]: the external ones
//!   (openssl, mosquitto clients); [`web`]: the dashboard's HTTP API.
//! - [`fleet`]: a fleet of devices behind a mutual-TLS listener, for the
//!   identity and ACL tests; [`store`]: publishers and drains for the durable
//!   store tests; [`hostile`]: attackers and watchers; [`linger`]: clients
//!   that keep sending while the broker closes; [`remote`]: Debian's
//!   Mosquitto as a bridge's remote; [`nats`]: a JetStream cluster of real
//!   `nats-server`s for the cluster tests.
//!
//! Each test starts its own broker on a free port, so tests run in parallel.
//! With `FLEETMQ_TEST_BROKER=mosquitto` the harness starts the reference
//! Mosquitto instead, which proves a test asserts what the specification (and
//! the broker we replace) does; tests of fleetmq-only behaviour call
//! [`skip_on_mosquitto`] and return early there.
//!
//! Every wait is bounded: a test that hangs is a failing test.

pub mod fleet;
pub mod hostile;
pub mod linger;
pub mod nats;
pub mod packets;
pub mod pki;
pub mod process;
pub mod raw_client;
pub mod remote;
pub mod service;
pub mod store;
pub mod tls;
pub mod tools;
pub mod web;

use std::time::Duration;

pub use fleetmq_codec::{
    decode_packet, encode_packet, ConnAck, Packet, ProtocolVersion, PubResponse, Publish, QoS,
    ReasonCode,
};
pub use packets::*;
pub use process::*;
pub use raw_client::*;
pub use tls::Transport;

/// The default wait for a packet the broker must send.
pub const WAIT: Duration = Duration::from_secs(2);

/// The wait used to show that something does *not* happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// True when the tests run against the reference Mosquitto.
pub fn is_mosquitto() -> bool {
    std::env::var("FLEETMQ_TEST_BROKER").is_ok_and(|v| v == "mosquitto")
}

/// Returns true (and says so) when a fleetmq-only test must not run against
/// Mosquitto. Use as `if skip_on_mosquitto("why") { return; }`.
pub fn skip_on_mosquitto(why: &str) -> bool {
    if is_mosquitto() {
        eprintln!("skipped against mosquitto: {why}");
    }
    is_mosquitto()
}
