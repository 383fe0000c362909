//! End-to-end tests of the dashboard's JSON API: real TLS clients (mutual,
//! one-way, resumed) against the real binary, and what `/api/...` says about
//! them; kicking; the access token; HTTPS; the handshake summary.

use std::time::Duration;

use crate::harness;
use crate::harness::pki::openssl_pki::OpensslPki;
use crate::harness::web::{eventually, get, request, tls_client_config, TlsMqtt};
use crate::harness::*;
use serde_json::Value;

/// Long enough for an event to reach the registry on a busy CI machine.
const SOON: Duration = Duration::from_secs(5);

/// Two TLS listeners next to the harness's plain one: `mtls` requires a
/// client certificate, `oneway` never asks for one.
fn tls_listeners(pki: &OpensslPki) -> String {
    let (cert, key, ca) = (
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca_cert.display(),
    );
    format!(
        "[[listener]]\nname = \"mtls\"\nbind = \"127.0.0.1:0\"\n[listener.tls]\ncert = \"{cert}\"\n\
         key = \"{key}\"\nclient_ca = \"{ca}\"\nclient_certs = \"required\"\n\n\
         [[listener]]\nname = \"oneway\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n[listener.tls]\ncert = \"{cert}\"\n\
         key = \"{key}\"\nclient_certs = \"none\"\n"
    )
}

fn client_list(http: std::net::SocketAddr) -> Vec<Value> {
    let response = get(http, "/api/clients", None);
    assert_eq!(response.status, 200, "{}", response.body);
    response.json().as_array().cloned().expect("array")
}

fn find<'a>(clients: &'a [Value], id: &str) -> &'a Value {
    clients
        .iter()
        .find(|c| c["client_id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {clients:#?}"))
}

fn ms(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn clients_are_described_as_they_connected() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(pki_dir.path());
    let device = pki.client("device-7", "sensors", 365);
    let broker = Broker::start_with(&tls_listeners(&pki));
    let http = broker.http_addr();

    let mutual_config = tls_client_config(&pki.ca_cert, Some((&device.cert, &device.key)));
    let mutual = TlsMqtt::connect(
        broker.listener_addr("mtls"),
        &mutual_config,
        &ConnectBuilder::v5("esp32_807A98").keep_alive(30),
    );
    let oneway_config = tls_client_config(&pki.ca_cert, None);
    let oneway = TlsMqtt::connect(
        broker.listener_addr("oneway"),
        &oneway_config,
        &ConnectBuilder::v311("dev-oneway"),
    );
    let mut with_user = ConnectBuilder::v311("dev-plain");
    with_user.username = Some("alice".into());
    with_user.password = Some(b"pw".to_vec());
    let (mut plain, _) = RawClient::connect_with(broker.addr(), with_user);
    plain.subscribe(1, "lab/+/status", 1);
    plain.publish("lab/x/status", b"online", 0, false);
    assert_eq!(plain.expect_app_publish().payload.as_ref(), b"online");

    let clients = eventually(SOON, "three clients with traffic", || {
        let list = client_list(http);
        let plain = list.iter().find(|c| c["client_id"] == "dev-plain")?;
        (list.len() == 3 && plain["messages_out"] == 1 && plain["subscriptions"][0].is_object())
            .then_some(list)
    });

    let m = find(&clients, "esp32_807A98");
    assert_eq!(m["identity"], "device-7", "{m:#}");
    assert_eq!(m["identity_source"], "certificate_cn");
    assert_eq!(m["listener"], "mtls");
    assert_eq!(m["protocol"], "5.0");
    assert_eq!(m["keep_alive"], 30);
    assert_eq!(m["peer"], mutual.local_addr.to_string());
    assert_eq!(m["connected"], true);
    assert!(m["connected_at"].as_str().unwrap().ends_with('Z'), "{m:#}");
    let tls = &m["tls"];
    assert!(
        tls["version"].as_str().unwrap().starts_with("TLSv1."),
        "{tls:#}"
    );
    assert!(!tls["cipher"].as_str().unwrap().is_empty(), "{tls:#}");
    assert_eq!(tls["resumed"], false);
    assert_eq!(tls["auth"], "mutual");
    let cert = &tls["client_cert"];
    assert_eq!(cert["cn"], "device-7");
    assert_eq!(cert["serial"], device.serial.as_str());
    assert!(
        cert["subject"].as_str().unwrap().contains("CN=device-7"),
        "{cert:#}"
    );
    assert!(cert["not_after"].as_str().unwrap().ends_with('Z'));
    let timings = &m["timings_ms"];
    let (handshake, connack, total) = (
        ms(&timings["tls_handshake"]),
        ms(&timings["connect_to_connack"]),
        ms(&timings["total"]),
    );
    assert!(handshake > 0.0, "{timings:#}");
    assert!(connack > 0.0, "{timings:#}");
    assert!(total >= handshake + connack, "{timings:#}");

    let o = find(&clients, "dev-oneway");
    assert_eq!(o["tls"]["auth"], "one_way");
    assert!(o["tls"]["client_cert"].is_null(), "{o:#}");
    assert_eq!(o["identity"], "dev-oneway");
    assert_eq!(o["identity_source"], "client_id");
    assert_eq!(o["protocol"], "3.1.1");
    assert_eq!(o["peer"], oneway.local_addr.to_string());
    assert!(ms(&o["timings_ms"]["tls_handshake"]) > 0.0);

    let p = find(&clients, "dev-plain");
    assert!(p["tls"].is_null(), "{p:#}");
    assert_eq!(p["identity"], "alice");
    assert_eq!(p["identity_source"], "username");
    assert_eq!(p["listener"], "test");
    assert!(p["timings_ms"]["tls_handshake"].is_null());
    assert!(ms(&p["timings_ms"]["total"]) > 0.0);
    assert_eq!(p["messages_in"], 1);
    assert_eq!(p["messages_out"], 1);
    assert!(p["bytes_in"].as_u64().unwrap() > 0);
    assert!(p["last_activity"].is_string());
    assert_eq!(p["subscriptions"][0]["filter"], "lab/+/status");
    assert_eq!(p["subscriptions"][0]["qos"], 1);

    // The device comes back and resumes its TLS session.
    mutual.disconnect();
    eventually(SOON, "the device to leave", || {
        (client_list(http).len() == 2).then_some(())
    });
    let _again = TlsMqtt::connect(
        broker.listener_addr("mtls"),
        &mutual_config,
        &ConnectBuilder::v5("esp32_807A98"),
    );
    let detail = eventually(SOON, "the device to return", || {
        let detail = get(http, "/api/clients/esp32_807A98", None).json();
        (detail["connected"] == true && detail["history"].as_array()?.len() == 2).then_some(detail)
    });
    assert_eq!(detail["tls"]["resumed"], true, "{detail:#}");
    assert_eq!(detail["tls"]["client_cert"]["cn"], "device-7");
    assert_eq!(detail["identity"], "device-7");
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history[0]["resumed"], true);
    assert!(history[0]["disconnected_at"].is_null());
    assert_eq!(history[1]["resumed"], false);
    assert_eq!(history[1]["disconnect_reason"], "disconnected");
    assert!(ms(&history[1]["timings_ms"]["tls_handshake"]) > 0.0);
    let recent = get(http, "/api/disconnected", None).json();
    assert_eq!(recent[0]["client_id"], "esp32_807A98");
    drop(oneway);
}

#[test]
fn kick_disconnects_the_client_and_logs_it() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let broker = Broker::start();
    let http = broker.http_addr();
    let id = "lab/kick me";
    let path = "/api/clients/lab%2Fkick%20me";
    let (mut client, _) = RawClient::connect_v5(broker.addr(), id, true);
    eventually(SOON, "the client in the registry", || {
        (get(http, path, None).status == 200).then_some(())
    });
    let response = request(http, "DELETE", path, &[], "");
    assert_eq!(response.status, 202, "{}", response.body);
    assert_eq!(response.json()["kicked"], true);
    client.expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
    broker.assert_log(
        "Client lab/kick me kicked from the dashboard by 127.0.0.1:",
        WAIT,
    );
    eventually(SOON, "the client to leave the list", || {
        client_list(http).is_empty().then_some(())
    });
    let gone = get(http, path, None).json();
    assert_eq!(gone["connected"], false);
    assert!(
        gone["disconnect_reason"]
            .as_str()
            .unwrap()
            .contains("dministrative"),
        "{gone:#}"
    );
    assert_eq!(request(http, "DELETE", path, &[], "").status, 404);
    assert_eq!(get(http, "/api/clients/nobody", None).status, 404);
}

#[test]
fn the_token_guards_everything_but_health() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let token = "t0ken-for-tests-4f1c";
    let broker = Broker::start_with(&format!(
        "[http]\nbind = \"127.0.0.1:0\"\ntoken = \"{token}\"\n"
    ));
    let http = broker.http_addr();
    broker.assert_log("(token required)", WAIT);
    for path in [
        "/api/clients",
        "/api/handshakes/summary",
        "/metrics",
        "/api/events",
    ] {
        let refused = get(http, path, None);
        assert_eq!(refused.status, 401, "{path}: {}", refused.body);
        assert!(refused.header("www-authenticate").is_some(), "{path}");
        assert_eq!(get(http, path, Some("wrong")).status, 401, "{path}");
    }
    assert_eq!(get(http, "/api/clients", Some(token)).status, 200);
    assert_eq!(get(http, "/metrics", Some(token)).status, 200);
    assert_eq!(
        request(http, "DELETE", "/api/clients/x", &[], "").status,
        401
    );
    let page = get(http, "/", None);
    assert_eq!(page.status, 401);
    assert!(page.body.contains("name=\"token\""), "the login form");
    assert!(!page.body.contains("id=\"clients\""), "no device table");
    assert_eq!(get(http, "/healthz", None).status, 200);
    // Ready once every MQTT listener accepts, just after the dashboard
    // starts listening.
    let ready = eventually(SOON, "/readyz to answer 200", || {
        let ready = get(http, "/readyz", None);
        (ready.status == 200).then_some(ready)
    });
    assert_eq!(ready.json()["status"], "ready");

    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let wrong = request(http, "POST", "/login", &form, "token=nope");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let login = request(http, "POST", "/login", &form, &format!("token={token}"));
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").expect("a cookie").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains(token),
        "the cookie must not hold the token"
    );
    let pair = cookie.split(';').next().unwrap();
    let page = request(http, "GET", "/", &[("Cookie", pair)], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"clients\""));
    let api = request(http, "GET", "/api/clients", &[("Cookie", pair)], "");
    assert_eq!(api.status, 200);
}

/// `fleetmq check-config FILE`, without the test run's own `FLEETMQ_*`
/// variables (which the broker would read as settings).
fn check_config(file: &std::path::Path) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fleetmq"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("FLEETMQ_")) {
        command.env_remove(name);
    }
    command.arg("check-config").arg(file).output().unwrap()
}

#[test]
fn a_dashboard_for_other_machines_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleetmq.toml");
    std::fs::write(&file, "[http]\nbind = \"0.0.0.0:18080\"\n").unwrap();
    let output = check_config(&file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("http.bind") && stderr.contains("http.token"),
        "{stderr}"
    );
    // A short token is refused off loopback, inline or in a file.
    std::fs::write(
        &file,
        "[http]\nbind = \"0.0.0.0:18080\"\ntoken = \"long-random\"\n",
    )
    .unwrap();
    let output = check_config(&file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("http.token") && stderr.contains("at least 32"),
        "{stderr}"
    );
    let token_file = dir.path().join("dashboard.token");
    std::fs::write(&token_file, "x\n").unwrap();
    std::fs::write(
        &file,
        format!(
            "[http]\nbind = \"0.0.0.0:18080\"\ntoken_file = \"{}\"\n",
            token_file.display()
        ),
    )
    .unwrap();
    let output = check_config(&file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("dashboard.token") && stderr.contains("at least 32"),
        "{stderr}"
    );
    std::fs::write(
        &file,
        "[http]\nbind = \"0.0.0.0:18080\"\ntoken = \"3f9c2a7e5b1d4c8f9a0b6e2d7c1f4a8b\"\n",
    )
    .unwrap();
    let output = check_config(&file);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn handshake_summary_splits_groups_and_counts_failures() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(pki_dir.path());
    let broker = Broker::start_with(&tls_listeners(&pki));
    let http = broker.http_addr();
    let mtls = broker.listener_addr("mtls");
    // Two devices with full mutual handshakes, one of which resumes once;
    // its certificate expires in 10 days.
    let short = pki.client("short-lived", "sensors", 10);
    let long = pki.client("long-lived", "sensors", 365);
    let short_config = tls_client_config(&pki.ca_cert, Some((&short.cert, &short.key)));
    let long_config = tls_client_config(&pki.ca_cert, Some((&long.cert, &long.key)));
    TlsMqtt::connect(mtls, &short_config, &ConnectBuilder::v311("short")).disconnect();
    let _resumed = TlsMqtt::connect(mtls, &short_config, &ConnectBuilder::v311("short"));
    let _long = TlsMqtt::connect(mtls, &long_config, &ConnectBuilder::v311("long"));
    let oneway_config = tls_client_config(&pki.ca_cert, None);
    let _oneway = TlsMqtt::connect(
        broker.listener_addr("oneway"),
        &oneway_config,
        &ConnectBuilder::v311("oneway"),
    );
    // Refused: a certificate from another CA, and no certificate at all.
    let foreign = pki.foreign_client("intruder");
    let foreign_config = tls_client_config(&pki.ca_cert, Some((&foreign.cert, &foreign.key)));
    assert!(TlsMqtt::try_connect(mtls, &foreign_config, &ConnectBuilder::v311("x")).is_err());
    assert!(TlsMqtt::try_connect(mtls, &oneway_config, &ConnectBuilder::v311("y")).is_err());

    let summary = eventually(SOON, "four handshakes and two failures", || {
        let summary = get(http, "/api/handshakes/summary", None).json();
        let total: u64 = summary["groups"]
            .as_array()?
            .iter()
            .map(|g| g["count"].as_u64().unwrap_or(0))
            .sum();
        (total == 4 && summary["failures_total"] == 2).then_some(summary)
    });
    let group = |auth: &str, resumed: bool| -> Value {
        summary["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["auth"] == auth && g["resumed"] == resumed)
            .cloned()
            .unwrap()
    };
    assert_eq!(group("mutual", false)["count"], 2, "{summary:#}");
    assert_eq!(group("mutual", true)["count"], 1);
    assert_eq!(group("one_way", false)["count"], 1);
    assert_eq!(group("one_way", true)["count"], 0);
    let full = group("mutual", false);
    assert!(ms(&full["p50_ms"]) > 0.0);
    assert!(ms(&full["p99_ms"]) >= ms(&full["p50_ms"]));
    let histogram: u64 = full["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(histogram, 2);
    assert_eq!(summary["failures"]["unknown_ca"], 1, "{summary:#}");
    assert_eq!(summary["failures"]["no_certificate"], 1, "{summary:#}");
    let expiring = summary["expiring_certificates"].as_array().unwrap();
    assert_eq!(expiring.len(), 1, "{summary:#}");
    assert_eq!(expiring[0]["client_id"], "short");
    assert_eq!(expiring[0]["cn"], "short-lived");
    assert_eq!(expiring[0]["connected"], true);
    let days = expiring[0]["days_left"].as_f64().unwrap();
    assert!((9.5..=10.0).contains(&days), "{days}");
}

#[test]
fn the_dashboard_can_serve_https() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(pki_dir.path());
    let broker = Broker::start_with(&format!(
        "[http]\nbind = \"127.0.0.1:0\"\ntoken = \"secret-https\"\n\
         tls = {{ cert = \"{}\", key = \"{}\" }}\n",
        pki.server_cert.display(),
        pki.server_key.display()
    ));
    broker.assert_log("HTTP dashboard listening on https://", WAIT);
    let http = broker.http_addr();
    let config = tls_client_config(&pki.ca_cert, None);
    let response = harness::web::https_get(http, &config, "/api/clients", Some("secret-https"));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body, "[]");
    let refused = harness::web::https_get(http, &config, "/api/clients", None);
    assert_eq!(refused.status, 401);
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = std::panic::catch_unwind(|| get(http, "/healthz", None));
    assert!(plain.map_or(true, |r| r.status != 200));
}

/// A broker whose dashboard needs `token`, on loopback.
fn broker_with_token(token: &str) -> Broker {
    Broker::start_with(&format!(
        "[http]\nbind = \"127.0.0.1:0\"\ntoken = \"{token}\"\n"
    ))
}

#[test]
fn a_foreign_host_name_is_refused_whatever_the_path() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    // The default: loopback and no token, the DNS-rebinding target.
    let broker = Broker::start();
    let http = broker.http_addr();
    let port = http.port();
    let rebound = format!("rebind.attacker.example:{port}");
    for path in ["/api/clients", "/", "/metrics", "/healthz", "/readyz"] {
        let refused = request(http, "GET", path, &[("Host", &rebound)], "");
        assert_eq!(refused.status, 421, "{path}: {}", refused.body);
    }
    let kick = request(http, "DELETE", "/api/clients/x", &[("Host", &rebound)], "");
    assert_eq!(kick.status, 421);
    broker.assert_log("refused: Host \"rebind.attacker.example:", WAIT);
    let local = format!("localhost:{port}");
    let v4 = format!("127.0.0.1:{port}");
    for host in [local.as_str(), v4.as_str(), "localhost"] {
        let answered = request(http, "GET", "/api/clients", &[("Host", host)], "");
        assert_eq!(answered.status, 200, "{host}: {}", answered.body);
    }
}

#[test]
fn names_in_allowed_hosts_are_answered() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let broker =
        Broker::start_with("[http]\nbind = \"127.0.0.1:0\"\nallowed_hosts = [\"lab-pc.local\"]\n");
    let http = broker.http_addr();
    let named = format!("lab-pc.local:{}", http.port());
    assert_eq!(
        request(http, "GET", "/api/clients", &[("Host", &named)], "").status,
        200
    );
    let other = request(http, "GET", "/healthz", &[("Host", "other.local")], "");
    assert_eq!(other.status, 421);
}

#[test]
fn wrong_tokens_are_logged_and_lock_the_address_out() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let token = "t0ken-for-tests-4f1c";
    let broker = broker_with_token(token);
    let http = broker.http_addr();
    let started = std::time::Instant::now();
    let mut refused = 0;
    let mut limited = 0;
    for guess in 0..12 {
        match get(http, "/api/clients", Some(&format!("guess-{guess}"))).status {
            401 => refused += 1,
            429 => limited += 1,
            other => panic!("guess {guess}: status {other}"),
        }
    }
    let elapsed = started.elapsed();
    println!("12 wrong bearer tokens in {elapsed:?}: {refused} answered 401, {limited} 429");
    assert_eq!((refused, limited), (10, 2));
    // Locked out: even the right token waits.
    let locked = get(http, "/api/clients", Some(token));
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.header("retry-after").is_some());
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = request(http, "POST", "/login", &form, &format!("token={token}"));
    assert_eq!(login.status, 429);
    broker.assert_log("wrong token from 127.0.0.1 (bearer token)", WAIT);
    broker.assert_log("wrong tokens from 127.0.0.1 within 60 s; refusing it", WAIT);
    // Health stays open to probes.
    assert_eq!(get(http, "/healthz", None).status, 200);
}

#[test]
fn login_sessions_are_random_and_end_at_logout() {
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let token = "t0ken-for-tests-4f1c";
    let broker = broker_with_token(token);
    let http = broker.http_addr();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = || {
        let response = request(http, "POST", "/login", &form, &format!("token={token}"));
        assert_eq!(response.status, 303);
        let cookie = response.header("set-cookie").expect("a cookie");
        cookie.split(';').next().unwrap().to_string()
    };
    let first = login();
    let second = login();
    assert_ne!(first, second, "each login gets its own session id");
    for pair in [&first, &second] {
        let page = request(http, "GET", "/api/clients", &[("Cookie", pair)], "");
        assert_eq!(page.status, 200, "{pair}");
    }
    let logout = request(http, "POST", "/logout", &[("Cookie", &first)], "");
    assert_eq!(logout.status, 303);
    let after = request(http, "GET", "/api/clients", &[("Cookie", &first)], "");
    assert_eq!(after.status, 401, "a logged-out cookie must not work");
    let other = request(http, "GET", "/api/clients", &[("Cookie", &second)], "");
    assert_eq!(other.status, 200, "other sessions go on");
}

/// Reads until the broker closes `stream`, at most until `deadline`; how
/// long after `opened` that was, or None if it was still open.
fn closed_after(
    mut stream: std::net::TcpStream,
    opened: std::time::Instant,
    deadline: Duration,
) -> Option<Duration> {
    use std::io::Read;
    let left = deadline
        .saturating_sub(opened.elapsed())
        .max(Duration::from_millis(1));
    stream.set_read_timeout(Some(left)).unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => Some(opened.elapsed()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Some(opened.elapsed()),
        Err(_) => None,
    }
}

#[test]
fn slow_requests_are_closed_by_the_header_and_idle_timeouts() {
    use std::io::Write;
    if skip_on_mosquitto("the dashboard is fleetmq's") {
        return;
    }
    let broker = Broker::start_with(
        "[http]\nbind = \"127.0.0.1:0\"\nheader_timeout_secs = 1\nidle_timeout_secs = 2\n",
    );
    let http = broker.http_addr();
    let connect = || std::net::TcpStream::connect_timeout(&http, WAIT).unwrap();
    // Headers that never end.
    let mut headers = connect();
    headers
        .write_all(b"GET /api/clients HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    // A body that never comes (the headers promise 100 bytes).
    let mut body = connect();
    body.write_all(
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=",
    )
    .unwrap();
    // A connection that says nothing at all.
    let silent = connect();
    let opened = std::time::Instant::now();
    let limit = Duration::from_secs(6);
    // Watched side by side, so each time is its own.
    let (headers, body, silent) = std::thread::scope(|scope| {
        let watch = |stream| scope.spawn(move || closed_after(stream, opened, limit));
        let (headers, body, silent) = (watch(headers), watch(body), watch(silent));
        (
            headers.join().unwrap().expect("slow headers closed"),
            body.join().unwrap().expect("stalled body closed"),
            silent.join().unwrap().expect("silent peer closed"),
        )
    });
    println!("closed after: slow headers {headers:?}, stalled body {body:?}, silent {silent:?}");
    // Headers: 1 s; the body: 2 s without a byte; silence: 1 s (headers).
    assert!(headers < Duration::from_millis(1900), "{headers:?}");
    assert!(
        body > Duration::from_millis(1900),
        "idle, not header timeout: {body:?}"
    );
    assert!(body < Duration::from_millis(3500), "{body:?}");
    assert!(silent < Duration::from_millis(1900), "{silent:?}");
    // Normal requests are unaffected.
    assert_eq!(get(http, "/api/clients", None).status, 200);
}
