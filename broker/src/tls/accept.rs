//! One TLS handshake: bounded in time and in concurrency, timed step by
//! step, and, when it fails, explained in the peer's terms.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use std::time::Duration;

use tokio::net::TcpStream;

use super::refusal::{self, CertificateRefused};
use super::seen;
use super::server_config::TlsListener;
use super::slot_stream::SlotStream;
use super::stream::TlsStream;
use crate::listener::proxy_protocol::stray_header_version;
use fleetmq_core::peer::{AuthMode, ConnectClock, HandshakeSplit};
use fleetmq_core::peer::{PeerCertificate, TlsInfo};

/// Why a TLS handshake failed, in the words a lab engineer searches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The peer did not finish within the handshake timeout.
    Timeout,
    /// The peer sent a ClientHello and then did not answer the server's
    /// flight within `tls.client_flight_timeout_secs` (this long).
    ReplyTimeout(Duration),
    /// The client certificate is not signed by a configured client CA.
    UnknownCa,
    /// The client certificate has expired (or is not valid yet).
    Expired,
    /// The client certificate is on a CRL.
    Revoked,
    /// Client certificates are required and none was sent.
    NoCertificate,
    /// The client certificate is unusable for another reason.
    BadCertificate(String),
    /// The client certificate was refused; the refusal names it (subject,
    /// serial), says what is wrong and what to do.
    Certificate(CertificateRefused),
    /// No TLS version both sides accept.
    ProtocolVersion(String),
    /// No cipher suite, group or signature scheme in common.
    NoSharedCipher(String),
    /// The client aborted with an alert (often: it rejected our certificate).
    PeerAlert(String),
    /// The client closed the connection during the handshake.
    Closed,
    /// Not TLS, or a broken TLS message.
    Malformed(String),
    /// Not TLS but a PROXY protocol header of this version, on a listener
    /// that takes none (decision 0125): refused as that, not as bad TLS.
    ProxyHeader(u8),
    /// A socket error.
    Io(String),
}

impl HandshakeFailure {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::ReplyTimeout(_) => "reply_timeout",
            HandshakeFailure::UnknownCa => "unknown_ca",
            HandshakeFailure::Expired => "expired",
            HandshakeFailure::Revoked => "revoked",
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::BadCertificate(_) => "bad_certificate",
            HandshakeFailure::Certificate(refused) => refused.problem.reason(),
            HandshakeFailure::ProtocolVersion(_) => "protocol_version",
            HandshakeFailure::NoSharedCipher(_) => "no_shared_cipher",
            HandshakeFailure::PeerAlert(_) => "peer_alert",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::Malformed(_) => "malformed",
            HandshakeFailure::ProxyHeader(_) => "proxy_header_unexpected",
            HandshakeFailure::Io(_) => "io",
        }
    }

    /// A sentence for the log line.
    pub fn describe(&self) -> String {
        match self {
            HandshakeFailure::Timeout => "no finished handshake within the timeout".into(),
            HandshakeFailure::ReplyTimeout(after) => format!(
                "no answer to the server's handshake flight within {} s of the ClientHello \
                 (tls.client_flight_timeout_secs)",
                after.as_secs()
            ),
            HandshakeFailure::UnknownCa => "client certificate not issued by a trusted CA".into(),
            HandshakeFailure::Expired => "client certificate expired or not yet valid".into(),
            HandshakeFailure::Revoked => "client certificate revoked".into(),
            HandshakeFailure::NoCertificate => "no client certificate, and one is required".into(),
            HandshakeFailure::BadCertificate(d) => format!("bad client certificate: {d}"),
            HandshakeFailure::Certificate(refused) => refused.to_string(),
            HandshakeFailure::ProtocolVersion(d) => format!("no common TLS version: {d}"),
            HandshakeFailure::NoSharedCipher(d) => format!("no common cipher suite: {d}"),
            HandshakeFailure::PeerAlert(d) => format!("client sent alert {d}"),
            HandshakeFailure::Closed => "client closed the connection".into(),
            HandshakeFailure::Malformed(d) => format!("not a valid TLS handshake: {d}"),
            HandshakeFailure::ProxyHeader(version) => {
                format!("a PROXY protocol v{version} header, not a ClientHello")
            }
            HandshakeFailure::Io(d) => format!("socket error: {d}"),
        }
    }

    /// True when rustls answers this failure with an alert of its own
    /// (the peer is owed it, and may still be sending).
    fn is_alert(&self) -> bool {
        matches!(
            self,
            HandshakeFailure::UnknownCa
                | HandshakeFailure::Expired
                | HandshakeFailure::Revoked
                | HandshakeFailure::NoCertificate
                | HandshakeFailure::BadCertificate(_)
                | HandshakeFailure::Certificate(_)
                | HandshakeFailure::ProtocolVersion(_)
                | HandshakeFailure::NoSharedCipher(_)
                | HandshakeFailure::Malformed(_)
        )
    }

    fn from_io(error: std::io::Error) -> HandshakeFailure {
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return HandshakeFailure::from_rustls(tls);
        }
        match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => HandshakeFailure::Closed,
            std::io::ErrorKind::InvalidData => HandshakeFailure::Malformed(error.to_string()),
            _ => HandshakeFailure::Io(error.to_string()),
        }
    }

    fn from_rustls(error: &rustls::Error) -> HandshakeFailure {
        use rustls::{CertificateError, Error, PeerIncompatible};
        if let Error::InvalidCertificate(_) = error {
            if let Some(refused) = refusal::take_last() {
                return HandshakeFailure::Certificate(refused);
            }
        }
        match error {
            Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => HandshakeFailure::UnknownCa,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => HandshakeFailure::Expired,
                CertificateError::Revoked => HandshakeFailure::Revoked,
                other => HandshakeFailure::BadCertificate(format!("{other:?}")),
            },
            Error::NoCertificatesPresented => HandshakeFailure::NoCertificate,
            Error::PeerIncompatible(incompatible) => match incompatible {
                PeerIncompatible::NoCipherSuitesInCommon
                | PeerIncompatible::NoKxGroupsInCommon
                | PeerIncompatible::NoSignatureSchemesInCommon
                | PeerIncompatible::NoEcPointFormatsInCommon => {
                    HandshakeFailure::NoSharedCipher(format!("{incompatible:?}"))
                }
                other => HandshakeFailure::ProtocolVersion(format!("{other:?}")),
            },
            Error::AlertReceived(alert) => HandshakeFailure::PeerAlert(format!("{alert:?}")),
            other => HandshakeFailure::Malformed(other.to_string()),
        }
    }
}

/// Up to a quarter of `timeout`, different for each connection: peers
/// that sent their ClientHellos together and stall are not all cut off in
/// the same instant, so their reconnects do not come back as one wave of
/// handshakes every `timeout` (decision 0086). Taken from the nanoseconds
/// of the accept time, which nobody controls to the nanosecond.
fn spread(timeout: Duration, clock: &ConnectClock) -> Duration {
    let nanos = clock
        .accepted_wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    timeout / 4 * (nanos % 1024) / 1024
}

/// Where the handshake's time went: the broker's work answering the
/// ClientHello and its poll time before and after the client's reply began, its queueing for slots, and the rest of
/// the time after its flight, which is the client's (with the network);
/// the kernel gives the round trip for the socket.
fn split(
    tls: &TlsStream,
    polls: &super::poll_timer::PollLog,
    hello_at: Instant,
    queued_for_first_slot: Duration,
    answered_in: Duration,
) -> HandshakeSplit {
    let done = Instant::now();
    let socket = tls.socket();
    let marks = socket.marks();
    let (polled_before_reply, broker_verify) = polls.split(marks.reply_started);
    let broker_flight = answered_in + polled_before_reply;
    let client_wait = marks.flight_sent.map_or(Duration::ZERO, |sent| {
        done.saturating_duration_since(sent)
            .saturating_sub(broker_verify)
            .saturating_sub(marks.slot_wait)
    });
    HandshakeSplit {
        broker_flight,
        client_wait,
        network_rtt: fleetmq_tcp_info::read(socket.tcp()).map(|info| info.rtt),
        broker_verify,
        broker_queue: queued_for_first_slot + marks.slot_wait,
        broker_scheduling: marks.flight_sent.map_or(Duration::ZERO, |sent| {
            sent.saturating_duration_since(hello_at)
                .saturating_sub(broker_flight)
                .saturating_sub(queued_for_first_slot)
        }),
    }
}

/// A handshake that did not finish.
#[derive(Debug)]
pub struct Refused {
    pub failure: HandshakeFailure,
    /// The socket, when the broker had the last word (an alert, or a
    /// resumed session it would not honour): close it lingering, so that
    /// the alert reaches a peer that is still sending (decision 0087).
    /// `None` when the peer went silent, closed, or broke the connection.
    pub socket: Option<SlotStream>,
}

impl From<HandshakeFailure> for Refused {
    fn from(failure: HandshakeFailure) -> Refused {
        Refused {
            failure,
            socket: None,
        }
    }
}

/// Runs the server side of a TLS handshake on `tcp`, recording the
/// ClientHello and completion instants in `clock`.
///
/// Two deadlines: the whole handshake within `tls.handshake_timeout_secs`
/// of the TCP accept, and everything after the ClientHello (the server's
/// flight and the client's answer) within `tls.client_flight_timeout_secs`
/// of it (plus up to a quarter more, spread per connection). A handshake slot is held only while there is work to do on the
/// peer's bytes ([`SlotStream`]).
pub async fn handshake(
    listener: &TlsListener,
    tcp: TcpStream,
    peer: SocketAddr,
    clock: &mut ConnectClock,
) -> Result<(TlsStream, TlsInfo), Refused> {
    // A refusal left on this thread by another handshake is not ours.
    let _ = refusal::take_last();
    let _ = seen::take_refused_leaf();
    let deadline = tokio::time::Instant::from_std(clock.accepted + listener.handshake_timeout);
    let mut socket = SlotStream::new(tcp);
    let mut incoming = Vec::new();
    let hello = tokio::time::timeout_at(
        deadline,
        TlsStream::read_client_hello(&mut socket, &mut incoming, |first| {
            stray_header_version(first).is_some()
        }),
    )
    .await
    .map_err(|_| HandshakeFailure::Timeout)?
    .map_err(|error| {
        // Only bytes rustls refused are looked at (decision 0125).
        match stray_header_version(&incoming) {
            Some(version) => HandshakeFailure::ProxyHeader(version),
            None => HandshakeFailure::from_io(error),
        }
    })?;
    let hello_at = Instant::now();
    clock.client_hello = Some(hello_at);
    let flight_timeout = listener.client_flight_timeout;
    let flight_deadline = deadline.min(tokio::time::Instant::from_std(
        hello_at + flight_timeout + spread(flight_timeout, clock),
    ));
    let timed_out = || {
        if flight_deadline < deadline {
            HandshakeFailure::ReplyTimeout(flight_timeout)
        } else {
            HandshakeFailure::Timeout
        }
    };
    // The slot bounds the expensive part (key exchange, signatures,
    // certificate checks). It is taken only once a whole ClientHello has
    // arrived, so silent or dribbling peers cannot hold slots, and given
    // back while the client works on its answer (`SlotStream`).
    let queued = Instant::now();
    let permit = tokio::time::timeout_at(
        flight_deadline,
        Arc::clone(&listener.handshakes).acquire(peer.ip()),
    )
    .await
    .map_err(|_| timed_out())?
    .ok_or_else(|| HandshakeFailure::Io("handshake limiter closed".into()))?;
    let queued_for_first_slot = queued.elapsed();
    socket.hold(&listener.handshakes, peer.ip(), permit);
    let server_name = hello.server_name;
    let active = listener.active();
    let refuse = |error: std::io::Error, mut socket: SlotStream| {
        socket.finish();
        // Taken on this thread, in the poll the verifier ran in (see
        // `refusal`); before `from_io`, which takes the refusal.
        let refused_leaf = seen::take_refused_leaf();
        let failure = HandshakeFailure::from_io(error);
        if let (Some(store), Some(leaf)) = (&listener.seen, refused_leaf) {
            store.record_refused(&leaf);
        }
        // The alert rustls queued for the failure went out with the
        // connection's last attempt to write.
        let socket = failure.is_alert().then_some(socket);
        Refused { failure, socket }
    };
    let mut tls =
        TlsStream::new(socket, Arc::clone(&active.config), incoming).map_err(|failed| {
            let (error, socket) = *failed;
            refuse(error, socket)
        })?;
    // rustls answers the ClientHello (key exchange, signing, the flight
    // into the outgoing records) right here, synchronously: broker work
    // too.
    let answering = Instant::now();
    let answered = tls.process();
    let answered_in = answering.elapsed();
    let driven = match answered {
        Ok(()) => {
            let handshake = std::future::poll_fn(|cx| tls.poll_handshake(cx));
            match tokio::time::timeout_at(
                flight_deadline,
                super::poll_timer::PollTimed::new(handshake),
            )
            .await
            {
                Err(_) => return Err(timed_out().into()),
                Ok((driven, polls)) => driven.map(|()| polls),
            }
        }
        Err(error) => {
            std::future::poll_fn(|cx| {
                tls.send_alert(cx);
                std::task::Poll::Ready(())
            })
            .await;
            Err(error)
        }
    };
    match driven {
        Ok(polls) => {
            clock.split = Some(split(
                &tls,
                &polls,
                hello_at,
                queued_for_first_slot,
                answered_in,
            ));
        }
        Err(error) => return Err(refuse(error, tls.into_socket())),
    }
    tls.socket_mut().finish();
    clock.tls_done = Some(Instant::now());
    let connection = tls.connection();
    let resumed = matches!(
        connection.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    // A resumed session skips the certificate checks, but its certificate
    // may have been revoked (CRL reload, or a restart: ticket keys persist)
    // or have expired since the session was made.
    if let (true, Some((end_entity, intermediates))) = (
        resumed,
        connection
            .peer_certificates()
            .and_then(|chain| chain.split_first()),
    ) {
        if let Err(error) = active.recheck_chain(end_entity, intermediates) {
            return Err(Refused {
                failure: HandshakeFailure::from_rustls(&error),
                socket: Some(tls.into_socket()),
            });
        }
    }
    let client_cert = match connection.peer_certificates().and_then(|c| c.first()) {
        Some(der) => {
            if let Some(store) = &listener.seen {
                store.record(der.as_ref());
            }
            match PeerCertificate::from_der(der) {
                Ok(cert) => Some(cert),
                Err(error) => {
                    tracing::warn!(peer = %peer, "Verified client certificate from {peer} could not be parsed: {error}.");
                    None
                }
            }
        }
        None => None,
    };
    let auth = if connection.peer_certificates().is_some() {
        AuthMode::Mutual
    } else {
        AuthMode::OneWay
    };
    let info = TlsInfo {
        version: match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
            Some(other) => format!("{other:?}").into(),
            None => "unknown".into(),
        },
        cipher_suite: connection
            .negotiated_cipher_suite()
            .map(|suite| {
                let suite = suite.suite();
                suite
                    .as_str()
                    .map_or_else(|| format!("{suite:?}").into(), Into::into)
            })
            .unwrap_or_default(),
        kx_group: connection.negotiated_key_exchange_group().map(|group| {
            let name = group.name();
            name.as_str()
                .map_or_else(|| format!("{name:?}").into(), Into::into)
        }),
        resumed,
        auth,
        server_name,
        client_cert,
    };
    Ok((tls, info))
}
