//! The device's MQTT conversation, without IO.
//!
//! [`MqttSession::start`] gives the CONNECT bytes; the caller feeds every
//! packet from the broker to [`MqttSession::on_packet`] and calls
//! [`MqttSession::on_timer`] when [`MqttSession::next_timer_ms`] passes. The
//! session answers with [`Output`]s: bytes to send and log lines in the
//! shape the lab knows from Mongoose-OS (`MQTT0 CONNACK 0`, `MQTT
//! connected`, `Published:OK topic:... msg:CONNECTED!`).
//!
//! On CONNACK it sends its report on the connection (if any, QoS 0, on
//! [`REPORT_TOPIC`]), publishes the retained `online` status (the will publishes
//! the retained `offline`), subscribes to the command topic and publishes
//! `CONNECTED!`. A `ping` on the command topic is answered with `pong` on the
//! response topic; `reconnect` answers `reconnecting`, sends DISCONNECT and
//! asks the caller to close (a lab tool to measure reconnects and TLS
//! session resumption). Keepalive: a PINGREQ after `keep_alive` seconds without
//! sending, and the connection is declared dead when no PINGRESP (or any
//! packet) arrives within half a keepalive after it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::codec::{self, connack_reason, Connect, Packet, Will};
use crate::topic::DeviceNames;

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the connection.
    Send(Vec<u8>),
    /// Print this line to the device log.
    Log(String),
    /// CONNACK accepted: the device is online (resets the backoff).
    Online,
    /// Close the connection after sending what came before (the
    /// `reconnect` command); the device reconnects after the backoff.
    Close(String),
    /// Subscribed to the OTA offer and chunk topics: the OTA agent may
    /// confirm the image and report (`SessionSettings::ota`).
    OtaReady,
    /// A message on the OTA offer topic (`chunk: false`) or chunk topic.
    Ota { chunk: bool, payload: Vec<u8> },
}

/// Why the session ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// CONNACK with a non-zero return code.
    Refused(u8),
    /// No CONNACK within the keepalive interval.
    NoConnAck,
    /// No PINGRESP in time: the connection is dead.
    KeepaliveTimeout,
    /// The broker broke the protocol.
    Protocol(String),
}

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SessionError::Refused(code) => {
                write!(f, "CONNACK {code} ({})", connack_reason(*code))
            }
            SessionError::NoConnAck => f.write_str("no CONNACK in time"),
            SessionError::KeepaliveTimeout => f.write_str("no PINGRESP in time (keepalive)"),
            SessionError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

/// What an outstanding packet id is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// PUBACK of a publish to log as `Published:OK`.
    Publish { topic: String, message: String },
    /// SUBACK of the command subscription.
    Subscribe,
    /// SUBACK of an OTA subscription (`last`: the chunk topic's, after
    /// which the agent runs).
    OtaSubscribe { last: bool },
    /// PUBACK of a publish nobody logs (the OTA agent's).
    Quiet,
}

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Client id and topics.
    pub names: DeviceNames,
    /// Keep alive in seconds.
    pub keep_alive_secs: u16,
    /// Will payload (retained on the status topic).
    pub will_message: String,
    /// User name.
    pub user: Option<String>,
    /// Password.
    pub pass: Option<String>,
    /// The device's view of its connection (JSON), published once at QoS 0
    /// on [`REPORT_TOPIC`] after CONNACK, for the broker's dashboard.
    pub report: Option<String>,
    /// Subscribe to this device's OTA offer and chunk topics and hand
    /// their messages to the caller ([`Output::Ota`]).
    pub ota: bool,
}

/// Where fleetmq takes a device's report on its own connection (decision
/// 0143). Other brokers route or refuse it; either is harmless at QoS 0.
pub const REPORT_TOPIC: &str = "$fleetmq/device/handshake";

/// One connection's MQTT state.
#[derive(Debug)]
pub struct MqttSession {
    settings: SessionSettings,
    online: bool,
    started_ms: u64,
    last_sent_ms: u64,
    ping_sent_ms: Option<u64>,
    next_id: u16,
    pending: Vec<(u16, Pending)>,
    /// QoS 2 packet ids received and not yet released.
    qos2_received: Vec<u16>,
    /// The broker refused an OTA subscription on this connection.
    ota_refused: bool,
}

impl MqttSession {
    /// A session that has not sent anything yet.
    pub fn new(settings: SessionSettings) -> MqttSession {
        MqttSession {
            settings,
            online: false,
            started_ms: 0,
            last_sent_ms: 0,
            ping_sent_ms: None,
            next_id: 0,
            pending: Vec::new(),
            qos2_received: Vec::new(),
            ota_refused: false,
        }
    }

    /// The names this session uses.
    pub fn names(&self) -> &DeviceNames {
        &self.settings.names
    }

    /// True after an accepted CONNACK.
    pub fn is_online(&self) -> bool {
        self.online
    }

    fn keep_alive_ms(&self) -> u64 {
        u64::from(self.settings.keep_alive_secs) * 1000
    }

    /// The CONNECT packet (clean session, retained QoS 1 will).
    pub fn start(&mut self, now_ms: u64) -> Vec<u8> {
        self.started_ms = now_ms;
        self.last_sent_ms = now_ms;
        let s = &self.settings;
        codec::connect(&Connect {
            client_id: &s.names.client_id,
            keep_alive: s.keep_alive_secs,
            clean_session: true,
            will: Some(Will {
                topic: &s.names.status,
                message: s.will_message.as_bytes(),
                qos: 1,
                retain: true,
            }),
            username: s.user.as_deref(),
            password: s.pass.as_deref().map(str::as_bytes),
        })
    }

    fn next_packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.next_id
    }

    fn send(&mut self, bytes: Vec<u8>, now_ms: u64, out: &mut Vec<Output>) {
        self.last_sent_ms = now_ms;
        out.push(Output::Send(bytes));
    }

    /// Publishes at QoS 1 and logs `Published:OK` when the PUBACK comes.
    fn publish_confirmed(
        &mut self,
        topic: String,
        message: &str,
        retain: bool,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let id = self.next_packet_id();
        let bytes = codec::publish(&topic, message.as_bytes(), 1, retain, id);
        self.pending.push((
            id,
            Pending::Publish {
                topic,
                message: String::from(message),
            },
        ));
        self.send(bytes, now_ms, out);
    }

    /// Handles one packet from the broker.
    pub fn on_packet(
        &mut self,
        packet: Packet<'_>,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), SessionError> {
        // Any packet proves the connection alive; only PINGRESP ends a ping.
        if !self.online && !matches!(packet, Packet::ConnAck { .. }) {
            return Err(SessionError::Protocol(String::from(
                "packet before CONNACK",
            )));
        }
        match packet {
            Packet::ConnAck { code, .. } => {
                out.push(Output::Log(format!("MQTT0 CONNACK {code}")));
                if self.online {
                    return Err(SessionError::Protocol(String::from("second CONNACK")));
                }
                if code != 0 {
                    return Err(SessionError::Refused(code));
                }
                self.online = true;
                out.push(Output::Log(String::from("MQTT connected")));
                out.push(Output::Online);
                let names = self.settings.names.clone();
                if let Some(report) = self.settings.report.take() {
                    self.send(
                        codec::publish(REPORT_TOPIC, report.as_bytes(), 0, false, 0),
                        now_ms,
                        out,
                    );
                }
                self.publish_confirmed(names.status, "online", true, now_ms, out);
                let id = self.next_packet_id();
                self.pending.push((id, Pending::Subscribe));
                self.send(codec::subscribe(id, &names.command, 1), now_ms, out);
                self.publish_confirmed(names.connected, "CONNECTED!", false, now_ms, out);
                if self.settings.ota {
                    let topics = [
                        crate::ota::offer_topic(&names.client_id),
                        crate::ota::chunk_topic(&names.client_id),
                    ];
                    for (index, topic) in topics.iter().enumerate() {
                        let id = self.next_packet_id();
                        let last = index == 1;
                        self.pending.push((id, Pending::OtaSubscribe { last }));
                        self.send(codec::subscribe(id, topic, 1), now_ms, out);
                    }
                }
            }
            Packet::PubAck(id) => match self.take_pending(id) {
                Some(Pending::Publish { topic, message }) => {
                    out.push(Output::Log(format!(
                        "Published:OK topic:{topic} msg:{message}"
                    )));
                }
                Some(Pending::Quiet) => {}
                _ => {
                    return Err(SessionError::Protocol(format!(
                        "PUBACK for unknown packet id {id}"
                    )))
                }
            },
            Packet::SubAck { packet_id, codes } => match self.take_pending(packet_id) {
                Some(Pending::Subscribe) => {
                    let command = &self.settings.names.command;
                    if codes.first() == Some(&0x80) {
                        out.push(Output::Log(format!(
                            "MQTT0 subscription to {command} refused by the broker (ACL?)"
                        )));
                    } else {
                        out.push(Output::Log(format!("MQTT0 subscribed to {command}")));
                    }
                }
                Some(Pending::OtaSubscribe { last }) => {
                    if codes.first() == Some(&0x80) {
                        if !self.ota_refused {
                            out.push(Output::Log(String::from(
                                "OTA subscription refused by the broker: no updates on this connection",
                            )));
                        }
                        self.ota_refused = true;
                    } else if last && !self.ota_refused {
                        // Only now may the agent confirm a new image: the
                        // broker answers this device on its OTA topics.
                        out.push(Output::OtaReady);
                    }
                }
                _ => {
                    return Err(SessionError::Protocol(format!(
                        "SUBACK for unknown packet id {packet_id}"
                    )))
                }
            },
            Packet::Publish {
                topic,
                payload,
                qos,
                packet_id,
                ..
            } => {
                let first_delivery = match (qos, packet_id) {
                    (1, Some(id)) => {
                        self.send(codec::ack(0x40, id), now_ms, out);
                        true
                    }
                    (2, Some(id)) => {
                        self.send(codec::ack(0x50, id), now_ms, out);
                        if self.qos2_received.contains(&id) {
                            false
                        } else {
                            self.qos2_received.push(id);
                            true
                        }
                    }
                    _ => true,
                };
                if first_delivery && topic == self.settings.names.command {
                    self.on_command(payload, now_ms, out);
                } else if first_delivery && self.settings.ota {
                    let id = &self.settings.names.client_id;
                    if topic == crate::ota::offer_topic(id) {
                        out.push(Output::Ota {
                            chunk: false,
                            payload: Vec::from(payload),
                        });
                    } else if topic == crate::ota::chunk_topic(id) {
                        out.push(Output::Ota {
                            chunk: true,
                            payload: Vec::from(payload),
                        });
                    }
                }
            }
            Packet::PubRel(id) => {
                self.qos2_received.retain(|held| *held != id);
                self.send(codec::ack(0x70, id), now_ms, out);
            }
            Packet::PingResp => self.ping_sent_ms = None,
            Packet::PubRec(id) | Packet::UnsubAck(id) => {
                return Err(SessionError::Protocol(format!(
                    "unexpected acknowledgement for packet id {id}"
                )))
            }
        }
        Ok(())
    }

    /// Publishes `payload` at QoS 1 without logging its PUBACK (the OTA
    /// agent's status and fetches).
    pub fn publish_quiet(
        &mut self,
        topic: &str,
        payload: &[u8],
        now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let id = self.next_packet_id();
        self.pending.push((id, Pending::Quiet));
        self.send(codec::publish(topic, payload, 1, false, id), now_ms, out);
    }

    fn take_pending(&mut self, id: u16) -> Option<Pending> {
        let at = self.pending.iter().position(|(held, _)| *held == id)?;
        Some(self.pending.swap_remove(at).1)
    }

    /// A message on the command topic.
    fn on_command(&mut self, payload: &[u8], now_ms: u64, out: &mut Vec<Output>) {
        let command = core::str::from_utf8(payload).unwrap_or("").trim();
        let reply = match command {
            "ping" => String::from("pong"),
            "reconnect" => String::from("reconnecting"),
            _ => format!("unknown command: {}", command.escape_debug()),
        };
        out.push(Output::Log(format!(
            "Command `{}` on {}: answered `{reply}`",
            command.escape_debug(),
            self.settings.names.command
        )));
        let topic = self.settings.names.response.clone();
        self.send(
            codec::publish(&topic, reply.as_bytes(), 0, false, 0),
            now_ms,
            out,
        );
        if command == "reconnect" {
            self.send(codec::disconnect(), now_ms, out);
            out.push(Output::Close(String::from(
                "reconnect requested by command",
            )));
        }
    }

    /// When [`MqttSession::on_timer`] must be called next (absolute ms).
    pub fn next_timer_ms(&self) -> u64 {
        let keep_alive = self.keep_alive_ms();
        if !self.online {
            return self.started_ms + keep_alive;
        }
        match self.ping_sent_ms {
            Some(sent) => sent + self.ping_timeout_ms(),
            None => self.last_sent_ms + keep_alive,
        }
    }

    fn ping_timeout_ms(&self) -> u64 {
        (self.keep_alive_ms() / 2).max(1000)
    }

    /// Keepalive: sends PINGREQ when due; errors when the broker is silent.
    pub fn on_timer(&mut self, now_ms: u64, out: &mut Vec<Output>) -> Result<(), SessionError> {
        if !self.online {
            if now_ms >= self.started_ms + self.keep_alive_ms() {
                return Err(SessionError::NoConnAck);
            }
            return Ok(());
        }
        if let Some(sent) = self.ping_sent_ms {
            if now_ms >= sent + self.ping_timeout_ms() {
                return Err(SessionError::KeepaliveTimeout);
            }
            return Ok(());
        }
        if now_ms >= self.last_sent_ms + self.keep_alive_ms() {
            self.ping_sent_ms = Some(now_ms);
            self.send(codec::pingreq(), now_ms, out);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
