//! Why a connection ends: decided by the protocol (a violation, a
//! DISCONNECT, a store failure it cannot express) or by the IO loop (the
//! socket, keep alive, a stalled peer, a take-over or shutdown request).

use std::time::Duration;

use crate::session::Control;
use fleetmq_codec::ReasonCode;

/// Why a connection's loop ended.
#[derive(Debug)]
pub enum Exit {
    /// The client sent DISCONNECT; `publish_will` for 5.0 reason 0x04.
    ClientDisconnect { publish_will: bool },
    /// The client closed the socket without DISCONNECT.
    Closed,
    /// Reading or writing failed.
    Io(std::io::Error),
    /// Nothing arrived within 1.5 times the keep alive [MQTT-3.1.2-24].
    KeepAliveTimeout,
    /// A write made no progress for this long: the peer stopped reading.
    WriteStalled(Duration),
    /// The client broke the protocol; 5.0 clients get DISCONNECT `reason`.
    Violation { reason: ReasonCode, detail: String },
    /// The broker asked the connection to close (take-over, shutdown).
    Control(ReasonCode),
    /// The store (or, on a cluster node, JetStream: decision 0158) could
    /// not make durable what this acknowledgement promises, and
    /// the packet has no way to say so (3.1.1, or not a PUBACK/PUBREC):
    /// the client resends after reconnecting.
    StoreFailed(&'static str),
    /// A cluster node without NATS JetStream refused a QoS 1/2 PUBLISH
    /// that a 3.1.1 acknowledgement cannot refuse (decision 0158): the
    /// client resends after reconnecting.
    ClusterUnavailable(&'static str),
}

impl Exit {
    /// The exit a broker request asks for; a dropped sender means shutdown.
    pub fn requested(request: Option<Control>) -> Exit {
        match request {
            Some(Control::Disconnect(reason)) => Exit::Control(reason),
            None => Exit::Control(ReasonCode::SERVER_SHUTTING_DOWN),
        }
    }

    pub(crate) fn violation(reason: ReasonCode, detail: impl Into<String>) -> Exit {
        Exit::Violation {
            reason,
            detail: detail.into(),
        }
    }
}
