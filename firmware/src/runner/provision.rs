//! One provisioning exchange over the device's TLS connection (with the
//! claim certificate, or its own for a renewal): CONNECT, SUBSCRIBE to the
//! response topic, PUBLISH the request, wait for the answer, DISCONNECT
//! (docs/provisioning.md). The caller stores what it gets and reconnects.

use alloc::format;
use alloc::string::String;
use alloc::vec;

use embassy_futures::select::{select, Either};
use embedded_io_async::Write;
use mbedtls_rs::{Session, SessionConfig, TlsReference};

use super::{Clock, Device, Log, Net, NetError};
use crate::machine::Phase;
use crate::mqtt::codec::{self, Connect, Packet};
use crate::provision::message::{self, Answer};
use crate::provision::{request_topic, response_topic};

/// Largest answer read (a chain of two P-256 certificates is about 1.7 KiB).
const RX_BUFFER: usize = 8192;

/// Sends `request` (the JSON document) and returns the broker's answer,
/// or why the exchange failed within `timeout_ms`.
pub async fn ask<N: Net, C: Clock, L: Log>(
    net: &mut N,
    clock: &C,
    log: &L,
    device: &Device,
    tls: TlsReference<'_>,
    request: &str,
    timeout_ms: u64,
) -> Result<Answer, NetError> {
    let config = &device.config;
    let client_id = device.names.client_id.as_str();
    log.line(&format!(
        "PROV connecting to {} as {client_id}",
        config.server
    ));
    let mut socket = net.connect(&config.host, config.port).await?;
    let client_config = SessionConfig::Client(device.tls.client_config());
    let mut session = Session::new(tls, &mut socket, &client_config)
        .map_err(|e| fail(Phase::Tls, format!("cannot create TLS session: {e}")))?;
    session
        .connect()
        .await
        .map_err(|e| fail(Phase::Tls, format!("handshake failed: {e}")))?;
    let deadline = clock.now_ms().saturating_add(timeout_ms);
    let connect = codec::connect(&Connect {
        client_id,
        keep_alive: 30,
        clean_session: true,
        will: None,
        username: None,
        password: None,
    });
    send(&mut session, &connect).await?;
    let response = response_topic(client_id);
    let mut buf = vec![0u8; RX_BUFFER];
    let mut filled = 0;
    let mut asked = false;
    loop {
        let used = match codec::decode(&buf[..filled], RX_BUFFER) {
            Ok(Some((packet, used))) => {
                match packet {
                    Packet::ConnAck { code: 0, .. } => {
                        send(&mut session, &codec::subscribe(1, &response, 1)).await?;
                    }
                    Packet::ConnAck { code, .. } => {
                        return Err(fail(
                            Phase::Mqtt,
                            format!("CONNACK {code} ({})", codec::connack_reason(code)),
                        ));
                    }
                    Packet::SubAck { codes, .. } if codes.first() == Some(&0x80) => {
                        return Err(fail(
                            Phase::Mqtt,
                            format!("subscription to {response} refused"),
                        ));
                    }
                    Packet::SubAck { .. } if !asked => {
                        asked = true;
                        let publish = codec::publish(
                            &request_topic(client_id),
                            request.as_bytes(),
                            1,
                            false,
                            2,
                        );
                        send(&mut session, &publish).await?;
                    }
                    Packet::Publish {
                        topic,
                        payload,
                        qos,
                        packet_id,
                        ..
                    } if topic == response => {
                        if let (1, Some(id)) = (qos, packet_id) {
                            send(&mut session, &codec::ack(0x40, id)).await?;
                        }
                        let answer = message::answer(payload).ok_or_else(|| {
                            fail(
                                Phase::Online,
                                String::from("the answer is not a provisioning answer"),
                            )
                        });
                        let _ = send(&mut session, &codec::disconnect()).await;
                        return answer;
                    }
                    _ => {}
                }
                used
            }
            Ok(None) => {
                let wait = deadline.saturating_sub(clock.now_ms());
                if wait == 0 {
                    return Err(fail(Phase::Online, String::from("no answer in time")));
                }
                let Some(free) = buf.get_mut(filled..) else {
                    return Err(fail(Phase::Online, String::from("answer too large")));
                };
                match select(session.read(free), clock.sleep_ms(wait)).await {
                    Either::First(Ok(0)) => {
                        return Err(fail(
                            Phase::Online,
                            String::from("connection closed by the broker"),
                        ))
                    }
                    Either::First(Ok(n)) => filled += n,
                    Either::First(Err(e)) => {
                        return Err(fail(Phase::Online, format!("read failed: {e:?}")))
                    }
                    Either::Second(()) => {}
                }
                continue;
            }
            Err(e) => return Err(fail(Phase::Online, format!("{e}"))),
        };
        buf.copy_within(used..filled, 0);
        filled -= used;
    }
}

async fn send<W: Write>(writer: &mut W, bytes: &[u8]) -> Result<(), NetError> {
    let written = match writer.write_all(bytes).await {
        Ok(()) => writer.flush().await,
        Err(e) => Err(e),
    };
    written.map_err(|e| fail(Phase::Online, format!("write failed: {e:?}")))
}

fn fail(phase: Phase, message: String) -> NetError {
    NetError { phase, message }
}
