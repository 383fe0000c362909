//! fleetmq's end-to-end tests, as one test binary: each module below was a
//! binary of its own (`tests/<module>.rs`) and keeps its name, so a test is
//! still `<module>::<test>` (`cargo nextest run -p fleetmq --test e2e
//! hostile_load::`). One binary links the broker library and the harness
//! once instead of 32 times (decision 0110).
//!
//! [`harness`] is what the modules share: starting brokers (fleetmq or the
//! reference Mosquitto), the raw MQTT client, packet byte builders, the test
//! PKI, TLS clients, external tools. The modules do not share state: nextest
//! runs every test in a process of its own, so a `static` or an environment
//! variable set by one test is never seen by another.
//!
//! Property tests keep their regression seeds in
//! `tests/proptest-regressions/<module>.txt`: proptest's default place for
//! a source file below a folder with a `main.rs`.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod acl_devices;
mod acl_mosquitto_clients;
mod acl_policy_forms;
mod acl_reload;
mod auth_cli;
mod auth_identity;
mod auth_passwords;
mod backpressure;
mod bridge;
mod certs_cli;
mod cluster_faults;
mod cluster_nats;
mod cluster_ops;
mod cluster_revocation;
mod cluster_sessions;
mod cluster_shared;
mod cluster_support;
mod cluster_wills;
mod conformance_v311;
mod conformance_v5;
mod dashboard_api;
mod device_report;
mod dynsec;
mod firmware_e2e;
mod hostile_load;
mod hostile_protocol;
mod mosquitto_db;
mod mosquitto_directives;
mod mosquitto_migration;
mod ota;
mod ota_device;
mod props_qos2;
mod props_queue;
mod props_topics;
mod provisioning;
mod proxy_protocol;
mod rumqttc_e2e;
mod service;
mod store_crash;
mod store_damaged;
mod store_qos2_inflight;
mod store_restart;
mod store_wal;
mod tls_chain_cache;
mod tls_clients;
mod tls_handshake_split;
mod tls_policies;
mod tls_reload;
mod tls_resumption;
mod tls_slowloris;
mod tls_ticket_keys;
mod topic_alias_out;
mod websockets;
