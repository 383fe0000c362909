//! Admission of a connection by the address its PROXY header names, on
//! listeners behind a balancer, and the refusal of headers on listeners
//! that take none (decisions 0123, 0125; TLS and MQTT find those in their
//! first bytes and refuse through [`refuse_stray_header`]). Runs on the
//! connection's task,
//! before TLS: it reads (through [`proxy_protocol`]), logs, counts and
//! admits; it must not touch MQTT or TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::per_ip::{PeerLimits, PeerSlot, RefusalLog};
use super::proxy_protocol;
use crate::connection::Origin;
use crate::tls::TlsListener;
use fleetmq_core::config::ListenerProtocol;
use fleetmq_core::engine::Engine;

/// Refuses a connection that began with a PROXY header on a listener that
/// takes none: one info line that names the cause, and the refusal counted.
/// Called by whichever layer saw the header (the peek here, the TLS
/// ClientHello read, the MQTT CONNECT read); the caller drops the socket.
pub(crate) fn refuse_stray_header(broker: &Engine, listener: &str, peer: SocketAddr, version: u8) {
    broker.stats.connection_refused();
    tracing::info!(
        listener = %listener,
        peer = %peer,
        reason = "proxy_header_unexpected",
        "Refused connection from {peer} on listener \"{listener}\": it sent a PROXY protocol \
         v{version} header, which this listener does not take (set proxy_protocol on a \
         listener that only the balancer reaches).",
    );
}

/// What admission by a PROXY header's address needs.
pub(super) struct Admission<'a> {
    pub broker: &'a Engine,
    pub peers: &'a Arc<PeerLimits>,
    pub refusals: &'a RefusalLog,
    pub tls: Option<&'a TlsListener>,
}

/// Reads the PROXY header of a listener behind a balancer and admits the
/// connection by the client address it names (which replaces the socket's
/// in `origin`); on a listener without PROXY protocol, refuses a
/// connection that starts with a header anyway. `None`: refused, logged
/// and counted; the socket is dropped.
pub(super) async fn admit_proxied(
    stream: &mut TcpStream,
    origin: &mut Origin,
    admission: Admission<'_>,
) -> Option<Option<PeerSlot>> {
    let Admission {
        broker,
        peers,
        refusals,
        tls,
    } = admission;
    let settings = &origin.settings;
    let accepted = tokio::time::Instant::from_std(origin.clock.accepted);
    let refuse = |why: String, reason: &str| {
        broker.stats.connection_refused();
        tracing::info!(
            listener = %origin.listener,
            peer = %origin.peer,
            reason,
            "Refused connection from {} on listener \"{}\": {why}.",
            origin.peer,
            origin.listener,
        );
    };
    if !settings.proxy_protocol.is_on() {
        // TLS and MQTT listeners look at their first bytes only when those
        // fail (`refuse_stray_header`, decision 0125): a peek here would be
        // one more system call on every good connection. A plain WebSocket
        // listener's HTTP parser does not hand its bytes back, so it peeks.
        if tls.is_some() || settings.protocol != ListenerProtocol::Websockets {
            return Some(None);
        }
        let budget = Duration::from_secs(broker.config.limits.connect_timeout_secs);
        let deadline = accepted + budget.min(proxy_protocol::HEADER_TIMEOUT);
        if let Some(version) = proxy_protocol::sniff_stray_header(stream, deadline).await {
            refuse_stray_header(broker, &origin.listener, origin.peer, version);
            return None;
        }
        return Some(None);
    }
    let deadline = accepted + proxy_protocol::HEADER_TIMEOUT;
    let proxied = match proxy_protocol::read_header(stream, origin.peer, settings, deadline).await {
        Ok(proxied) => proxied,
        Err(proxy_protocol::HeaderError::Closed) => {
            tracing::debug!(listener = %origin.listener, peer = %origin.peer, "Connection from {} on listener \"{}\" closed before its PROXY header.", origin.peer, origin.listener);
            return None;
        }
        Err(error) => {
            refuse(error.describe(), error.reason());
            return None;
        }
    };
    tracing::debug!(listener = %origin.listener, "PROXY v{} header on listener \"{}\": {} is {}.", proxied.version, origin.listener, origin.peer, proxied.client);
    origin.peer = proxied.client;
    origin.tls = proxied.tls;
    match peers.admit(origin.peer.ip(), std::time::Instant::now()) {
        Ok(slot) => Some(Some(slot)),
        Err(refusal) => {
            broker.stats.connection_refused();
            refusals.log(&origin.listener, origin.peer, refusal);
            None
        }
    }
}
