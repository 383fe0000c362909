//! The shapes the JSON API returns for devices: one client
//! ([`ClientView`]), its detail with past connects ([`ClientDetail`]), and
//! one remembered connect ([`ConnectRecord`]).
//!
//! Views are built at request time from the registry's entries; traffic
//! counters are read from the connection's atomics then, so they are live.
//! Field names are the API's contract (README, "Dashboard and API").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::clock::{ms, rfc3339, rfc3339_secs, unix_ms};
use fleetmq_core::events::{ClientCounters, Connected};
use fleetmq_core::peer::{HandshakeTiming, PeerCertificate, TlsInfo};

/// A connection the registry knows: the connect event and what it learnt
/// since.
#[derive(Debug, Clone)]
pub(super) struct Device {
    pub info: Arc<Connected>,
    /// CONNACK time (TCP accept plus the setup time).
    pub connected_at: SystemTime,
    /// Filter -> granted QoS.
    pub subscriptions: BTreeMap<String, u8>,
    /// Set once the connection ended.
    pub departure: Option<Box<Departure>>,
    /// What the device said about its connection (decision 0143).
    /// Boxed, like `departure`: most held devices have neither, and every
    /// connected device has a slot of this size in the registry's table.
    pub report: Option<Box<super::device_report::DeviceReport>>,
}

#[derive(Debug, Clone)]
pub(super) struct Departure {
    pub at: SystemTime,
    pub reason: String,
}

/// The setup of one connection, step by step, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimingsView {
    /// TCP accept -> whole ClientHello received (TLS only).
    pub tcp_to_client_hello: Option<f64>,
    /// ClientHello -> TLS handshake done: the cryptography (TLS only).
    pub client_hello_to_tls_done: Option<f64>,
    /// TCP accept -> TLS handshake done (TLS only).
    pub tls_handshake: Option<f64>,
    /// Transport ready (TLS done, or TCP accept) -> CONNECT received.
    pub tls_to_connect: Option<f64>,
    /// CONNECT received -> CONNACK written.
    pub connect_to_connack: Option<f64>,
    /// TCP accept -> CONNACK written.
    pub total: Option<f64>,
    /// Where the TLS handshake went (TLS only; decision 0142): the
    /// broker's work up to its flight, the wait for the client's reply (a
    /// network round trip plus the device's own work), the kernel's round
    /// trip for the socket, the device's part (the wait less one round
    /// trip), and the broker's work on the reply (for mutual TLS: the
    /// client's chain and CertificateVerify).
    pub broker_flight: Option<f64>,
    pub client_wait: Option<f64>,
    pub network_rtt: Option<f64>,
    pub device: Option<f64>,
    pub broker_verify: Option<f64>,
    /// Waiting for a handshake slot (`tls.max_concurrent_handshakes`).
    pub broker_queue: Option<f64>,
    /// Before the broker's flight, its task waiting to run (a busy machine).
    pub broker_scheduling: Option<f64>,
}

impl From<&HandshakeTiming> for TimingsView {
    fn from(timing: &HandshakeTiming) -> Self {
        TimingsView {
            tcp_to_client_hello: ms(timing.client_hello),
            client_hello_to_tls_done: ms(timing.tls_handshake),
            tls_handshake: ms(timing.tls_total),
            tls_to_connect: ms(timing.connect),
            connect_to_connack: ms(timing.connack),
            total: ms(timing.total),
            broker_flight: ms(timing.split.map(|s| s.broker_flight)),
            client_wait: ms(timing.split.map(|s| s.client_wait)),
            network_rtt: ms(timing.split.and_then(|s| s.network_rtt)),
            device: ms(timing.split.and_then(|s| s.device())),
            broker_verify: ms(timing.split.map(|s| s.broker_verify)),
            broker_queue: ms(timing.split.map(|s| s.broker_queue)),
            broker_scheduling: ms(timing.split.map(|s| s.broker_scheduling)),
        }
    }
}

/// The verified client certificate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CertView {
    pub subject: String,
    pub cn: Option<String>,
    /// Upper-case hex.
    pub serial: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// `not_after` in seconds since the Unix epoch.
    pub not_after_unix: i64,
    pub fingerprint_sha256: String,
    pub organizational_units: Vec<String>,
    pub san_dns: Vec<String>,
    /// X.509 version (1 or 3); the dashboard marks v1 devices.
    pub version: u32,
    /// Weak RSA key or SHA-1 signature; the dashboard marks it.
    pub weakness: Option<String>,
    /// `ECDSA P-256`, `RSA-2048`, ...
    pub key_type: String,
}

impl From<&PeerCertificate> for CertView {
    fn from(cert: &PeerCertificate) -> Self {
        CertView {
            subject: cert.subject.clone(),
            cn: cert.cn.as_deref().map(String::from),
            serial: cert.serial.to_string(),
            issuer: cert.issuer.to_string(),
            not_before: rfc3339_secs(cert.not_before),
            not_after: rfc3339_secs(cert.not_after),
            not_after_unix: cert.not_after,
            fingerprint_sha256: cert.fingerprint_sha256.to_string(),
            organizational_units: cert
                .organizational_units
                .iter()
                .map(|u| u.to_string())
                .collect(),
            san_dns: cert.san_dns.clone(),
            version: cert.version,
            weakness: cert.weakness.clone(),
            key_type: cert.key_type.to_string(),
        }
    }
}

/// What the TLS handshake negotiated.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TlsView {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// IANA name of the cipher suite.
    pub cipher: String,
    pub kx_group: Option<String>,
    pub resumed: bool,
    /// `one_way` or `mutual`.
    pub auth: &'static str,
    /// SNI the client sent.
    pub server_name: Option<String>,
    /// Null for one-way TLS.
    pub client_cert: Option<CertView>,
}

impl From<&TlsInfo> for TlsView {
    fn from(tls: &TlsInfo) -> Self {
        TlsView {
            version: tls.version.to_string(),
            cipher: tls.cipher_suite.to_string(),
            kx_group: tls.kx_group.as_deref().map(str::to_string),
            resumed: tls.resumed,
            auth: tls.auth.as_str(),
            server_name: tls.server_name.clone(),
            client_cert: tls.client_cert.as_ref().map(CertView::from),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubscriptionView {
    pub filter: String,
    pub qos: u8,
}

/// One client, connected or recently disconnected.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientView {
    pub client_id: String,
    /// Who the client is: the certificate CN, else the username, else the
    /// client id.
    pub identity: String,
    /// `certificate_cn`, `username` or `client_id`.
    pub identity_source: &'static str,
    /// Connection number, unique per broker run.
    pub connection: u64,
    pub connected: bool,
    /// `IP:PORT` of the client.
    pub peer: String,
    pub listener: String,
    /// `mqtt` or `websockets`: what the listener speaks.
    pub transport: &'static str,
    /// `3.1`, `3.1.1` or `5.0`.
    pub protocol: &'static str,
    pub keep_alive: u16,
    pub clean_start: bool,
    pub username: Option<String>,
    pub connected_at: String,
    pub connected_at_ms: u64,
    /// Null on plain TCP listeners.
    pub tls: Option<TlsView>,
    pub timings_ms: TimingsView,
    /// The device's own view of its connection, if it sent one
    /// (`$fleetmq/device/handshake`): what it says, shown as such.
    pub device_report: Option<super::device_report::DeviceReport>,
    pub subscriptions: Vec<SubscriptionView>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub last_activity: Option<String>,
    pub last_activity_ms: Option<u64>,
    pub disconnected_at: Option<String>,
    pub disconnect_reason: Option<String>,
}

/// `GET /api/clients/{client_id}`: the client and its last connects.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientDetail {
    #[serde(flatten)]
    pub client: ClientView,
    /// Newest first.
    pub history: Vec<ConnectRecord>,
}

/// One past connect of a client id, kept after the connection ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectRecord {
    pub connection: u64,
    pub connected_at: String,
    pub connected_at_ms: u64,
    pub peer: String,
    pub listener: String,
    /// `mqtt` or `websockets`.
    pub transport: &'static str,
    pub protocol: &'static str,
    /// `plain`, `one_way` or `mutual`.
    pub auth: &'static str,
    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    pub resumed: Option<bool>,
    pub client_cert: Option<CertView>,
    pub timings_ms: TimingsView,
    pub disconnected_at: Option<String>,
    pub disconnect_reason: Option<String>,
}

/// `3.1`, `3.1.1` or `5.0` for a CONNECT protocol level.
pub(super) fn protocol_name(level: u8) -> &'static str {
    match level {
        3 => "3.1",
        4 => "3.1.1",
        5 => "5.0",
        _ => "unknown",
    }
}

/// The identity a person recognises, and where it came from.
pub(super) fn identity(info: &Connected) -> (String, &'static str) {
    let cn = info
        .tls
        .as_ref()
        .and_then(|tls| tls.client_cert.as_ref())
        .and_then(|cert| cert.cn.clone());
    match (cn, &info.username) {
        (Some(cn), _) => (cn.to_string(), "certificate_cn"),
        (None, Some(username)) => (username.clone(), "username"),
        (None, None) => (info.client_id.to_string(), "client_id"),
    }
}

impl Device {
    pub fn view(&self) -> ClientView {
        let info = &self.info;
        let counters: &ClientCounters = &info.counters;
        let last_activity_ms = ClientCounters::get(&counters.last_activity_ms);
        let (identity, identity_source) = identity(info);
        ClientView {
            client_id: info.client_id.to_string(),
            identity,
            identity_source,
            connection: info.connection,
            connected: self.departure.is_none(),
            peer: info.peer.to_string(),
            listener: info.listener.to_string(),
            transport: info.transport.as_str(),
            protocol: protocol_name(info.protocol),
            keep_alive: info.keep_alive,
            clean_start: info.clean_start,
            username: info.username.clone(),
            connected_at: rfc3339(self.connected_at),
            connected_at_ms: unix_ms(self.connected_at),
            tls: info.tls.as_ref().map(TlsView::from),
            timings_ms: TimingsView::from(&info.timing),
            device_report: self.report.as_deref().cloned(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(filter, qos)| SubscriptionView {
                    filter: filter.clone(),
                    qos: *qos,
                })
                .collect(),
            messages_in: ClientCounters::get(&counters.messages_in),
            messages_out: ClientCounters::get(&counters.messages_out),
            bytes_in: ClientCounters::get(&counters.bytes_in),
            bytes_out: ClientCounters::get(&counters.bytes_out),
            last_activity: (last_activity_ms > 0).then(|| {
                rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(last_activity_ms))
            }),
            last_activity_ms: (last_activity_ms > 0).then_some(last_activity_ms),
            disconnected_at: self.departure.as_ref().map(|d| rfc3339(d.at)),
            disconnect_reason: self.departure.as_ref().map(|d| d.reason.clone()),
        }
    }

    /// The history entry of this connection.
    pub fn record(&self) -> Remembered {
        Remembered {
            info: Arc::clone(&self.info),
            connected_at: self.connected_at,
            ended: None,
        }
    }
}

/// One connect of a client id as the registry keeps it: the connection's
/// facts, shared with its [`Device`] while it is connected, and how it
/// ended. The [`ConnectRecord`] (strings, a certificate view) is made only
/// when someone asks: kept ready-made it doubled what the dashboard holds
/// for every held device (issue 22, memory per held connection).
#[derive(Debug, Clone)]
pub struct Remembered {
    pub info: Arc<Connected>,
    pub connected_at: SystemTime,
    /// When and why the connection ended.
    pub ended: Option<(SystemTime, String)>,
}

impl Remembered {
    /// The client certificate of this connect.
    pub fn client_cert(&self) -> Option<&PeerCertificate> {
        self.info.tls.as_ref().and_then(|t| t.client_cert.as_ref())
    }

    pub fn view(&self) -> ConnectRecord {
        let info = &self.info;
        let tls = info.tls.as_ref();
        ConnectRecord {
            connection: info.connection,
            connected_at: rfc3339(self.connected_at),
            connected_at_ms: unix_ms(self.connected_at),
            peer: info.peer.to_string(),
            listener: info.listener.to_string(),
            transport: info.transport.as_str(),
            protocol: protocol_name(info.protocol),
            auth: tls.map_or("plain", |t| t.auth.as_str()),
            tls_version: tls.map(|t| t.version.to_string()),
            cipher: tls.map(|t| t.cipher_suite.to_string()),
            resumed: tls.map(|t| t.resumed),
            client_cert: self.client_cert().map(CertView::from),
            timings_ms: TimingsView::from(&info.timing),
            disconnected_at: self.ended.as_ref().map(|(at, _)| rfc3339(*at)),
            disconnect_reason: self.ended.as_ref().map(|(_, reason)| reason.clone()),
        }
    }
}
