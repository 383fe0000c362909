//! The device's side of certificate provisioning (docs/provisioning.md):
//! a certificate signing request for the device's own P-256 key, the
//! request and answer documents, when to renew, the device's key and the
//! flash record that keeps it. No IO of its own: the platform gives random
//! bytes and raw flash and moves the bytes.
//!
//! - [`der`]: the few DER encodings a PKCS#10 request needs.
//! - [`csr`]: the request for `CN=<device id>` and nothing else, as the
//!   broker requires; PEM for the request document.
//! - [`message`]: the request JSON, and reading the broker's answer.
//! - [`renewal`]: a certificate's end of validity, and whether it is due.
//! - [`key`]: the device's P-256 key from the platform's random source.
//! - [`store`]: key and certificate in a flash partition, torn writes
//!   detected.

pub mod csr;
pub mod der;
pub mod key;
pub mod message;
pub mod renewal;
pub mod store;

/// Where the device asks.
pub fn request_topic(client_id: &str) -> alloc::string::String {
    alloc::format!("$fleetmq/provision/{client_id}/request")
}

/// Where the broker answers.
pub fn response_topic(client_id: &str) -> alloc::string::String {
    alloc::format!("$fleetmq/provision/{client_id}/response")
}
