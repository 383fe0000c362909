//! [`RawClient`]: an MQTT client that writes exactly the bytes a test gives
//! it (build them with [`super::packets`]) and decodes what the broker sends
//! with `fleetmq_codec`, over TCP or TLS ([`super::Transport`]). It keeps no
//! session state of its own: what it acknowledges is up to the test.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::*;

/// What a connection did when the test expected the broker to close it.
#[derive(Debug)]
pub struct Closed {
    /// The packets that arrived before EOF (a DISCONNECT, typically).
    pub packets: Vec<Packet>,
}

impl Closed {
    /// The reason of the DISCONNECT sent before closing, if there was one.
    pub fn disconnect_reason(&self) -> Option<ReasonCode> {
        self.packets.iter().find_map(|p| match p {
            Packet::Disconnect(d) => Some(d.reason),
            _ => None,
        })
    }
}

/// A client that writes exactly the bytes a test gives it and decodes what
/// the broker sends with `fleetmq_codec`.
pub struct RawClient {
    stream: Transport,
    read_buf: BytesMut,
    /// Decides how incoming packets are decoded (properties or not).
    pub version: ProtocolVersion,
    /// Set once the broker closed the connection.
    eof: bool,
}

impl RawClient {
    /// Opens a TCP connection; sends nothing.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient::over(Transport::Tcp(stream))
    }

    /// A client over an established transport (e.g. [`tls::connect`]);
    /// sends nothing.
    pub fn over(stream: Transport) -> RawClient {
        RawClient {
            stream,
            read_buf: BytesMut::with_capacity(4096),
            version: ProtocolVersion::V3_1_1,
            eof: false,
        }
    }

    /// Connects with a 3.1.1 CONNECT and asserts CONNACK accepted.
    pub fn connect_v311(addr: SocketAddr, client_id: &str, clean: bool) -> (RawClient, ConnAck) {
        RawClient::connect_with(addr, ConnectBuilder::v311(client_id).clean(clean))
    }

    /// Connects with a 5.0 CONNECT and asserts CONNACK success.
    pub fn connect_v5(addr: SocketAddr, client_id: &str, clean: bool) -> (RawClient, ConnAck) {
        RawClient::connect_with(addr, ConnectBuilder::v5(client_id).clean(clean))
    }

    /// Connects with the given CONNECT and asserts CONNACK success.
    pub fn connect_with(addr: SocketAddr, connect: ConnectBuilder) -> (RawClient, ConnAck) {
        let mut client = RawClient::connect(addr);
        client.send_connect(&connect);
        let connack = client.expect_connack();
        assert_eq!(connack.reason, ReasonCode::SUCCESS, "CONNACK refused");
        (client, connack)
    }

    /// Sends a CONNECT and decodes what follows in its protocol version.
    pub fn send_connect(&mut self, connect: &ConnectBuilder) {
        self.version = match connect.level {
            5 => ProtocolVersion::V5,
            3 => ProtocolVersion::V3_1,
            _ => ProtocolVersion::V3_1_1,
        };
        self.send(&connect.build());
    }

    /// Writes raw bytes. A broker that already closed the socket may make
    /// this fail; that is ignored, the next read sees the close.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Writes raw bytes and reports a failed write (the broker closed).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Encodes a packet with `fleetmq_codec` and writes it.
    pub fn send_packet(&mut self, packet: &Packet, version: ProtocolVersion) {
        let mut buf = BytesMut::new();
        encode_packet(packet, version, &mut buf).expect("encode packet");
        self.send(&buf);
    }

    /// The next packet, or None on timeout or EOF.
    pub fn recv_packet(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode_packet(&mut self.read_buf, Some(self.version), u32::MAX) {
                Ok(Some(packet)) => return Some(packet),
                Ok(None) => {}
                Err(error) => panic!(
                    "broker sent bytes that do not decode as {:?}: {error:?}",
                    self.version
                ),
            }
            if self.eof {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.stream
                .tcp()
                .set_read_timeout(Some(deadline - now))
                .expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.read_buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => self.eof = true,
            }
        }
    }

    /// Exactly `n` raw bytes as the broker sent them (for asserting the wire
    /// form); fewer if the connection closes or `timeout` passes.
    pub fn recv_exact(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.read_buf.len() < n && !self.eof {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.stream
                .tcp()
                .set_read_timeout(Some(deadline - now))
                .expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(read) => self.read_buf.extend_from_slice(&chunk[..read]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(_) => self.eof = true,
            }
        }
        let take = n.min(self.read_buf.len());
        self.read_buf.split_to(take).to_vec()
    }

    /// The next packet; panics naming `what` when none arrives in
    /// [`packet_wait`].
    pub fn expect_packet(&mut self, what: &str) -> Packet {
        match self.recv_packet(packet_wait()) {
            Some(packet) => packet,
            None => panic!(
                "expected {what} within {:?}, got nothing (closed: {})",
                packet_wait(),
                self.eof
            ),
        }
    }

    pub fn expect_connack(&mut self) -> ConnAck {
        match self.expect_packet("CONNACK") {
            Packet::ConnAck(connack) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub fn expect_publish(&mut self) -> Publish {
        match self.expect_packet("PUBLISH") {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// True when nothing arrives within `timeout` and the connection is open.
    pub fn expect_silence(&mut self, timeout: Duration) -> Result<(), Box<Packet>> {
        match self.recv_packet(timeout) {
            Some(packet) => Err(Box::new(packet)),
            None => Ok(()),
        }
    }

    /// Reads until the broker closes the connection (EOF or reset); Some
    /// with what arrived before, None if it is still open after `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Option<Closed> {
        let deadline = Instant::now() + timeout;
        let mut packets = Vec::new();
        loop {
            let now = Instant::now();
            match self.recv_packet(deadline.saturating_duration_since(now)) {
                Some(packet) => packets.push(packet),
                None if self.eof => return Some(Closed { packets }),
                None => return None,
            }
        }
    }

    /// True when the broker closes the connection within `timeout`, possibly
    /// after sending a DISCONNECT (any packets before the close are dropped).
    pub fn expect_closed(&mut self, timeout: Duration) -> bool {
        self.wait_closed(timeout).is_some()
    }

    /// Asserts the broker closes the connection, and for 5.0 that it sends a
    /// DISCONNECT with `reason` first. Mosquitto often closes without the
    /// DISCONNECT (the spec says "MAY" there); against it only a DISCONNECT
    /// that does arrive must carry the right reason.
    pub fn expect_disconnect(&mut self, reason: ReasonCode) {
        let closed = self.wait_closed(WAIT).unwrap_or_else(|| {
            panic!("broker kept the connection open (expected close with {reason:?})")
        });
        if self.version.is_v5() {
            match closed.disconnect_reason() {
                Some(got) => assert_eq!(
                    got, reason,
                    "DISCONNECT reason; packets {:?}",
                    closed.packets
                ),
                None if is_mosquitto() => {}
                None => panic!(
                    "broker closed without DISCONNECT {reason:?}; packets before close: {:?}",
                    closed.packets
                ),
            }
        } else {
            assert!(
                closed
                    .packets
                    .iter()
                    .all(|p| !matches!(p, Packet::Disconnect(_))),
                "a 3.1.1 server never sends DISCONNECT: {:?}",
                closed.packets
            );
        }
    }

    /// Closes the TCP connection without DISCONNECT (a network drop).
    pub fn drop_connection(self) {
        let _ = self.stream.tcp().shutdown(Shutdown::Both);
    }

    pub fn is_closed(&self) -> bool {
        self.eof
    }

    /// The transport, e.g. to read what a TLS handshake negotiated.
    pub fn transport(&self) -> &Transport {
        &self.stream
    }

    /// Subscribes and returns the SUBACK reason codes.
    pub fn subscribe(&mut self, packet_id: u16, filter: &str, options: u8) -> Vec<ReasonCode> {
        let v5 = self.version.is_v5();
        self.send(&subscribe(packet_id, &[(filter, options)], v5, &[]));
        match self.expect_packet("SUBACK") {
            Packet::SubAck(suback) => {
                assert_eq!(suback.packet_id, packet_id, "SUBACK packet id");
                suback.reasons
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes; for QoS 1 and 2 completes the handshake and returns the
    /// PUBACK/PUBREC reason.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> ReasonCode {
        let v5 = self.version.is_v5();
        let packet_id = 77;
        self.send(
            &publish(topic, payload)
                .qos(qos)
                .packet_id(packet_id)
                .retain(retain)
                .v5(v5)
                .build(),
        );
        match qos {
            0 => ReasonCode::SUCCESS,
            1 => match self.expect_packet("PUBACK") {
                Packet::PubAck(ack) if ack.packet_id == packet_id => ack.reason,
                other => panic!("expected PUBACK {packet_id}, got {other:?}"),
            },
            _ => {
                let reason = match self.expect_packet("PUBREC") {
                    Packet::PubRec(rec) if rec.packet_id == packet_id => rec.reason,
                    other => panic!("expected PUBREC {packet_id}, got {other:?}"),
                };
                self.send_packet(
                    &Packet::PubRel(PubResponse::success(packet_id)),
                    self.version,
                );
                match self.expect_packet("PUBCOMP") {
                    Packet::PubComp(comp) if comp.packet_id == packet_id => {}
                    other => panic!("expected PUBCOMP {packet_id}, got {other:?}"),
                }
                reason
            }
        }
    }

    /// Sends PINGREQ and asserts PINGRESP: the connection is alive.
    pub fn ping(&mut self) {
        self.send(&[0xC0, 0x00]);
        match self.expect_packet("PINGRESP") {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// Waits for a PUBLISH, skipping `$SYS` ones.
    pub fn expect_app_publish(&mut self) -> Publish {
        loop {
            let publish = self.expect_publish();
            if !publish.topic.starts_with("$SYS") {
                return publish;
            }
        }
    }
}

/// How long [`RawClient::expect_packet`] waits: [`WAIT`], or 10 s against
/// a three-node cluster, where a message (a will, a cross-node delivery)
/// may go through NATS first and a loaded 2-core CI machine made 2 s flaky.
fn packet_wait() -> Duration {
    if is_cluster() {
        Duration::from_secs(10)
    } else {
        WAIT
    }
}
