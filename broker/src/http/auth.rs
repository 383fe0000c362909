//! Access to the dashboard, API and metrics: one shared token, given as
//! `Authorization: Bearer TOKEN` (scripts, Prometheus) or once in the login
//! form, which sets an HttpOnly cookie (browsers).
//!
//! The cookie holds a SHA-256 digest of the token, not the token, so a
//! copied cookie does not reveal it, and changing the token logs everyone
//! out. Comparisons take constant time. Without a token (allowed only on a
//! loopback bind, see `config::validate`) everything is open, kick included.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{AppState, HttpError};
use crate::config::HttpConfig;

/// Name of the login cookie.
const COOKIE_NAME: &str = "fleetmq_session";
/// How long a login lasts.
const COOKIE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Slows down guessing through the login form.
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(300);

/// The login page; `{{error}}` is replaced by a message or nothing.
const LOGIN_HTML: &str = include_str!("assets/login.html");

/// Who may use the dashboard.
#[derive(Debug, Clone)]
pub struct Access {
    /// None: open.
    token: Option<String>,
    /// The cookie value a successful login sets.
    session: Option<String>,
    /// Mark the cookie `Secure` (HTTPS).
    secure_cookie: bool,
}

impl Access {
    /// Reads the token from `http.token` or the first line of
    /// `http.token_file`.
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
                Some(token)
            }
            (None, None) => None,
        };
        Ok(Access::new(token))
    }

    pub fn new(token: Option<String>) -> Access {
        let session = token.as_deref().map(session_value);
        Access {
            token,
            session,
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

    /// Whether a request carries the token (header) or the login cookie.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let (Some(token), Some(session)) = (&self.token, &self.session) else {
            return true;
        };
        let bearer = headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| {
                let (scheme, credentials) = value.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| credentials.trim())
            })
            .any(|given| constant_time_eq(given.as_bytes(), token.as_bytes()));
        bearer
            || cookies(headers)
                .filter(|(name, _)| *name == COOKIE_NAME)
                .any(|(_, value)| constant_time_eq(value.as_bytes(), session.as_bytes()))
    }

    /// Whether `given` is the token.
    fn accepts_token(&self, given: &str) -> bool {
        match &self.token {
            Some(token) => constant_time_eq(given.trim().as_bytes(), token.as_bytes()),
            None => true,
        }
    }

    fn login_cookie(&self) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.session.as_deref().unwrap_or(""),
            COOKIE_MAX_AGE.as_secs()
        )
    }

    fn logout_cookie(&self) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }
}

/// The cookie value for a token.
fn session_value(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"fleetmq-dashboard-session\0")
        .chain_update(token.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
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

/// Middleware: lets authorized requests through; answers others with 401
/// (JSON for the API and metrics, the login page for the dashboard).
pub(super) async fn require_access(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.access.allows(request.headers()) {
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path.starts_with("/api/") || path == "/metrics" {
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
    if state.access.allows(&headers) {
        return redirect("/");
    }
    login_response(StatusCode::OK, "")
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

/// `POST /login` (form field `token`): sets the cookie and goes to the
/// dashboard, or shows the form again.
pub(super) async fn login(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<super::PeerAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    if state.access.accepts_token(&form.token) {
        tracing::info!(peer = %peer.0, "Dashboard login from {}.", peer.0);
        let mut response = redirect("/");
        if let Ok(cookie) = HeaderValue::from_str(&state.access.login_cookie()) {
            response.headers_mut().insert(SET_COOKIE, cookie);
        }
        return response;
    }
    tracing::warn!(peer = %peer.0, "Dashboard login from {} refused: wrong token.", peer.0);
    tokio::time::sleep(FAILED_LOGIN_DELAY).await;
    login_response(
        StatusCode::UNAUTHORIZED,
        "<p class=\"error\" role=\"alert\">Wrong token.</p>",
    )
}

/// `POST /logout`: clears the cookie.
pub(super) async fn logout(State(state): State<AppState>) -> Response {
    let mut response = redirect("/login");
    if let Ok(cookie) = HeaderValue::from_str(&state.access.logout_cookie()) {
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

    #[test]
    fn open_without_a_token() {
        let access = Access::new(None);
        assert!(access.is_open());
        assert!(access.allows(&HeaderMap::new()));
    }

    #[test]
    fn bearer_token_is_checked() {
        let access = Access::new(Some("s3cret".into()));
        assert!(!access.allows(&HeaderMap::new()));
        assert!(access.allows(&headers(&[("authorization", "Bearer s3cret")])));
        assert!(access.allows(&headers(&[("authorization", "bearer  s3cret ")])));
        assert!(!access.allows(&headers(&[("authorization", "Bearer s3cre")])));
        assert!(!access.allows(&headers(&[("authorization", "Bearer s3cret2")])));
        assert!(!access.allows(&headers(&[("authorization", "Basic s3cret")])));
        assert!(!access.allows(&headers(&[("authorization", "s3cret")])));
    }

    #[test]
    fn login_cookie_is_a_digest_of_the_token() {
        let access = Access::new(Some("s3cret".into()));
        let cookie = access.login_cookie();
        assert!(!cookie.contains("s3cret"), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let value = cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("fleetmq_session=");
        let sent = format!("theme=dark; fleetmq_session={value}");
        assert!(access.allows(&headers(&[("cookie", &sent)])));
        assert!(!access.allows(&headers(&[("cookie", "fleetmq_session=s3cret")])));
        let other = Access::new(Some("other".into()));
        assert!(!other.allows(&headers(&[("cookie", &sent)])));
        assert!(!cookie.contains("Secure"));
        assert!(access
            .with_secure_cookie(true)
            .login_cookie()
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
        let empty = tempfile::NamedTempFile::new().unwrap();
        let config = HttpConfig {
            token_file: Some(empty.path().to_path_buf()),
            ..HttpConfig::default()
        };
        assert!(Access::from_config(&config).is_err());
    }
}
