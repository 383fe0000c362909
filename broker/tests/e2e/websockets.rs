//! End-to-end tests of WebSocket listeners (`protocol = "websockets"`):
//! rumqttc's WebSocket transport over ws and wss (mutual TLS with a device
//! certificate of the test CA, and one from another CA refused), MQTT
//! packets split across and packed into WebSocket messages, the dashboard's
//! `transport`, and the upgrades the broker refuses (no or another
//! subprotocol, another path, a text message, a huge or slow request).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, QoS, TlsConfiguration, Transport};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::harness::pki::Pki;
use crate::harness::tls::{self, ANY_VERSION};
use crate::harness::web::{eventually, get};
use crate::harness::*;

/// Debug logs carry the reason a connection ended before CONNECT.
const DEBUG_LOG: &str = "[log]\nlevel = \"debug\"\n";

/// A plain `ws` listener (any path) and one that takes only `/mqtt`.
fn ws_listeners() -> Vec<ListenerSpec> {
    vec![
        ListenerSpec::plain("ws")
            .with_settings("protocol = \"websockets\"\nallow_anonymous = true"),
        ListenerSpec::plain("ws-path")
            .with_settings("protocol = \"websockets\"\npath = \"/mqtt\"\nallow_anonymous = true"),
    ]
}

/// A wss listener requiring a client certificate of the test CA whose CN
/// must be the client id.
fn wss_listener(pki: &Pki) -> ListenerSpec {
    ListenerSpec::tls("wss", &pki.listener_toml(&pki.server_ecdsa, "required"))
        .with_settings("protocol = \"websockets\"\nclientid_must_match_identity = true")
}

/// A rumqttc client (3.1.1) whose events arrive on a channel: its first
/// item is the CONNACK or the connection error.
struct Client {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<rumqttc::Packet, String>>,
}

impl Client {
    async fn connect(id: &str, url: &str, transport: Transport) -> Result<Client, String> {
        let mut options = MqttOptions::new(id, url, 0);
        options.set_transport(transport);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut event_loop) = AsyncClient::new(options, 16);
        let (sender, mut events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let event = event_loop.poll().await;
                let item = match event {
                    Ok(Event::Incoming(packet)) => Ok(packet),
                    Ok(Event::Outgoing(_)) => continue,
                    Err(error) => Err(error.to_string()),
                };
                let stop = item.is_err();
                if sender.send(item).is_err() || stop {
                    return;
                }
            }
        });
        match timeout(WAIT * 2, events.recv()).await {
            Ok(Some(Ok(rumqttc::Packet::ConnAck(connack))))
                if connack.code == rumqttc::ConnectReturnCode::Success =>
            {
                Ok(Client { client, events })
            }
            Ok(Some(Ok(other))) => Err(format!("{other:?}")),
            Ok(Some(Err(error))) => Err(error),
            other => Err(format!("no CONNACK: {other:?}")),
        }
    }

    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        self.expect(|p| matches!(p, rumqttc::Packet::SubAck(_)))
            .await;
    }

    async fn expect(&mut self, wanted: impl Fn(&rumqttc::Packet) -> bool) -> rumqttc::Packet {
        let deadline = tokio::time::Instant::now() + WAIT * 2;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Ok(packet))) if wanted(&packet) => return packet,
                Ok(Some(Ok(_))) => {}
                other => panic!("expected packet, got {other:?}"),
            }
        }
    }

    async fn expect_publish(&mut self, topic: &str) -> rumqttc::Publish {
        match self
            .expect(|p| matches!(p, rumqttc::Packet::Publish(p) if p.topic == topic))
            .await
        {
            rumqttc::Packet::Publish(publish) => publish,
            _ => unreachable!(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_clients_publish_and_subscribe_across_transports() {
    if skip_on_mosquitto("fleetmq's WebSocket listeners") {
        return;
    }
    let broker = Broker::start_with_listeners(&ws_listeners(), "");
    let ws = broker.addr_of("ws");
    let ws_path = broker.addr_of("ws-path");
    let mut listener = Client::connect("ws-sub", &format!("ws://{ws}/"), Transport::Ws)
        .await
        .unwrap();
    listener.subscribe("lab/#").await;
    // The same topic tree as MQTT clients: a TCP client subscribes too.
    let (mut tcp, _) = RawClient::connect_v311(broker.addr(), "tcp-sub", true);
    tcp.subscribe(1, "lab/#", 1);

    let publisher = Client::connect("ws-pub", &format!("ws://{ws_path}/mqtt"), Transport::Ws)
        .await
        .unwrap();
    publisher
        .client
        .publish(
            "lab/ws",
            QoS::AtLeastOnce,
            false,
            b"over websockets".to_vec(),
        )
        .await
        .unwrap();
    let got = listener.expect_publish("lab/ws").await;
    assert_eq!(&got.payload[..], b"over websockets");
    let got = tcp.expect_publish();
    assert_eq!(&got.payload[..], b"over websockets");

    // A TCP client's message reaches the WebSocket subscriber.
    tcp.publish("lab/tcp", b"over tcp", 0, false);
    let got = listener.expect_publish("lab/tcp").await;
    assert_eq!(&got.payload[..], b"over tcp");

    // The dashboard and the metrics say which transport each client uses.
    let http = broker.http_addr();
    let clients = eventually(WAIT, "three clients in /api/clients", || {
        let list = get(http, "/api/clients", None).json();
        let list = list.as_array()?.clone();
        (list.len() == 3).then_some(list)
    });
    for client in &clients {
        let expected = if client["client_id"] == "tcp-sub" {
            "mqtt"
        } else {
            "websockets"
        };
        assert_eq!(client["transport"], expected, "{client}");
    }
    let metrics = get(http, "/metrics", None).body;
    assert!(
        metrics.contains("fleetmq_connections{listener=\"ws\",transport=\"websockets\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleetmq_connections{listener=\"test\",transport=\"mqtt\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_device_certificate_publishes_and_subscribes() {
    if skip_on_mosquitto("fleetmq's WebSocket listeners") {
        return;
    }
    let pki = Pki::new();
    let broker = Broker::start_with_listeners(&[wss_listener(&pki)], "");
    let url = format!("wss://{}/mqtt", broker.addr_of("wss"));
    let wss = |identity| {
        Transport::Wss(TlsConfiguration::Rustls(tls::client_config(
            &pki.ca.cert,
            identity,
            ANY_VERSION,
        )))
    };
    let mut dev_a = Client::connect("dev-a", &url, wss(Some(&pki.dev_a)))
        .await
        .unwrap();
    dev_a.subscribe("devices/#").await;
    let dev_b = Client::connect("dev-b", &url, wss(Some(&pki.dev_b)))
        .await
        .unwrap();
    dev_b
        .client
        .publish(
            "devices/dev-b/status",
            QoS::AtLeastOnce,
            true,
            b"online".to_vec(),
        )
        .await
        .unwrap();
    let got = dev_a.expect_publish("devices/dev-b/status").await;
    assert_eq!(&got.payload[..], b"online");
    broker.assert_log("as dev-b", WAIT);

    // The certificate is the identity over wss too: another client id is
    // refused (clientid_must_match_identity).
    let refused = Client::connect("not-dev-a", &url, wss(Some(&pki.dev_a))).await;
    assert!(
        refused.is_err(),
        "a client id that is not the certificate's CN"
    );
    broker.assert_log("Refused connection from", WAIT);

    // No certificate, and one from another CA: refused in the TLS
    // handshake, before any upgrade.
    assert!(Client::connect("dev-a", &url, wss(None)).await.is_err());
    let rogue = Client::connect("dev-a", &url, wss(Some(&pki.rogue))).await;
    assert!(rogue.is_err(), "a certificate of another CA");
    tls::assert_handshake_failed(&broker, "wss", "unknown_ca");
}

/// A raw WebSocket client on `addr` offering `subprotocol`.
async fn raw_ws(
    addr: std::net::SocketAddr,
    path: &str,
    subprotocol: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, WsError> {
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    if let Some(subprotocol) = subprotocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(subprotocol).unwrap(),
        );
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, response) = tokio_tungstenite::client_async(request, tcp).await?;
    if let Some(subprotocol) = subprotocol {
        let echoed = response.headers().get("Sec-WebSocket-Protocol").unwrap();
        assert_eq!(echoed, subprotocol, "the offered subprotocol is echoed");
    }
    Ok(ws)
}

/// The next binary message's bytes (pings skipped).
async fn next_binary(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> Vec<u8> {
    loop {
        match timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => return data.to_vec(),
            Ok(Some(Ok(Message::Ping(_)))) => {}
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_may_span_messages_and_messages_may_hold_packets() {
    if skip_on_mosquitto("fleetmq's WebSocket listeners") {
        return;
    }
    let broker = Broker::start_with_listeners(&ws_listeners(), "");
    let mut ws = raw_ws(broker.addr_of("ws"), "/", Some("mqttv3.1"))
        .await
        .unwrap();
    // CONNECT in three messages, byte by byte at first.
    let connect = ConnectBuilder::v311("split").build();
    ws.send(Message::binary(connect[..1].to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(connect[1..2].to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(connect[2..].to_vec()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut ws).await, [0x20, 2, 0, 0], "CONNACK");
    // SUBSCRIBE and a PUBLISH to it in one message.
    let mut both = subscribe(1, &[("split/#", 0)], false, &[]);
    both.extend(publish("split/x", b"hello").build());
    ws.send(Message::binary(both)).await.unwrap();
    let mut received = Vec::new();
    let expected_publish = publish("split/x", b"hello").build();
    while received.len() < 5 + expected_publish.len() {
        received.extend(next_binary(&mut ws).await);
    }
    assert_eq!(&received[..5], [0x90, 3, 0, 1, 0], "SUBACK");
    assert_eq!(&received[5..], &expected_publish[..]);
}

/// The HTTP status of a refused upgrade.
fn refused_status(result: Result<impl Sized, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_without_mqtt_or_on_another_path_are_refused() {
    if skip_on_mosquitto("fleetmq's WebSocket listeners") {
        return;
    }
    let broker = Broker::start_with_listeners(&ws_listeners(), "");
    let ws = broker.addr_of("ws");
    assert_eq!(refused_status(raw_ws(ws, "/", None).await), 400);
    broker.assert_log("refused: no WebSocket subprotocol offered", WAIT);
    assert_eq!(refused_status(raw_ws(ws, "/", Some("chat")).await), 400);
    broker.assert_log(
        "none of the WebSocket subprotocols [\"chat\"] is MQTT",
        WAIT,
    );
    let with_path = broker.addr_of("ws-path");
    assert_eq!(
        refused_status(raw_ws(with_path, "/other", Some("mqtt")).await),
        404
    );
    broker.assert_log(
        "path \"/other\" is not this listener's WebSocket path",
        WAIT,
    );
    assert!(raw_ws(with_path, "/mqtt", Some("mqtt")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_ends_the_connection() {
    if skip_on_mosquitto("fleetmq's WebSocket listeners") {
        return;
    }
    let broker = Broker::start_with_listeners(&ws_listeners(), DEBUG_LOG);
    let mut ws = raw_ws(broker.addr_of("ws"), "/", Some("mqtt"))
        .await
        .unwrap();
    ws.send(Message::text("CONNECT")).await.unwrap();
    let ended = timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection stays open after a text message"
    );
    broker.assert_log(
        "a text WebSocket message (MQTT travels in binary messages only)",
        WAIT,
    );

    // After CONNECT too.
    let mut ws = raw_ws(broker.addr_of("ws"), "/", Some("mqtt"))
        .await
        .unwrap();
    ws.send(Message::binary(ConnectBuilder::v311("texter").build()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut ws).await, [0x20, 2, 0, 0], "CONNACK");
    ws.send(Message::text("hello")).await.unwrap();
    broker.assert_log("Client texter", WAIT);
    let ended = timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection stays open after a text message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_slow_upgrade_requests_are_cut_off() {
    if skip_on_mosquitto("fleetmq's WebSocket listeners") {
        return;
    }
    let broker =
        Broker::start_with_listeners(&ws_listeners(), "[limits]\nconnect_timeout_secs = 1\n");
    let ws = broker.addr_of("ws");

    // 40 KiB of headers: closed once 16 KiB are read.
    let mut huge = TcpStream::connect(ws).await.unwrap();
    let mut request = format!("GET / HTTP/1.1\r\nHost: {ws}\r\n");
    for n in 0..400 {
        request.push_str(&format!("X-Filler-{n}: {}\r\n", "x".repeat(90)));
    }
    // The broker may close while we still write: that is the point.
    let _ = huge.write_all(request.as_bytes()).await;
    assert!(
        closes_within(&mut huge, WAIT).await,
        "a huge request is cut off"
    );
    broker.assert_log("the upgrade request passed 16384 bytes", WAIT);

    // Half a request, then silence: closed after connect_timeout_secs.
    let mut slow = TcpStream::connect(ws).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(closes_within(&mut slow, Duration::from_secs(3)).await);
    assert!(started.elapsed() >= Duration::from_millis(900));
    broker.assert_log("no upgrade request within 1s", WAIT);

    // The listener still serves.
    assert!(raw_ws(ws, "/", Some("mqtt")).await.is_ok());
}

/// Whether the peer closes `stream` (EOF or reset) within `limit`.
async fn closes_within(stream: &mut TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Debian's Mosquitto 2.0.11 with a WebSocket listener (and the plain one
/// it needs to start at all: decision 0121); killed on drop.
struct Mosquitto {
    child: std::process::Child,
    ws: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Mosquitto {
        use crate::harness::service::free_port;
        let dir = tempfile::tempdir().unwrap();
        let (plain, ws) = (free_port(), free_port());
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {plain} 127.0.0.1\nlistener {ws} 127.0.0.1\nprotocol websockets\n\
                 allow_anonymous true\npersistence false\n"
            ),
        )
        .unwrap();
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let ws = std::net::SocketAddr::from(([127, 0, 0, 1], ws));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(ws).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not open {ws}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto {
            child,
            ws,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What fleetmq shares with Mosquitto 2.0.11 (the subprotocol offered is
/// echoed, a CONNECT split over messages is served) and where it differs on
/// purpose (no subprotocol: refused with 400, where Mosquitto upgrades and
/// then never answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocols_and_split_packets_as_mosquitto_2_0_with_a_clear_refusal() {
    if skip_on_mosquitto("compares with Mosquitto itself")
        || !crate::harness::fleet::have_tool("mosquitto", "the reference broker")
    {
        return;
    }
    let fleetmq = Broker::start_with_listeners(&ws_listeners(), "");
    let mosquitto = Mosquitto::start();
    for (name, addr) in [
        ("fleetmq", fleetmq.addr_of("ws")),
        ("mosquitto", mosquitto.ws),
    ] {
        for subprotocol in ["mqtt", "mqttv3.1"] {
            // raw_ws checks the echo.
            let mut ws = raw_ws(addr, "/", Some(subprotocol)).await.unwrap();
            let connect = ConnectBuilder::v311(&format!("cmp-{name}")).build();
            ws.send(Message::binary(connect[..3].to_vec()))
                .await
                .unwrap();
            ws.send(Message::binary(connect[3..].to_vec()))
                .await
                .unwrap();
            assert_eq!(
                next_binary(&mut ws).await,
                [0x20, 2, 0, 0],
                "{name} CONNACK"
            );
        }
    }
    assert_eq!(
        refused_status(raw_ws(fleetmq.addr_of("ws"), "/", None).await),
        400
    );
    // Mosquitto upgrades without a subprotocol, then ignores the CONNECT.
    let mut ws = raw_ws(mosquitto.ws, "/", None).await.unwrap();
    ws.send(Message::binary(ConnectBuilder::v311("cmp-none").build()))
        .await
        .unwrap();
    assert!(
        timeout(QUIET, ws.next()).await.is_err(),
        "Mosquitto 2.0.11 answered a CONNECT without subprotocol"
    );
}
