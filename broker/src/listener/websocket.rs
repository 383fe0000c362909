//! WebSocket listeners: the HTTP upgrade (RFC 6455) that comes after TLS
//! and before MQTT, and [`WsStream`], which carries the MQTT byte stream
//! in binary WebSocket messages so that [`crate::connection::serve`] runs
//! unchanged over it (same CONNECT timeout, authentication, ACLs, limits).
//!
//! It owns the upgrade's rules: the subprotocol (`mqtt` or `mqttv3.1`,
//! the one the client offered is echoed), the optional request path, a
//! time limit (`limits.connect_timeout_secs`) and a size limit (the request
//! head may not pass [`MAX_UPGRADE_BYTES`]; tungstenite's own cap is
//! 64 KiB, ours is smaller and checked on every read). It must not know
//! MQTT packets: a packet may span messages and a message may hold several
//! packets, which the connection loop's decoder already handles.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::connection::{self, Origin};
use fleetmq_core::engine::Engine;

/// The MQTT subprotocols (MQTT 5.0 §6; `mqttv3.1` for 3.1 clients), in
/// Mosquitto's order.
pub const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Most bytes an upgrade request may send before its upgrade is answered:
/// a browser's request with cookies fits in a few KiB.
pub const MAX_UPGRADE_BYTES: usize = 16 * 1024;

/// Room tungstenite reads into, per connection (its default, 128 KiB,
/// would cost every held device that much).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Upgrades `stream` (TCP or TLS, already accepted) to a WebSocket and
/// serves MQTT over it; a refused upgrade is logged and closed.
pub async fn serve<S>(
    connection: Box<(S, Origin)>,
    broker: Arc<Engine>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (stream, origin) = {
        let connection = connection;
        *connection
    };
    let limits = &broker.config.limits;
    let wait = Duration::from_secs(limits.connect_timeout_secs);
    // A message may hold a whole packet of the largest size and a few
    // small ones; tungstenite's 64 MiB default would let one message
    // outgrow every packet limit.
    let max_message = (limits.max_packet_size as usize).saturating_add(64 * 1024);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let path = origin.settings.path.as_deref();
    match upgrade(stream, path, wait, config).await {
        Ok(ws) => {
            tracing::debug!(listener = %origin.listener, peer = %origin.peer, "WebSocket upgrade from {} on listener \"{}\" accepted.", origin.peer, origin.listener);
            connection::serve(Box::new((ws, origin)), broker, shutdown).await;
        }
        Err(refusal) => {
            tracing::info!(
                listener = %origin.listener,
                peer = %origin.peer,
                reason = refusal.label(),
                "WebSocket upgrade from {} on listener \"{}\" refused: {}.",
                origin.peer,
                origin.listener,
                refusal
            );
        }
    }
}

/// Why an upgrade request was not upgraded.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeRefusal {
    #[error("no upgrade request within {0:?}")]
    Timeout(Duration),
    #[error("the upgrade request passed {MAX_UPGRADE_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Refused(String),
    #[error("not a WebSocket upgrade request ({0})")]
    Invalid(String),
}

impl UpgradeRefusal {
    /// Short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            UpgradeRefusal::Timeout(_) => "timeout",
            UpgradeRefusal::TooLarge => "too_large",
            UpgradeRefusal::Refused(_) => "refused",
            UpgradeRefusal::Invalid(_) => "invalid",
        }
    }
}

/// Runs the server side of the upgrade within `wait`.
pub async fn upgrade<S>(
    stream: S,
    path: Option<&str>,
    wait: Duration,
    config: WebSocketConfig,
) -> Result<WsStream<S>, UpgradeRefusal>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let capped = Capped {
        inner: stream,
        budget: Some(MAX_UPGRADE_BYTES),
    };
    let mut refusal: Option<String> = None;
    // The error type is tungstenite's (an HTTP response), not ours.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| {
        check_request(request, response, path).map_err(|(status, reason)| {
            let error = error_response(status, &reason);
            refusal = Some(reason);
            error
        })
    };
    let accepted = tokio::time::timeout(
        wait,
        tokio_tungstenite::accept_hdr_async_with_config(capped, check, Some(config)),
    )
    .await;
    match accepted {
        Err(_) => Err(UpgradeRefusal::Timeout(wait)),
        Ok(Ok(mut ws)) => {
            ws.get_mut().budget = None;
            Ok(WsStream {
                ws,
                pending: Bytes::new(),
            })
        }
        Ok(Err(error)) => Err(match refusal {
            Some(reason) => UpgradeRefusal::Refused(reason),
            None if is_too_large(&error) => UpgradeRefusal::TooLarge,
            None => UpgradeRefusal::Invalid(error.to_string()),
        }),
    }
}

fn is_too_large(error: &WsError) -> bool {
    match error {
        WsError::Io(io) => io.kind() == io::ErrorKind::FileTooLarge,
        WsError::Capacity(_) => true,
        _ => false,
    }
}

/// Checks the path and picks the subprotocol; an error is the HTTP status
/// and the reason (sent as the body and logged).
fn check_request(
    request: &Request,
    mut response: Response,
    path: Option<&str>,
) -> Result<Response, (StatusCode, String)> {
    let requested = request.uri().path();
    if let Some(path) = path {
        if requested != path {
            return Err((
                StatusCode::NOT_FOUND,
                format!("path {requested:?} is not this listener's WebSocket path {path:?}"),
            ));
        }
    }
    let offered: Vec<&str> = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    let Some(chosen) = offered.iter().find(|name| {
        SUBPROTOCOLS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(name))
    }) else {
        let reason = if offered.is_empty() {
            "no WebSocket subprotocol offered (MQTT clients offer \"mqtt\" or \"mqttv3.1\")"
                .to_string()
        } else {
            format!(
                "none of the WebSocket subprotocols {offered:?} is MQTT (\"mqtt\" or \"mqttv3.1\")"
            )
        };
        return Err((StatusCode::BAD_REQUEST, reason));
    };
    let value = HeaderValue::from_str(chosen).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "bad subprotocol header".to_string(),
        )
    })?;
    response
        .headers_mut()
        .insert("sec-websocket-protocol", value);
    Ok(response)
}

fn error_response(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(format!("{reason}\n")));
    *response.status_mut() = status;
    response
}

/// The socket during the upgrade: reads fail once the request passed its
/// byte budget (then `None`: no limit).
#[derive(Debug)]
struct Capped<S> {
    inner: S,
    budget: Option<usize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        if let Some(budget) = self.budget.as_mut() {
            if read > *budget {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "upgrade request too large",
                )));
            }
            *budget -= read;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An upgraded WebSocket as the byte stream MQTT expects: reads return
/// the bytes of binary messages in order, each write goes out as one
/// binary message. A text message ends the connection with an error
/// (MQTT 5.0 §6: "any other type of data frame" closes it); pings are
/// answered by tungstenite; a close frame reads as the end of the stream.
#[derive(Debug)]
pub struct WsStream<S> {
    ws: WebSocketStream<Capped<S>>,
    /// The unread rest of the last binary message.
    pending: Bytes,
}

fn ws_to_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message (MQTT travels in binary messages only)",
                    )))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    return Poll::Ready(Ok(()))
                }
                Some(Err(error)) => return Poll::Ready(Err(ws_to_io(error))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_to_io)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_to_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(ws_to_io(error))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn request(path: &str, protocols: &[&str]) -> Request {
        let mut builder = Request::builder().uri(path);
        for protocol in protocols {
            builder = builder.header("Sec-WebSocket-Protocol", *protocol);
        }
        builder.body(()).unwrap_or_default()
    }

    fn chosen(result: Result<Response, (StatusCode, String)>) -> Option<String> {
        result.ok().and_then(|r| {
            r.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok().map(str::to_string))
        })
    }

    #[test]
    fn the_offered_mqtt_subprotocol_is_echoed() {
        let pick = |protocols: &[&str]| {
            chosen(check_request(
                &request("/", protocols),
                Response::default(),
                None,
            ))
        };
        assert_eq!(pick(&["mqtt"]).as_deref(), Some("mqtt"));
        assert_eq!(pick(&["mqttv3.1"]).as_deref(), Some("mqttv3.1"));
        assert_eq!(pick(&["chat, mqttv3.1"]).as_deref(), Some("mqttv3.1"));
        assert_eq!(pick(&["chat", "mqtt"]).as_deref(), Some("mqtt"));
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&["chat"]), None);
    }

    #[test]
    fn a_configured_path_must_match() {
        let on =
            |uri: &str| check_request(&request(uri, &["mqtt"]), Response::default(), Some("/mqtt"));
        assert!(on("/mqtt").is_ok());
        assert!(on("/mqtt?x=1").is_ok());
        assert_eq!(
            on("/other").map(|_| ()).unwrap_err().0,
            StatusCode::NOT_FOUND
        );
    }
}
