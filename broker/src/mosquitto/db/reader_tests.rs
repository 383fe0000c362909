//! The reader on a file Mosquitto 2.0.11 wrote (see
//! broker/tests/fixtures/README.md) and on every damaged form of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

pub(super) const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/mosquitto-2.0.11.db");

#[test]
fn a_file_written_by_mosquitto_2_0_11_reads_whole() {
    let db = read(Bytes::from_static(FIXTURE)).unwrap();
    assert_eq!(db.version, 6);
    assert_eq!(db.last_db_id, 0x39);
    assert_eq!(db.base_msgs.len(), 5);
    assert_eq!(db.retained.len(), 2);
    assert_eq!(db.client_msgs.len(), 3);
    let clients: Vec<&[u8]> = db.clients.iter().map(|c| &c.client_id[..]).collect();
    assert_eq!(clients, [&b"sess-1"[..], b"sess-2"]);
    let sess1 = &db.clients[0];
    assert_eq!(sess1.session_expiry_interval, u32::MAX);
    assert_eq!(sess1.session_expiry_time, 0);
    assert_eq!(&sess1.username[..], b"alice");
    assert_eq!(sess1.listener_port, 18830);
    // sess-2 connected without a username; 2.0.11 stored 1280 stale bytes.
    let sess2 = &db.clients[1];
    assert_eq!(sess2.session_expiry_interval, 3600);
    assert_eq!(sess2.username.len(), 1280);
    assert!(sess2.session_expiry_time > 1_796_329_000);
    let subs: Vec<(&[u8], &[u8], u8)> = db
        .subscriptions
        .iter()
        .map(|s| (&s.client_id[..], &s.topic[..], s.qos))
        .collect();
    assert_eq!(
        subs,
        [
            (&b"sess-1"[..], &b"t/#"[..], 1),
            (b"sess-1", b"x/+/y", 1),
            (b"sess-2", b"q2/#", 2)
        ]
    );
    let status_b = db
        .base_msgs
        .iter()
        .find(|m| &m.topic[..] == b"status/b")
        .unwrap();
    assert!(status_b.retain);
    assert_eq!(&status_b.payload[..], b"online-b");
    assert!(status_b.expiry_time > 0);
    assert_eq!(&status_b.properties[..2], &[13, 0x03]);
    let queued: Vec<(u8, u8, u8)> = db
        .client_msgs
        .iter()
        .map(|m| (m.qos, m.state, m.direction))
        .collect();
    assert_eq!(queued, [(1, 11, 1), (1, 11, 1), (2, 11, 1)]);
}

/// Where each chunk of `bytes` starts, and the end of the last one.
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut at = 23;
    let mut out = vec![at];
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        at += 8 + len as usize;
        out.push(at);
    }
    out
}

#[test]
fn every_truncation_inside_a_chunk_is_an_error_naming_an_offset_inside_the_file() {
    let boundaries = boundaries(FIXTURE);
    assert_eq!(boundaries.last(), Some(&FIXTURE.len()));
    for cut in 0..FIXTURE.len() {
        let result = read(Bytes::copy_from_slice(&FIXTURE[..cut]));
        // The format has no record count and no checksum (the CRC field is
        // always 0): a file cut between chunks is a smaller file. After the
        // CFG chunk (the first), that cannot be told; see decision 0130.
        if boundaries[1..].contains(&cut) {
            assert!(result.is_ok(), "cut at chunk boundary {cut}");
            continue;
        }
        let error = result.expect_err(&format!("cut at {cut} read"));
        assert!(error.offset <= cut, "cut {cut}: {error}");
    }
}

#[test]
fn a_cut_inside_a_chunk_names_that_chunk() {
    let db = read(Bytes::from_static(FIXTURE)).unwrap();
    let at = db.clients[0].offset;
    let error = read(Bytes::copy_from_slice(&FIXTURE[..at + 20])).unwrap_err();
    assert_eq!(error.offset, at);
    assert_eq!(error.chunk, "CLIENT chunk");
    assert!(
        error.to_string().contains(&format!("offset {at}")),
        "{error}"
    );
}

#[test]
fn any_changed_byte_reads_or_fails_without_panicking() {
    for at in 0..FIXTURE.len() {
        for value in [0x00, 0x7F, 0xFF] {
            let mut bytes = FIXTURE.to_vec();
            bytes[at] = value;
            let _ = read(Bytes::from(bytes));
        }
    }
}

#[test]
fn wrong_magic_version_and_unknown_chunks_are_refused() {
    let mut bytes = FIXTURE.to_vec();
    bytes[3] = b'M';
    assert!(read(Bytes::from(bytes))
        .unwrap_err()
        .detail
        .contains("magic"));
    let mut bytes = FIXTURE.to_vec();
    bytes[22] = 7;
    let error = read(Bytes::from(bytes)).unwrap_err();
    assert!(error.detail.contains("format version 7"), "{error}");
    let mut bytes = FIXTURE.to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 0]);
    let error = read(Bytes::from(bytes)).unwrap_err();
    assert_eq!(error.offset, FIXTURE.len());
    assert!(error.detail.contains("chunk type 9"), "{error}");
}

#[test]
fn a_length_past_the_end_of_the_file_allocates_nothing() {
    let mut bytes = FIXTURE[..23].to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 2, 0xFF, 0xFF, 0xFF, 0xFF]);
    let error = read(Bytes::from(bytes)).unwrap_err();
    assert_eq!((error.offset, error.chunk), (23, "MSG_STORE chunk"));
}
