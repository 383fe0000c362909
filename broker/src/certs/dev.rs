//! The embedded default's PKI: with no configuration, the broker still
//! offers TLS on 8883, with a CA and a `localhost` server certificate it
//! makes itself in its data folder on first start.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use time::Duration;

use super::files::{self, Layout};
use super::inspect;
use super::profile::{self, check_dns_name};
use super::{CaOptions, CertError, KeyType, Pki, DEFAULT_SERVER_DAYS};

/// Name of the server certificate the embedded default uses.
pub const DEV_SERVER_NAME: &str = "localhost";

/// Renew the dev server certificate when it has less than this left.
const RENEW_BEFORE: Duration = Duration::days(30);
/// Re-sign the CRL when it has less than this left before its next update.
const CRL_REFRESH_BEFORE: Duration = Duration::days(7);

/// The files the embedded default's TLS listener uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPki {
    /// `pki/ca.crt`: what clients pass as `--cafile`.
    pub ca_cert: PathBuf,
    /// `pki/server/localhost.crt`.
    pub server_cert: PathBuf,
    /// `pki/server/localhost.key` (0600).
    pub server_key: PathBuf,
    /// `pki/crl.pem`.
    pub crl: PathBuf,
    /// Whether this call created the CA or (re)issued the server
    /// certificate, so start-up can print where the new files are.
    pub created: bool,
}

/// Makes sure `<data_dir>/pki` has a CA, a current `server/localhost`
/// certificate (SANs: localhost, 127.0.0.1, ::1 and this machine's host
/// name) and a current CRL; creates or renews what is missing. Calling it
/// again changes nothing. An existing CA is never replaced.
pub fn ensure_dev_pki(data_dir: &Path) -> Result<DevPki, CertError> {
    let dir = data_dir.join("pki");
    let layout = Layout::new(&dir);
    let mut created = false;
    let mut pki = if layout.ca_cert().exists() || layout.ca_key().exists() {
        Pki::open(&dir)?
    } else {
        created = true;
        Pki::init(&dir, &CaOptions::default())?
    };

    let server_cert = pki.server_cert_path(DEV_SERVER_NAME);
    let server_key = pki.server_key_path(DEV_SERVER_NAME);
    if created || !server_cert.exists() || !server_key.exists() || needs_renewal(&server_cert)? {
        // Only files this function made itself are replaced here.
        pki.set_overwrite(true);
        pki.issue_server(
            DEV_SERVER_NAME,
            &dev_dns_names(),
            &[
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            KeyType::EcdsaP256,
            DEFAULT_SERVER_DAYS,
        )?;
        created = true;
    }

    let crl_is_current = pki
        .crl_next_update()?
        .is_some_and(|next_update| next_update - profile::now() > CRL_REFRESH_BEFORE);
    if !crl_is_current || !pki.crl_path().exists() {
        pki.refresh_crl()?;
    }

    Ok(DevPki {
        ca_cert: pki.ca_cert_path(),
        server_cert,
        server_key,
        crl: pki.crl_path(),
        created,
    })
}

/// Whether the certificate expires soon or cannot be read back.
fn needs_renewal(cert_path: &Path) -> Result<bool, CertError> {
    let pem = files::read_text(cert_path)?;
    let facts = inspect::der_from_pem(&pem, cert_path)
        .and_then(|der| inspect::facts_from_der(&der, cert_path));
    Ok(match facts {
        Ok(facts) => facts.not_after - profile::now() < RENEW_BEFORE,
        Err(error) => {
            tracing::warn!(%error, "replacing the unreadable dev server certificate");
            true
        }
    })
}

/// `localhost` plus this machine's host name, when it has a usable one, so
/// that devices on the LAN can connect by name.
fn dev_dns_names() -> Vec<String> {
    let mut names = vec![DEV_SERVER_NAME.to_owned()];
    if let Some(host) = host_name() {
        if !names.contains(&host) {
            names.push(host);
        }
    }
    names
}

/// The host name, best effort: the kernel's, `/etc/hostname`, `$HOSTNAME`.
fn host_name() -> Option<String> {
    let candidates = [
        std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
        std::fs::read_to_string("/etc/hostname").ok(),
        std::env::var("HOSTNAME").ok(),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|name| name.trim().to_ascii_lowercase())
        .find(|name| check_dns_name(name).is_ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn dns_names_start_with_localhost_and_have_no_duplicates() {
        let names = dev_dns_names();
        assert_eq!(names[0], "localhost");
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(unique, names);
        for name in &names {
            check_dns_name(name).unwrap();
        }
    }
}
