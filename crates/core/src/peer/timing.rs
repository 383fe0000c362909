//! When each step of a connection's setup happened, and what it cost.
//!
//! The lab's question is "how long did this device take to connect, and
//! where did the time go?": TCP accept -> ClientHello -> TLS handshake
//! complete -> CONNECT received -> CONNACK sent. A [`ConnectClock`] records
//! the instants as they happen; [`HandshakeTiming`] is the finished,
//! shareable record.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// How the TLS peer was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Plain TCP, no TLS.
    Plain,
    /// TLS where only the client checked the broker's certificate.
    OneWay,
    /// TLS where the broker also verified a client certificate.
    Mutual,
}

impl AuthMode {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Plain => "plain",
            AuthMode::OneWay => "one_way",
            AuthMode::Mutual => "mutual",
        }
    }
}

/// Instants recorded while a connection is set up.
#[derive(Debug, Clone, Copy)]
pub struct ConnectClock {
    /// Wall-clock time of the TCP accept, for display.
    pub accepted_wall: SystemTime,
    pub accepted: Instant,
    /// The whole ClientHello had arrived (TLS only).
    pub client_hello: Option<Instant>,
    /// The TLS handshake finished (TLS only).
    pub tls_done: Option<Instant>,
    /// The CONNECT packet was decoded.
    pub connect: Option<Instant>,
    /// The CONNACK was written to the socket.
    pub connack: Option<Instant>,
    /// Where the TLS handshake's time went (TLS only).
    pub split: Option<HandshakeSplit>,
}

/// One TLS handshake's time divided between the network, the device and
/// the broker, as the broker sees it (decision 0142):
///
/// ```text
/// ClientHello ─────────────────> flight sent ─────────────────────────> done
///   = broker_flight + broker_queue   = client_wait + broker_verify
///     + broker_scheduling              (+ broker_queue)
///                                    client_wait = network_rtt + device
/// ```
///
/// After its flight the broker is either computing (its polls: the
/// client's certificate chain and CertificateVerify), queueing for a
/// handshake slot, or waiting for the client; the client's reply may come
/// in pieces (mbedTLS sends its Certificate before computing its
/// signature), so every wait up to the end counts as the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HandshakeSplit {
    /// The broker's own work from the ClientHello to its flight (key
    /// exchange, signing): time spent computing, not waiting.
    pub broker_flight: Duration,
    /// From the broker's flight to the end of the handshake, less the
    /// broker's work and queueing in that time: what the client (and the
    /// network between) took.
    pub client_wait: Duration,
    /// The kernel's smoothed round trip of the socket (`TCP_INFO`) at the
    /// end of the handshake; None where the kernel does not say.
    pub network_rtt: Option<Duration>,
    /// The broker's work after the reply began (for mutual TLS: the
    /// client chain and its CertificateVerify) until the handshake ended.
    pub broker_verify: Duration,
    /// Time the handshake waited for a slot (`max_concurrent_handshakes`)
    /// after the ClientHello: the broker's queue.
    pub broker_queue: Duration,
    /// Before its flight, time the broker neither computed nor queued for
    /// a slot: its task waiting to run (a busy or starved machine).
    pub broker_scheduling: Duration,
}

impl HandshakeSplit {
    /// What the device spent beyond the network: `client_wait` less one
    /// round trip (its certificate checks, key share and, for mutual TLS,
    /// signing CertificateVerify). None without a round trip.
    pub fn device(&self) -> Option<Duration> {
        self.network_rtt
            .map(|rtt| self.client_wait.saturating_sub(rtt))
    }
}

impl ConnectClock {
    /// Starts the clock at TCP accept.
    pub fn start() -> ConnectClock {
        ConnectClock {
            accepted_wall: SystemTime::now(),
            accepted: Instant::now(),
            client_hello: None,
            tls_done: None,
            connect: None,
            connack: None,
            split: None,
        }
    }

    /// The finished record; steps that did not happen are `None`.
    pub fn timing(&self) -> HandshakeTiming {
        let since =
            |from: Instant, to: Option<Instant>| to.map(|to| to.saturating_duration_since(from));
        let transport_ready = self.tls_done.unwrap_or(self.accepted);
        HandshakeTiming {
            accepted_at: self.accepted_wall,
            client_hello: since(self.accepted, self.client_hello),
            tls_handshake: self
                .client_hello
                .and_then(|hello| since(hello, self.tls_done)),
            tls_total: since(self.accepted, self.tls_done),
            connect: since(transport_ready, self.connect),
            connack: self
                .connect
                .and_then(|connect| since(connect, self.connack)),
            total: since(self.accepted, self.connack),
            split: self.split,
        }
    }
}

/// Durations of each setup step of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HandshakeTiming {
    /// When the TCP connection was accepted.
    pub accepted_at: SystemTime,
    /// TCP accept -> whole ClientHello received (TLS only).
    pub client_hello: Option<Duration>,
    /// ClientHello -> TLS handshake complete (TLS only): the cryptography.
    pub tls_handshake: Option<Duration>,
    /// TCP accept -> TLS handshake complete (TLS only).
    pub tls_total: Option<Duration>,
    /// Transport ready (TLS done, or TCP accept) -> CONNECT received.
    pub connect: Option<Duration>,
    /// CONNECT received -> CONNACK written.
    pub connack: Option<Duration>,
    /// TCP accept -> CONNACK written.
    pub total: Option<Duration>,
    /// The TLS handshake divided between network, device and broker.
    pub split: Option<HandshakeSplit>,
}

/// Milliseconds with microsecond precision, for log lines.
pub fn millis(duration: Option<Duration>) -> String {
    match duration {
        Some(d) => format!("{:.3} ms", d.as_secs_f64() * 1000.0),
        None => "-".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_measured_between_consecutive_instants() {
        let mut clock = ConnectClock::start();
        let t0 = clock.accepted;
        clock.client_hello = Some(t0 + Duration::from_millis(5));
        clock.tls_done = Some(t0 + Duration::from_millis(25));
        clock.connect = Some(t0 + Duration::from_millis(26));
        clock.connack = Some(t0 + Duration::from_millis(28));
        let timing = clock.timing();
        assert_eq!(timing.client_hello, Some(Duration::from_millis(5)));
        assert_eq!(timing.tls_handshake, Some(Duration::from_millis(20)));
        assert_eq!(timing.tls_total, Some(Duration::from_millis(25)));
        assert_eq!(timing.connect, Some(Duration::from_millis(1)));
        assert_eq!(timing.connack, Some(Duration::from_millis(2)));
        assert_eq!(timing.total, Some(Duration::from_millis(28)));
    }

    #[test]
    fn plain_connections_have_no_tls_steps() {
        let mut clock = ConnectClock::start();
        let t0 = clock.accepted;
        clock.connect = Some(t0 + Duration::from_millis(3));
        clock.connack = Some(t0 + Duration::from_millis(4));
        let timing = clock.timing();
        assert_eq!(timing.tls_handshake, None);
        assert_eq!(timing.connect, Some(Duration::from_millis(3)));
        assert_eq!(timing.total, Some(Duration::from_millis(4)));
    }
}
