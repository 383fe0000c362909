//! What the file Mosquitto 2.0.11 wrote becomes (see
//! broker/tests/fixtures/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::mosquitto::db::reader::read;

const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/mosquitto-2.0.11.db");
/// Shortly after the fixture was written.
const WRITTEN: i64 = 1_796_329_170;

fn fixture_plan(now_secs: i64) -> Plan {
    plan(&read(Bytes::from_static(FIXTURE)).unwrap(), now_secs).unwrap()
}

#[test]
fn retained_messages_keep_payload_properties_and_expiry() {
    let plan = fixture_plan(WRITTEN);
    let topics: Vec<&str> = plan.retained.iter().map(|m| &*m.topic).collect();
    assert_eq!(topics, ["status/a", "status/b"]);
    let a = &plan.retained[0];
    assert_eq!(
        (a.qos, a.retain, &a.payload[..]),
        (QoS::AtLeastOnce, true, &b"online-a"[..])
    );
    assert_eq!(a.expires_at, None);
    let b = &plan.retained[1];
    assert_eq!(b.properties.content_type.as_deref(), Some("text/plain"));
    let left = b.remaining_expiry(Instant::now()).unwrap();
    assert!((7150..=7200).contains(&left), "{left}");
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
}

#[test]
fn sessions_keep_expiry_subscriptions_and_queued_messages_without_owner() {
    let plan = fixture_plan(WRITTEN);
    let s1 = &plan.sessions[0];
    assert_eq!(&*s1.client_id, "sess-1");
    assert_eq!(s1.meta.owner, None);
    assert_eq!(s1.meta.expiry_interval, u32::MAX);
    let subs: Vec<(&str, u8)> = s1
        .meta
        .subscriptions
        .iter()
        .map(|(f, s)| (f.as_str(), s.qos))
        .collect();
    assert_eq!(subs, [("t/#", 1), ("x/+/y", 1)]);
    let items: Vec<(&str, QoS, ItemState)> = s1
        .items
        .iter()
        .map(|(q, s)| (&*q.message.topic, q.qos, *s))
        .collect();
    assert_eq!(
        items,
        [
            ("t/1", QoS::AtLeastOnce, ItemState::Queued),
            ("t/2", QoS::AtLeastOnce, ItemState::Queued)
        ]
    );
    let s2 = &plan.sessions[1];
    assert_eq!((&*s2.client_id, s2.meta.expiry_interval), ("sess-2", 3600));
    assert_eq!(s2.meta.owner, None);
    // Disconnected an hour before its expiry time.
    let since = s2.meta.disconnected_at_ms.unwrap() / 1000;
    assert!(
        (WRITTEN as u64 - 60..=WRITTEN as u64).contains(&since),
        "{since}"
    );
    assert_eq!(s2.items.len(), 1);
    assert_eq!(s2.items[0].0.qos, QoS::ExactlyOnce);
    assert_eq!(&s2.items[0].0.message.payload[..], b"queued-q2");
}

#[test]
fn expired_messages_and_sessions_are_skipped_with_a_reason() {
    let plan = fixture_plan(WRITTEN + 7300);
    assert_eq!(plan.retained.len(), 1);
    assert_eq!(plan.sessions.len(), 1);
    let skipped = plan.skipped.join("\n");
    assert!(skipped.contains("expired"), "{skipped}");
    assert!(skipped.contains("session sess-2"), "{skipped}");
    assert!(skipped.contains("subscription q2/# of sess-2"), "{skipped}");
}

#[test]
fn subscription_identifiers_decode_strictly() {
    assert_eq!(subscription_id(&[]), Ok(None));
    assert_eq!(subscription_id(&[2, 0x0B, 7]), Ok(Some(7)));
    assert_eq!(subscription_id(&[3, 0x0B, 0x80, 1]), Ok(Some(128)));
    assert!(subscription_id(&[2, 0x0B]).is_err());
    assert!(subscription_id(&[2, 0x0B, 0]).is_err());
    assert!(subscription_id(&[2, 0x01, 1]).is_err());
    assert!(subscription_id(&[0x80]).is_err());
}

#[test]
fn a_topic_that_is_no_topic_name_stops_the_plan() {
    let mut db = read(Bytes::from_static(FIXTURE)).unwrap();
    db.base_msgs[0].topic = Bytes::from_static(b"q2/+");
    let error = plan(&db, WRITTEN).unwrap_err();
    assert_eq!(error.chunk, "MSG_STORE chunk");
    assert_eq!(error.offset, db.base_msgs[0].offset);
    db.base_msgs[0].topic = Bytes::from_static(b"\xFF");
    assert!(plan(&db, WRITTEN).unwrap_err().detail.contains("UTF-8"));
}
