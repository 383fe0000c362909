//! The directives issue 17 carried over (decisions 0126-0128), one rule
//! per test; end to end in `broker/tests/e2e/mosquitto_directives`.

use super::*;

fn translate(text: &str) -> Result<Translation, MosquittoError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mosquitto.conf");
    std::fs::write(&path, text).unwrap();
    translate_file(&path)
}

fn problem(text: &str) -> String {
    match translate(text) {
        Ok(translation) => panic!("expected a problem, got {:?}", translation.config),
        Err(error) => error.to_string(),
    }
}

/// The rendered TOML loads back to the same configuration.
fn round_trip(translation: &Translation) {
    let toml = translation.to_toml();
    let loaded = fleetmq_core::config::load_from_str(&toml, "migrated.toml").unwrap();
    assert_eq!(loaded, translation.config, "{toml}");
}

#[test]
fn max_keepalive_outside_mosquittos_range_is_refused() {
    for bad in ["0", "9", "65536"] {
        let error = problem(&format!("listener 1883\nmax_keepalive {bad}\n"));
        assert!(error.contains(":2: max_keepalive:"), "{error}");
    }
    let translation = translate("listener 1883\nmax_keepalive 10\n").unwrap();
    assert_eq!(translation.config.limits.max_keepalive, 10);
    round_trip(&translation);
}

#[test]
fn connection_messages_false_carries_over() {
    let translation = translate("listener 1883\nconnection_messages false\n").unwrap();
    assert!(!translation.config.log.connection_messages);
    assert!(translation.notes.is_empty(), "{:?}", translation.notes);
    round_trip(&translation);
    let on = translate("listener 1883\nconnection_messages true\n").unwrap();
    assert!(on.config.log.connection_messages);
}

#[test]
fn accept_protocol_versions_is_per_listener() {
    let translation = translate(
        "listener 1883\naccept_protocol_versions 4, 5\nlistener 1884\naccept_protocol_versions 5\nlistener 1885\n",
    )
    .unwrap();
    let got: Vec<Vec<u8>> = translation
        .config
        .listeners
        .iter()
        .map(|l| l.accept_protocol_versions.clone())
        .collect();
    assert_eq!(got, vec![vec![4, 5], vec![5], vec![]]);
    round_trip(&translation);
    for bad in ["6", "mqttv5", ""] {
        let error = problem(&format!("listener 1883\naccept_protocol_versions {bad}\n"));
        assert!(error.contains(":2: accept_protocol_versions:"), "{error}");
    }
}

#[test]
fn capath_becomes_the_client_ca_folder() {
    let tls = "certfile /c/server.crt\nkeyfile /c/server.key\n";
    let translation = translate(&format!(
        "listener 8883\n{tls}capath /etc/ssl/lab\nrequire_certificate true\n"
    ))
    .unwrap();
    let settings = translation.config.listeners[0].tls.clone().unwrap();
    assert_eq!(
        settings.client_ca,
        Some(std::path::PathBuf::from("/etc/ssl/lab"))
    );
    round_trip(&translation);
    let error = problem(&format!(
        "listener 8883\n{tls}cafile /c/ca.crt\ncapath /etc/ssl/lab\nrequire_certificate true\n"
    ));
    assert!(
        error.contains(":5: capath: fleetmq reads client CAs from one place"),
        "{error}"
    );
    // Without require_certificate nothing is asked of clients; the folder
    // still completes the server's chain (decision 0136).
    let one_way = translate(&format!("listener 8883\n{tls}capath /etc/ssl/lab\n")).unwrap();
    let settings = one_way.config.listeners[0].tls.clone().unwrap();
    assert_eq!(settings.client_ca, None);
    assert_eq!(
        settings.complete_chain_from,
        vec![std::path::PathBuf::from("/etc/ssl/lab")]
    );
}

#[test]
fn mount_point_is_per_listener() {
    let translation = translate("listener 1883\nmount_point lab/\nlistener 1884\n").unwrap();
    let mounts: Vec<Option<String>> = translation
        .config
        .listeners
        .iter()
        .map(|l| l.mount_point.clone())
        .collect();
    assert_eq!(mounts, vec![Some("lab/".to_string()), None]);
    round_trip(&translation);
    let error = problem("listener 1883\nmount_point lab/+/\n");
    assert!(error.contains(":2: mount_point:"), "{error}");
}

#[test]
fn queue_qos0_messages_carries_over() {
    let translation = translate("listener 1883\nqueue_qos0_messages true\n").unwrap();
    assert!(translation.config.mqtt.queue_qos0_messages);
    assert!(translation.notes.is_empty(), "{:?}", translation.notes);
    round_trip(&translation);
}

#[test]
fn log_dest_file_and_timestamp_format_carry_over() {
    let translation = translate(
        "listener 1883\nlog_dest file /var/log/mosquitto/my log.txt\nlog_timestamp_format %Y-%m-%dT%H:%M:%S\n",
    )
    .unwrap();
    let log = &translation.config.log;
    assert_eq!(
        log.file.as_deref(),
        Some(std::path::Path::new("/var/log/mosquitto/my log.txt"))
    );
    assert_eq!(log.timestamp_format.as_deref(), Some("%Y-%m-%dT%H:%M:%S"));
    assert!(translation.notes.is_empty(), "{:?}", translation.notes);
    round_trip(&translation);
    let error = problem("listener 1883\nlog_dest file\n");
    assert!(error.contains(":2: log_dest: needs a file"), "{error}");
}

#[test]
fn max_inflight_bytes_carries_over() {
    let translation = translate("listener 1883\nmax_inflight_bytes 65536\n").unwrap();
    assert_eq!(translation.config.limits.max_inflight_bytes, 65536);
    assert!(translation.notes.is_empty(), "{:?}", translation.notes);
    round_trip(&translation);
}

#[test]
fn memory_limit_and_log_dest_topic_carry_over() {
    let translation =
        translate("listener 1883\nmemory_limit 104857600\nlog_dest topic\nlog_dest stderr\n")
            .unwrap();
    assert_eq!(translation.config.limits.memory_limit, 104_857_600);
    assert!(translation.config.log.topic);
    assert!(translation.notes.is_empty(), "{:?}", translation.notes);
    round_trip(&translation);
    let error = problem("listener 1883\nmemory_limit lots\n");
    assert!(error.contains(":2: memory_limit:"), "{error}");
}

#[test]
fn user_and_pid_file_carry_over_and_root_stays_root() {
    let translation =
        translate("listener 1883\nuser mosquitto\npid_file /run/mosquitto/mosquitto.pid\n")
            .unwrap();
    assert_eq!(translation.config.user.as_deref(), Some("mosquitto"));
    assert_eq!(
        translation.config.pid_file.as_deref(),
        Some(std::path::Path::new("/run/mosquitto/mosquitto.pid"))
    );
    assert!(translation.notes.is_empty(), "{:?}", translation.notes);
    round_trip(&translation);
    let root = translate("listener 1883\nuser root\n").unwrap();
    assert_eq!(root.config.user, None);
    assert_eq!(root.notes.len(), 1, "{:?}", root.notes);
    let none = translate("listener 1883\n").unwrap();
    assert_eq!(none.config.user, None);
}

#[test]
fn ciphers_become_cipher_suites_of_their_listener() {
    let translation = translate(
        "listener 8883\ncertfile /c/s.crt\nkeyfile /c/s.key\nciphers HIGH:!CHACHA20:!ECDSA:AES128-SHA\n",
    )
    .unwrap();
    let tls = translation.config.listeners[0].tls.clone().unwrap();
    assert_eq!(
        tls.cipher_suites,
        [
            "TLS_AES_256_GCM_SHA384",
            "TLS_AES_128_GCM_SHA256",
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ]
    );
    assert_eq!(translation.notes.len(), 1, "{:?}", translation.notes);
    assert!(translation.notes[0].to_string().contains("AES128-SHA"));
    round_trip(&translation);
    let error =
        problem("listener 8883\ncertfile /c/s.crt\nkeyfile /c/s.key\nciphers DES-CBC3-SHA\n");
    assert!(error.contains(":4: ciphers:"), "{error}");
    let plain = translate("listener 8883\ncertfile /c/s.crt\nkeyfile /c/s.key\n").unwrap();
    assert!(plain.config.listeners[0]
        .tls
        .clone()
        .unwrap()
        .cipher_suites
        .is_empty());
}
