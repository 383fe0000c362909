//! The crypto limit: how many full mutual-TLS handshakes one core could do
//! at most if it did nothing but the server's public-key operations, from
//! `openssl speed` run on the broker's core.
//!
//! Per full handshake with a client certificate and X25519 key exchange the
//! server signs once with its key (ServerKeyExchange in TLS 1.2,
//! CertificateVerify in 1.3), verifies two ECDSA P-256 signatures (the CA's
//! on the device certificate, the device's CertificateVerify) and does two
//! X25519 scalar multiplications (its key share and the shared secret).

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::case::Case;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CryptoLimit {
    pub openssl_version: String,
    pub ecdsa_p256_sign_per_sec: f64,
    pub ecdsa_p256_verify_per_sec: f64,
    pub x25519_per_sec: f64,
    pub rsa2048_sign_per_sec: f64,
    /// Server public-key work of one full mutual handshake, microseconds.
    pub ecdsa_handshake_us: f64,
    pub rsa_handshake_us: f64,
    /// Full mutual handshakes per second and core, at most.
    pub ecdsa_handshakes_per_sec: f64,
    pub rsa_handshakes_per_sec: f64,
}

impl CryptoLimit {
    /// The most connects/s a connect case's broker could reach on crypto
    /// alone (None: a case this limit does not price). One place for the
    /// report's share table and its target, so they cannot disagree.
    pub fn handshakes_per_sec(&self, case: Case) -> Option<f64> {
        match case {
            // A first connect costs what the limit counts (the CA's
            // signature verified); a cached chain would cost one
            // verification less.
            Case::Tls12Ecdsa1Core | Case::Tls12EcdsaFirst1Core => {
                Some(self.ecdsa_handshakes_per_sec)
            }
            Case::Tls12Rsa1Core => Some(self.rsa_handshakes_per_sec),
            // The broker may use both cores (the load shares them).
            Case::Tls12Ecdsa2Cores => Some(2.0 * self.ecdsa_handshakes_per_sec),
            _ => None,
        }
    }
}

/// Runs `openssl speed` (pinned to `core` when given) for `seconds` per
/// algorithm.
pub fn measure(core: Option<usize>, seconds: u32) -> Result<CryptoLimit> {
    let mut command = match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg("openssl");
            c
        }
        None => Command::new("openssl"),
    };
    let output = command
        .args(["speed", "-seconds", &seconds.to_string()])
        .args(["ecdsap256", "ecdhx25519", "rsa2048"])
        .output()
        .context("running openssl speed")?;
    if !output.status.success() {
        bail!(
            "openssl speed failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let version = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    parse(&String::from_utf8_lossy(&output.stdout), version)
}

/// The last two numbers of the first line containing `marker`.
fn rates(text: &str, marker: &str) -> Option<(f64, f64)> {
    let line = text.lines().find(|line| line.contains(marker))?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    match numbers.as_slice() {
        [.., a, b] => Some((*a, *b)),
        _ => None,
    }
}

fn parse(text: &str, openssl_version: String) -> Result<CryptoLimit> {
    let (ecdsa_sign, ecdsa_verify) =
        rates(text, "ecdsa (nistp256)").context("no ecdsa (nistp256) line in openssl speed")?;
    let (_, x25519) = rates(text, "ecdh (X25519)").context("no ecdh (X25519) line")?;
    let (rsa_sign, _) = rates(text, "rsa 2048 bits").context("no rsa 2048 bits line")?;
    let us = |per_sec: f64| 1e6 / per_sec;
    let common = 2.0 * us(ecdsa_verify) + 2.0 * us(x25519);
    let ecdsa_handshake_us = us(ecdsa_sign) + common;
    let rsa_handshake_us = us(rsa_sign) + common;
    Ok(CryptoLimit {
        openssl_version,
        ecdsa_p256_sign_per_sec: ecdsa_sign,
        ecdsa_p256_verify_per_sec: ecdsa_verify,
        x25519_per_sec: x25519,
        rsa2048_sign_per_sec: rsa_sign,
        ecdsa_handshake_us,
        rsa_handshake_us,
        ecdsa_handshakes_per_sec: 1e6 / ecdsa_handshake_us,
        rsa_handshakes_per_sec: 1e6 / rsa_handshake_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_3_speed_output() {
        let text = "                  sign    verify    sign/s verify/s\n\
            rsa 2048 bits 0.000212s 0.000013s   4708.3  79817.9\n\
            \x20                             sign    verify    sign/s verify/s\n\
            \x20256 bits ecdsa (nistp256)   0.0000s   0.0000s  71470.0  24054.1\n\
            \x20                             op      op/s\n\
            \x20253 bits ecdh (X25519)   0.0000s  42066.7\n";
        let limit = parse(text, "OpenSSL 3".into()).unwrap_or_default();
        assert_eq!(limit.ecdsa_p256_sign_per_sec, 71470.0);
        assert_eq!(limit.x25519_per_sec, 42066.7);
        assert_eq!(limit.rsa2048_sign_per_sec, 4708.3);
        // 14.0 + 2 * 41.6 + 2 * 23.8 = 144.8 us
        assert!((limit.ecdsa_handshake_us - 144.8).abs() < 0.5);
        assert!((limit.rsa_handshake_us - 343.2).abs() < 0.5);
    }
}
