//! The will at the close, handed to the engine's will scheduler, and the
//! session's expiry: timers run on paused time.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use fleetmq_codec::ReasonCode;

fn will(delay: Option<u32>) -> LastWill {
    LastWill {
        topic: "wills/dev".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        delay_interval: delay,
        properties: Default::default(),
    }
}

fn device(expiry: u32, delay: Option<u32>, clean_start: bool) -> Connect {
    Connect {
        clean_start,
        expiry,
        will: Some(will(delay)),
        ..Connect::v5("dev")
    }
}

/// Ends `client`'s connection for `exit` the way the IO loop does.
fn close(broker: &Arc<Engine>, client: &mut Client, exit: Exit) {
    let closing = client.protocol.begin_close(&exit);
    if let Some(will) = client.protocol.finish_close(closing, Instant::now()) {
        broker.schedule_will(will);
    }
}

fn watcher(broker: &Arc<Engine>) -> Client {
    let mut watcher = connect(broker, Connect::v5("watcher"));
    watcher.subscribe("wills/#", QoS::AtLeastOnce);
    watcher
}

#[test]
fn a_normal_disconnect_drops_the_will_and_reason_4_keeps_it() {
    let broker = broker();
    for (reason, kept) in [
        (ReasonCode::NORMAL_DISCONNECTION, false),
        (ReasonCode::DISCONNECT_WITH_WILL, true),
    ] {
        let mut dev = connect(&broker, device(0, None, true));
        let exit = dev
            .feed(Packet::Disconnect(fleetmq_codec::Disconnect {
                reason,
                ..Default::default()
            }))
            .unwrap_err();
        let closing = dev.protocol.begin_close(&exit);
        assert!(
            dev.written().is_empty(),
            "no DISCONNECT back to a client that sent one"
        );
        assert_eq!(
            dev.protocol.finish_close(closing, Instant::now()).is_some(),
            kept
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_will_waits_for_its_delay_capped_by_the_session_expiry() {
    let broker = broker();
    let mut watcher = watcher(&broker);
    let mut dev = connect(&broker, device(10, Some(30), true));
    close(&broker, &mut dev, Exit::Closed);
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(publishes(&watcher.drain()).is_empty(), "published early");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = publishes(&watcher.drain());
    assert_eq!(got.len(), 1, "the session expiry caps the delay");
    assert_eq!(&got[0].1[..], b"gone");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_session_keeps_its_delayed_will_unsent() {
    let broker = broker();
    let mut watcher = watcher(&broker);
    let mut dev = connect(&broker, device(60, Some(5), true));
    close(&broker, &mut dev, Exit::Closed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = connect(&broker, device(60, Some(5), false));
    assert!(back.session_present);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(publishes(&watcher.drain()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_session_that_ended_clean_does_not_keep_the_will_back() {
    let broker = broker();
    let mut watcher = watcher(&broker);
    let mut dev = connect(&broker, device(60, Some(5), true));
    close(&broker, &mut dev, Exit::Closed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A clean start discards the session the will belongs to.
    let _fresh = connect(&broker, Connect::v5("dev"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(publishes(&watcher.drain()).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_session_expires_offline_unless_its_client_comes_back() {
    let broker = broker();
    let mut dev = connect(&broker, device(5, None, true));
    close(&broker, &mut dev, Exit::Closed);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(broker.session("dev").is_some());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(broker.session("dev").is_none(), "expired");

    let mut dev = connect(&broker, device(5, None, true));
    close(&broker, &mut dev, Exit::Closed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let back = connect(&broker, device(5, None, false));
    assert!(back.session_present);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(broker.session("dev").is_some(), "attached: does not expire");
}
