//! QoS 1 and 2 in both directions, receive maximum, acknowledgements held
//! for their commit ticket, take-over, and DISCONNECT's expiry rules.

use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::watch;

use super::*;
use crate::config::FsyncPolicy;
use crate::session::{Control, OutFlight};
use crate::store::{Op, Store, StoreBackend, StoreError, StoreHealth};
use fleetmq_codec::{Disconnect, DisconnectProperties, ReasonCode};

fn inflight_ids(client: &Client) -> Vec<u16> {
    let session = client.protocol.session().lock();
    session.inflight_in_order().map(|(id, _)| id).collect()
}

#[test]
fn qos1_flows_both_ways_and_puback_frees_the_id() {
    let broker = broker();
    let mut sub = connect(&broker, Connect::v5("sub"));
    sub.subscribe("lab/#", QoS::AtLeastOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));

    publisher
        .feed(publish("lab/t", QoS::AtLeastOnce, Some(7), b"one"))
        .unwrap();
    match &publisher.written()[..] {
        [Packet::PubAck(ack)] => {
            assert_eq!(ack.packet_id, 7);
            assert_eq!(ack.reason, ReasonCode::SUCCESS);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let delivered = publishes(&sub.drain());
    assert_eq!(delivered.len(), 1);
    let id = delivered[0].0.unwrap();
    assert_eq!(inflight_ids(&sub), [id]);
    sub.feed(Packet::PubAck(ack(id))).unwrap();
    assert!(inflight_ids(&sub).is_empty());

    // Nobody subscribed: 5.0 says so in the PUBACK.
    publisher
        .feed(publish("elsewhere", QoS::AtLeastOnce, Some(8), b"x"))
        .unwrap();
    match &publisher.written()[..] {
        [Packet::PubAck(ack)] => assert_eq!(ack.reason, ReasonCode::NO_MATCHING_SUBSCRIBERS),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[test]
fn incoming_qos2_is_routed_once_and_pubrel_frees_the_id() {
    let broker = broker();
    let mut sub = connect(&broker, Connect::v5("sub"));
    sub.subscribe("lab/#", QoS::ExactlyOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));

    for _ in 0..2 {
        // The second is a retransmission: acknowledged, not routed again.
        publisher
            .feed(publish("lab/t", QoS::ExactlyOnce, Some(3), b"once"))
            .unwrap();
        assert!(matches!(&publisher.written()[..], [Packet::PubRec(rec)] if rec.packet_id == 3));
    }
    assert_eq!(publishes(&sub.drain()).len(), 1);

    publisher.feed(Packet::PubRel(ack(3))).unwrap();
    match &publisher.written()[..] {
        [Packet::PubComp(comp)] => assert_eq!(comp.reason, ReasonCode::SUCCESS),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    publisher.feed(Packet::PubRel(ack(3))).unwrap();
    match &publisher.written()[..] {
        [Packet::PubComp(comp)] => {
            assert_eq!(comp.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    // The id is free: the same id is a new message now.
    publisher
        .feed(publish("lab/t", QoS::ExactlyOnce, Some(3), b"again"))
        .unwrap();
    assert_eq!(publishes(&sub.drain()).len(), 1);
}

#[test]
fn outgoing_qos2_is_released_by_pubrec_and_completed_by_pubcomp() {
    let broker = broker();
    let mut sub = connect(&broker, Connect::v5("sub"));
    sub.subscribe("lab/#", QoS::ExactlyOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));
    publisher
        .feed(publish("lab/t", QoS::ExactlyOnce, Some(1), b"m"))
        .unwrap();
    let id = publishes(&sub.drain())[0].0.unwrap();

    for _ in 0..2 {
        // A repeated PUBREC gets the PUBREL again.
        sub.feed(Packet::PubRec(ack(id))).unwrap();
        match &sub.written()[..] {
            [Packet::PubRel(rel)] => {
                assert_eq!(rel.packet_id, id);
                assert_eq!(rel.reason, ReasonCode::SUCCESS);
            }
            other => panic!("expected PUBREL, got {other:?}"),
        }
    }
    assert!(matches!(
        sub.protocol.session().lock().inflight_in_order().next(),
        Some((_, OutFlight::Release(_)))
    ));
    sub.feed(Packet::PubComp(ack(id))).unwrap();
    assert!(inflight_ids(&sub).is_empty());

    sub.feed(Packet::PubRec(ack(999))).unwrap();
    match &sub.written()[..] {
        [Packet::PubRel(rel)] => assert_eq!(rel.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
        other => panic!("expected PUBREL, got {other:?}"),
    }
}

#[test]
fn the_clients_receive_maximum_bounds_what_is_in_flight() {
    let broker = broker();
    let mut sub = connect(
        &broker,
        Connect {
            receive_maximum: Some(2),
            ..Connect::v5("sub")
        },
    );
    assert_eq!(sub.protocol.send_window(), 2);
    sub.subscribe("lab/#", QoS::AtLeastOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));
    for id in 1..=5 {
        publisher
            .feed(publish("lab/t", QoS::AtLeastOnce, Some(id), b"m"))
            .unwrap();
    }
    let first = publishes(&sub.drain());
    assert_eq!(first.len(), 2);
    assert!(publishes(&sub.drain()).is_empty(), "window full");
    sub.feed(Packet::PubAck(ack(first[0].0.unwrap()))).unwrap();
    assert_eq!(
        publishes(&sub.written()).len(),
        1,
        "one acknowledged, one more"
    );
    assert_eq!(inflight_ids(&sub).len(), 2);
}

#[test]
fn the_brokers_receive_maximum_bounds_incoming_qos2() {
    let broker = broker_with(|config| config.limits.max_inflight = 2);
    let mut publisher = connect(&broker, Connect::v5("pub"));
    for id in 1..=2 {
        publisher
            .feed(publish("lab/t", QoS::ExactlyOnce, Some(id), b"m"))
            .unwrap();
    }
    match publisher.feed(publish("lab/t", QoS::ExactlyOnce, Some(3), b"m")) {
        Err(Exit::Violation { reason, .. }) => {
            assert_eq!(reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

/// A store backend that takes every op and commits nothing by itself:
/// the test announces commits through the protocol's own progress
/// receiver. (The redb writer behind the same seam is exercised end to end
/// by the e2e store tests.)
struct CommitsAnnouncedByTheTest;

impl StoreBackend for CommitsAnnouncedByTheTest {
    fn start(
        self,
        ops: std::sync::mpsc::Receiver<(u64, Op)>,
        _progress: watch::Sender<Progress>,
        _health: Arc<StoreHealth>,
    ) -> Result<std::thread::JoinHandle<()>, StoreError> {
        Ok(std::thread::spawn(move || for _ in ops {}))
    }
}

/// A broker whose store hands out tickets (above 0) and whose commits the
/// test announces itself.
fn gated(version: ProtocolVersion) -> (Arc<Store>, Client, watch::Sender<Progress>) {
    let store = Store::start(CommitsAnnouncedByTheTest, FsyncPolicy::Batch, 1).unwrap();
    let broker = Arc::new(Engine::new(
        Arc::new(Config::default()),
        Some(Arc::clone(&store)),
        Default::default(),
    ));
    let (progress, committed) = watch::channel(Progress::default());
    let client = connect(
        &broker,
        Connect {
            version,
            expiry: 60,
            committed: Some(committed),
            ..Connect::v5("pub")
        },
    );
    (store, client, progress)
}

#[test]
fn an_acknowledgement_waits_for_its_ticket_and_a_failed_commit_refuses_it() {
    let (store, mut publisher, progress) = gated(ProtocolVersion::V5);
    // QoS 2 from a persistent session records its packet id: ticket 2
    // (ticket 1 recorded the session at attach).
    publisher
        .feed(publish("lab/t", QoS::ExactlyOnce, Some(1), b"m"))
        .unwrap();
    assert!(publisher.written().is_empty(), "PUBREC before its commit");
    assert!(publisher.protocol.has_pending_acks());
    publisher.feed(Packet::PingReq).unwrap();
    assert!(matches!(&publisher.written()[..], [Packet::PingResp]));

    progress.send_replace(Progress {
        committed: 2,
        attempted: 2,
    });
    publisher.protocol.on_commit().unwrap();
    let written = publisher.written();
    assert!(
        matches!(&written[..], [Packet::PubRec(rec)] if !rec.reason.is_error()),
        "{written:?}"
    );

    publisher
        .feed(publish("lab/t", QoS::ExactlyOnce, Some(2), b"m"))
        .unwrap();
    progress.send_replace(Progress {
        committed: 2,
        attempted: 3,
    });
    publisher.protocol.on_commit().unwrap();
    match &publisher.written()[..] {
        [Packet::PubRec(rec)] => assert_eq!(rec.reason, ReasonCode::UNSPECIFIED_ERROR),
        other => panic!("expected a refusing PUBREC, got {other:?}"),
    }
    assert!(!publisher.protocol.session().lock().has_incoming(2));
    store.close();
}

#[test]
fn a_failed_commit_ends_a_3_1_1_connection() {
    let (store, mut publisher, progress) = gated(ProtocolVersion::V3_1_1);
    publisher
        .feed(publish("lab/t", QoS::AtLeastOnce, Some(1), b"m"))
        .unwrap();
    // QoS 1 without a persistent subscriber has nothing to record.
    assert!(matches!(&publisher.written()[..], [Packet::PubAck(_)]));
    publisher
        .feed(publish("lab/t", QoS::ExactlyOnce, Some(2), b"m"))
        .unwrap();
    progress.send_replace(Progress {
        committed: 1,
        attempted: 2,
    });
    assert!(matches!(
        publisher.protocol.on_commit(),
        Err(Exit::StoreFailed("PUBREC"))
    ));
    store.close();
}

#[test]
fn a_take_over_closes_the_old_connection_and_the_new_one_gets_the_inflight() {
    let broker = broker();
    let persistent = |clean_start| Connect {
        clean_start,
        expiry: u32::MAX,
        ..Connect::v5("dev")
    };
    let mut old = connect(&broker, persistent(true));
    old.subscribe("lab/#", QoS::AtLeastOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));
    publisher
        .feed(publish("lab/t", QoS::AtLeastOnce, Some(1), b"m"))
        .unwrap();
    let id = publishes(&old.drain())[0].0.unwrap();

    let mut new = connect(&broker, persistent(false));
    assert!(new.session_present);
    let request = old._control.recv().now_or_never().flatten();
    assert_eq!(
        request,
        Some(Control::Disconnect(ReasonCode::SESSION_TAKEN_OVER))
    );
    let closing = old.protocol.begin_close(&Exit::requested(request));
    assert!(closing.linger);
    match &old.written()[..] {
        [Packet::Disconnect(d)] => assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(old.protocol.finish_close(closing, Instant::now()).is_none());
    let session = Arc::clone(new.protocol.session());
    assert!(session.lock().is_attached(new.protocol.generation()));

    new.protocol.resend_inflight(Instant::now());
    match &new.written()[..] {
        [Packet::Publish(p)] => {
            assert!(p.dup);
            assert_eq!(p.packet_id, Some(id));
        }
        other => panic!("expected the PUBLISH again, got {other:?}"),
    }
}

fn disconnect(expiry: Option<u32>) -> Packet {
    Packet::Disconnect(Disconnect {
        reason: ReasonCode::NORMAL_DISCONNECTION,
        properties: DisconnectProperties {
            session_expiry_interval: expiry,
            ..DisconnectProperties::default()
        },
    })
}

#[test]
fn disconnect_may_shorten_an_expiry_but_not_create_one() {
    let broker = broker_with(|config| config.mqtt.max_session_expiry_secs = 100);
    let mut ending = connect(&broker, Connect::v5("ending"));
    match ending.feed(disconnect(Some(30))) {
        Err(Exit::Violation { reason, .. }) => assert_eq!(reason, ReasonCode::PROTOCOL_ERROR),
        other => panic!("expected a violation, got {other:?}"),
    }
    let mut kept = connect(
        &broker,
        Connect {
            expiry: 60,
            ..Connect::v5("kept")
        },
    );
    assert!(matches!(
        kept.feed(disconnect(Some(500))),
        Err(Exit::ClientDisconnect {
            publish_will: false
        })
    ));
    assert_eq!(kept.protocol.session().lock().expiry_interval(), 100);
}

#[test]
fn bytes_are_decoded_whole_and_a_partial_packet_waits() {
    let broker = broker();
    let mut client = connect(&broker, Connect::v5("c"));
    let mut input = encoded(&Packet::PingReq, ProtocolVersion::V5);
    let second = encoded(&Packet::PingReq, ProtocolVersion::V5);
    input.extend_from_slice(&second[..1]);
    client
        .protocol
        .on_input(&mut input, Instant::now())
        .unwrap();
    assert_eq!(client.written().len(), 1);
    assert_eq!(input.len(), 1, "the partial packet stays");
    input.extend_from_slice(&second[1..]);
    client
        .protocol
        .on_input(&mut input, Instant::now())
        .unwrap();
    assert_eq!(client.written().len(), 1);
}

#[test]
fn a_payload_above_max_payload_size_is_acknowledged_and_dropped() {
    let broker = broker_with(|config| config.limits.max_payload_size = 3);
    let mut sub = connect(&broker, Connect::v5("sub"));
    sub.subscribe("lab/#", QoS::AtLeastOnce);
    let mut publisher = connect(&broker, Connect::v5("pub"));

    publisher
        .feed(publish("lab/t", QoS::AtLeastOnce, Some(7), b"four"))
        .unwrap();
    match &publisher.written()[..] {
        [Packet::PubAck(ack)] => assert_eq!(ack.reason, ReasonCode::PACKET_TOO_LARGE),
        other => panic!("expected PUBACK 0x95, got {other:?}"),
    }
    assert!(publishes(&sub.drain()).is_empty());
    // At the limit it goes through, and the sender was kept.
    publisher
        .feed(publish("lab/t", QoS::AtLeastOnce, Some(8), b"abc"))
        .unwrap();
    assert_eq!(publishes(&sub.drain()).len(), 1);
}
