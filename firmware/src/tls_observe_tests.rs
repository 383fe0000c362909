#![allow(clippy::unwrap_used)]

use alloc::vec::Vec;

use super::*;

fn record(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut hs = alloc::vec![msg_type, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(body);
    let mut rec = alloc::vec![22, 3, 3, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

fn hello(session_id: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut body = alloc::vec![3, 3];
    body.extend_from_slice(&[0xAB; 32]);
    body.push(session_id.len() as u8);
    body.extend_from_slice(session_id);
    body.extend_from_slice(tail);
    body
}

fn server_hello(session_id: &[u8], suite: u16, extensions: &[u8]) -> Vec<u8> {
    let mut tail = suite.to_be_bytes().to_vec();
    tail.push(0);
    tail.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    tail.extend_from_slice(extensions);
    record(2, &hello(session_id, &tail))
}

fn observe(client: &[u8], server: &[u8], chunk: usize) -> Option<HandshakeSummary> {
    let mut o = HandshakeObserver::new();
    for part in client.chunks(chunk) {
        o.client_bytes(part);
    }
    for part in server.chunks(chunk) {
        o.server_bytes(part);
    }
    o.summary()
}

#[test]
fn full_tls12_handshake() {
    let client = record(1, &hello(&[], &[0, 2, 0xC0, 0x2F]));
    let server = server_hello(&[7; 32], 0xC02F, &[]);
    let s = observe(&client, &server, 3).unwrap();
    assert_eq!((s.version, s.suite, s.resumed), ("TLSv1.2", 0xC02F, false));
    assert_eq!(
        alloc::format!("{}", s.suite_name()),
        "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"
    );
}

#[test]
fn tls12_resumption_echoes_the_offered_session_id() {
    let client = record(1, &hello(&[9; 32], &[0, 2, 0xC0, 0x2F]));
    let resumed = observe(&client, &server_hello(&[9; 32], 0xC02F, &[]), 7).unwrap();
    assert!(resumed.resumed);
    let refused = observe(&client, &server_hello(&[8; 32], 0xC02F, &[]), 7).unwrap();
    assert!(!refused.resumed);
}

#[test]
fn tls13_uses_supported_versions_and_psk() {
    let client = record(1, &hello(&[1; 32], &[]));
    let versions = [0, 43, 0, 2, 3, 4];
    let full = observe(&client, &server_hello(&[1; 32], 0x1301, &versions), 64).unwrap();
    assert_eq!((full.version, full.resumed), ("TLSv1.3", false));
    let mut psk = versions.to_vec();
    psk.extend_from_slice(&[0, 41, 0, 2, 0, 0]);
    let resumed = observe(&client, &server_hello(&[1; 32], 0x1301, &psk), 64).unwrap();
    assert!(resumed.resumed);
    assert_eq!(
        alloc::format!("{}", SuiteName(0x1301)),
        "TLS1-3-AES-128-GCM-SHA256"
    );
    assert_eq!(alloc::format!("{}", SuiteName(0x1234)), "0x1234");
}

#[test]
fn garbage_is_unknown_not_a_panic() {
    assert!(observe(b"", b"", 1).is_none());
    assert!(observe(&[22, 3, 3, 0xFF, 0xFF, 1], &[21, 3, 3, 0, 2, 2, 40], 1).is_none());
    let client = record(1, &hello(&[], &[]));
    let mut truncated = server_hello(&[], 0xC02F, &[0, 43, 0, 9]);
    truncated.truncate(truncated.len() - 1);
    let _ = observe(&client, &truncated, 5);
    let mut seed = 1u32;
    for _ in 0..2000 {
        let bytes: Vec<u8> = (0..80)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        let _ = observe(&bytes, &bytes, 9);
    }
}

#[test]
fn a_client_hello_with_a_long_ticket_still_resumes() {
    // A session ticket makes the ClientHello longer than what is kept.
    let mut tail = alloc::vec![0, 2, 0xC0, 0x30, 1, 0];
    tail.extend_from_slice(&[0u8; 900]);
    let client = record(1, &hello(&[5; 32], &tail));
    let mut o = HandshakeObserver::new();
    o.client_bytes(&client);
    assert!(!o.is_complete());
    o.server_bytes(&server_hello(&[5; 32], 0xC030, &[]));
    assert!(o.is_complete());
    let s = o.summary().unwrap();
    assert!(s.resumed);
    assert_eq!(
        alloc::format!("{}", s.suite_name()),
        "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"
    );
}
