//! The device's side of certificate provisioning (docs/provisioning.md):
//! a certificate signing request for the device's own P-256 key, the
//! request and answer documents, and when to renew. No IO and no crypto of
//! its own: the platform signs ([`csr::CsrSigner`], mbedTLS on the device)
//! and moves the bytes.
//!
//! - [`der`]: the few DER encodings a PKCS#10 request needs.
//! - [`csr`]: the request for `CN=<device id>` and nothing else, as the
//!   broker requires; PEM for the request document.
//! - [`message`]: the request JSON, and reading the broker's answer.
//! - [`renewal`]: a certificate's end of validity, and whether it is due.
//!
//! Not here yet: key generation, flash storage and the runner's use of it
//! (see firmware/README.md).

pub mod csr;
pub mod der;
pub mod message;
pub mod renewal;

/// Where the device asks.
pub fn request_topic(client_id: &str) -> alloc::string::String {
    alloc::format!("$fleetmq/provision/{client_id}/request")
}

/// Where the broker answers.
pub fn response_topic(client_id: &str) -> alloc::string::String {
    alloc::format!("$fleetmq/provision/{client_id}/response")
}
