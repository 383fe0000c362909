//! Acknowledgements on a cluster node (decision 0158): a QoS 1/2
//! acknowledgement waits for JetStream's (the link's settle-cell), a failed
//! one is a refusal, and a node whose link is not ready refuses at once
//! without routing. The NATS side is played by the link's backend end.

use super::*;
use crate::cluster::{ClusterLink, LinkBackend};
use fleetmq_codec::ReasonCode;

fn cluster_node(ready: bool) -> (Arc<Engine>, LinkBackend) {
    let broker = broker();
    let (link, backend) = ClusterLink::new(16);
    assert!(broker.set_cluster(link));
    backend.settler.set_ready(ready);
    (broker, backend)
}

#[test]
fn a_puback_waits_for_jetstream_and_a_failed_store_refuses_it() {
    let (broker, mut backend) = cluster_node(true);
    let mut publisher = connect(&broker, Connect::v5("pub"));
    publisher
        .feed(publish("lab/t", QoS::AtLeastOnce, Some(1), b"one"))
        .unwrap();
    assert!(publisher.written().is_empty(), "PUBACK before JetStream's");
    let first = backend.receiver.try_recv().unwrap();
    assert_eq!(&*first.message.topic, "lab/t");
    publisher
        .feed(publish("lab/t", QoS::ExactlyOnce, Some(2), b"two"))
        .unwrap();
    let second = backend.receiver.try_recv().unwrap();
    // Settled out of order: the acknowledgements still leave in order.
    backend.settler.settle(second.ack.as_ref().unwrap(), false);
    publisher.protocol.on_commit().unwrap();
    assert!(
        publisher.written().is_empty(),
        "second ack overtook the first"
    );
    backend.settler.settle(first.ack.as_ref().unwrap(), true);
    publisher.protocol.on_commit().unwrap();
    match &publisher.written()[..] {
        // Sent to the cluster: success, not "no matching subscribers".
        [Packet::PubAck(ack), Packet::PubRec(rec)] => {
            assert_eq!((ack.packet_id, ack.reason), (1, ReasonCode::SUCCESS));
            assert_eq!(
                (rec.packet_id, rec.reason),
                (2, ReasonCode::UNSPECIFIED_ERROR)
            );
        }
        other => panic!("expected PUBACK then a refusing PUBREC, got {other:?}"),
    }
    assert!(!publisher.protocol.session().lock().has_incoming(2));
}

#[test]
fn a_node_without_nats_refuses_qos_1_and_routes_nothing_but_qos_0() {
    let (broker, mut backend) = cluster_node(false);
    let mut subscriber = connect(&broker, Connect::v5("sub"));
    subscriber
        .feed(Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                "lab/#".into(),
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscriptionOptions::default()
                },
            )],
            subscription_identifier: None,
            user_properties: Vec::new(),
        }))
        .unwrap();
    subscriber.written();
    let mut publisher = connect(&broker, Connect::v5("pub"));
    publisher
        .feed(publish("lab/t", QoS::AtLeastOnce, Some(1), b"kept?"))
        .unwrap();
    match &publisher.written()[..] {
        [Packet::PubAck(ack)] => assert_eq!(ack.reason, ReasonCode::UNSPECIFIED_ERROR),
        other => panic!("expected a refusing PUBACK, got {other:?}"),
    }
    assert!(
        backend.receiver.try_recv().is_err(),
        "a refused message left"
    );
    publisher
        .feed(publish("lab/t", QoS::AtMostOnce, None, b"local"))
        .unwrap();
    subscriber.feed(Packet::PingReq).unwrap();
    let delivered = publishes(&subscriber.written());
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(&delivered[0].1[..], b"local");

    let mut old = connect(
        &broker,
        Connect {
            version: ProtocolVersion::V3_1_1,
            ..Connect::v5("old")
        },
    );
    assert!(matches!(
        old.feed(publish("lab/t", QoS::AtLeastOnce, Some(3), b"m")),
        Err(Exit::ClusterUnavailable("PUBLISH"))
    ));
}
