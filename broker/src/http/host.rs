//! The `Host` header check, against DNS rebinding: a web page the lab user
//! opens could point its own name at 127.0.0.1 and then read the dashboard
//! as "same origin". Its requests still carry its own name in `Host`, so
//! the dashboard answers only requests whose `Host` is
//!
//! - an IP address (the bind address, 127.0.0.1, `[::1]`, or any other:
//!   a page whose origin is an IP is that IP, so no rebinding is involved,
//!   and probes and Prometheus scrapes by IP keep working),
//! - `localhost`,
//! - or a name in `http.allowed_hosts` (with its port, or any port when
//!   the entry has none).
//!
//! The rule is the same for every path, `/healthz`, `/readyz` and
//! `/metrics` included. A request without `Host` (HTTP/1.0 tools) passes:
//! browsers always send one. Others get 421 Misdirected Request and a log
//! line (at most one per [`LOG_INTERVAL`], with a count).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

/// At most one "Host refused" line per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The names the dashboard answers to.
#[derive(Debug)]
pub(super) struct AllowedHosts {
    /// Where the dashboard listens (its port completes names without one).
    bind: SocketAddr,
    /// `http.allowed_hosts`, lower case: (name, port if given).
    names: Vec<(String, Option<u16>)>,
    /// When a refusal was last logged, and how many since.
    log: Mutex<(Option<Instant>, u64)>,
}

impl AllowedHosts {
    pub fn new(bind: SocketAddr, allowed: &[String]) -> AllowedHosts {
        let names = allowed
            .iter()
            .map(|entry| {
                let (name, port) = split_host(entry);
                (name.to_ascii_lowercase(), port)
            })
            .collect();
        AllowedHosts {
            bind,
            names,
            log: Mutex::new((None, 0)),
        }
    }

    /// Whether a request with this `Host` value may be answered.
    pub fn allows(&self, host: &str) -> bool {
        let (name, port) = split_host(host.trim());
        if name.is_empty() {
            return false;
        }
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let name = name.to_ascii_lowercase();
        self.names.iter().any(|(allowed, allowed_port)| {
            *allowed == name
                && match allowed_port {
                    None => true,
                    Some(allowed_port) => Some(*allowed_port) == port.or(Some(self.bind.port())),
                }
        })
    }

    fn log_refusal(&self, host: &str, peer: Option<SocketAddr>) {
        let mut log = self.log.lock();
        if log.0.is_some_and(|last| last.elapsed() < LOG_INTERVAL) {
            log.1 += 1;
            return;
        }
        let suppressed = log.1;
        *log = (Some(Instant::now()), 0);
        drop(log);
        let peer = peer.map_or_else(|| "?".to_string(), |peer| peer.to_string());
        tracing::warn!(
            peer = %peer,
            "Dashboard request from {peer} refused: Host {host:?} is not this dashboard's \
             (a DNS rebinding attempt, or a name to add to http.allowed_hosts); {suppressed} \
             more refused since the last warning."
        );
    }
}

/// `name` and port of a Host value: `name`, `name:port`, `[v6]`,
/// `[v6]:port`, or a bare IPv6 address.
fn split_host(host: &str) -> (&str, Option<u16>) {
    if host.starts_with('[') {
        return match host.split_once("]:") {
            Some((name, port)) => (&host[..name.len() + 1], port.parse().ok()),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has more than one colon.
        Some((name, port)) if !name.contains(':') => (name, port.parse().ok()),
        _ => (host, None),
    }
}

/// Middleware: 421 for requests whose `Host` names someone else.
pub(super) async fn check_host(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let refused = match request.headers().get(HOST) {
        None => None,
        Some(value) => match value.to_str() {
            Ok(host) if hosts.allows(host) => None,
            Ok(host) => Some(host.to_string()),
            Err(_) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        },
    };
    let Some(host) = refused else {
        return next.run(request).await;
    };
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<super::PeerAddr>>()
        .map(|info| info.0 .0);
    hosts.log_refusal(&host, peer);
    (
        StatusCode::MISDIRECTED_REQUEST,
        "This dashboard does not answer to that host name. If it is this machine's \
         name, add it to http.allowed_hosts in fleetmq.toml.\n",
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn hosts(allowed: &[&str]) -> AllowedHosts {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        AllowedHosts::new("0.0.0.0:8080".parse().unwrap(), &allowed)
    }

    #[test]
    fn addresses_and_localhost_pass() {
        let hosts = hosts(&[]);
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:8080",
            "[::1]",
            "[::1]:8080",
            "::1",
            "10.1.2.3:8080",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn other_names_are_refused_unless_configured() {
        let hosts = hosts(&["lab-pc.local", "dash.example:9000"]);
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "",
            "dash.example:8080",
            "dash.example",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
        for host in ["lab-pc.local", "Lab-PC.local:8080", "dash.example:9000"] {
            assert!(hosts.allows(host), "{host}");
        }
    }
}
