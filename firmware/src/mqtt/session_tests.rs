#![allow(clippy::unwrap_used, clippy::panic)]

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::mqtt::codec::{decode, publish};
use crate::topic::{DeviceNames, Mac, TopicTemplates};

fn session(keep_alive_secs: u16) -> MqttSession {
    session_with_ota(keep_alive_secs, false)
}

fn session_with_ota(keep_alive_secs: u16, ota: bool) -> MqttSession {
    let topics = TopicTemplates {
        connected: String::from("/this/test/esp32_{mac3}"),
        status: String::from("/this/test/esp32_{mac3}/status"),
        command: String::from("/this/test/esp32_{mac3}/cmd"),
        response: String::from("/this/test/esp32_{mac3}/response"),
    };
    MqttSession::new(SessionSettings {
        names: DeviceNames::new("esp32_{mac3}", &topics, Mac([0x24, 0, 0, 0x80, 0x7A, 0x98])),
        keep_alive_secs,
        will_message: String::from("offline"),
        user: None,
        pass: None,
        report: None,
        ota,
    })
}

fn feed(s: &mut MqttSession, bytes: &[u8], now: u64) -> Result<Vec<Output>, SessionError> {
    let (packet, _) = decode(bytes, 4096).unwrap().unwrap();
    let mut out = Vec::new();
    s.on_packet(packet, now, &mut out).map(|()| out)
}

fn logs(out: &[Output]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Log(l) => Some(l.as_str()),
            _ => None,
        })
        .collect()
}

fn sent(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn decode_owned(bytes: &[u8]) -> (u8, String, Vec<u8>) {
    // The session's own packets, read back with a tiny parser of PUBLISH and SUBSCRIBE.
    let first = bytes[0];
    let body = &bytes[2..];
    match first >> 4 {
        3 => {
            let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let topic = String::from_utf8(body[2..2 + len].to_vec()).unwrap();
            let skip = if first & 0x06 != 0 { 2 } else { 0 };
            (first, topic, body[2 + len + skip..].to_vec())
        }
        8 => {
            let len = usize::from(u16::from_be_bytes([body[2], body[3]]));
            (
                first,
                String::from_utf8(body[4..4 + len].to_vec()).unwrap(),
                Vec::new(),
            )
        }
        _ => (first, String::new(), body.to_vec()),
    }
}

#[test]
fn connect_carries_client_id_and_retained_offline_will() {
    let mut s = session(60);
    let connect = s.start(0);
    let text = String::from_utf8_lossy(&connect);
    assert!(text.contains("esp32_807A98"));
    assert!(text.contains("/this/test/esp32_807A98/status"));
    assert!(text.contains("offline"));
    assert_eq!(connect[9] & 0x24, 0x24, "will flag and will retain");
    assert_eq!(connect[9] & 0x18, 0x08, "will QoS 1");
}

#[test]
fn connack_publishes_online_subscribes_and_says_connected() {
    let mut s = session(60);
    s.start(0);
    let out = feed(&mut s, &[0x20, 2, 0, 0], 10).unwrap();
    assert_eq!(logs(&out), ["MQTT0 CONNACK 0", "MQTT connected"]);
    assert!(out.contains(&Output::Online));
    let packets: Vec<_> = sent(&out).iter().map(|b| decode_owned(b)).collect();
    assert_eq!(packets.len(), 3);
    assert_eq!(packets[0].0, 0x33, "online: QoS 1, retained");
    assert_eq!(packets[0].1, "/this/test/esp32_807A98/status");
    assert_eq!(packets[0].2, b"online");
    assert_eq!(packets[1].0, 0x82);
    assert_eq!(packets[1].1, "/this/test/esp32_807A98/cmd");
    assert_eq!(packets[2].0, 0x32, "CONNECTED!: QoS 1, not retained");
    assert_eq!(packets[2].1, "/this/test/esp32_807A98");
    assert_eq!(packets[2].2, b"CONNECTED!");
    // PUBACK of CONNECTED! (packet id 3) gives the lab's log line.
    let out = feed(&mut s, &[0x40, 2, 0, 3], 20).unwrap();
    assert_eq!(
        logs(&out),
        ["Published:OK topic:/this/test/esp32_807A98 msg:CONNECTED!"]
    );
    let out = feed(&mut s, &[0x90, 3, 0, 2, 1], 20).unwrap();
    assert_eq!(
        logs(&out),
        ["MQTT0 subscribed to /this/test/esp32_807A98/cmd"]
    );
}

#[test]
fn refused_connack_ends_the_connection_with_the_code() {
    let mut s = session(60);
    s.start(0);
    let err = feed(&mut s, &[0x20, 2, 0, 5], 1).unwrap_err();
    assert_eq!(err, SessionError::Refused(5));
    assert_eq!(alloc::format!("{err}"), "CONNACK 5 (not authorized)");
}

#[test]
fn ping_command_is_answered_with_pong() {
    let mut s = session(60);
    s.start(0);
    feed(&mut s, &[0x20, 2, 0, 0], 0).unwrap();
    let cmd = publish("/this/test/esp32_807A98/cmd", b"ping", 1, false, 42);
    let out = feed(&mut s, &cmd, 5).unwrap();
    let packets = sent(&out);
    assert_eq!(packets[0], [0x40, 2, 0, 42], "PUBACK of the command");
    let (first, topic, payload) = decode_owned(&packets[1]);
    assert_eq!(
        (first, topic.as_str(), payload.as_slice()),
        (0x30, "/this/test/esp32_807A98/response", &b"pong"[..])
    );
    // Other topics and unknown commands.
    let other = publish("/elsewhere", b"ping", 0, false, 0);
    assert!(sent(&feed(&mut s, &other, 6).unwrap()).is_empty());
    let unknown = publish("/this/test/esp32_807A98/cmd", b"reboot", 0, false, 0);
    let out = feed(&mut s, &unknown, 7).unwrap();
    assert_eq!(decode_owned(&sent(&out)[0]).2, b"unknown command: reboot");
}

#[test]
fn qos2_commands_are_answered_once() {
    let mut s = session(60);
    s.start(0);
    feed(&mut s, &[0x20, 2, 0, 0], 0).unwrap();
    let cmd = publish("/this/test/esp32_807A98/cmd", b"ping", 2, false, 9);
    let first = sent(&feed(&mut s, &cmd, 1).unwrap());
    assert_eq!(first.len(), 2, "PUBREC and pong");
    let mut dup = cmd.clone();
    dup[0] |= 0x08;
    let again = sent(&feed(&mut s, &dup, 2).unwrap());
    assert_eq!(again, [[0x50, 2, 0, 9]], "only PUBREC for the duplicate");
    let rel = sent(&feed(&mut s, &[0x62, 2, 0, 9], 3).unwrap());
    assert_eq!(rel, [[0x70, 2, 0, 9]]);
}

#[test]
fn keepalive_pings_when_idle_and_times_out_without_pingresp() {
    let mut s = session(10);
    s.start(0);
    feed(&mut s, &[0x20, 2, 0, 0], 100).unwrap(); // sends at 100
    assert_eq!(s.next_timer_ms(), 10_100);
    let mut out = Vec::new();
    s.on_timer(5_000, &mut out).unwrap();
    assert!(out.is_empty(), "not due yet");
    s.on_timer(10_100, &mut out).unwrap();
    assert_eq!(sent(&out), [[0xC0, 0]]);
    assert_eq!(s.next_timer_ms(), 15_100, "half a keepalive for PINGRESP");
    // PINGRESP in time: next ping a keepalive after the last send.
    feed(&mut s, &[0xD0, 0], 11_000).unwrap();
    assert_eq!(s.next_timer_ms(), 20_100);
    out.clear();
    s.on_timer(20_100, &mut out).unwrap();
    assert_eq!(sent(&out), [[0xC0, 0]]);
    assert_eq!(
        s.on_timer(25_100, &mut out),
        Err(SessionError::KeepaliveTimeout)
    );
}

#[test]
fn no_connack_within_keepalive_is_an_error() {
    let mut s = session(10);
    s.start(1_000);
    let mut out = Vec::new();
    assert!(s.on_timer(5_000, &mut out).is_ok());
    assert_eq!(s.on_timer(11_000, &mut out), Err(SessionError::NoConnAck));
}

#[test]
fn protocol_violations_end_the_session() {
    let mut s = session(60);
    s.start(0);
    assert!(matches!(
        feed(&mut s, &[0xD0, 0], 0),
        Err(SessionError::Protocol(_))
    ));
    let mut s = session(60);
    s.start(0);
    feed(&mut s, &[0x20, 2, 0, 0], 0).unwrap();
    assert!(matches!(
        feed(&mut s, &[0x20, 2, 0, 0], 0),
        Err(SessionError::Protocol(_))
    ));
    assert!(matches!(
        feed(&mut s, &[0x40, 2, 0, 99], 0),
        Err(SessionError::Protocol(_))
    ));
}

#[test]
fn reconnect_command_disconnects_and_asks_to_close() {
    let mut s = session(60);
    s.start(0);
    feed(&mut s, &[0x20, 2, 0, 0], 0).unwrap();
    let cmd = publish("/this/test/esp32_807A98/cmd", b"reconnect\n", 0, false, 0);
    let out = feed(&mut s, &cmd, 5).unwrap();
    let packets = sent(&out);
    assert_eq!(decode_owned(&packets[0]).2, b"reconnecting");
    assert_eq!(packets[1], [0xE0, 0]);
    assert!(matches!(out.last(), Some(Output::Close(_))));
}

#[test]
fn the_report_goes_out_once_right_after_connack() {
    let mut s = session(30);
    s.settings.report = Some(String::from(r#"{"tls_handshake_ms":12}"#));
    let _ = s.start(0);
    let out = feed(&mut s, &[0x20, 2, 0, 0], 5).unwrap();
    let sent: Vec<&Vec<u8>> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent[0],
        &publish(REPORT_TOPIC, br#"{"tls_handshake_ms":12}"#, 0, false, 0)
    );
    assert!(s.settings.report.is_none(), "sent once per session");
}

#[test]
fn ota_topics_are_subscribed_and_their_messages_handed_over() {
    let mut s = session_with_ota(60, true);
    s.start(0);
    let out = feed(&mut s, &[0x20, 2, 0, 0], 10).unwrap();
    let packets: Vec<_> = sent(&out).iter().map(|b| decode_owned(b)).collect();
    let subscribed: Vec<&str> = packets
        .iter()
        .filter(|p| p.0 == 0x82)
        .map(|p| p.1.as_str())
        .collect();
    assert_eq!(
        subscribed,
        [
            "/this/test/esp32_807A98/cmd",
            "$fleetmq/ota/esp32_807A98/offer",
            "$fleetmq/ota/esp32_807A98/chunk"
        ]
    );
    // The agent runs once both OTA subscriptions are granted.
    assert!(feed(&mut s, &[0x90, 3, 0, 4, 1], 11).unwrap().is_empty());
    let out = feed(&mut s, &[0x90, 3, 0, 5, 1], 12).unwrap();
    assert_eq!(out, [Output::OtaReady]);
    let chunk = publish("$fleetmq/ota/esp32_807A98/chunk", b"data", 1, false, 9);
    let out = feed(&mut s, &chunk, 13).unwrap();
    assert_eq!(sent(&out)[0], [0x40, 2, 0, 9]);
    assert!(out.contains(&Output::Ota {
        chunk: true,
        payload: b"data".to_vec()
    }));
    // The agent's publishes are acknowledged without a log line.
    let mut out = Vec::new();
    s.publish_quiet("$fleetmq/ota/esp32_807A98/status", b"{}", 14, &mut out);
    let bytes = sent(&out);
    let packet = decode(&bytes[0], 4096).unwrap().unwrap().0;
    let Packet::Publish { packet_id, .. } = packet else {
        panic!("not a publish")
    };
    let id = packet_id.unwrap().to_be_bytes();
    assert!(feed(&mut s, &[0x40, 2, id[0], id[1]], 15)
        .unwrap()
        .is_empty());
}

#[test]
fn a_refused_ota_subscription_keeps_the_connection_but_not_the_agent() {
    let mut s = session_with_ota(60, true);
    s.start(0);
    feed(&mut s, &[0x20, 2, 0, 0], 10).unwrap();
    let out = feed(&mut s, &[0x90, 3, 0, 4, 0x80], 11).unwrap();
    assert_eq!(
        logs(&out),
        ["OTA subscription refused by the broker: no updates on this connection"]
    );
    // The chunk topic's SUBACK still matches; no OtaReady: nothing is confirmed.
    let out = feed(&mut s, &[0x90, 3, 0, 5, 1], 12).unwrap();
    assert!(!out.contains(&Output::OtaReady), "{out:?}");
}
