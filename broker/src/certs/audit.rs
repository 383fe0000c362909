//! `fleetmq certs audit`: which device certificates in a folder a listener
//! would accept or refuse, and why, before the switch rather than after;
//! which expire soon, use weak keys or SHA-1.
//!
//! The verdict is the broker's own: the same verifier a listener builds
//! (`tls::client_verifier`, webpki plus the v1 path of decision 0090), asked
//! about each certificate as a handshake would ask it. This module adds only
//! what the handshake's key proof would refuse later (RSA under 2048 bits)
//! and the notes. It reads files and prints; it decides no trust itself.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::objects::{oid2sn, oid_registry};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::CertError;
use crate::tls;
use fleetmq_core::config::ClientCertPolicy;

/// RSA keys under this many bits are refused (aws-lc-rs's webpki algorithms).
const MIN_RSA_BITS: usize = 2048;

/// Folders deeper than this under the audited one are not read.
const MAX_DEPTH: usize = 4;

/// What the audit is asked.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The listener's client CA file.
    pub ca: PathBuf,
    /// Its CRLs.
    pub crls: Vec<PathBuf>,
    /// `tls.accept_v1_client_certificates` of the listener.
    pub accept_v1: bool,
    /// Certificates expiring within this many days get a note.
    pub expiring_days: u32,
}

/// One certificate's line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub file: String,
    pub subject: String,
    /// Upper-case hex.
    pub serial: String,
    /// `v1`, `v3`.
    pub version: String,
    /// `RSA 2048`, `EC prime256v1`.
    pub key: String,
    /// `sha256WithRSAEncryption`, `ecdsa-with-SHA256`.
    pub signature: String,
    /// RFC 3339 UTC.
    pub not_after: String,
    /// `accept`, or `refuse:` and the handshake failure's reason label.
    pub verdict: String,
    /// Why refused, expiring soon, weak key, SHA-1.
    pub notes: Vec<String>,
}

/// Audits every PEM certificate under `folder` at `now_secs`.
pub fn audit(
    folder: &Path,
    options: &AuditOptions,
    now_secs: i64,
) -> Result<Vec<AuditRow>, CertError> {
    let verifier = tls::client_verifier(
        &options.ca,
        &options.crls,
        ClientCertPolicy::Required,
        options.accept_v1,
    )
    .map_err(|e| CertError::Audit(e.to_string()))?;
    let mut files = Vec::new();
    collect(folder, 0, &mut files)?;
    files.sort();
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now_secs).unwrap_or(0),
    ));
    let mut rows = Vec::new();
    for path in files {
        let Ok(pem) = std::fs::read(&path) else {
            continue;
        };
        let name = path
            .strip_prefix(folder)
            .unwrap_or(&path)
            .display()
            .to_string();
        for der in CertificateDer::pem_slice_iter(&pem).flatten() {
            let _ = tls::take_last_refusal();
            let verdict = verifier.verify_client_cert(&der, &[], now);
            if let Some(row) = row(&name, &der, verdict, options, now_secs) {
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), CertError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        action: "read the folder",
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth < MAX_DEPTH {
                collect(&path, depth + 1, out)?;
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("crt" | "pem" | "cer")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn row(
    file: &str,
    der: &CertificateDer<'_>,
    verdict: Result<rustls::server::danger::ClientCertVerified, rustls::Error>,
    options: &AuditOptions,
    now_secs: i64,
) -> Option<AuditRow> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let registry = oid_registry();
    let signature = oid2sn(&cert.signature_algorithm.algorithm, registry)
        .map(str::to_string)
        .unwrap_or_else(|_| cert.signature_algorithm.algorithm.to_id_string());
    let spki = cert.public_key();
    let (key, rsa_bits) = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => (format!("RSA {}", rsa.key_size()), Some(rsa.key_size())),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .and_then(|oid| oid2sn(&oid, registry).ok().map(str::to_string))
                .unwrap_or_else(|| "?".into());
            (format!("EC {curve}"), None)
        }
        Ok(other) => (format!("{other:?}").chars().take(12).collect(), None),
        Err(_) => ("unreadable".into(), None),
    };
    let not_after = cert.validity().not_after.timestamp();
    let mut notes = Vec::new();
    let verdict = match verdict {
        Ok(_) => match rsa_bits {
            Some(bits) if bits < MIN_RSA_BITS => {
                notes.push(format!(
                    "key too weak (RSA {bits} bits, 2048 needed): the handshake's key proof would be refused"
                ));
                "refuse:weak_key".to_string()
            }
            _ => "accept".to_string(),
        },
        Err(error) => match crate::tls::take_last_refusal() {
            Some(refused) => {
                notes.push(refused.to_string());
                format!("refuse:{}", refused.problem.reason())
            }
            None => {
                notes.push(error.to_string());
                "refuse:bad_certificate".to_string()
            }
        },
    };
    let days_left = (not_after - now_secs).div_euclid(86_400);
    if not_after >= now_secs && days_left <= i64::from(options.expiring_days) {
        notes.push(format!("expires in {days_left} days"));
    }
    if rsa_bits.is_some_and(|bits| bits < MIN_RSA_BITS) && verdict == "accept" {
        notes.push("weak key".into());
    }
    if signature.to_ascii_lowercase().contains("sha1") {
        notes.push("SHA-1 signature".into());
    }
    Some(AuditRow {
        file: file.to_string(),
        subject: cert.subject().to_string(),
        serial: fleetmq_core::peer::serial_hex(cert.raw_serial()),
        version: format!("v{}", cert.version().0 + 1),
        key,
        signature,
        not_after: crate::observe::clock::rfc3339_secs(not_after),
        verdict,
        notes,
    })
}

/// The table as `fleetmq certs audit` prints it: one line per certificate,
/// columns separated by ` | `, then a summary line.
pub fn render(rows: &[AuditRow]) -> String {
    let mut out = String::from(
        "FILE | SUBJECT | SERIAL | VERSION | KEY | SIGNATURE | NOT AFTER | VERDICT | NOTES\n",
    );
    for row in rows {
        out.push_str(&format!(
            "{} | {} | {} | {} | {} | {} | {} | {} | {}\n",
            row.file,
            row.subject,
            row.serial,
            row.version,
            row.key,
            row.signature,
            row.not_after,
            row.verdict,
            row.notes.join("; ")
        ));
    }
    let accepted = rows.iter().filter(|r| r.verdict == "accept").count();
    out.push_str(&format!(
        "{} certificates: {accepted} accepted, {} refused\n",
        rows.len(),
        rows.len() - accepted
    ));
    out
}
