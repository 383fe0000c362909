//! fleetmq-core: the broker without its sockets, files on disk or HTTP.
//!
//! Everything here is reached from a connection task or the engine and
//! must stay free of rustls, axum, hyper, redb and prometheus (the
//! `fleetmq` package owns those). The layout, from the configuration
//! inwards:
//!
//! - [`config`] is the TOML configuration: model, layering (defaults, file,
//!   `FLEETMQ_*` environment) and validation with file/line errors.
//! - [`peer`] is what the transport tells the core about a peer, as plain
//!   data: the client certificate's facts, the revoked-serials set, what
//!   the TLS handshake negotiated and how long each setup step took.
//! - [`auth`] decides who a client is and what it may do: identities from
//!   client certificates, password files (`mosquitto_passwd` format), and
//!   topic ACLs from `fleetmq.toml` and Mosquitto `acl_file`s.
//! - [`message`] is one application message, its payload a shared `Bytes`.
//! - [`router`] matches topics to subscriptions (a trie with `+`, `#` and
//!   `$share` groups) and keeps retained messages.
//! - [`session`] is the state of one client id that outlives a connection:
//!   its owner (from [`auth`]), subscriptions, the outgoing queue, inflight messages, the
//!   will.
//! - [`engine`] is the shared state tying these together ([`engine::Engine`]):
//!   the session table, the router, statistics, and the publish path
//!   (fan-out of one `Bytes` payload to every matching session).
//! - [`protocol`] is one client's MQTT conversation without IO
//!   ([`protocol::ClientProtocol`]): packets in; bytes to write,
//!   acknowledgements gated on commit tickets, a close reason and a will
//!   out. The connection IO loop in `fleetmq` drives it.
//! - [`store`] is the vocabulary of durable state (ops, record encoding,
//!   what a store holds at start, tickets, health) and the [`store::Store`]
//!   handle; the writer behind it is a [`store::StoreBackend`] (redb in
//!   `fleetmq`).
//! - [`events`] is the bus of connection events and per-packet counters;
//!   its consumers (registry, metrics) live in `fleetmq`.
//!
//! The MQTT wire format is the `fleetmq-codec` crate.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod events;
pub mod fast_map;
pub mod message;
pub mod ota;
pub mod peer;
pub mod protocol;
pub mod provision;
pub mod router;
pub mod session;
pub mod store;
