//! Mosquitto semantics, one rule per test. The real-world files and their
//! expected output are golden tests in `broker/tests/e2e/mosquitto_migration.rs`.

use super::*;
use fleetmq_core::config::{ClientCertPolicy, FsyncPolicy, TlsVersion};

fn translate(text: &str) -> Result<Translation, MosquittoError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mosquitto.conf");
    std::fs::write(&path, text).unwrap();
    translate_file(&path)
}

fn problems(text: &str) -> Vec<String> {
    match translate(text) {
        Ok(translation) => panic!("expected problems, got {:?}", translation.config),
        Err(MosquittoError::Invalid { problems }) => problems
            .iter()
            .map(|p| format!("{}: {}: {}", p.line.unwrap_or(0), p.directive, p.why))
            .collect(),
        Err(other) => panic!("{other}"),
    }
}

const TLS: &str = "certfile /c/server.crt\nkeyfile /c/server.key\n";

#[test]
fn no_listener_is_local_only_with_anonymous_clients() {
    let config = translate("# nothing\n").unwrap().config;
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].bind, "127.0.0.1:1883");
    assert_eq!(config.listeners[0].allow_anonymous, Some(true));
    assert!(!config.store.enabled, "persistence defaults to false");
}

#[test]
fn a_listener_makes_anonymous_default_to_false() {
    let config = translate("listener 1883\n").unwrap().config;
    assert_eq!(config.listeners[0].bind, "0.0.0.0:1883");
    assert_eq!(config.listeners[0].allow_anonymous, Some(false));
}

#[test]
fn port_and_bind_address_configure_the_default_listener_beside_others() {
    let config = translate("port 1884\nbind_address localhost\nlistener 8883 ::1\n")
        .unwrap()
        .config;
    let binds: Vec<&str> = config.listeners.iter().map(|l| l.bind.as_str()).collect();
    assert_eq!(binds, vec!["127.0.0.1:1884", "[::1]:8883"]);
}

#[test]
fn tls_options_apply_to_the_listener_above_them() {
    let text = format!(
        "listener 1883 127.0.0.1\nlistener 8883\ncafile /c/ca.crt\n{TLS}require_certificate true\ntls_version tlsv1.3\ncrlfile /c/crl.pem\nuse_identity_as_username true\n"
    );
    let config = translate(&text).unwrap().config;
    assert!(config.listeners[0].tls.is_none());
    let tls = config.listeners[1].tls.as_ref().unwrap();
    assert_eq!(tls.client_certs, ClientCertPolicy::Required);
    assert_eq!(
        tls.client_ca.as_deref(),
        Some(std::path::Path::new("/c/ca.crt"))
    );
    assert_eq!(tls.crl, vec![std::path::PathBuf::from("/c/crl.pem")]);
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    assert!(config.listeners[1].use_identity_as_username);
}

#[test]
fn cafile_without_require_certificate_is_one_way_tls() {
    let translation = translate(&format!("listener 8883\ncafile /c/ca.crt\n{TLS}")).unwrap();
    let tls = translation.config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.client_certs, ClientCertPolicy::None);
    assert_eq!(tls.client_ca, None);
    // The cafile still completes a leaf-only certfile, as OpenSSL does (0136).
    assert_eq!(
        tls.complete_chain_from,
        vec![std::path::PathBuf::from("/c/ca.crt")]
    );
    assert!(translation.notes.is_empty(), "{:?}", translation.notes);
    let with_crl = translate(&format!(
        "listener 8883
cafile /c/ca.crt
crlfile /c/crl.pem
{TLS}"
    ))
    .unwrap();
    assert_eq!(with_crl.notes.len(), 1);
    assert!(with_crl.notes[0].why.contains("one-way TLS"));
}

#[test]
fn require_certificate_without_a_ca_file_is_a_problem() {
    let got = problems(&format!("listener 8883\n{TLS}require_certificate true\n"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("2: certfile: require_certificate true needs a cafile or capath"),
        "{got:?}"
    );
}

#[test]
fn half_a_key_pair_and_cafile_without_certificates_are_problems() {
    let got = problems("listener 8883\ncertfile /c/server.crt\n");
    assert!(
        got[0].starts_with("2: certfile: certfile without keyfile"),
        "{got:?}"
    );
    let got = problems("listener 8883\ncafile /c/ca.crt\n");
    assert!(
        got[0].starts_with("1: listener: this listener has cafile"),
        "{got:?}"
    );
}

#[test]
fn security_options_are_global_without_per_listener_settings() {
    let config =
        translate("listener 1883\nlistener 1884\nallow_anonymous true\npassword_file /p\n")
            .unwrap()
            .config;
    assert!(config
        .listeners
        .iter()
        .all(|l| l.allow_anonymous == Some(true)));
    assert_eq!(
        config.auth.password_file.as_deref(),
        Some(std::path::Path::new("/p"))
    );
}

#[test]
fn per_listener_settings_keep_anonymous_per_listener() {
    let config = translate(
        "per_listener_settings true\nlistener 1883\nallow_anonymous true\nlistener 1884\npassword_file /p\n",
    )
    .unwrap()
    .config;
    assert_eq!(config.listeners[0].allow_anonymous, Some(true));
    assert_eq!(config.listeners[1].allow_anonymous, Some(false));
}

#[test]
fn per_listener_settings_after_a_security_option_is_a_problem() {
    let got = problems("allow_anonymous true\nper_listener_settings true\nlistener 1883\n");
    assert!(
        got[0].starts_with("2: per_listener_settings: must come before"),
        "{got:?}"
    );
}

#[test]
fn different_password_files_per_listener_are_noted() {
    let translation = translate(
        "per_listener_settings true\nlistener 1883\npassword_file /a\nlistener 1884\npassword_file /b\n",
    )
    .unwrap();
    assert_eq!(
        translation.config.auth.password_file.as_deref(),
        Some(std::path::Path::new("/a"))
    );
    assert!(translation
        .notes
        .iter()
        .any(|n| n.line == Some(5) && n.why.contains("one password_file")));
}

#[test]
fn persistence_and_autosave_become_the_store() {
    let config =
        translate("persistence true\npersistence_location /var/lib/m/\nautosave_interval 300\n")
            .unwrap()
            .config;
    assert!(config.store.enabled);
    assert_eq!(config.data_dir, std::path::PathBuf::from("/var/lib/m/"));
    assert_eq!(config.store.fsync, FsyncPolicy::Periodic);
    assert_eq!(config.store.periodic_interval_secs, 300);
}

#[test]
fn limits_carry_over() {
    let config = translate(
        "max_inflight_messages 0\nmax_queued_messages 0\nmax_keepalive 60\nmax_connections -1\nretain_available false\npersistent_client_expiration 2h\nlog_type warning\nlog_type debug\n",
    )
    .unwrap()
    .config;
    assert_eq!(config.limits.max_inflight, 65535);
    assert_eq!(config.limits.max_queued_messages, 0);
    assert_eq!(config.limits.max_keepalive, 60);
    assert_eq!(config.listeners[0].max_connections, 0);
    assert!(!config.mqtt.retain_available);
    assert_eq!(config.mqtt.persistent_session_expiry_secs, 7200);
    assert_eq!(config.log.level, "debug");
}

#[test]
fn unknown_directives_and_bad_values_name_their_line() {
    let got = problems(
        "listener 1883\nallow_anonymus true\nmax_queued_messages many\nlistener 1884 broker.lan\n",
    );
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("2: allow_anonymus: \"allow_anonymus\" is not a Mosquitto directive")
    );
    assert!(got[1].starts_with("3: max_queued_messages: \"many\" is not a number"));
    assert!(got[2].starts_with("4: listener: \"broker.lan\" is not an IP address"));
}

#[test]
fn validation_errors_point_at_the_mosquitto_line() {
    let got = problems("listener 1883\nmax_qos 3\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("2: max_qos: becomes mqtt.max_qos: QoS 3 does not exist"),
        "{got:?}"
    );
}

#[test]
fn websockets_listeners_are_translated_and_unix_socket_listeners_left_out() {
    let translation =
        translate("listener 1883\nlistener 9001\nprotocol websockets\nlistener 0 /run/m.sock\n")
            .unwrap();
    let protocols: Vec<_> = translation
        .config
        .listeners
        .iter()
        .map(|l| (l.bind.as_str(), l.protocol))
        .collect();
    assert_eq!(
        protocols,
        [
            ("0.0.0.0:1883", fleetmq_core::config::ListenerProtocol::Mqtt),
            (
                "0.0.0.0:9001",
                fleetmq_core::config::ListenerProtocol::Websockets
            ),
        ]
    );
    let lines: Vec<Option<usize>> = translation.notes.iter().map(|n| n.line).collect();
    assert_eq!(lines, vec![Some(4)]);
    assert!(translation.to_toml().contains("protocol = \"websockets\""));
}

#[test]
fn output_loads_back_to_the_same_configuration() {
    let text = format!(
        "per_listener_settings true\nlistener 1883 127.0.0.1\nallow_anonymous true\nlistener 8883\ncafile /c/ca.crt\n{TLS}require_certificate true\nacl_file /etc/acl\nmax_queued_bytes 1000\n"
    );
    let translation = translate(&text).unwrap();
    let toml = translation.to_toml();
    let loaded = fleetmq_core::config::load_from_str(&toml, "migrated.toml").unwrap();
    assert_eq!(loaded, translation.config, "{toml}");
}

/// Regression test for fuzz/mosquitto_conf
/// crash-960b2568ea6ad80fede5ec6b38aefbd32310628f: a control character in a
/// directive line was quoted into a TOML comment, which TOML forbids.
#[test]
fn control_characters_in_lines_do_not_break_the_rendered_toml() {
    let translation = translate_str(
        "listener 7766\npersistence_location /var/lib/\u{1b}[2Jmosq\u{7f}/\n",
        "x\u{1}.conf",
    )
    .unwrap();
    let toml = translation.to_toml();
    assert!(
        toml.contains(
            "# from x\\u{1}.conf:2: persistence_location /var/lib/\\u{1b}[2Jmosq\\u{7f}/"
        ),
        "{toml}"
    );
    let loaded = fleetmq_core::config::load_from_str(&toml, "migrated.toml").unwrap();
    assert_eq!(loaded, translation.config, "{toml}");
}

#[test]
fn mosquitto_text_is_told_from_toml() {
    assert!(looks_like_mosquitto(
        "listener 8883\n# x\nrequire_certificate true\n"
    ));
    assert!(!looks_like_mosquitto("[limits]\nmax_inflight = 5\n"));
    assert!(!looks_like_mosquitto("data_dir = \"x\"\n"));
    assert!(!looks_like_mosquitto(""));
}

#[test]
fn max_topic_alias_broker_bounds_outbound_aliases() {
    // Mosquitto 2.1's directive; left out, none are sent, as Mosquitto 2.0
    // (decision 0129).
    let config = translate("max_topic_alias_broker 3\n").unwrap().config;
    assert_eq!(config.limits.max_outbound_topic_aliases, 3);
    let config = translate("max_topic_alias_broker 0\n").unwrap().config;
    assert_eq!(config.limits.max_outbound_topic_aliases, 0);
    let config = translate("max_topic_alias 5\n").unwrap().config;
    assert_eq!(config.limits.max_outbound_topic_aliases, 0);
}

#[test]
fn enable_proxy_protocol_sets_the_listener_above_it() {
    use fleetmq_core::config::ProxyProtocol;
    let config = translate("listener 1883\nenable_proxy_protocol 2\nlistener 1884\nenable_proxy_protocol 1\nlistener 1885\n")
        .unwrap()
        .config;
    let modes: Vec<ProxyProtocol> = config.listeners.iter().map(|l| l.proxy_protocol).collect();
    assert_eq!(
        modes,
        [ProxyProtocol::V2, ProxyProtocol::V1, ProxyProtocol::Off]
    );
    let refused = problems("listener 1883\nenable_proxy_protocol 3\n");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("enable_proxy_protocol"), "{refused:?}");
}
