//! A device's own view of its connection, published on
//! [`DEVICE_REPORT_TOPIC`] right after it connected (its TLS handshake as
//! its TLS library timed it, its chip and clock, hardware crypto): the
//! broker folds it into the connection's record beside its own view of the
//! same handshake (decision 0143).
//!
//! The topic belongs to the broker: a report is never routed to
//! subscribers or retained, and needs no ACL rule (it only describes the
//! publisher's own connection, on the dashboard). The first report of a
//! connection up to [`MAX_REPORT_BYTES`] is taken; later or larger ones are
//! acknowledged and dropped, so a device cannot flood the observer.
//!
//! Owns: recognising a report and handing it on as an event. Must not:
//! parse the payload (the observer does, at its own pace) or route it.

use bytes::Bytes;

use super::ClientProtocol;
use crate::events::Event;

/// Where devices publish their view of the handshake.
pub const DEVICE_REPORT_TOPIC: &str = "$fleetmq/device/handshake";

/// Larger reports are dropped (a report is about 200 bytes of JSON).
pub const MAX_REPORT_BYTES: usize = 1024;

impl ClientProtocol {
    /// Takes a report publish; true when `topic` is the report topic (the
    /// caller then acknowledges it and does nothing else with it).
    pub(super) fn take_device_report(&mut self, topic: &str, payload: &Bytes) -> bool {
        if topic != DEVICE_REPORT_TOPIC {
            return false;
        }
        if !self.reported && payload.len() <= MAX_REPORT_BYTES {
            self.reported = true;
            self.broker.events.emit(Event::DeviceReport {
                client_id: std::sync::Arc::clone(&self.client_id),
                connection: self.generation,
                payload: payload.clone(),
            });
        }
        true
    }
}
