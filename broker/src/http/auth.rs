//! Access to the dashboard, API and metrics: one shared token, given as
//! `Authorization: Bearer TOKEN` (scripts, Prometheus) or once in the login
//! form, which starts a server-side session ([`super::sessions`]) whose
//! random id the HttpOnly cookie carries; logout ends it.
//!
//! Token comparisons take constant time. Wrong tokens are logged and
//! counted per IP ([`super::throttle`]): past the limit the IP gets 429.
//! Off loopback the token must be long (`config::weak_token`). Without a
//! token (allowed only on a loopback bind, see `config::validate`)
//! everything is open, kick included.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::sessions::{Sessions, ABSOLUTE_LIFETIME};
use super::throttle::Throttle;
use super::{AppState, HttpError, PeerAddr};
use fleetmq_core::config::HttpConfig;

/// Name of the login cookie.
const COOKIE_NAME: &str = "fleetmq_session";

/// The login page; `{{error}}` is replaced by a message or nothing.
const LOGIN_HTML: &str = include_str!("assets/login.html");

/// Who may use the dashboard.
#[derive(Debug)]
pub struct Access {
    /// None: open.
    token: Option<String>,
    /// Live logins.
    sessions: Sessions,
    /// Failed attempts per IP.
    failures: Throttle,
    /// Mark the cookie `Secure` (HTTPS).
    secure_cookie: bool,
}

/// What the credentials of a request amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The token, or a live session (or no token is configured).
    Allowed,
    /// A bearer token that is not the token: counts as a failed attempt.
    WrongToken,
    /// Nothing valid (no credentials, or an ended session).
    Missing,
}

impl Access {
    /// Reads the token from `http.token` or the first line of
    /// `http.token_file`, and refuses a short one on a bind other machines
    /// can reach.
    pub fn from_config(config: &HttpConfig) -> Result<Access, HttpError> {
        let token = match (&config.token, &config.token_file) {
            (Some(token), _) => Some(token.trim().to_string()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|error| HttpError::TokenFile {
                    path: path.clone(),
                    detail: format!("cannot read it: {error}"),
                })?;
                let token = text.lines().next().unwrap_or("").trim().to_string();
                if token.is_empty() {
                    return Err(HttpError::TokenFile {
                        path: path.clone(),
                        detail: "its first line is empty (write the token there)".to_string(),
                    });
                }
                if let Some(detail) = fleetmq_core::config::weak_token(&token, &config.bind) {
                    return Err(HttpError::TokenFile {
                        path: path.clone(),
                        detail,
                    });
                }
                Some(token)
            }
            (None, None) => None,
        };
        Ok(Access::new(token))
    }

    pub fn new(token: Option<String>) -> Access {
        Access {
            token,
            sessions: Sessions::default(),
            failures: Throttle::default(),
            secure_cookie: false,
        }
    }

    pub fn with_secure_cookie(mut self, secure: bool) -> Access {
        self.secure_cookie = secure;
        self
    }

    /// True when no token is configured.
    pub fn is_open(&self) -> bool {
        self.token.is_none()
    }

    /// Whether a request carries the token (header) or a live session
    /// cookie.
    pub(super) fn check(&self, headers: &HeaderMap, now: Instant) -> Verdict {
        let Some(token) = &self.token else {
            return Verdict::Allowed;
        };
        let mut bearers = headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| {
                let (scheme, credentials) = value.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| credentials.trim())
            })
            .peekable();
        let sent_bearer = bearers.peek().is_some();
        if bearers.any(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
            return Verdict::Allowed;
        }
        if cookies(headers)
            .filter(|(name, _)| *name == COOKIE_NAME)
            .any(|(_, id)| self.sessions.touch(id, now))
        {
            return Verdict::Allowed;
        }
        if sent_bearer {
            Verdict::WrongToken
        } else {
            Verdict::Missing
        }
    }

    /// Whether `given` is the token.
    fn accepts_token(&self, given: &str) -> bool {
        match &self.token {
            Some(token) => constant_time_eq(given.trim().as_bytes(), token.as_bytes()),
            None => true,
        }
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!(
            "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        )
    }

    /// Starts a session: the `Set-Cookie` value, or None when no random id
    /// could be made.
    fn login_cookie(&self, now: Instant) -> Option<String> {
        let id = self.sessions.create(now)?;
        Some(self.cookie(&id, ABSOLUTE_LIFETIME.as_secs()))
    }

    /// Ends the sessions a request's cookies name.
    fn logout(&self, headers: &HeaderMap) {
        for (_, id) in cookies(headers).filter(|(name, _)| *name == COOKIE_NAME) {
            self.sessions.revoke(id);
        }
    }
}

/// (name, value) of every cookie in the request.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.trim(), value.trim()))
        })
}

/// Compares without stopping at the first difference, so response times
/// do not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (index, byte) in b.iter().enumerate() {
        let other = a.get(index).copied().unwrap_or(0);
        difference |= usize::from(other ^ byte);
    }
    difference == 0
}

/// The client's IP, from the accept loop's connection info.
fn peer_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|info| info.0 .0.ip())
}

/// 429 with `Retry-After`, for a locked-out IP.
fn too_many(retry_after_secs: u64, api: bool) -> Response {
    let mut response = if api {
        (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({
                "error": "too_many_failures",
                "message": "too many wrong tokens from this address; wait and retry",
            })),
        )
            .into_response()
    } else {
        login_response(
            StatusCode::TOO_MANY_REQUESTS,
            "<p class=\"error\" role=\"alert\">Too many wrong tokens from this address; wait a minute.</p>",
        )
    };
    if let Ok(value) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// Middleware: lets authorized requests through; answers others with 401
/// (JSON for the API and metrics, the login page for the dashboard), and
/// locked-out addresses with 429.
pub(super) async fn require_access(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.access.is_open() {
        return next.run(request).await;
    }
    let now = Instant::now();
    let path = request.uri().path();
    let api = path.starts_with("/api/") || path == "/metrics";
    let ip = peer_ip(&request);
    if let Some(wait) = ip.and_then(|ip| state.access.failures.locked(ip, now)) {
        return too_many(wait.as_secs(), api);
    }
    match state.access.check(request.headers(), now) {
        Verdict::Allowed => return next.run(request).await,
        Verdict::WrongToken => {
            if let Some(ip) = ip {
                state.access.failures.failed(ip, "bearer token", now);
            }
        }
        Verdict::Missing => {}
    }
    if api {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({
                "error": "unauthorized",
                "message": "send Authorization: Bearer TOKEN (http.token), or log in at /login",
            })),
        )
            .into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"fleetmq\""),
        );
        response
    } else {
        login_response(StatusCode::UNAUTHORIZED, "")
    }
}

fn login_response(status: StatusCode, error: &str) -> Response {
    let body = LOGIN_HTML.replace("{{error}}", error);
    let mut response = (status, Html(body)).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /login`.
pub(super) async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.access.check(&headers, Instant::now()) == Verdict::Allowed {
        return redirect("/");
    }
    login_response(StatusCode::OK, "")
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

/// `POST /login` (form field `token`): starts a session and goes to the
/// dashboard, or shows the form again.
pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let now = Instant::now();
    let ip = peer.0.ip();
    if let Some(wait) = state.access.failures.locked(ip, now) {
        return too_many(wait.as_secs(), false);
    }
    if state.access.accepts_token(&form.token) {
        let Some(cookie) = state.access.login_cookie(now) else {
            tracing::error!(
                "Dashboard login from {}: no random session id could be made.",
                peer.0
            );
            return login_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<p class=\"error\" role=\"alert\">Cannot start a session; see the broker log.</p>",
            );
        };
        tracing::info!(peer = %peer.0, "Dashboard login from {}.", peer.0);
        let mut response = redirect("/");
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(SET_COOKIE, cookie);
        }
        return response;
    }
    state.access.failures.failed(ip, "login form", now);
    login_response(
        StatusCode::UNAUTHORIZED,
        "<p class=\"error\" role=\"alert\">Wrong token.</p>",
    )
}

/// `POST /logout`: ends the session and clears the cookie.
pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    state.access.logout(&headers);
    let mut response = redirect("/login");
    if let Ok(cookie) = HeaderValue::from_str(&state.access.cookie("", 0)) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

fn redirect(to: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, HeaderValue::from_static(to))],
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn allows(access: &Access, pairs: &[(&str, &str)]) -> bool {
        access.check(&headers(pairs), Instant::now()) == Verdict::Allowed
    }

    #[test]
    fn open_without_a_token() {
        let access = Access::new(None);
        assert!(access.is_open());
        assert!(allows(&access, &[]));
    }

    #[test]
    fn bearer_token_is_checked() {
        let access = Access::new(Some("s3cret".into()));
        assert_eq!(
            access.check(&HeaderMap::new(), Instant::now()),
            Verdict::Missing
        );
        assert!(allows(&access, &[("authorization", "Bearer s3cret")]));
        assert!(allows(&access, &[("authorization", "bearer  s3cret ")]));
        for wrong in ["Bearer s3cre", "Bearer s3cret2"] {
            let verdict = access.check(&headers(&[("authorization", wrong)]), Instant::now());
            assert_eq!(verdict, Verdict::WrongToken, "{wrong}");
        }
        assert!(!allows(&access, &[("authorization", "Basic s3cret")]));
        assert!(!allows(&access, &[("authorization", "s3cret")]));
    }

    #[test]
    fn login_cookie_is_a_random_session_that_logout_ends() {
        let access = Access::new(Some("s3cret".into()));
        let now = Instant::now();
        let cookie = access.login_cookie(now).unwrap();
        assert!(!cookie.contains("s3cret"), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let value = cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("fleetmq_session=")
            .to_string();
        let again = access.login_cookie(now).unwrap();
        assert!(!again.starts_with(&format!("fleetmq_session={value}")));
        let sent = format!("theme=dark; fleetmq_session={value}");
        assert!(allows(&access, &[("cookie", &sent)]));
        assert!(!allows(&access, &[("cookie", "fleetmq_session=s3cret")]));
        let other = Access::new(Some("s3cret".into()));
        assert!(
            !allows(&other, &[("cookie", &sent)]),
            "sessions are per server"
        );
        access.logout(&headers(&[("cookie", &sent)]));
        assert!(!allows(&access, &[("cookie", &sent)]));
        assert!(!cookie.contains("Secure"));
        assert!(access
            .with_secure_cookie(true)
            .login_cookie(now)
            .unwrap()
            .ends_with("; Secure"));
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn token_file_first_line() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, b"  tok-123 \nignored\n").unwrap();
        let config = HttpConfig {
            token_file: Some(file.path().to_path_buf()),
            ..HttpConfig::default()
        };
        let access = Access::from_config(&config).unwrap();
        assert!(access.accepts_token("tok-123"));
        let remote = HttpConfig {
            bind: "0.0.0.0:8080".into(),
            ..config
        };
        let error = Access::from_config(&remote).unwrap_err().to_string();
        assert!(error.contains("at least 32"), "{error}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let config = HttpConfig {
            token_file: Some(empty.path().to_path_buf()),
            ..HttpConfig::default()
        };
        assert!(Access::from_config(&config).is_err());
    }
}
