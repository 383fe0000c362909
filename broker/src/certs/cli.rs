//! `fleetmq certs ...`: the command line of the lab PKI. Parses arguments,
//! calls [`Pki`], and prints one plain line per file written so
//! that scripts and people can see exactly what changed.
//!
//! It must not hold PKI logic of its own beyond `--out` (copying a
//! device's files to a firmware folder, which is a CLI convenience).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::audit_target::AuditRequest;
use super::files::{self, Layout, Secrecy};
use super::{
    profile, CaOptions, CertError, Issued, IssuedCert, KeyType, Pki, DEFAULT_CA_DAYS,
    DEFAULT_DEVICE_DAYS, DEFAULT_PKI_DIR, DEFAULT_SERVER_DAYS, MAX_DAYS,
};

/// `fleetmq certs`: the lab CA, server and device certificates, the CRL.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// The lab PKI folder.
    #[arg(long, value_name = "DIR", global = true, default_value = DEFAULT_PKI_DIR)]
    pub dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// The `fleetmq certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the lab CA: ca.crt, ca.key (mode 0600), an empty crl.pem and
    /// index.toml.
    Init {
        /// Common name of the CA certificate.
        #[arg(long, value_name = "NAME", default_value = "fleetmq lab CA")]
        cn: String,
        /// RSA-2048 CA key instead of ECDSA P-256, for devices that can only
        /// verify RSA signatures.
        #[arg(long)]
        rsa: bool,
        /// Validity in days.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_CA_DAYS, value_parser = days())]
        days: u32,
        /// Replace an existing CA. Every certificate it issued stops
        /// verifying and must be issued again.
        #[arg(long)]
        force: bool,
    },
    /// Issue a broker TLS server certificate: server/HOST.crt and .key.
    Server {
        /// Server name: the certificate's CN, and a DNS name (or IP address)
        /// it is valid for.
        #[arg(long, value_name = "HOST")]
        name: String,
        /// Another DNS name the server is reached by (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// An IP address the server is reached by (repeatable).
        #[arg(long = "ip", value_name = "ADDR")]
        ip: Vec<IpAddr>,
        /// RSA-2048 key instead of ECDSA P-256. ESP32 firmware using
        /// ESP-IDF's default cipher suite (ECDHE-RSA-AES128-GCM-SHA256)
        /// needs an RSA server certificate.
        #[arg(long)]
        rsa: bool,
        /// Validity in days.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_SERVER_DAYS, value_parser = days())]
        days: u32,
        /// Replace existing files (the old certificate stays valid until
        /// revoked).
        #[arg(long)]
        force: bool,
    },
    /// Issue device client certificates (CN = ID, OU = group):
    /// devices/ID/ID.crt, ID.key (mode 0600) and ca.crt.
    Device {
        /// Device ids, e.g. esp32_807A98.
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        /// Device group, written as the certificate's OU (usable in ACLs).
        #[arg(long, value_name = "OU")]
        group: Option<String>,
        /// RSA-2048 key instead of ECDSA P-256.
        #[arg(long)]
        rsa: bool,
        /// Validity in days.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_DEVICE_DAYS, value_parser = days())]
        days: u32,
        /// Also copy ID.crt, ID.key and ca.crt into DIR, e.g. firmware/fs.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Replace existing files (old certificates stay valid until
        /// revoked).
        #[arg(long)]
        force: bool,
    },
    /// Revoke certificates by device id, server name or serial (hex), and
    /// re-sign crl.pem. Send the broker SIGHUP to load the new CRL.
    Revoke {
        /// Device ids, server names or serials.
        #[arg(value_name = "ID|SERIAL", required = true)]
        targets: Vec<String>,
    },
    /// Issue a claim certificate for a batch of devices (CN = claim-BATCH,
    /// OU = fleetmq-claim): flashed into every device of the batch, it
    /// lets them ask the broker's provisioning service for their own
    /// certificate, and nothing else (docs/provisioning.md).
    Claim {
        /// The batch name, e.g. 2026-12-lab.
        #[arg(value_name = "BATCH")]
        batch: String,
        /// The claim group; must equal the broker's provision.claim_group.
        #[arg(long, value_name = "OU", default_value = "fleetmq-claim")]
        group: String,
        /// Validity in days (a batch is flashed within weeks).
        #[arg(long, value_name = "N", default_value_t = 90, value_parser = days())]
        days: u32,
        /// Also copy the certificate, key and ca.crt into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// List provisioning requests waiting for approval.
    Pending {
        /// The broker's data_dir (holds provision/pending).
        #[arg(long, value_name = "DIR", default_value = "fleetmq-data")]
        data_dir: PathBuf,
    },
    /// Approve waiting provisioning requests: each device gets its
    /// certificate the next time it asks with the same key.
    Approve {
        /// Device ids.
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        /// The broker's data_dir.
        #[arg(long, value_name = "DIR", default_value = "fleetmq-data")]
        data_dir: PathBuf,
    },
    /// Drop waiting provisioning requests.
    Deny {
        /// Device ids.
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        /// The broker's data_dir.
        #[arg(long, value_name = "DIR", default_value = "fleetmq-data")]
        data_dir: PathBuf,
    },
    /// List issued certificates with their expiry and revocation.
    List,
    /// Re-sign crl.pem with a fresh next update (30 days); run it before
    /// the current CRL goes stale, e.g. from a weekly timer.
    Crl,
    /// Which device certificates (PEM files under FOLDER, or those the
    /// broker has seen: --seen) a listener with this client CA, CRLs and v1
    /// setting would accept or refuse, and why; which expire soon, use weak
    /// keys or SHA-1.
    Audit {
        /// Folder of device certificates (.crt, .pem, .cer; subfolders too).
        #[arg(value_name = "FOLDER", required_unless_present = "seen")]
        folder: Option<PathBuf>,
        /// Audit the client certificates the broker has seen (accepted or
        /// refused): <data_dir>/seen-certificates.
        #[arg(long, conflicts_with = "folder")]
        seen: bool,
        /// The broker's data_dir, for --seen (default: that of --config,
        /// else fleetmq-data).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Audit with the client CA, CRLs and v1 setting of a listener of
        /// this fleetmq.toml (and its data_dir).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The listener of --config (needed when several ask for client
        /// certificates).
        #[arg(long, value_name = "NAME", requires = "config")]
        listener: Option<String>,
        /// The listener's client CA file (cafile / tls.client_ca); required
        /// without --config.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// A CRL of the listener (crlfile / tls.crl; repeatable; replaces
        /// those of --config).
        #[arg(long = "crl", value_name = "FILE")]
        crls: Vec<PathBuf>,
        /// As a listener with accept_v1_client_certificates = true (every
        /// require_certificate listener of a mosquitto.conf).
        #[arg(long)]
        accept_v1: bool,
        /// Note certificates expiring within this many days.
        #[arg(long, value_name = "N", default_value_t = 30)]
        expiring_days: u32,
    },
}

fn days() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS))
}

/// Runs one `fleetmq certs` command: 0 on success, 1 on any failure.
pub fn run(args: &CertsArgs) -> ExitCode {
    let dir = args.dir.as_path();
    let outcome = match &args.command {
        CertsCommand::Init {
            cn,
            rsa,
            days,
            force,
        } => init(dir, cn, key_type(*rsa), *days, *force),
        CertsCommand::Server {
            name,
            dns,
            ip,
            rsa,
            days,
            force,
        } => server(dir, name, dns, ip, key_type(*rsa), *days, *force),
        CertsCommand::Device {
            ids,
            group,
            rsa,
            days,
            out,
            force,
        } => device(
            dir,
            ids,
            group.as_deref(),
            key_type(*rsa),
            *days,
            out.as_deref(),
            *force,
        ),
        CertsCommand::Revoke { targets } => revoke(dir, targets),
        CertsCommand::Claim {
            batch,
            group,
            days,
            out,
            force,
        } => device(
            dir,
            &[format!("claim-{batch}")],
            Some(group),
            KeyType::EcdsaP256,
            *days,
            out.as_deref(),
            *force,
        ),
        CertsCommand::Pending { data_dir } => super::cli_provision::pending(data_dir),
        CertsCommand::Approve { ids, data_dir } => super::cli_provision::approve(data_dir, ids),
        CertsCommand::Deny { ids, data_dir } => super::cli_provision::deny(data_dir, ids),
        CertsCommand::List => list(dir),
        CertsCommand::Audit {
            folder,
            seen,
            data_dir,
            config,
            listener,
            ca,
            crls,
            accept_v1,
            expiring_days,
        } => audit(&AuditRequest {
            folder: folder.clone(),
            seen: *seen,
            data_dir: data_dir.clone(),
            config: config.clone(),
            listener: listener.clone(),
            ca: ca.clone(),
            crls: crls.clone(),
            accept_v1: *accept_v1,
            expiring_days: *expiring_days,
        }),
        CertsCommand::Crl => Pki::open(dir)
            .and_then(|pki| pki.refresh_crl())
            .map(|crl| println!("wrote {}", crl.display())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fleetmq certs: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `audit`: the folder (or what the broker has seen) against the flags
/// or a configured listener's settings, with the same table either way.
fn audit(request: &AuditRequest) -> Result<(), CertError> {
    let target = super::audit_target::resolve(request)?;
    if let Some(source) = &target.source {
        eprintln!(
            "auditing {} with the client CA, CRLs and v1 setting of {source}",
            target.folder.display()
        );
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    // The CA and CRLs are checked before the folder is read.
    let rows = match super::audit::audit(&target.folder, &target.options, now) {
        Err(CertError::Io { source, .. })
            if request.seen && source.kind() == std::io::ErrorKind::NotFound =>
        {
            println!(
                "no certificates seen yet ({} does not exist: the broker keeps client certificates there once devices connect)",
                target.folder.display()
            );
            return Ok(());
        }
        outcome => outcome?,
    };
    print!("{}", super::audit::render(&rows));
    Ok(())
}

fn key_type(rsa: bool) -> KeyType {
    if rsa {
        KeyType::Rsa2048
    } else {
        KeyType::EcdsaP256
    }
}

fn init(dir: &Path, cn: &str, key: KeyType, days: u32, force: bool) -> Result<(), CertError> {
    let options = CaOptions {
        common_name: cn.to_owned(),
        key,
        days,
        force,
    };
    let pki = Pki::init(dir, &options)?;
    println!(
        "wrote {} (private key, mode 0600)",
        dir.join("ca.key").display()
    );
    println!("wrote {}", pki.ca_cert_path().display());
    println!("wrote {}", pki.crl_path().display());
    println!("wrote {}", pki.index_path().display());
    println!("CA {cn:?} ({key}), valid for {days} days");
    Ok(())
}

fn server(
    dir: &Path,
    name: &str,
    dns: &[String],
    ips: &[IpAddr],
    key: KeyType,
    days: u32,
    force: bool,
) -> Result<(), CertError> {
    let mut pki = Pki::open(dir)?;
    pki.set_overwrite(force);
    let issued = pki.issue_server(name, dns, ips, key, days)?;
    print_issued(&issued, key);
    Ok(())
}

fn device(
    dir: &Path,
    ids: &[String],
    group: Option<&str>,
    key: KeyType,
    days: u32,
    out: Option<&Path>,
    force: bool,
) -> Result<(), CertError> {
    let mut pki = Pki::open(dir)?;
    pki.set_overwrite(force);
    let mut unique: Vec<&str> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id.as_str()) {
            unique.push(id);
        }
    }
    // Check every device before issuing any, so a refusal leaves nothing
    // half done.
    let layout = Layout::new(dir);
    let ca_pem = files::read_text(&pki.ca_cert_path())?;
    for id in &unique {
        profile::check_name("device", id)?;
        let mut paths = vec![
            layout.device_cert(id),
            layout.device_key(id),
            layout.device_ca(id),
        ];
        if let Some(out) = out {
            paths.extend([out.join(format!("{id}.crt")), out.join(format!("{id}.key"))]);
        }
        files::refuse_existing(paths.iter().map(PathBuf::as_path), force)?;
    }
    if let Some(out) = out {
        let out_ca = out.join("ca.crt");
        let same_ca = std::fs::read_to_string(&out_ca).is_ok_and(|existing| existing == ca_pem);
        if !same_ca {
            files::refuse_existing([out_ca.as_path()], force)?;
        }
    }

    for id in unique {
        let issued = pki.issue_device(id, group, key, days)?;
        print_issued(&issued, key);
        if let Some(out) = out {
            copy_to(out, &issued, &ca_pem)?;
        }
    }
    Ok(())
}

/// `--out`: the device's certificate, key (0600) and the CA, for the
/// firmware's file system image.
fn copy_to(out: &Path, issued: &Issued, ca_pem: &str) -> Result<(), CertError> {
    let cert = out.join(format!("{}.crt", issued.id));
    let key = out.join(format!("{}.key", issued.id));
    let ca = out.join("ca.crt");
    files::write_file(
        &cert,
        files::read_text(&issued.cert_path)?.as_bytes(),
        Secrecy::Public,
    )?;
    files::write_file(
        &key,
        files::read_text(&issued.key_path)?.as_bytes(),
        Secrecy::Private,
    )?;
    files::write_file(&ca, ca_pem.as_bytes(), Secrecy::Public)?;
    println!("wrote {}", cert.display());
    println!("wrote {} (private key, mode 0600)", key.display());
    println!("wrote {}", ca.display());
    Ok(())
}

fn print_issued(issued: &Issued, key: KeyType) {
    println!("wrote {}", issued.cert_path.display());
    println!(
        "wrote {} (private key, mode 0600)",
        issued.key_path.display()
    );
    if let Some(ca_copy) = &issued.ca_copy_path {
        println!("wrote {}", ca_copy.display());
    }
    println!(
        "{} {}: {key}, serial {}, valid until {}, sha256 {}",
        issued.kind,
        issued.id,
        issued.serial,
        rfc3339(issued.not_after),
        issued.fingerprint
    );
    for serial in &issued.still_valid_earlier {
        println!(
            "note: the earlier certificate {serial} of {} is still valid; \
             revoke it with `fleetmq certs revoke {serial}`",
            issued.id
        );
    }
}

fn revoke(dir: &Path, targets: &[String]) -> Result<(), CertError> {
    let pki = Pki::open(dir)?;
    let mut first_error = None;
    for target in targets {
        match pki.revoke(target) {
            Ok(revoked) => {
                for cert in &revoked.certs {
                    println!("revoked {} {} serial {}", cert.kind, cert.id, cert.serial);
                }
                println!("wrote {}", revoked.crl_path.display());
            }
            // Keep going: one typo should not stop the other revocations.
            Err(error) => {
                eprintln!("fleetmq certs: {error}");
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        None => {
            println!("reload the broker's CRL with SIGHUP (systemctl reload fleetmq)");
            Ok(())
        }
        Some(error) => Err(error),
    }
}

fn list(dir: &Path) -> Result<(), CertError> {
    let pki = Pki::open(dir)?;
    let certs = pki.list()?;
    if certs.is_empty() {
        println!(
            "no certificates issued yet ({})",
            pki.index_path().display()
        );
        return Ok(());
    }
    print!("{}", table(&certs));
    Ok(())
}

/// The `list` table: kind, id, serial, not after, days left, revoked.
fn table(certs: &[IssuedCert]) -> String {
    let header = ["KIND", "ID", "SERIAL", "NOT AFTER", "DAYS LEFT", "REVOKED"].map(str::to_owned);
    let rows: Vec<[String; 6]> = certs
        .iter()
        .map(|cert| {
            [
                cert.kind.to_string(),
                cert.id.clone(),
                cert.serial.clone(),
                rfc3339(cert.not_after),
                if cert.days_left < 0 {
                    "expired".to_owned()
                } else {
                    cert.days_left.to_string()
                },
                cert.revoked_at.map_or_else(|| "-".to_owned(), rfc3339),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|cell| cell.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::certs::CertKind;
    use std::path::PathBuf;

    #[test]
    fn table_aligns_columns_and_marks_expired_and_revoked() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let cert = |id: &str, days_left, revoked: bool| IssuedCert {
            kind: CertKind::Device,
            id: id.to_owned(),
            group: None,
            key: KeyType::EcdsaP256,
            serial: "0a1b".to_owned(),
            fingerprint: String::new(),
            issued_at: at,
            not_after: at,
            days_left,
            revoked_at: revoked.then_some(at),
            cert_path: PathBuf::new(),
            issued_by: None,
            replaces: None,
        };
        let text = table(&[cert("esp32_long_name", 5, false), cert("b", -1, true)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("KIND    ID               SERIAL"),
            "{text}"
        );
        assert!(lines[1].contains("2023-11-14T22:13:20Z  5"), "{text}");
        assert!(
            lines[2].contains("expired    2023-11-14T22:13:20Z"),
            "{text}"
        );
    }
}
