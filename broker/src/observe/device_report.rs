//! A device's own view of its connection (decision 0143), as it published
//! it on `$fleetmq/device/handshake`: parsed here, shown beside the
//! broker's view of the same handshake.
//!
//! The payload is JSON; unknown fields are ignored (newer firmware),
//! strings are cut to [`MAX_TEXT`] characters and durations must be finite
//! and not negative. A report that does not parse is dropped with a debug
//! line: it never changes anything else.
//!
//! Owns: the report's shape and its checks. Must not: trust it for any
//! decision (it is what the device says, shown as such).

use serde::{Deserialize, Serialize};

/// Longest text kept from a report field.
const MAX_TEXT: usize = 64;

/// What the device said about its connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Its TLS handshake as its TLS library timed it, in milliseconds.
    pub tls_handshake_ms: Option<f64>,
    /// Its TCP connect, in milliseconds.
    pub tcp_connect_ms: Option<f64>,
    /// `TLSv1.2` or `TLSv1.3`, as it saw it.
    pub version: Option<String>,
    pub resumed: Option<bool>,
    pub mutual: Option<bool>,
    /// `esp32c3`, `esp32`, `host-sim`, ...
    pub chip: Option<String>,
    pub cpu_mhz: Option<u32>,
    /// Whether its TLS library used the chip's crypto accelerators.
    pub hw_crypto: Option<bool>,
    /// `mbedTLS`, ...
    pub tls_library: Option<String>,
}

/// Parses and checks a report.
pub fn parse(payload: &[u8]) -> Result<DeviceReport, String> {
    let mut report: DeviceReport =
        serde_json::from_slice(payload).map_err(|error| format!("not a report: {error}"))?;
    for duration in [report.tls_handshake_ms, report.tcp_connect_ms]
        .into_iter()
        .flatten()
    {
        if !duration.is_finite() || duration < 0.0 {
            return Err(format!("{duration} is not a duration in milliseconds"));
        }
    }
    for text in [
        &mut report.version,
        &mut report.chip,
        &mut report.tls_library,
    ]
    .into_iter()
    .flatten()
    {
        if let Some((cut, _)) = text.char_indices().nth(MAX_TEXT) {
            text.truncate(cut);
        }
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_firmware_report_parses_and_bad_ones_do_not() {
        let report = parse(
            br#"{"tls_handshake_ms":1985,"tcp_connect_ms":12,"version":"TLSv1.2","resumed":false,
                "mutual":true,"chip":"esp32c3","cpu_mhz":160,"hw_crypto":true,"tls_library":"mbedTLS",
                "from_the_future":1}"#,
        )
        .unwrap();
        assert_eq!(report.tls_handshake_ms, Some(1985.0));
        assert_eq!(report.chip.as_deref(), Some("esp32c3"));
        assert_eq!(report.cpu_mhz, Some(160));
        assert_eq!(report.hw_crypto, Some(true));
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"tls_handshake_ms":-1}"#).is_err());
        assert!(parse(br#"{"cpu_mhz":"fast"}"#).is_err());
        let long = parse(format!(r#"{{"chip":"{}"}}"#, "x".repeat(500)).as_bytes()).unwrap();
        assert_eq!(long.chip.unwrap().len(), MAX_TEXT);
    }
}
