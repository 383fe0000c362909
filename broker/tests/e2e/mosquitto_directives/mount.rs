//! `mount_point`: a listener whose clients live under a topic prefix,
//! beside a listener without one, with an ACL file that names the mounted
//! topics (Mosquitto checks ACLs after mounting). Runs against Mosquitto
//! 2.0.11 too.

use std::net::SocketAddr;

use super::ConfBroker;
use crate::harness::service::free_port;
use crate::harness::{ConnectBuilder, RawClient, ReasonCode, QUIET};

/// The topic a mounted client receives for `topic` (under the mount
/// point). Mosquitto's manual says the prefix is removed; Debian's 2.0.11
/// leaves it on (decision 0128).
fn delivered(topic: &str) -> String {
    if crate::harness::is_mosquitto() {
        format!("lab/{topic}")
    } else {
        topic.to_string()
    }
}

fn start() -> (ConfBroker, SocketAddr) {
    let plain = free_port();
    let broker = ConfBroker::start(|port, dir| {
        let acl = dir.join("acl");
        std::fs::write(&acl, "topic readwrite lab/#\n").unwrap();
        format!(
            "allow_anonymous true\nacl_file {}\n\
             listener {port} 127.0.0.1\nmount_point lab/\n\
             listener {plain} 127.0.0.1\n",
            acl.display()
        )
    });
    let plain = broker.other(plain);
    (broker, plain)
}

#[test]
fn mounted_clients_publish_and_receive_under_the_prefix() {
    let (broker, plain) = start();
    let mounted = broker.addr();
    let (mut watcher, _) = RawClient::connect_v5(plain, "mount-watcher", true);
    assert_eq!(watcher.subscribe(1, "lab/#", 0), vec![ReasonCode::SUCCESS]);
    let (mut device, _) = RawClient::connect_v5(mounted, "mount-device", true);
    // Subscribed to "status", which is lab/status in the shared tree.
    assert_eq!(
        device.subscribe(1, "status", 1),
        vec![ReasonCode::GRANTED_QOS_1]
    );

    // The mounted client's publish lands under lab/ (and the ACL, which
    // names lab/#, allows it: ACLs see the mounted topic).
    assert_eq!(
        device.publish("up", b"hello", 1, false),
        ReasonCode::SUCCESS
    );
    let seen = watcher.expect_app_publish();
    assert_eq!((&*seen.topic, &seen.payload[..]), ("lab/up", &b"hello"[..]));

    // A publish on lab/status from outside reaches it without the prefix.
    let (mut outside, _) = RawClient::connect_v5(plain, "mount-outside", true);
    assert_eq!(
        outside.publish("lab/status", b"on", 1, false),
        ReasonCode::SUCCESS
    );
    let got = device.expect_app_publish();
    assert_eq!(
        (&*got.topic, &got.payload[..]),
        (&*delivered("status"), &b"on"[..])
    );
    // Outside the ACL (not under lab/): refused for the plain client, and
    // never seen by the mounted one.
    outside.publish("status", b"off", 0, false);
    assert!(device.expect_silence(QUIET).is_ok());
}

#[test]
fn retained_messages_and_wills_are_mounted() {
    let (broker, plain) = start();
    let mounted = broker.addr();
    let (mut device, _) = RawClient::connect_v5(mounted, "mount-retainer", true);
    let reason = device.publish("config", b"v1", 1, true);
    assert!(reason.0 < 0x80, "{reason:?}");
    let (mut reader, _) = RawClient::connect_v5(plain, "mount-reader", true);
    reader.subscribe(1, "lab/#", 0);
    let retained = reader.expect_app_publish();
    assert_eq!((&*retained.topic, retained.retain), ("lab/config", true));
    // A mounted subscriber sees it without the prefix.
    let (mut again, _) = RawClient::connect_v5(mounted, "mount-again", true);
    again.subscribe(1, "#", 0);
    let seen = again.expect_app_publish();
    assert_eq!(&*seen.topic, delivered("config"));

    let (dying, _) = RawClient::connect_with(
        mounted,
        ConnectBuilder::v5("mount-dying").will("gone", b"bye", 0, false),
    );
    dying.drop_connection();
    let will = reader.expect_app_publish();
    assert_eq!((&*will.topic, &will.payload[..]), ("lab/gone", &b"bye"[..]));
}
