//! `mqtt.ssl_cipher_suites` (Mongoose OS's key): the simulated firmware,
//! with the same mbedTLS as the device (mbedtls-rs patched with a
//! cipher-suite list, decision 0175), offers only the configured suites,
//! and the real broker negotiates the one the lab's devices logged.

use super::{sim, tls_port, Pki};
use crate::harness::{skip_on_mosquitto, Broker};

#[test]
fn the_configured_cipher_suite_is_the_one_negotiated() {
    if skip_on_mosquitto("fleetmq TLS listener configuration") {
        return;
    }
    let pki = Pki::new();
    pki.device("ca", "lab-device");
    let broker = Broker::start_with(&pki.listener("required"));
    let port = tls_port(&broker);

    // Without the key: mbedTLS's default order, AES-256-GCM against fleetmq.
    let config = pki.device_config(port, Some("lab-device"));
    let default = sim(&config, &[]);
    default.expect("MQTT connected");
    let text = default.text();
    assert!(
        text.contains("ciphersuite: TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"),
        "{text}"
    );
    drop(default);

    // With it (the [mqtt] table is the file's last): the lab's suite.
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("ssl_cipher_suites = \"TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256\"\n");
    std::fs::write(&config, toml).unwrap();
    let configured = sim(&config, &[]);
    configured.expect("MQTT connected");
    let text = configured.text();
    assert!(
        text.contains("ciphersuite: TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"),
        "{text}"
    );
    assert!(!text.contains("AES-256"), "{text}");
    drop(configured);

    // A suite this firmware does not have is refused at start, by name.
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml = toml.replace(
        "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
        "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
    );
    std::fs::write(&config, toml).unwrap();
    let refused = sim(&config, &[]);
    refused.expect("mqtt.ssl_cipher_suites: `TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256` is not a cipher suite of this firmware");
}
