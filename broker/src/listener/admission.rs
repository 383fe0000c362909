//! Admission of a connection by the address its PROXY header names, on
//! listeners behind a balancer, and the refusal of headers on listeners
//! that take none (decisions 0123, 0125). Runs on the connection's task,
//! before TLS: it reads (through [`proxy_protocol`]), logs, counts and
//! admits; it must not touch MQTT or TLS.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::per_ip::{PeerLimits, PeerSlot, RefusalLog};
use super::proxy_protocol;
use crate::connection::Origin;
use crate::tls::TlsListener;
use fleetmq_core::engine::Engine;

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
        // Waits no longer than the TLS handshake or CONNECT would.
        let budget = match tls {
            Some(tls) => tls.handshake_timeout,
            None => Duration::from_secs(broker.config.limits.connect_timeout_secs),
        };
        let deadline = accepted + budget.min(proxy_protocol::HEADER_TIMEOUT);
        if let Some(version) = proxy_protocol::sniff_stray_header(stream, deadline).await {
            refuse(
                format!(
                    "it sent a PROXY protocol v{version} header, which this listener does not \
                     take (set proxy_protocol on a listener that only the balancer reaches)"
                ),
                "proxy_header_unexpected",
            );
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
