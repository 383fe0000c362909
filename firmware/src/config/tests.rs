#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::*;

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const RSA_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";

/// Files in memory; missing ones fail like a missing file on disk.
struct Files(BTreeMap<&'static str, &'static str>);

impl FileSource for Files {
    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        self.0
            .get(name)
            .map(|text| text.as_bytes().to_vec())
            .ok_or_else(|| String::from("No such file or directory (os error 2)"))
    }
    fn display(&self, name: &str) -> String {
        alloc::format!("firmware/fs/{name}")
    }
}

fn lab_files() -> Files {
    Files(BTreeMap::from([
        ("ca.crt", CA),
        ("sandboxclient.crt", CA),
        ("sandboxclient.key", RSA_KEY),
        ("pkcs8.key", KEY),
    ]))
}

const MOS_YML_AS_TOML: &str = r#"
[mqtt]
enable = true
server = "192.168.5.3:8883"
ssl_ca_cert = "ca.crt"
ssl_cert = "sandboxclient.crt"
ssl_key = "sandboxclient.key"

[wifi.sta]
ssid = "lab"
pass = "secret"
"#;

#[test]
fn the_labs_mos_yml_keys_give_a_mutual_tls_device() {
    let config = parse(MOS_YML_AS_TOML, &lab_files()).unwrap();
    assert!(config.mqtt_enable);
    assert_eq!((config.host.as_str(), config.port), ("192.168.5.3", 8883));
    assert_eq!(config.tls.server_name, "192.168.5.3");
    assert!(config.tls.client.is_some(), "mutual TLS");
    assert_eq!(config.client_id, "esp32_{mac3}");
    assert_eq!(config.topics.connected, "/this/test/esp32_{mac3}");
    assert_eq!(config.will_message, "offline");
    assert_eq!(config.keep_alive_secs, 60);
    assert_eq!(
        (config.reconnect_min_ms, config.reconnect_max_ms),
        (2_000, 60_000)
    );
    assert_eq!(config.wifi_ssid.as_deref(), Some("lab"));
}

#[test]
fn only_a_ca_gives_one_way_tls() {
    let text = "mqtt.server = \"broker.lab\"\nmqtt.ssl_ca_cert = \"ca.crt\"\n";
    let config = parse(text, &lab_files()).unwrap();
    assert!(config.tls.client.is_none());
    assert_eq!(config.port, 8883);
}

#[test]
fn optional_keys_are_read() {
    let text = r#"
mqtt.server = "10.0.0.1:1884"
mqtt.ssl_ca_cert = "ca.crt"
mqtt.ssl_cert = "sandboxclient.crt"
mqtt.ssl_key = "pkcs8.key"
mqtt.ssl_server_name = "localhost"
mqtt.user = "dev"
mqtt.pass = "pw"
mqtt.client_id = "bench_{mac}"
mqtt.keep_alive = 30
mqtt.reconnect_timeout_min = 0.5
mqtt.reconnect_timeout_max = 10
fleetmq.topic = "lab/{client_id}/hello"
sntp.server = "10.0.0.1"
"#;
    let config = parse(text, &lab_files()).unwrap();
    assert_eq!(config.tls.server_name, "localhost");
    assert_eq!(config.user.as_deref(), Some("dev"));
    assert_eq!(config.pass.as_deref(), Some("pw"));
    assert_eq!(config.client_id, "bench_{mac}");
    assert_eq!(config.keep_alive_secs, 30);
    assert_eq!(
        (config.reconnect_min_ms, config.reconnect_max_ms),
        (500, 10_000)
    );
    assert_eq!(config.topics.connected, "lab/{client_id}/hello");
    assert_eq!(config.sntp_server, "10.0.0.1");
}

fn error_of(text: &str) -> String {
    match parse(text, &lab_files()) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => alloc::format!("{e}"),
    }
}

#[test]
fn missing_keys_are_named_with_an_example() {
    let e = error_of("mqtt.ssl_ca_cert = \"ca.crt\"");
    assert!(e.contains("missing key `mqtt.server`"), "{e}");
    assert!(e.contains("192.168.5.3:8883"), "{e}");
    let e = error_of("mqtt.server = \"a:1\"");
    assert!(e.contains("missing key `mqtt.ssl_ca_cert`"), "{e}");
    let e = error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"ca.crt\"\nmqtt.ssl_cert = \"sandboxclient.crt\"");
    assert!(e.contains("missing key `mqtt.ssl_key`"), "{e}");
}

#[test]
fn unreadable_certificates_name_the_key_and_the_path() {
    let e = error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"nope.crt\"");
    assert!(
        e.contains("`mqtt.ssl_ca_cert` = firmware/fs/nope.crt"),
        "{e}"
    );
    assert!(e.contains("cannot read: No such file"), "{e}");
    // A key where a certificate belongs.
    let e = error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"pkcs8.key\"");
    assert!(
        e.contains("no `-----BEGIN ...CERTIFICATE-----` block"),
        "{e}"
    );
    let e = error_of(
        "mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"ca.crt\"\nmqtt.ssl_cert = \"ca.crt\"\nmqtt.ssl_key = \"ca.crt\"",
    );
    assert!(
        e.contains("`mqtt.ssl_key`") && e.contains("PRIVATE KEY"),
        "{e}"
    );
}

#[test]
fn wrong_values_name_the_line() {
    let e = error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"ca.crt\"\nmqtt.enable = \"yes\"");
    assert_eq!(e, "line 3: `mqtt.enable`: expected true or false");
    let e = error_of("mqtt.server = \"a:99999\"\nmqtt.ssl_ca_cert = \"ca.crt\"");
    assert!(e.starts_with("line 1: `mqtt.server`"), "{e}");
    let e = error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"ca.crt\"\nmqtt.keep_alive = 1");
    assert!(e.contains("line 3") && e.contains("5 and 65535"), "{e}");
    let e =
        error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"ca.crt\"\nfleetmq.topic = \"x/#\"");
    assert!(e.contains("line 3: `fleetmq.topic`"), "{e}");
    let e = error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"ca.crt\"\nmqtt.reconnect_timeout_min = 9\nmqtt.reconnect_timeout_max = 3");
    assert!(
        e.contains("reconnect_timeout_min <= reconnect_timeout_max"),
        "{e}"
    );
}

#[test]
fn typos_are_unknown_keys() {
    let e =
        error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"ca.crt\"\nmqtt.ssl_certs = \"x\"");
    assert!(e.starts_with("line 3: unknown key `mqtt.ssl_certs`"), "{e}");
}

#[test]
fn syntax_errors_carry_the_line() {
    let e = error_of("mqtt.server = \"a:1\"\n\nmqtt.enable = tru");
    assert!(e.starts_with("line 3:"), "{e}");
}

#[test]
fn private_keys_do_not_show_in_debug_output() {
    let config = parse(MOS_YML_AS_TOML, &lab_files()).unwrap();
    let shown = alloc::format!("{config:?}");
    assert!(!shown.contains("MIIE"), "{shown}");
}

#[test]
fn embedded_files_are_found_by_name() {
    let files = EmbeddedFiles(&[("ca.crt", CA.as_bytes())]);
    assert!(files.read("ca.crt").is_ok());
    assert!(files
        .read("other.crt")
        .unwrap_err()
        .contains("not embedded"));
}

#[test]
fn provisioning_by_claim_needs_the_claim_certificate() {
    let config = parse(MOS_YML_AS_TOML, &lab_files()).unwrap();
    assert!(!config.provision);
    assert_eq!(config.renew_before_secs, 30 * 86_400);
    let text =
        alloc::format!("{MOS_YML_AS_TOML}\n[fleetmq]\nprovision = true\nrenew_before = 600\n");
    let config = parse(&text, &lab_files()).unwrap();
    assert!(config.provision);
    assert_eq!(config.renew_before_secs, 600);
    let e =
        error_of("mqtt.server = \"a:1\"\nmqtt.ssl_ca_cert = \"ca.crt\"\nfleetmq.provision = true");
    assert!(e.contains("mqtt.ssl_cert") && e.contains("claim"), "{e}");
}

#[test]
fn the_ota_key_is_an_ed25519_public_key_in_hex() {
    let config = parse(MOS_YML_AS_TOML, &lab_files()).unwrap();
    assert_eq!(config.ota_key, None);
    assert_eq!(config.ota_confirm_secs, 300);
    // The public key of the all-zero-seed Ed25519 key (RFC 8032 test 1's is
    // d75a98...; any valid point does).
    let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let text =
        alloc::format!("{MOS_YML_AS_TOML}\n[fleetmq]\nota_key = \"{key}\"\nota_confirm = 60\n");
    let config = parse(&text, &lab_files()).unwrap();
    assert_eq!(config.ota_key.map(|k| k[0]), Some(0xd7));
    assert_eq!(config.ota_confirm_secs, 60);
    let text = alloc::format!("{MOS_YML_AS_TOML}\n[fleetmq]\nota_key = \"d75a98\"\n");
    let e = parse(&text, &lab_files()).unwrap_err().to_string();
    assert!(e.contains("fleetmq.ota_key") && e.contains("64 hex"), "{e}");
}

#[test]
fn cipher_suites_are_a_colon_separated_list_as_in_mos_yml() {
    let config = parse(MOS_YML_AS_TOML, &lab_files()).unwrap();
    assert!(config.tls.cipher_suites.is_empty());
    let text = alloc::format!(
        "mqtt.ssl_cipher_suites = \"TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256: TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384\"\n{MOS_YML_AS_TOML}"
    );
    let config = parse(&text, &lab_files()).unwrap();
    assert_eq!(
        config.tls.cipher_suites,
        [
            "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
            "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"
        ]
    );
}
