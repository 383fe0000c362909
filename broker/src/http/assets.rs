//! The dashboard page and its script and style, embedded in the binary
//! (`include_str!`): no build step, no CDN, nothing fetched from the
//! internet. A strict Content-Security-Policy enforces that in the browser.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const OTA_JS: &str = include_str!("assets/ota.js");
const CLUSTER_JS: &str = include_str!("assets/cluster.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Only this origin's scripts, styles and connections; no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /`.
pub(super) async fn index() -> Response {
    embedded(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /assets/{file}`.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => embedded(APP_JS, "text/javascript; charset=utf-8"),
        "ota.js" => embedded(OTA_JS, "text/javascript; charset=utf-8"),
        "cluster.js" => embedded(CLUSTER_JS, "text/javascript; charset=utf-8"),
        "style.css" => embedded(STYLE_CSS, "text/css; charset=utf-8"),
        "favicon.svg" => embedded(FAVICON_SVG, "image/svg+xml"),
        _ => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

fn embedded(body: &'static str, content_type: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // Small files, and a new broker version must not run an old script.
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// The page must work without internet access: nothing it loads may
    /// come from another origin.
    #[test]
    fn assets_reference_nothing_outside_the_broker() {
        let login = include_str!("assets/login.html");
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("ota.js", OTA_JS),
            ("cluster.js", CLUSTER_JS),
            ("style.css", STYLE_CSS),
            ("favicon.svg", FAVICON_SVG),
            ("login.html", login),
        ] {
            let outside: Vec<&str> = text
                .match_indices("://")
                .map(|(at, _)| &text[at.saturating_sub(12)..(at + 30).min(text.len())])
                .filter(|context| !context.contains("http://www.w3.org/2000/svg"))
                .collect();
            assert!(outside.is_empty(), "{name} refers to {outside:?}");
            assert!(!text.contains("//cdn"), "{name}");
        }
    }

    #[test]
    fn the_page_loads_its_own_script_and_style() {
        assert!(INDEX_HTML.contains("src=\"/assets/app.js\""));
        assert!(INDEX_HTML.contains("href=\"/assets/style.css\""));
        assert!(
            !INDEX_HTML.contains("<script>"),
            "inline scripts break the CSP"
        );
    }
}
