//! fleetmq: an MQTT 3.1.1 / 5.0 broker for fleets of ESP32 devices.
//!
//! The layout, from the wire inwards:
//!
//! - [`codec`] turns bytes into [`codec::Packet`]s and back, for 3.1, 3.1.1
//!   and 5.0, validating strictly and never copying payloads.
//! - [`listener`] binds the configured sockets and accepts connections,
//!   enforcing per-listener and global connection limits.
//! - [`tls`] runs TLS handshakes (rustls) with the listener's client
//!   certificate policy (v3 chains by webpki, X.509 v1 leaves by a path of
//!   its own where the listener allows them), shares handshake slots fairly
//!   across addresses, times handshakes, reads the client certificate and
//!   keeps a copy of each one it has seen (for `certs audit --seen`).
//! - [`auth`] decides who a client is and what it may do: identities from
//!   client certificates, password files (`mosquitto_passwd` format), and
//!   topic ACLs from `fleetmq.toml` and Mosquitto `acl_file`s.
//! - [`connection`] runs one client's IO: the CONNECT handshake, the read
//!   and write loop, keep alive, waiting for store commits and for room in
//!   full queues, take-over and shutdown.
//! - [`protocol`] is one client's MQTT conversation after CONNECT, without
//!   IO ([`protocol::ClientProtocol`]): packets in; bytes, acknowledgements
//!   gated on commit tickets, a close reason and a will out.
//! - [`session`] is the state of one client id that outlives a connection:
//!   its owner, subscriptions, the outgoing queue, inflight messages, the
//!   will.
//! - [`router`] matches topics to subscriptions (a trie with `+`, `#` and
//!   `$share` groups) and keeps retained messages.
//! - [`broker`] is the shared state tying these together: the session table,
//!   the router, statistics, and the publish path (fan-out of one `Bytes`
//!   payload to every matching session).
//! - [`observe`] broadcasts connection events (connects with their
//!   handshake timings, disconnects, failed handshakes) to watchers, and
//!   turns them into the device registry and Prometheus metrics.
//! - [`http`] serves the dashboard, the JSON API, `/metrics` and health
//!   endpoints on a listener of its own (axum), with a connection cap,
//!   timeouts, a `Host` check and token sessions.
//! - [`sys`] publishes `$SYS/broker/...` statistics like Mosquitto does.
//! - [`store`] keeps retained messages and persistent sessions on disk
//!   (redb), written in groups by a thread of its own; a commit that fails
//!   is never acknowledged, and the store's health is reported until it
//!   recovers by itself.
//! - [`config`] is the TOML configuration: model, layering (defaults, file,
//!   `FLEETMQ_*` environment) and validation with file/line errors.
//! - [`certs`] is the lab PKI: a CA, server and device certificates, the
//!   CRL (`fleetmq certs ...`), and the dev CA of the embedded default.
//! - [`cli_docs`] renders the man pages and shell completions from the
//!   clap definition of the command line (for the Debian package).
//! - [`mosquitto`] translates a `mosquitto.conf` into a [`config::Config`].
//! - [`server`] starts everything from a [`config::Config`] and stops it.
//! - [`service`] is life under systemd: sd_notify, journald-shaped logs,
//!   where the configuration comes from and what a reload changes.
#![forbid(unsafe_code)]

pub mod auth;
pub mod broker;
pub mod certs;
pub mod cli_docs;
pub mod codec;
pub mod config;
pub mod connection;
pub mod http;
pub mod listener;
pub mod message;
pub mod mosquitto;
pub mod observe;
pub mod protocol;
pub mod router;
pub mod server;
pub mod service;
pub mod session;
pub mod store;
pub mod sys;
pub mod tls;
