//! CONNECT to CONNACK: reading the first packet, checking it, attaching the
//! session and answering.
//!
//! Refusals get the CONNACK reason the client's version can express (5.0
//! reason codes, 3.1.1 return codes through the encoder) and a log line
//! naming the peer; nothing here touches other clients.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::{lingering_close, Client, Origin};
use crate::listener::{proxy_protocol, refuse_stray_header};
use fleetmq_codec::{
    self as codec, ConnAck, Connect, DecodeError, Packet, ProtocolVersion, ReasonCode,
};
use fleetmq_core::auth::{authenticate, Action, AuthOutcome, Identity};
use fleetmq_core::cluster::{Admission, ArmedWill};
use fleetmq_core::engine::{Engine, Stats};
use fleetmq_core::events::{Connected, Event};
use fleetmq_core::peer::{millis, AuthMode, CertificateSerial};
use fleetmq_core::protocol::connect::{connack_properties, negotiate, Negotiated};
use fleetmq_core::protocol::{ClientProtocol, Setup};

/// Longest a CONNACK waits for the cluster to record the connection's will
/// (a read, maybe a delete, and a put, each normally a millisecond). A
/// keeper a second behind means NATS is struggling: the device is not kept
/// waiting longer, and its will is recorded when NATS answers (a reconnect
/// elsewhere before that may then see the will published after all).
const WILL_RECORD_WAIT: Duration = Duration::from_secs(1);

/// How a CONNECT was judged.
enum Verdict {
    Accept(Accepted),
    /// Refuse with this CONNACK reason (`None`: close without CONNACK).
    Refuse(Option<ReasonCode>, String),
}

/// The negotiated parameters of an accepted CONNECT.
struct Accepted {
    client_id: String,
    identity: Identity,
    assigned_id: bool,
    /// Keep alive and session expiry.
    negotiated: Negotiated,
}

/// Reads CONNECT and answers it. Returns the attached client, or `None`
/// when the connection was refused or went away.
pub(super) async fn accept<S>(
    mut stream: S,
    mut origin: Origin,
    broker: Arc<Engine>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Box<Client<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let limits = &broker.config.limits;
    let mut read_buf = BytesMut::with_capacity(1024);
    let wait = Duration::from_secs(limits.connect_timeout_secs);
    // From when the transport was ready (TCP accept or TLS done), so time
    // spent before, such as waiting for a PROXY header, is not given twice.
    let ready = origin.clock.tls_done.unwrap_or(origin.clock.accepted);
    let deadline = tokio::time::Instant::from_std(ready) + wait;
    let first = tokio::select! {
        read = tokio::time::timeout_at(deadline, read_connect(&mut stream, &mut read_buf, limits.max_packet_size, &broker)) => read,
        _ = shutdown.changed() => return None,
    };
    let connect = match first {
        Err(_) => {
            tracing::info!(peer = %origin.peer, "Client <unknown> from {} sent no CONNECT within {}s, closing.", origin.peer, wait.as_secs());
            return None;
        }
        Ok(Err(FirstPacketError::Io(error))) => {
            tracing::debug!(peer = %origin.peer, "Socket error from {} before CONNECT: {error}.", origin.peer);
            return None;
        }
        Ok(Err(FirstPacketError::Closed)) => return None,
        Ok(Err(FirstPacketError::Decode(error))) => {
            // Not MQTT but a balancer's PROXY header, on a listener that
            // takes none: said as that (decision 0125). Only bytes the
            // decoder refused are looked at.
            if let Some(version) = proxy_protocol::stray_header_version(&read_buf) {
                refuse_stray_header(&broker, &origin.listener, origin.peer, version);
                return None;
            }
            Stats::add(&broker.stats.protocol_errors, 1);
            tracing::info!(
                peer = %origin.peer,
                "Client <unknown> disconnected due to {}: {error}.",
                error.reason_code().name()
            );
            if let DecodeError::UnsupportedProtocolVersion { level } = &error {
                // [MQTT-3.1.2-2]: answer in the format the client can read.
                let version = if *level == 5 {
                    ProtocolVersion::V5
                } else {
                    ProtocolVersion::V3_1_1
                };
                let connack = refusal(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, &broker.config);
                refuse(stream, &connack, version).await;
            }
            return None;
        }
        Ok(Ok(connect)) => connect,
    };
    origin.clock.connect = Some(std::time::Instant::now());
    let version = connect.protocol;
    let peer = origin.peer;
    let accepted = match judge(&connect, &origin, &broker) {
        Verdict::Accept(accepted) => accepted,
        Verdict::Refuse(reason, why) => {
            tracing::info!(
                peer = %peer,
                "Refused connection from {peer} as {}: {why}.",
                display_id(&connect.client_id)
            );
            if let Some(reason) = reason {
                refuse(stream, &refusal(reason, &broker.config), version).await;
            }
            return None;
        }
    };
    let identity = Arc::new(accepted.identity.clone());
    let certificate = origin
        .tls
        .as_ref()
        .and_then(|tls| tls.client_cert.as_ref())
        .map(CertificateSerial::of);
    // A cluster node claims the client id first, and brings in a session
    // another node held (decisions 0172, 0173).
    let directory = broker.cluster().and_then(|link| link.directory()).cloned();
    if let Some(directory) = &directory {
        let admission = directory
            .admit(
                &accepted.client_id,
                connect.clean_start,
                accepted.negotiated.expiry_interval,
            )
            .await;
        if let Admission::Refuse { reason, why } = admission {
            tracing::info!(
                peer = %peer,
                "Refused connection from {peer} as {}: {why}.",
                accepted.client_id
            );
            refuse(stream, &refusal(reason, &broker.config), version).await;
            return None;
        }
    }
    let attached = match broker.attach(
        &accepted.client_id,
        connect.clean_start,
        accepted.negotiated.expiry_interval,
        Arc::clone(&identity),
        certificate,
    ) {
        Ok(attached) => attached,
        Err(foreign) => {
            // Nothing of the session was touched: its owner stays
            // connected and keeps its messages (decision 0088).
            tracing::info!(
                peer = %peer,
                client = %accepted.client_id,
                "Refused connection from {peer} as {}: the session belongs to {}, not to {}.",
                accepted.client_id,
                foreign.owner,
                foreign.claimant,
            );
            refuse(
                stream,
                &refusal(ReasonCode::NOT_AUTHORIZED, &broker.config),
                version,
            )
            .await;
            return None;
        }
    };
    let chatty = broker.config.log.connection_messages;
    if attached.took_over && chatty {
        tracing::info!(
            client = %accepted.client_id,
            "Client {} already connected, closing old connection.",
            accepted.client_id
        );
    }
    let connack = Packet::ConnAck(ConnAck {
        session_present: attached.session_present,
        reason: ReasonCode::SUCCESS,
        properties: connack_properties(
            &broker.config,
            &accepted.negotiated,
            accepted.assigned_id.then(|| accepted.client_id.clone()),
        ),
    });
    let username = connect
        .username
        .as_deref()
        .map(|u| format!(", u'{u}'"))
        .unwrap_or_default();
    if chatty {
        tracing::info!(
            client = %accepted.client_id,
            peer = %peer,
            listener = %origin.listener,
            "New client connected from {peer} as {} (p{}, c{}, k{}{username}).",
            accepted.client_id,
            log_protocol(version),
            u8::from(connect.clean_start),
            accepted.negotiated.keep_alive,
        );
    }
    // A cluster node records the session and the will where every node
    // finds them, and settles what an earlier connection of the client
    // left (0173, 0183). The CONNACK leaves once both are written: a
    // device that drops and reconnects on another node at once then
    // resumes its session there and has the will settled there
    // (MQTT-3.1.3-9), not published from here.
    let will_recorded = broker
        .cluster()
        .and_then(|link| link.wills())
        .and_then(|keeper| {
            let client_id: Arc<str> = Arc::clone(&attached.session.client_id);
            let armed = connect
                .will
                .as_ref()
                .filter(|will| broker.allows(&identity, Action::Publish, &will.topic))
                .map(|will| {
                    ArmedWill::new(
                        &client_id,
                        will.clone(),
                        accepted.negotiated.expiry_interval,
                    )
                });
            keeper.connected(client_id, attached.generation, connect.clean_start, armed)
        });
    let session_recorded = async {
        match &directory {
            Some(directory) => directory.record(&accepted.client_id).await,
            None => Ok(()),
        }
    };
    let will_recorded = async {
        match will_recorded {
            Some(recorded) => tokio::time::timeout(WILL_RECORD_WAIT, recorded)
                .await
                .is_ok(),
            None => true,
        }
    };
    let (session_recorded, will_recorded) = tokio::join!(session_recorded, will_recorded);
    if let Err(error) = session_recorded {
        tracing::warn!(
            client = %accepted.client_id,
            "Cluster: session record of {} not written ({error}); CONNACK sent anyway, and a move to another node before its next change starts it anew.",
            accepted.client_id
        );
    }
    if !will_recorded {
        tracing::debug!(
            client = %accepted.client_id,
            "Cluster: will of {} not recorded within {WILL_RECORD_WAIT:?}; CONNACK sent anyway.",
            accepted.client_id
        );
    }
    let Connect {
        will,
        clean_start,
        username,
        ..
    } = *connect;
    let keep_alive = accepted.negotiated.keep_alive;
    let props = &connect.properties;
    let protocol = ClientProtocol::new(Setup {
        broker: Arc::clone(&broker),
        version,
        identity,
        session: attached.session,
        generation: attached.generation,
        peer,
        will,
        receive_maximum: props.receive_maximum,
        maximum_packet_size: props.maximum_packet_size,
        topic_alias_maximum: props.topic_alias_maximum,
        committed: ClientProtocol::store_progress(&broker),
        mount_point: client_mount_point(&origin.settings),
    });
    let mut client = Client {
        stream,
        broker: Arc::clone(&broker),
        read_buf,
        read_size: super::READ_MIN,
        protocol,
        keep_alive: Duration::from_secs(u64::from(keep_alive)),
        control: attached.control,
        committed: ClientProtocol::store_progress(&broker),
        cluster_settled: broker.cluster().map(|link| link.settled()),
    };
    client.protocol.counters().touch();
    client.protocol.send(&connack);
    if attached.session_present {
        client.protocol.resend_inflight(std::time::Instant::now());
    }
    // CONNACK leaves now, not with the next batch, so its time is real.
    if let Err(error) = client.flush().await {
        let id = client.protocol.client_id();
        tracing::info!(client = %id, "Socket error on client {id}, disconnecting: {error}.");
        let protocol = &client.protocol;
        client
            .broker
            .detach(protocol.session(), protocol.generation());
        return None;
    }
    origin.clock.connack = Some(std::time::Instant::now());
    // The origin goes to the watchers (the dashboard keeps its own
    // record): a held connection keeps no copy of it.
    client.report_connected(origin, version, clean_start, keep_alive, username);
    Some(Box::new(client))
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Logs the setup timings (debug) and tells watchers about the client.
    fn report_connected(
        &self,
        origin: Origin,
        version: ProtocolVersion,
        clean_start: bool,
        keep_alive: u16,
        username: Option<String>,
    ) {
        let timing = origin.clock.timing();
        let tls = origin.tls.as_ref();
        tracing::debug!(
            client = %self.protocol.client_id(),
            "Client {} setup: TLS {} ({}, {}, {}, {}, {}), CONNECT after {}, CONNACK after {}, total {}.",
            self.protocol.client_id(),
            millis(timing.tls_total),
            tls.map_or("plain", |t| &*t.version),
            tls.map_or("-", |t| &*t.cipher_suite),
            tls.and_then(|t| t.kx_group.as_deref()).unwrap_or("-"),
            tls.map_or("-", |t| if t.resumed { "resumed" } else { "full" }),
            tls.map_or(AuthMode::Plain, |t| t.auth).as_str(),
            millis(timing.connect),
            millis(timing.connack),
            millis(timing.total),
        );
        self.broker
            .events
            .emit(Event::Connected(Arc::new(Connected {
                client_id: Arc::clone(self.protocol.client_id()),
                connection: self.protocol.generation(),
                peer: origin.peer,
                listener: origin.listener,
                transport: origin.settings.protocol,
                protocol: version.level(),
                clean_start,
                keep_alive,
                username,
                tls: origin.tls,
                timing,
                counters: Arc::clone(self.protocol.counters()),
            })));
    }
}

/// Mosquitto's protocol tag in "New client connected" lines.
fn log_protocol(version: ProtocolVersion) -> u8 {
    match version {
        ProtocolVersion::V3_1 => 1,
        ProtocolVersion::V3_1_1 => 2,
        ProtocolVersion::V5 => 5,
    }
}

fn display_id(client_id: &str) -> &str {
    if client_id.is_empty() {
        "<empty>"
    } else {
        client_id
    }
}

/// Checks a CONNECT against the configuration.
fn judge(connect: &Connect, origin: &Origin, broker: &Engine) -> Verdict {
    let config = &broker.config;
    let version = connect.protocol;
    if origin.over_limit {
        return Verdict::Refuse(
            Some(ReasonCode::SERVER_BUSY),
            "connection limit reached".into(),
        );
    }
    if !protocol_accepted(&origin.settings, version) {
        return Verdict::Refuse(
            Some(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
            format!(
                "MQTT {} is not in this listener's accept_protocol_versions",
                version_name(version)
            ),
        );
    }
    if connect.properties.authentication_method.is_some() {
        return Verdict::Refuse(
            Some(ReasonCode::BAD_AUTHENTICATION_METHOD),
            "enhanced authentication is not supported".into(),
        );
    }
    let mut client_id = connect.client_id.clone();
    let mut assigned_id = false;
    if client_id.is_empty() {
        let allowed = config.mqtt.allow_zero_length_clientid
            && (version.is_v5() || (version == ProtocolVersion::V3_1_1 && connect.clean_start));
        if !allowed {
            // [MQTT-3.1.3-8]: identifier rejected.
            return Verdict::Refuse(
                Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
                "empty client id not allowed here".into(),
            );
        }
        client_id = broker.assign_client_id();
        assigned_id = true;
    }
    if client_id.len() > config.limits.max_client_id_length {
        return Verdict::Refuse(
            Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
            format!(
                "client id of {} bytes exceeds limits.max_client_id_length {}",
                client_id.len(),
                config.limits.max_client_id_length
            ),
        );
    }
    let auth = broker.auth();
    let cert = origin.tls.as_ref().and_then(|tls| tls.client_cert.as_ref());
    let mut identity = Identity::build(
        &origin.settings,
        Arc::clone(&origin.listener),
        &auth.groups,
        cert,
        &client_id,
        connect.username.as_deref(),
    );
    // Mosquitto's dynamic security decides first where it is configured.
    let by_dynsec = auth.dynsec.as_deref().and_then(|dynsec| {
        fleetmq_core::auth::dynsec::connect::authenticate(
            &origin.settings,
            dynsec,
            auth.passwords.is_some(),
            &mut identity,
            connect.password.as_deref(),
        )
    });
    let (outcome, replacement) = match by_dynsec {
        Some(outcome) => (outcome, None),
        None => authenticate(
            &origin.settings,
            auth.passwords.as_ref(),
            &mut identity,
            connect.password.as_deref(),
        ),
    };
    let refusal = match outcome {
        AuthOutcome::Allowed { .. } => None,
        AuthOutcome::BadCredentials => Some((
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            "bad user name or password, or a name the certificate does not carry",
        )),
        AuthOutcome::NotAuthorized => Some((
            ReasonCode::NOT_AUTHORIZED,
            "not authorised (no certificate or password, and anonymous access is off)",
        )),
        AuthOutcome::ClientIdMismatch => Some((
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            "client id differs from the client's identity (its certificate identity, else \
             its verified username)",
        )),
    };
    if let Some((reason, why)) = refusal {
        return Verdict::Refuse(Some(reason), why.into());
    }
    if let Some(replacement) = replacement {
        // The certificate's name becomes the session key: the same limit
        // as a client id sent in CONNECT (a CA may issue long names).
        if replacement.len() > config.limits.max_client_id_length {
            return Verdict::Refuse(
                Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
                format!(
                    "certificate identity of {} bytes (identity_as_clientid) exceeds \
                     limits.max_client_id_length {}",
                    replacement.len(),
                    config.limits.max_client_id_length
                ),
            );
        }
        client_id = replacement;
    }
    if broker.memory_exhausted() {
        // Above `limits.memory_limit`: a new session would only add to it.
        Stats::add(&broker.stats.memory_refusals, 1);
        return Verdict::Refuse(
            Some(ReasonCode::QUOTA_EXCEEDED),
            "the broker's heap is above limits.memory_limit".into(),
        );
    }
    let negotiated = match negotiate(connect, config, &broker.topic_limits) {
        Ok(negotiated) => negotiated,
        Err(refusal) => return Verdict::Refuse(refusal.reason, refusal.why),
    };
    Verdict::Accept(Accepted {
        client_id,
        identity,
        assigned_id,
        negotiated,
    })
}

fn refusal(reason: ReasonCode, config: &fleetmq_core::config::Config) -> Packet {
    Packet::ConnAck(ConnAck {
        session_present: false,
        reason,
        properties: fleetmq_core::protocol::connect::refusal_properties(config),
    })
}

/// Why no CONNECT could be read.
enum FirstPacketError {
    Io(std::io::Error),
    Closed,
    Decode(DecodeError),
}

/// Reads until the first packet is whole; it must be CONNECT.
async fn read_connect<S>(
    stream: &mut S,
    read_buf: &mut BytesMut,
    max_packet_size: u32,
    broker: &Engine,
) -> Result<Box<Connect>, FirstPacketError>
where
    S: AsyncRead + Unpin,
{
    loop {
        match codec::decode_packet(read_buf, None, max_packet_size) {
            Ok(Some(Packet::Connect(connect))) => {
                Stats::add(&broker.stats.messages_received, 1);
                return Ok(connect);
            }
            Ok(Some(other)) => {
                // The decoder refuses non-CONNECT first packets itself; this
                // is a second line of defence [MQTT-3.1.0-1].
                return Err(FirstPacketError::Decode(
                    DecodeError::FirstPacketNotConnect {
                        packet: other.name(),
                    },
                ));
            }
            Ok(None) => {}
            Err(error) => return Err(FirstPacketError::Decode(error)),
        }
        read_buf.reserve(1024);
        match stream.read_buf(read_buf).await {
            Ok(0) => return Err(FirstPacketError::Closed),
            Ok(n) => Stats::add(&broker.stats.bytes_received, n as u64),
            Err(error) => return Err(FirstPacketError::Io(error)),
        }
    }
}

/// Writes a refusing CONNACK directly (before a [`Client`] exists) and
/// closes lingering, so a client still sending reads it.
async fn refuse<S>(mut stream: S, packet: &Packet, version: ProtocolVersion)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    if codec::encode_packet(packet, version, &mut buf).is_err() {
        return;
    }
    let written = tokio::time::timeout(super::linger::LINGER_TIME, stream.write_all(&buf)).await;
    if matches!(written, Ok(Ok(()))) {
        lingering_close(stream).await;
    }
}

/// Whether the listener's `accept_protocol_versions` admits `version`.
fn protocol_accepted(
    listener: &fleetmq_core::config::ListenerConfig,
    version: ProtocolVersion,
) -> bool {
    let level = match version {
        ProtocolVersion::V3_1 => 3,
        ProtocolVersion::V3_1_1 => 4,
        ProtocolVersion::V5 => 5,
    };
    listener.accept_protocol_versions.is_empty()
        || listener.accept_protocol_versions.contains(&level)
}

fn version_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V3_1 => "3.1",
        ProtocolVersion::V3_1_1 => "3.1.1",
        ProtocolVersion::V5 => "5.0",
    }
}

/// The listener's mount point, as the protocol takes it.
fn client_mount_point(listener: &fleetmq_core::config::ListenerConfig) -> Option<Arc<str>> {
    listener
        .mount_point
        .as_deref()
        .filter(|mount| !mount.is_empty())
        .map(Arc::from)
}
