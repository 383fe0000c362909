//! PROXY protocol listeners (decisions 0123, 0124): Debian's HAProxy in
//! front of the real binary with `send-proxy-v2` and `send-proxy`, where
//! the client's own address (a socket bound to 127.0.0.7) must reach the
//! log, the dashboard and the per-IP limits; mutual TLS through a TCP-mode
//! HAProxy; TLS terminated at HAProxy with the certificate's CN in the v2
//! SSL TLV. Raw sockets show the refusals: a header where none is taken,
//! none where one is required, malformed, oversized and slow headers.

mod haproxy;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::pki::openssl_pki::OpensslPki;
use crate::harness::web::{eventually, get, tls_client_config, TlsMqtt};
use crate::harness::*;
use haproxy::{connect_from, Frontend, Haproxy};
use serde_json::Value;

/// Long enough for an event to reach the registry on a busy CI machine.
const SOON: Duration = Duration::from_secs(5);

/// fleetmq's bound on a whole header (`HEADER_TIMEOUT`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

fn plain_proxy_listener(name: &str, mode: &str, extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\nbind = \"127.0.0.1:0\"\nproxy_protocol = \"{mode}\"\n{extra}\n"
    )
}

fn client_list(http: SocketAddr) -> Vec<Value> {
    let response = get(http, "/api/clients", None);
    assert_eq!(response.status, 200, "{}", response.body);
    response.json().as_array().cloned().expect("array")
}

/// The dashboard's record of `id`, once it is there.
fn dashboard_client(http: SocketAddr, id: &str) -> Value {
    eventually(SOON, id, || {
        client_list(http)
            .into_iter()
            .find(|c| c["client_id"] == id && c["connected"] == true)
    })
}

/// An MQTT 3.1.1 client over `stream`, CONNACKed.
fn mqtt_over(stream: std::net::TcpStream, id: &str) -> RawClient {
    let mut client = RawClient::over(Transport::Tcp(stream));
    client.send_connect(&ConnectBuilder::v311(id));
    let connack = client.expect_connack();
    assert_eq!(connack.reason, ReasonCode::SUCCESS, "{id} refused");
    client
}

/// A v2 header by hand (not by the parser under test): PROXY or LOCAL,
/// TCP over IPv4, `length` overriding the true payload length.
fn v2_header(local: bool, source: [u8; 4], port: u16, length: Option<u16>) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(if local { 0x20 } else { 0x21 });
    header.push(0x11);
    header.extend_from_slice(&length.unwrap_or(12).to_be_bytes());
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&1883u16.to_be_bytes());
    header
}

#[test]
fn haproxy_send_proxy_v2_and_v1_give_the_client_address() {
    if skip_on_mosquitto("PROXY protocol listeners are fleetmq's here") {
        return;
    }
    let broker = Broker::start_with(&format!(
        "{}{}",
        plain_proxy_listener("pp2", "v2", ""),
        plain_proxy_listener("pp1", "v1", "")
    ));
    let dir = tempfile::tempdir().unwrap();
    let haproxy = Haproxy::start(
        dir.path(),
        &[
            Frontend {
                bind_options: String::new(),
                backend: broker.listener_addr("pp2"),
                server_options: "send-proxy-v2".into(),
            },
            Frontend {
                bind_options: String::new(),
                backend: broker.listener_addr("pp1"),
                server_options: "send-proxy".into(),
            },
        ],
    );
    let http = broker.http_addr();
    for (frontend, id) in haproxy.frontends.iter().zip(["via-v2", "via-v1"]) {
        let stream = connect_from("127.0.0.7", *frontend);
        let client_addr = stream.local_addr().unwrap();
        let mut client = mqtt_over(stream, id);
        client.subscribe(1, "lab/+/status", 1);
        broker.assert_log(
            &format!("New client connected from {client_addr} as {id}"),
            SOON,
        );
        let record = dashboard_client(http, id);
        assert_eq!(record["peer"], client_addr.to_string(), "{record:#}");
    }
    assert_eq!(
        broker.count_log_lines(&["New client connected from 127.0.0.1"]),
        0,
        "the balancer's own address leaked into the log:\n{}",
        broker.logs()
    );
}

#[test]
fn haproxy_per_ip_limits_count_the_real_address() {
    if skip_on_mosquitto("PROXY protocol listeners are fleetmq's here") {
        return;
    }
    let broker = Broker::start_with(&format!(
        "{}\n[limits]\nmax_connections_per_ip = 2\n",
        plain_proxy_listener("pp2", "v2", "")
    ));
    let dir = tempfile::tempdir().unwrap();
    let haproxy = Haproxy::start(
        dir.path(),
        &[Frontend {
            bind_options: String::new(),
            backend: broker.listener_addr("pp2"),
            server_options: "send-proxy-v2".into(),
        }],
    );
    let frontend = haproxy.frontends[0];
    let _first = mqtt_over(connect_from("127.0.0.7", frontend), "seven-a");
    let _second = mqtt_over(connect_from("127.0.0.7", frontend), "seven-b");
    let mut third = RawClient::over(Transport::Tcp(connect_from("127.0.0.7", frontend)));
    third.send_connect(&ConnectBuilder::v311("seven-c"));
    assert!(
        third.expect_closed(WAIT),
        "a third connection from 127.0.0.7 was not refused"
    );
    broker.assert_log(
        "Refusing connections from 127.0.0.7 on listener \"pp2\": too many open connections",
        SOON,
    );
    // All three came from HAProxy's 127.0.0.1; another real address is
    // still admitted.
    let other = connect_from("127.0.0.8", frontend);
    let other_addr = other.local_addr().unwrap();
    let _eight = mqtt_over(other, "eight");
    broker.assert_log(
        &format!("New client connected from {other_addr} as eight"),
        SOON,
    );
}

#[test]
fn mutual_tls_through_a_tcp_mode_haproxy_keeps_the_certificate_identity() {
    if skip_on_mosquitto("PROXY protocol listeners are fleetmq's here") {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(pki_dir.path());
    let device = pki.client("device-7", "sensors", 365);
    let broker = Broker::start_with(&format!(
        "[[listener]]\nname = \"mtls-pp\"\nbind = \"127.0.0.1:0\"\nproxy_protocol = \"v2\"\n\
         [listener.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\nclient_certs = \"required\"\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca_cert.display()
    ));
    let dir = tempfile::tempdir().unwrap();
    let haproxy = Haproxy::start(
        dir.path(),
        &[Frontend {
            bind_options: String::new(),
            backend: broker.listener_addr("mtls-pp"),
            server_options: "send-proxy-v2".into(),
        }],
    );
    let config = tls_client_config(&pki.ca_cert, Some((&device.cert, &device.key)));
    let client = TlsMqtt::connect(
        haproxy.frontends[0],
        &config,
        &ConnectBuilder::v5("esp32_807A98"),
    );
    let record = dashboard_client(broker.http_addr(), "esp32_807A98");
    assert_eq!(record["identity"], "device-7", "{record:#}");
    assert_eq!(record["identity_source"], "certificate_cn");
    assert_eq!(record["tls"]["auth"], "mutual");
    assert_eq!(
        record["tls"]["client_cert"]["serial"],
        device.serial.as_str()
    );
    // The client's own port: HAProxy's connection to fleetmq has another.
    assert_eq!(record["peer"], client.local_addr.to_string(), "{record:#}");
}

#[test]
fn tls_terminated_at_haproxy_gives_the_cn_only_where_the_listener_says_so() {
    if skip_on_mosquitto("PROXY protocol listeners are fleetmq's here") {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(pki_dir.path());
    let device = pki.client("device-7", "sensors", 365);
    let broker = Broker::start_with(&format!(
        "{}{}",
        plain_proxy_listener(
            "trusting",
            "v2",
            "proxy_protocol_tls_identity = true\nallow_anonymous = false"
        ),
        plain_proxy_listener("ignoring", "v2", "allow_anonymous = false")
    ));
    let dir = tempfile::tempdir().unwrap();
    // HAProxy wants the certificate and its key in one file.
    let crt = dir.path().join("server.pem");
    std::fs::write(
        &crt,
        [
            std::fs::read(&pki.server_cert).unwrap(),
            std::fs::read(&pki.server_key).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let bind_options = format!(
        "ssl crt {} ca-file {} verify required",
        crt.display(),
        pki.ca_cert.display()
    );
    let haproxy = Haproxy::start(
        dir.path(),
        &[
            Frontend {
                bind_options: bind_options.clone(),
                backend: broker.listener_addr("trusting"),
                server_options: "send-proxy-v2-ssl-cn".into(),
            },
            Frontend {
                bind_options,
                backend: broker.listener_addr("ignoring"),
                server_options: "send-proxy-v2-ssl-cn".into(),
            },
        ],
    );
    let config = tls_client_config(&pki.ca_cert, Some((&device.cert, &device.key)));
    let client = TlsMqtt::connect(
        haproxy.frontends[0],
        &config,
        &ConnectBuilder::v311("esp32-a"),
    );
    let record = dashboard_client(broker.http_addr(), "esp32-a");
    assert_eq!(record["identity"], "device-7", "{record:#}");
    assert_eq!(record["identity_source"], "certificate_cn");
    assert_eq!(record["tls"]["auth"], "mutual");
    assert_eq!(record["peer"], client.local_addr.to_string());
    // The same header on a listener that does not take the balancer's word:
    // no identity, and anonymous clients are refused there.
    let refused = TlsMqtt::try_connect(
        haproxy.frontends[1],
        &config,
        &ConnectBuilder::v311("esp32-b"),
    );
    assert!(
        refused.is_err(),
        "the SSL TLV was trusted where it must not be"
    );
    broker.assert_log("as esp32-b: not authorised", SOON);
}

/// A raw client on `addr` that sends `bytes` first.
fn raw_with(addr: SocketAddr, bytes: &[u8]) -> RawClient {
    let mut client = RawClient::connect(addr);
    client.send(bytes);
    client
}

#[test]
fn a_header_where_none_is_taken_is_refused_with_a_clear_line() {
    if skip_on_mosquitto("fleetmq's refusal line") {
        return;
    }
    let broker = Broker::start();
    let connect = ConnectBuilder::v311("sneaky").build();
    let v1 = [
        &b"PROXY TCP4 127.0.0.9 127.0.0.1 4242 1883\r\n"[..],
        &connect,
    ]
    .concat();
    let v2 = [
        v2_header(false, [127, 0, 0, 9], 4243, None),
        connect.clone(),
    ]
    .concat();
    for (version, bytes) in [(1, v1), (2, v2)] {
        let mut client = raw_with(broker.addr(), &bytes);
        assert!(
            client.expect_closed(WAIT),
            "v{version} header was not refused"
        );
        broker.assert_log(
            &format!(
                "on listener \"test\": it sent a PROXY protocol v{version} header, which this listener does not take"
            ),
            SOON,
        );
    }
    // Nothing taken from others: a plain client still connects, and sees
    // the refusals counted.
    let mut sys = crate::harness::hostile::subscriber(
        broker.addr(),
        "plain",
        "$SYS/broker/connections/refused",
        0,
    );
    // Retained and refreshed every second: the first may predate them.
    let mut refused = 0;
    for _ in 0..3 {
        refused = std::str::from_utf8(&sys.expect_publish().payload)
            .unwrap()
            .parse::<u64>()
            .unwrap();
        if refused >= 2 {
            break;
        }
    }
    assert_eq!(refused, 2, "$SYS refused count");
    assert_eq!(broker.count_log_lines(&["as sneaky"]), 0);
}

#[test]
fn a_header_on_a_tls_listener_is_refused_as_a_header_not_as_bad_tls() {
    if skip_on_mosquitto("fleetmq's refusal line") {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = OpensslPki::generate(pki_dir.path());
    let broker = Broker::start_with(&format!(
        "[[listener]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n\
         [listener.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_certs = \"none\"\n",
        pki.server_cert.display(),
        pki.server_key.display(),
    ));
    let addr = broker.listener_addr("tls");
    // The TLS layer looks at the bytes only once rustls refused them; the
    // peer gets no TLS alert (it would read it as garbage), only the close.
    let v1 = b"PROXY TCP4 127.0.0.9 127.0.0.1 4242 8883\r\n".to_vec();
    let v2 = v2_header(false, [127, 0, 0, 9], 4243, None);
    for (version, header) in [(1, v1), (2, v2)] {
        let mut client = raw_with(addr, &header);
        assert!(
            client.expect_closed(WAIT),
            "the v{version} header was not refused"
        );
        broker.assert_log(
            &format!(
                "on listener \"tls\": it sent a PROXY protocol v{version} header, which this listener does not take"
            ),
            SOON,
        );
    }
    assert_eq!(broker.count_log_lines(&["TLS handshake with"]), 0);
    // A TLS client is still served.
    let config = tls_client_config(&pki.ca_cert, None);
    let _ok = TlsMqtt::connect(addr, &config, &ConnectBuilder::v311("tls-ok"));
}

#[test]
fn a_header_on_a_websocket_listener_is_refused_with_a_clear_line() {
    if skip_on_mosquitto("fleetmq's refusal line") {
        return;
    }
    // Its HTTP parser does not hand back the bytes it refused, so this
    // listener kind still peeks before the upgrade (decision 0125).
    let broker = Broker::start_with(
        "[[listener]]\nname = \"ws\"\nbind = \"127.0.0.1:0\"\nprotocol = \"websockets\"\n\
         allow_anonymous = true\n",
    );
    let mut client = raw_with(
        broker.listener_addr("ws"),
        b"PROXY TCP4 127.0.0.9 127.0.0.1 4242 8080\r\nGET /mqtt HTTP/1.1\r\n\r\n",
    );
    assert!(client.expect_closed(WAIT), "the header was not refused");
    broker.assert_log(
        "on listener \"ws\": it sent a PROXY protocol v1 header, which this listener does not take",
        SOON,
    );
}

#[test]
fn missing_malformed_oversized_and_slow_headers_are_refused() {
    if skip_on_mosquitto("PROXY protocol listeners are fleetmq's here") {
        return;
    }
    let broker = Broker::start_with(&plain_proxy_listener("pp", "any", ""));
    let addr = broker.listener_addr("pp");
    let connect = ConnectBuilder::v311("bypass").build();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "missing",
            connect.clone(),
            "did not start with a PROXY protocol header",
        ),
        (
            "malformed",
            [
                &b"PROXY TCP4 127.0.0.999 127.0.0.1 4242 1883\r\n"[..],
                &connect,
            ]
            .concat(),
            "a malformed PROXY protocol header",
        ),
        (
            "oversized v1",
            [&b"PROXY TCP4 "[..], &[b'1'; 200]].concat(),
            "a PROXY protocol header longer than",
        ),
        (
            "oversized v2",
            v2_header(false, [127, 0, 0, 9], 4243, Some(60_000)),
            "a PROXY protocol header longer than",
        ),
    ];
    for (what, bytes, line) in cases {
        let before = broker.count_log_lines(&[line]);
        let mut client = raw_with(addr, &bytes);
        assert!(client.expect_closed(WAIT), "{what} header was not refused");
        assert!(
            broker.wait_for_log_lines(&[line], before + 1, SOON) > before,
            "no `{line}` for the {what} header:\n{}",
            broker.logs()
        );
    }
    // A slow header is cut at the bound.
    let started = Instant::now();
    let mut slow = raw_with(addr, b"PROXY TCP4 127.0.0.9 ");
    assert!(slow.expect_closed(HEADER_TIMEOUT + Duration::from_secs(3)));
    let waited = started.elapsed();
    assert!(
        waited >= HEADER_TIMEOUT - Duration::from_millis(500),
        "cut after {waited:?}"
    );
    broker.assert_log("no whole PROXY protocol header within 5s", SOON);
    assert_eq!(broker.count_log_lines(&["as bypass"]), 0);
    // A balancer's plain TCP check (connect, close) is no refusal worth a
    // line.
    let refusals = broker.count_log_lines(&["Refused connection from"]);
    drop(std::net::TcpStream::connect(addr).unwrap());
    std::thread::sleep(QUIET);
    assert_eq!(
        broker.count_log_lines(&["Refused connection from"]),
        refusals
    );
    // Nothing taken from others.
    let header = b"PROXY TCP4 127.0.0.9 127.0.0.1 4242 1883\r\n";
    let mut good = raw_with(addr, header);
    good.send_connect(&ConnectBuilder::v311("good"));
    assert_eq!(good.expect_connack().reason, ReasonCode::SUCCESS);
}

#[test]
fn v1_and_v2_headers_are_read_and_local_keeps_the_socket_address() {
    if skip_on_mosquitto("PROXY protocol listeners are fleetmq's here") {
        return;
    }
    let broker = Broker::start_with(&plain_proxy_listener("pp", "any", ""));
    let addr = broker.listener_addr("pp");
    let cases: [(&str, Vec<u8>, Option<&str>); 4] = [
        (
            "raw-v1",
            b"PROXY TCP4 127.0.0.9 127.0.0.1 4242 1883\r\n".to_vec(),
            Some("127.0.0.9:4242"),
        ),
        (
            "raw-v1-6",
            b"PROXY TCP6 ::1 ::1 4244 1883\r\n".to_vec(),
            Some("[::1]:4244"),
        ),
        (
            "raw-v2",
            v2_header(false, [127, 0, 0, 10], 4243, None),
            Some("127.0.0.10:4243"),
        ),
        (
            "raw-local",
            v2_header(true, [127, 0, 0, 11], 4245, None),
            None,
        ),
    ];
    for (id, header, expected) in cases {
        let mut client = raw_with(addr, &header);
        let socket = client.transport().tcp().local_addr().unwrap().to_string();
        client.send_connect(&ConnectBuilder::v311(id));
        assert_eq!(client.expect_connack().reason, ReasonCode::SUCCESS, "{id}");
        let expected = expected.map_or(socket, str::to_string);
        broker.assert_log(
            &format!("New client connected from {expected} as {id} "),
            SOON,
        );
    }
}
