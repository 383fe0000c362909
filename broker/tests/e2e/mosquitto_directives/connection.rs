//! Directives about connections: `max_keepalive`, `connection_messages`,
//! `accept_protocol_versions`, `listener_allow_anonymous`,
//! `global_max_connections`.

use super::ConfBroker;
use crate::harness::{skip_on_mosquitto, ConnectBuilder, RawClient, ReasonCode, QUIET, WAIT};

#[test]
fn max_keepalive_is_told_to_5_0_clients_and_held_for_3_1_1_clients() {
    let broker = ConfBroker::start(|port, _| {
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_keepalive 10\n")
    });
    for asked in [0, 60] {
        let id = format!("v5-ka-{asked}");
        let (mut client, connack) =
            RawClient::connect_with(broker.addr(), ConnectBuilder::v5(&id).keep_alive(asked));
        assert_eq!(
            connack.properties.server_keep_alive,
            Some(10),
            "asked {asked}"
        );
        client.ping();
    }
    let (_within, connack) =
        RawClient::connect_with(broker.addr(), ConnectBuilder::v5("v5-ka-5").keep_alive(5));
    assert_eq!(connack.properties.server_keep_alive, None);
    // 3.1.1 cannot be told: asking for more is refused with "identifier
    // rejected", as Mosquitto does since 2.0.12 (CVE-2020-13849; Debian's
    // 2.0.11 accepted it and kept the client's value, decision 0126).
    if crate::harness::is_mosquitto() {
        return;
    }
    let mut above = RawClient::connect(broker.addr());
    above.send_connect(&ConnectBuilder::v311("v311-ka-60").keep_alive(60));
    assert_eq!(
        above.expect_connack().reason,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    let (mut within, _) = RawClient::connect_with(
        broker.addr(),
        ConnectBuilder::v311("v311-ka-10").keep_alive(10),
    );
    within.ping();
}

#[test]
fn connection_messages_false_leaves_out_connects_and_disconnects() {
    let broker = ConfBroker::start(|port, _| {
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nconnection_messages false\n")
    });
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "quiet-client", true);
    client.ping();
    client.send(&crate::harness::disconnect(None));
    assert!(client.expect_closed(WAIT));
    // A refusal is still logged (fleetmq; Mosquitto logs nothing either way).
    let mut refused = RawClient::connect(broker.addr());
    refused.send_connect(&ConnectBuilder::v311("").clean(false));
    assert_eq!(
        refused.expect_connack().reason,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    std::thread::sleep(QUIET);
    let logs = broker.logs();
    for line in [
        "New client connected",
        "quiet-client disconnected",
        "New connection from",
    ] {
        assert!(!logs.contains(line), "{line:?} logged:\n{logs}");
    }
    if !crate::harness::is_mosquitto() {
        assert!(logs.contains("Refused connection"), "{logs}");
    }
}

#[test]
fn connection_messages_default_logs_connects_and_disconnects() {
    let broker = ConfBroker::start(|port, _| {
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_type all\n")
    });
    let (mut client, _) = RawClient::connect_v311(broker.addr(), "chatty-client", true);
    client.send(&crate::harness::disconnect(None));
    assert!(client.expect_closed(WAIT));
    std::thread::sleep(QUIET);
    let logs = broker.logs();
    assert!(logs.contains("New client connected"), "{logs}");
    assert!(logs.contains("chatty-client disconnected"), "{logs}");
}

#[test]
fn accept_protocol_versions_refuses_other_versions_per_listener() {
    if skip_on_mosquitto("accept_protocol_versions is Mosquitto 2.1") {
        return;
    }
    let other = crate::harness::service::free_port();
    let broker = ConfBroker::start(|port, _| {
        format!(
            "listener {port} 127.0.0.1\naccept_protocol_versions 5\n\
             listener {other} 127.0.0.1\naccept_protocol_versions 3,4\n\
             allow_anonymous true\n"
        )
    });
    let only_v5 = broker.addr();
    let only_v3 = broker.other(other);
    RawClient::connect_with(only_v5, ConnectBuilder::v5("new-device"));
    let mut old = RawClient::connect(only_v5);
    old.send_connect(&ConnectBuilder::v311("old-device"));
    assert_eq!(
        old.expect_connack().reason,
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
    );
    assert!(old.expect_closed(WAIT));

    RawClient::connect_with(only_v3, ConnectBuilder::v311("old-device"));
    let mut new = RawClient::connect(only_v3);
    new.send_connect(&ConnectBuilder::v5("new-device"));
    assert_eq!(
        new.expect_connack().reason,
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
    );
    assert!(new.expect_closed(WAIT));
    broker.expect_log("MQTT 5.0 is not in this listener's accept_protocol_versions");
}

#[test]
fn listener_allow_anonymous_opens_one_listener_only() {
    if skip_on_mosquitto("listener_allow_anonymous is Mosquitto 2.1") {
        return;
    }
    let open = crate::harness::service::free_port();
    let broker = ConfBroker::start(|port, _| {
        format!(
            "allow_anonymous false\n\
             listener {port} 127.0.0.1\n\
             listener {open} 127.0.0.1\nlistener_allow_anonymous true\n"
        )
    });
    let mut closed = RawClient::connect(broker.addr());
    closed.send_connect(&ConnectBuilder::v5("anon-closed"));
    assert_eq!(closed.expect_connack().reason, ReasonCode::NOT_AUTHORIZED);
    let open = broker.other(open);
    let (mut client, _) = RawClient::connect_with(open, ConnectBuilder::v5("anon-open"));
    client.ping();
}

#[test]
fn global_max_connections_caps_every_listener_together() {
    if skip_on_mosquitto("global_max_connections is Mosquitto 2.1") {
        return;
    }
    let second = crate::harness::service::free_port();
    let broker = ConfBroker::start(|port, _| {
        format!(
            "global_max_connections 2\nallow_anonymous true\n\
             listener {port} 127.0.0.1\nlistener {second} 127.0.0.1\n"
        )
    });
    let second = broker.other(second);
    // The listen probes were connections too: let the broker see them go.
    std::thread::sleep(QUIET);
    let (_a, _) = RawClient::connect_v5(broker.addr(), "gmc-a", true);
    let (_b, _) = RawClient::connect_v5(second, "gmc-b", true);
    let mut third = RawClient::connect(second);
    third.send_connect(&ConnectBuilder::v5("gmc-c"));
    let refused = third.wait_closed(WAIT).expect("third connection closed");
    for packet in refused.packets {
        if let crate::harness::Packet::ConnAck(connack) = packet {
            assert_eq!(connack.reason, ReasonCode::SERVER_BUSY);
        }
    }
}
