//! Properties of the outgoing window over random acknowledgement orders.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

proptest! {
    /// Whatever order the subscriber acknowledges in, it never has more
    /// than its Receive Maximum in flight, and gets every message once, in
    /// publishing order.
    #[test]
    fn every_message_arrives_once_in_order_within_the_window(
        count in 1usize..25,
        window in 1u16..5,
        exactly_once in any::<bool>(),
        picks in proptest::collection::vec(any::<Index>(), 0..60),
    ) {
        let qos = if exactly_once { QoS::ExactlyOnce } else { QoS::AtLeastOnce };
        let broker = broker();
        let mut sub = connect(&broker, Connect { receive_maximum: Some(window), ..Connect::v5("sub") });
        sub.subscribe("lab/#", qos);
        let mut publisher = connect(&broker, Connect::v5("pub"));
        for n in 0..count {
            let id = u16::try_from(n + 1).unwrap();
            publisher.feed(Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: Arc::from("lab/t"),
                packet_id: Some(id),
                payload: Bytes::from(n.to_be_bytes().to_vec()),
                properties: Default::default(),
            })).unwrap();
        }
        let mut received = Vec::new();
        let mut outstanding: Vec<u16> = Vec::new();
        let mut picks = picks.into_iter();
        for _ in 0..(4 * count + 10) {
            for (id, payload) in publishes(&sub.drain()) {
                outstanding.push(id.unwrap());
                received.push(payload);
            }
            prop_assert!(outstanding.len() <= usize::from(window));
            if outstanding.is_empty() {
                break;
            }
            let at = picks.next().map_or(0, |pick| pick.index(outstanding.len()));
            let id = outstanding.remove(at);
            if exactly_once {
                sub.feed(Packet::PubRec(ack(id))).unwrap();
                sub.feed(Packet::PubComp(ack(id))).unwrap();
            } else {
                sub.feed(Packet::PubAck(ack(id))).unwrap();
            }
            // Answers (PUBREL) and new PUBLISHes come out together.
            for packet in sub.written() {
                if let Packet::Publish(p) = packet {
                    outstanding.push(p.packet_id.unwrap());
                    received.push(p.payload);
                }
            }
            prop_assert!(outstanding.len() <= usize::from(window));
        }
        let expected: Vec<Bytes> = (0..count).map(|n| Bytes::from(n.to_be_bytes().to_vec())).collect();
        prop_assert_eq!(received, expected);
    }
}
