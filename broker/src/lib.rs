//! fleetmq: an MQTT 3.1.1 / 5.0 broker for fleets of ESP32 devices.
//!
//! The workspace has three crates:
//!
//! - `fleetmq-codec` ([`fleetmq_codec`]) turns bytes into packets and back,
//!   for 3.1, 3.1.1 and 5.0, validating strictly and never copying
//!   payloads.
//! - `fleetmq-core` ([`fleetmq_core`]) is the broker without sockets, TLS,
//!   disk or HTTP: the configuration model, auth (identities, ACLs,
//!   password files), messages, the router, sessions, the engine (the
//!   shared state and the publish path), the store's vocabulary and
//!   handle, the event bus, and the socket-free per-client protocol
//!   (`fleetmq_core::protocol::ClientProtocol`).
//! - `fleetmq` (this package) runs it: listeners, TLS, the connection IO
//!   loop, the redb store writer, the registry, metrics, HTTP, `$SYS`,
//!   systemd, the lab PKI, Mosquitto translation and the binary.
//!
//! The layout of this package, from the wire inwards:
//!
//! - [`listener`] binds the configured sockets and accepts connections,
//!   enforcing per-listener and global connection limits; behind a
//!   balancer it reads the PROXY protocol header first and counts the
//!   client's address.
//! - [`tls`] runs TLS handshakes (rustls) with the listener's client
//!   certificate policy (v3 chains by webpki, X.509 v1 leaves by a path of
//!   its own where the listener allows them), shares handshake slots fairly
//!   across addresses, times handshakes, reads the client certificate and
//!   the CRL files, and keeps a copy of each client certificate it has seen
//!   (for `certs audit --seen`).
//! - [`connection`] is one client's IO loop: it reads and authenticates the
//!   CONNECT, then feeds bytes to the `ClientProtocol` and writes what it
//!   answers, waits for store commits, room in full queues, keep alive,
//!   take-over and shutdown, and ends by lingering.
//! - [`store`] keeps retained messages and persistent sessions on disk
//!   (redb): the [`fleetmq_core::store::StoreBackend`] whose writer thread
//!   commits ops in groups; a commit that fails is never acknowledged, and
//!   the store's health is reported until it recovers by itself.
//! - [`bridge`] links to remote brokers (`[[bridge]]`, Mosquitto's
//!   `connection`): a real MQTT client of each remote (TCP, TLS, mutual
//!   TLS, ALPN) relaying to a persistent local session of the engine whose
//!   durable queue is the store and forward; reconnects with backoff.
//! - [`observe`] turns the connection events (`fleetmq_core::events`) into
//!   the device registry and Prometheus metrics.
//! - [`http`] serves the dashboard, the JSON API, `/metrics` and health
//!   endpoints on a listener of its own (axum), with a connection cap,
//!   timeouts, a `Host` check and token sessions.
//! - [`sys`] publishes `$SYS/broker/...` statistics like Mosquitto does.
//! - [`certs`] is the lab PKI: a CA, server and device certificates, the
//!   CRL (`fleetmq certs ...`), and the dev CA of the embedded default.
//! - [`ota`] is firmware updates over MQTT: images with signed manifests,
//!   rollouts in waves kept as files, the worker answering devices on
//!   `$fleetmq/ota/<id>/...` (`fleetmq firmware ...`, docs/ota.md).
//! - [`auth_cli`] is `fleetmq passwd` and `fleetmq acl check`.
//! - [`cli_docs`] renders the man pages and shell completions from the
//!   clap definition of the command line (for the Debian package).
//! - [`mosquitto`] translates a `mosquitto.conf` into a
//!   `fleetmq_core::config::Config`.
//! - [`cluster`] is the NATS JetStream backend of `[cluster] backend =
//!   "nats"`: routing, retained messages, client-id ownership and
//!   persistent sessions shared between nodes.
//! - [`server`] starts everything from a configuration and stops it.
//! - [`service`] is life under systemd: sd_notify, journald-shaped logs,
//!   where the configuration comes from and what a reload changes.
#![forbid(unsafe_code)]

pub mod auth_cli;
pub mod bridge;
pub mod certs;
pub mod cli_docs;
pub mod cluster;
pub mod connection;
pub mod http;
pub mod listener;
pub mod mosquitto;
pub mod observe;
pub mod ota;
pub mod provision;
pub mod server;
pub mod service;
pub mod store;
pub mod sys;
pub mod tls;
