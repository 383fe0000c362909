//! fleetmq-firmware: the ESP32 device that talks to fleetmq, as a `no_std`
//! library that runs the same on the device and on the host.
//!
//! - [`config`] reads `device.toml` (the lab's Mongoose-OS `mos.yml` keys:
//!   `mqtt.server`, `mqtt.ssl_ca_cert`, `mqtt.ssl_cert`, `mqtt.ssl_key`, ...)
//!   and the certificate files it names, with errors that name the key.
//! - [`topic`] names the device from its MAC: client id `esp32_807A98`,
//!   `CONNECTED!` on `/this/test/esp32_807A98`.
//! - [`machine`] is the connection state machine (WiFi -> SNTP -> TCP -> TLS
//!   -> CONNECT -> CONNACK, reconnect with [`backoff`]).
//! - [`mqtt`] is a small MQTT 3.1.1 client: codec plus session logic
//!   (retained status and will, command topic, keepalive), without IO.
//! - [`sntp`] and [`tls_observe`] parse SNTP replies and the TLS hellos.
//! - [`ota`] is firmware updates: two slots with rollback, the signed
//!   manifest, chunked download (docs/ota.md).
//! - [`provision`] builds the CSR and request for certificate provisioning
//!   by claim, reads the answer and tells when to renew.
//! - `runner` (feature `tls`) drives all of it over a platform's network
//!   with mbedTLS (mbedtls-rs); the ESP32 binary and the host simulation
//!   (`fleetmq-sim`, feature `sim`) are two such platforms.
//!
//! Nothing here panics on configuration or network input.
#![no_std]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod backoff;
pub mod config;
pub mod machine;
pub mod mqtt;
pub mod ota;
pub mod provision;
#[cfg(feature = "tls")]
pub mod runner;
pub mod sntp;
pub mod tls_observe;
pub mod topic;
