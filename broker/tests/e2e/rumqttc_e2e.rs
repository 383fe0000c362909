//! End-to-end tests with a real client library (rumqttc, 3.1.1 and 5.0):
//! what an ESP32 fleet does every day, through the whole broker.
//!
//! Each client's event loop runs on its own task that forwards incoming
//! packets to a channel, so a test reads events with a timeout and never
//! hangs. Aborting that task drops the socket without DISCONNECT: a network
//! drop as the broker sees it.

use std::time::Duration;

use crate::harness;
use crate::harness::{Broker, RawClient, QUIET, WAIT};
use fleetmq_codec::{Packet, ProtocolVersion, PubResponse, QoS as CodecQoS};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A rumqttc 3.1.1 client whose event loop runs on a task.
struct V4 {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<rumqttc::Packet>,
    event_loop: JoinHandle<()>,
    session_present: bool,
}

impl V4 {
    async fn connect(broker: &Broker, id: &str, clean: bool) -> V4 {
        V4::connect_with(broker, id, clean, |_| {}).await
    }

    async fn connect_with(
        broker: &Broker,
        id: &str,
        clean: bool,
        configure: impl FnOnce(&mut MqttOptions),
    ) -> V4 {
        let mut options = MqttOptions::new(id, "127.0.0.1", broker.port());
        options.set_clean_session(clean);
        options.set_keep_alive(Duration::from_secs(30));
        configure(&mut options);
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let (sender, mut incoming) = mpsc::unbounded_channel();
        let event_loop = tokio::spawn(async move {
            // Stop at the first error: rumqttc would otherwise reconnect.
            while let Ok(event) = event_loop.poll().await {
                if let Event::Incoming(packet) = event {
                    if sender.send(packet).is_err() {
                        return;
                    }
                }
            }
        });
        let session_present = match timeout(WAIT, incoming.recv()).await {
            Ok(Some(rumqttc::Packet::ConnAck(connack))) => {
                assert_eq!(connack.code, rumqttc::ConnectReturnCode::Success);
                connack.session_present
            }
            other => panic!("{id}: expected CONNACK, got {other:?}"),
        };
        V4 {
            client,
            incoming,
            event_loop,
            session_present,
        }
    }

    /// The next incoming packet matching `wanted`, skipping others.
    async fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&rumqttc::Packet) -> bool,
    ) -> rumqttc::Packet {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(packet)) if wanted(&packet) => return packet,
                Ok(Some(_)) => {}
                Ok(None) => panic!("connection ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client.subscribe(filter, qos).await.unwrap();
        let suback = self
            .wait_for("SUBACK", |p| matches!(p, rumqttc::Packet::SubAck(_)))
            .await;
        let rumqttc::Packet::SubAck(suback) = suback else {
            unreachable!()
        };
        assert!(
            suback
                .return_codes
                .iter()
                .all(|code| !matches!(code, rumqttc::SubscribeReasonCode::Failure)),
            "subscription to {filter} refused"
        );
    }

    /// Publishes and waits for the broker's acknowledgement (QoS 1, 2).
    async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .unwrap();
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.wait_for("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)))
                    .await;
            }
            QoS::ExactlyOnce => {
                self.wait_for("PUBCOMP", |p| matches!(p, rumqttc::Packet::PubComp(_)))
                    .await;
            }
        }
    }

    async fn next_publish(&mut self) -> rumqttc::Publish {
        match self
            .wait_for("PUBLISH", |p| matches!(p, rumqttc::Packet::Publish(_)))
            .await
        {
            rumqttc::Packet::Publish(publish) => publish,
            _ => unreachable!(),
        }
    }

    /// Asserts no PUBLISH arrives within [`QUIET`].
    async fn expect_no_publish(&mut self) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Ok(Some(packet)) = tokio::time::timeout_at(deadline, self.incoming.recv()).await {
            if let rumqttc::Packet::Publish(publish) = packet {
                panic!("unexpected PUBLISH {publish:?}");
            }
        }
    }

    /// Clean DISCONNECT, then waits for the event loop to end.
    async fn disconnect(self) {
        self.client.disconnect().await.unwrap();
        let _ = timeout(WAIT, self.event_loop).await;
    }

    /// Drops the socket without DISCONNECT.
    async fn drop_network(self) {
        self.event_loop.abort();
        let _ = self.event_loop.await;
    }
}

async fn pubsub_roundtrip_v4(qos: QoS) {
    let broker = Broker::start();
    let mut sub = V4::connect(&broker, "sub", true).await;
    sub.subscribe("e2e/+/data", qos).await;
    let mut publisher = V4::connect(&broker, "pub", true).await;
    publisher
        .publish("e2e/dev1/data", qos, false, b"hello")
        .await;
    let message = sub.next_publish().await;
    assert_eq!(message.topic, "e2e/dev1/data");
    assert_eq!(&message.payload[..], b"hello");
    assert_eq!(message.qos, qos);
    sub.expect_no_publish().await;
}

#[tokio::test]
async fn v4_pubsub_qos0() {
    pubsub_roundtrip_v4(QoS::AtMostOnce).await;
}

#[tokio::test]
async fn v4_pubsub_qos1() {
    pubsub_roundtrip_v4(QoS::AtLeastOnce).await;
}

#[tokio::test]
async fn v4_pubsub_qos2() {
    pubsub_roundtrip_v4(QoS::ExactlyOnce).await;
}

#[tokio::test]
async fn v4_delivered_qos_is_minimum_of_publish_and_subscription() {
    let broker = Broker::start();
    let mut sub = V4::connect(&broker, "sub", true).await;
    sub.subscribe("min/t", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(&broker, "pub", true).await;
    publisher
        .publish("min/t", QoS::ExactlyOnce, false, b"x")
        .await;
    assert_eq!(sub.next_publish().await.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn v4_retained_message_for_late_subscriber() {
    let broker = Broker::start();
    let mut publisher = V4::connect(&broker, "pub", true).await;
    publisher
        .publish(
            "/this/test/esp32_a1b2c3",
            QoS::AtLeastOnce,
            true,
            b"CONNECTED!",
        )
        .await;
    let mut sub = V4::connect(&broker, "late", true).await;
    sub.subscribe("/this/test/#", QoS::AtLeastOnce).await;
    let message = sub.next_publish().await;
    assert!(message.retain, "retained message must carry RETAIN");
    assert_eq!(&message.payload[..], b"CONNECTED!");
}

#[tokio::test]
async fn v4_will_published_on_network_drop() {
    let broker = Broker::start();
    let mut watcher = V4::connect(&broker, "watcher", true).await;
    watcher.subscribe("status/#", QoS::AtLeastOnce).await;
    let device = V4::connect_with(&broker, "esp32_a1b2c3", true, |options| {
        options.set_last_will(LastWill::new(
            "status/esp32_a1b2c3",
            "offline",
            QoS::AtLeastOnce,
            false,
        ));
    })
    .await;
    device.drop_network().await;
    let will = watcher.next_publish().await;
    assert_eq!(will.topic, "status/esp32_a1b2c3");
    assert_eq!(&will.payload[..], b"offline");
}

#[tokio::test]
async fn v4_will_not_published_on_clean_disconnect() {
    let broker = Broker::start();
    let mut watcher = V4::connect(&broker, "watcher", true).await;
    watcher.subscribe("status/#", QoS::AtLeastOnce).await;
    let device = V4::connect_with(&broker, "polite", true, |options| {
        options.set_last_will(LastWill::new(
            "status/polite",
            "offline",
            QoS::AtLeastOnce,
            false,
        ));
    })
    .await;
    device.disconnect().await;
    watcher.expect_no_publish().await;
}

#[tokio::test]
async fn v4_persistent_session_queues_qos1_and_qos2_while_offline() {
    let broker = Broker::start();
    let mut sub = V4::connect(&broker, "sleeper", false).await;
    sub.subscribe("queue/#", QoS::ExactlyOnce).await;
    sub.disconnect().await;
    broker.assert_log("Client sleeper disconnected.", WAIT);

    let mut publisher = V4::connect(&broker, "pub", true).await;
    publisher
        .publish("queue/q0", QoS::AtMostOnce, false, b"zero")
        .await;
    publisher
        .publish("queue/q1", QoS::AtLeastOnce, false, b"one")
        .await;
    publisher
        .publish("queue/q2", QoS::ExactlyOnce, false, b"two")
        .await;

    let mut sub = V4::connect(&broker, "sleeper", false).await;
    assert!(sub.session_present, "session must be resumed");
    let mut received = Vec::new();
    while received.len() < 2 {
        let message = sub.next_publish().await;
        // A server MAY queue QoS 0 messages for an offline session too.
        if message.qos != QoS::AtMostOnce {
            received.push((message.topic.clone(), message.qos));
        }
    }
    assert_eq!(
        received,
        [
            ("queue/q1".to_string(), QoS::AtLeastOnce),
            ("queue/q2".to_string(), QoS::ExactlyOnce)
        ],
        "QoS 1 and 2 messages queued, in order"
    );
    sub.expect_no_publish().await;
}

#[tokio::test]
async fn v4_session_takeover() {
    let broker = Broker::start();
    let mut first = V4::connect(&broker, "same", false).await;
    first.subscribe("takeover/t", QoS::AtLeastOnce).await;
    let mut second = V4::connect(&broker, "same", false).await;
    assert!(
        second.session_present,
        "the new connection takes over the session"
    );
    // The old connection ends (its event loop stops at the error).
    let ended = timeout(WAIT, async {
        while first.incoming.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "old connection still open after takeover");
    broker.assert_log(
        "Client same already connected, closing old connection.",
        WAIT,
    );
    // The subscription made on the old connection now delivers to the new one.
    let mut publisher = V4::connect(&broker, "pub", true).await;
    publisher
        .publish("takeover/t", QoS::AtLeastOnce, false, b"x")
        .await;
    assert_eq!(&second.next_publish().await.payload[..], b"x");
}

#[tokio::test]
async fn v4_unsubscribe_stops_delivery() {
    let broker = Broker::start();
    let mut sub = V4::connect(&broker, "sub", true).await;
    sub.subscribe("unsub/t", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(&broker, "pub", true).await;
    publisher
        .publish("unsub/t", QoS::AtLeastOnce, false, b"before")
        .await;
    assert_eq!(&sub.next_publish().await.payload[..], b"before");
    sub.client.unsubscribe("unsub/t").await.unwrap();
    sub.wait_for("UNSUBACK", |p| matches!(p, rumqttc::Packet::UnsubAck(_)))
        .await;
    publisher
        .publish("unsub/t", QoS::AtLeastOnce, false, b"after")
        .await;
    sub.expect_no_publish().await;
}

/// Mid-QoS 2 to a subscriber: it got the PUBLISH and sent PUBREC, then the
/// network dropped. On reconnect the broker must go on with PUBREL (not a
/// second PUBLISH): the message is delivered exactly once.
#[tokio::test]
async fn qos2_redelivery_resends_pubrel_after_pubrec() {
    let broker = Broker::start();
    let addr = broker.addr();
    let (mut sub, _) = RawClient::connect_v311(addr, "q2sub", false);
    sub.subscribe(1, "q2/t", 2);
    let mut publisher = V4::connect(&broker, "pub", true).await;
    publisher
        .publish("q2/t", QoS::ExactlyOnce, false, b"once")
        .await;

    let packet_id = tokio::task::spawn_blocking(move || {
        let message = sub.expect_publish();
        assert_eq!(message.qos, CodecQoS::ExactlyOnce);
        let packet_id = message.packet_id.unwrap();
        sub.send(&harness::ack(0x50, packet_id)); // PUBREC
        std::thread::sleep(Duration::from_millis(50)); // let the broker read it
        sub.drop_connection();

        let (mut sub, connack) = RawClient::connect_v311(addr, "q2sub", false);
        assert!(connack.session_present);
        match sub.expect_packet("PUBREL") {
            Packet::PubRel(rel) => assert_eq!(rel.packet_id, packet_id, "PUBREL for the same id"),
            other => panic!("expected PUBREL after reconnect, got {other:?}"),
        }
        sub.send_packet(
            &Packet::PubComp(PubResponse::success(packet_id)),
            ProtocolVersion::V3_1_1,
        );
        assert_eq!(sub.expect_silence(QUIET), Ok(()), "message delivered twice");
        sub.ping();
        packet_id
    })
    .await
    .unwrap();
    assert_ne!(packet_id, 0);
}

/// The subscriber dropped before PUBREC: on reconnect the broker resends
/// the PUBLISH with DUP set and the same packet id.
#[tokio::test]
async fn qos2_redelivery_resends_publish_with_dup_before_pubrec() {
    let broker = Broker::start();
    let addr = broker.addr();
    let (mut sub, _) = RawClient::connect_v311(addr, "q2dup", false);
    sub.subscribe(1, "q2/t", 2);
    let mut publisher = V4::connect(&broker, "pub", true).await;
    publisher
        .publish("q2/t", QoS::ExactlyOnce, false, b"once")
        .await;

    tokio::task::spawn_blocking(move || {
        let first = sub.expect_publish();
        assert!(!first.dup);
        sub.drop_connection();

        let (mut sub, connack) = RawClient::connect_v311(addr, "q2dup", false);
        assert!(connack.session_present);
        let again = sub.expect_publish();
        assert!(again.dup, "redelivered PUBLISH must have DUP set");
        assert_eq!(again.packet_id, first.packet_id);
        assert_eq!(again.payload, first.payload);
        let packet_id = again.packet_id.unwrap();
        sub.send(&harness::ack(0x50, packet_id));
        match sub.expect_packet("PUBREL") {
            Packet::PubRel(rel) => assert_eq!(rel.packet_id, packet_id),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        sub.send(&harness::ack(0x70, packet_id));
        assert_eq!(sub.expect_silence(QUIET), Ok(()), "message delivered again");
        sub.ping();
    })
    .await
    .unwrap();
}

mod v5 {
    //! The same flows through rumqttc's 5.0 client.

    use super::*;
    use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet as V5Packet};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    struct V5 {
        client: AsyncClient,
        incoming: mpsc::UnboundedReceiver<V5Packet>,
        event_loop: JoinHandle<()>,
        session_present: bool,
    }

    impl V5 {
        async fn connect(
            broker: &Broker,
            id: &str,
            clean: bool,
            configure: impl FnOnce(&mut MqttOptions),
        ) -> V5 {
            let mut options = MqttOptions::new(id, "127.0.0.1", broker.port());
            options.set_clean_start(clean);
            options.set_keep_alive(Duration::from_secs(30));
            configure(&mut options);
            let (client, mut event_loop) = AsyncClient::new(options, 64);
            let (sender, mut incoming) = mpsc::unbounded_channel();
            let event_loop = tokio::spawn(async move {
                while let Ok(event) = event_loop.poll().await {
                    if let Event::Incoming(packet) = event {
                        if sender.send(packet).is_err() {
                            return;
                        }
                    }
                }
            });
            let session_present = match timeout(WAIT, incoming.recv()).await {
                Ok(Some(V5Packet::ConnAck(connack))) => {
                    assert_eq!(
                        connack.code,
                        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
                    );
                    connack.session_present
                }
                other => panic!("{id}: expected CONNACK, got {other:?}"),
            };
            V5 {
                client,
                incoming,
                event_loop,
                session_present,
            }
        }

        async fn wait_for(&mut self, what: &str, wanted: impl Fn(&V5Packet) -> bool) -> V5Packet {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                    Ok(Some(packet)) if wanted(&packet) => return packet,
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("connection ended while waiting for {what}"),
                    Err(_) => panic!("no {what} within {WAIT:?}"),
                }
            }
        }

        async fn subscribe(&mut self, filter: &str, qos: QoS) {
            self.client.subscribe(filter, qos).await.unwrap();
            let V5Packet::SubAck(suback) = self
                .wait_for("SUBACK", |p| matches!(p, V5Packet::SubAck(_)))
                .await
            else {
                unreachable!()
            };
            assert!(
                suback.return_codes.iter().all(|code| matches!(
                    code,
                    rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                )),
                "subscription to {filter} refused: {:?}",
                suback.return_codes
            );
        }

        async fn publish(&mut self, topic: &str, qos: QoS, payload: &[u8]) {
            self.client
                .publish(topic, qos, false, payload.to_vec())
                .await
                .unwrap();
            match qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => {
                    self.wait_for("PUBACK", |p| matches!(p, V5Packet::PubAck(_)))
                        .await;
                }
                QoS::ExactlyOnce => {
                    self.wait_for("PUBCOMP", |p| matches!(p, V5Packet::PubComp(_)))
                        .await;
                }
            }
        }

        async fn next_publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
            match self
                .wait_for("PUBLISH", |p| matches!(p, V5Packet::Publish(_)))
                .await
            {
                V5Packet::Publish(publish) => publish,
                _ => unreachable!(),
            }
        }

        /// All PUBLISH payloads arriving until [`QUIET`] passes without one.
        async fn drain_publishes(&mut self) -> Vec<Vec<u8>> {
            let mut payloads = Vec::new();
            while let Ok(Some(packet)) = timeout(QUIET, self.incoming.recv()).await {
                if let V5Packet::Publish(publish) = packet {
                    payloads.push(publish.payload.to_vec());
                }
            }
            payloads
        }

        async fn disconnect(self) {
            self.client.disconnect().await.unwrap();
            let _ = timeout(WAIT, self.event_loop).await;
        }

        async fn drop_network(self) {
            self.event_loop.abort();
            let _ = self.event_loop.await;
        }
    }

    #[tokio::test]
    async fn v5_pubsub_qos0_1_2() {
        let broker = Broker::start();
        let mut sub = V5::connect(&broker, "sub5", true, |_| {}).await;
        let mut publisher = V5::connect(&broker, "pub5", true, |_| {}).await;
        for (level, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .enumerate()
        {
            let topic = format!("e2e5/q{level}");
            sub.subscribe(&topic, qos).await;
            publisher
                .publish(&topic, qos, format!("m{level}").as_bytes())
                .await;
            let message = sub.next_publish().await;
            assert_eq!(&message.topic[..], topic.as_bytes());
            assert_eq!(message.qos, qos);
            assert_eq!(&message.payload[..], format!("m{level}").as_bytes());
        }
    }

    #[tokio::test]
    async fn v5_will_published_on_network_drop() {
        let broker = Broker::start();
        let mut watcher = V5::connect(&broker, "watcher5", true, |_| {}).await;
        watcher.subscribe("status5/#", QoS::AtLeastOnce).await;
        let device = V5::connect(&broker, "dev5", true, |options| {
            options.set_last_will(LastWill::new(
                "status5/dev5",
                "offline",
                QoS::AtLeastOnce,
                false,
                None,
            ));
        })
        .await;
        device.drop_network().await;
        let will = watcher.next_publish().await;
        assert_eq!(&will.topic[..], b"status5/dev5");
        assert_eq!(&will.payload[..], b"offline");
    }

    #[tokio::test]
    async fn v5_persistent_session_queues_while_offline() {
        let broker = Broker::start();
        let with_expiry = |options: &mut MqttOptions| {
            options.set_session_expiry_interval(Some(60));
        };
        let mut sub = V5::connect(&broker, "sleeper5", false, with_expiry).await;
        sub.subscribe("queue5/#", QoS::ExactlyOnce).await;
        sub.disconnect().await;
        broker.assert_log("Client sleeper5 disconnected.", WAIT);

        let mut publisher = V5::connect(&broker, "pub5", true, |_| {}).await;
        publisher
            .publish("queue5/q1", QoS::AtLeastOnce, b"one")
            .await;
        publisher
            .publish("queue5/q2", QoS::ExactlyOnce, b"two")
            .await;

        let mut sub = V5::connect(&broker, "sleeper5", false, with_expiry).await;
        assert!(sub.session_present, "session with expiry 60 must survive");
        assert_eq!(
            sub.drain_publishes().await,
            [b"one".to_vec(), b"two".to_vec()]
        );
    }

    #[tokio::test]
    async fn v5_session_expiry_0_discards_session() {
        let broker = Broker::start();
        let mut sub = V5::connect(&broker, "brief5", false, |_| {}).await;
        sub.subscribe("brief5/#", QoS::AtLeastOnce).await;
        sub.disconnect().await;
        let sub = V5::connect(&broker, "brief5", false, |_| {}).await;
        assert!(
            !sub.session_present,
            "session expiry 0 ends the session at disconnect"
        );
    }

    #[tokio::test]
    async fn v5_shared_subscription_spreads_across_members() {
        let broker = Broker::start();
        let mut members = Vec::new();
        for i in 0..3 {
            let mut member = V5::connect(&broker, &format!("worker{i}"), true, |_| {}).await;
            member
                .subscribe("$share/workers/jobs/+", QoS::AtLeastOnce)
                .await;
            members.push(member);
        }
        let mut publisher = V5::connect(&broker, "boss", true, |_| {}).await;
        for job in 0..30u8 {
            publisher
                .publish("jobs/new", QoS::AtLeastOnce, &[job])
                .await;
        }
        let mut all = Vec::new();
        let mut counts = Vec::new();
        for member in &mut members {
            let payloads = member.drain_publishes().await;
            counts.push(payloads.len());
            all.extend(payloads.into_iter().map(|p| p[0]));
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (0..30).collect::<Vec<u8>>(),
            "each job to exactly one member"
        );
        assert!(counts.iter().all(|&c| c > 0), "jobs not spread: {counts:?}");
    }

    #[tokio::test]
    async fn v5_no_local_and_subscribe_options() {
        let broker = Broker::start();
        let mut client = V5::connect(&broker, "echo5", true, |_| {}).await;
        let mut filter = Filter::new("echo5/t", QoS::AtLeastOnce);
        filter.nolocal = true;
        client.client.subscribe_many(vec![filter]).await.unwrap();
        client
            .wait_for("SUBACK", |p| matches!(p, V5Packet::SubAck(_)))
            .await;
        client.publish("echo5/t", QoS::AtLeastOnce, b"self").await;
        assert_eq!(
            client.drain_publishes().await,
            Vec::<Vec<u8>>::new(),
            "own message echoed"
        );
    }
}
