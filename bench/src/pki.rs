//! The benchmark PKI, made with rcgen: one ECDSA P-256 CA (its key kept
//! as `ca.key`, mode 0600, to sign the fleet's certificates later), an
//! ECDSA P-256 and an RSA-2048 server certificate for
//! `localhost`/`127.0.0.1`, and a few ECDSA P-256 device certificates.
//! Every broker is given the very same files, so every broker does the
//! same public-key work per handshake. The fleet's certificate per device
//! is [`crate::fleet_pki`]'s.
//!
//! Device certificates carry CN and OU but no O: rumqttd (with
//! `verify-client-cert`) turns O into a tenant prefix, which would split its
//! topic space and make fan-in/out incomparable.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RsaKeySize, SerialNumber,
    PKCS_RSA_SHA256,
};

/// A certificate and its key on disk (PEM; the key in PKCS#8).
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file the brokers and the load generator use.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    /// The CA's key (mode 0600): only the bench reads it.
    pub ca_key: PathBuf,
    pub server_ecdsa: Issued,
    pub server_rsa: Issued,
    pub devices: Vec<Issued>,
    /// The fleet's certificates and keys, one bundle (see
    /// [`crate::fleet_pki`]); removed whenever the CA is made anew.
    pub fleet_bundle: PathBuf,
}

/// How many distinct device certificates the connect storms cycle
/// through: they model devices reconnecting, whose chains the broker has
/// seen (fleetmq's chain cache then verifies each of these chains once
/// per broker start; the device's handshake signature is checked on every
/// connect). Fleets, and the first-connects storm, have a certificate per
/// device instead ([`crate::fleet_pki`]): after a restart every chain is
/// verified, as in a lab.
pub const DEVICE_CERTS: usize = 8;

impl Pki {
    /// The PKI in `dir`, created on first use and reused afterwards (RSA key
    /// generation takes a moment, and reuse keeps runs comparable). A
    /// folder missing any file, the CA's key included, is made anew.
    pub fn load_or_create(dir: &Path) -> Result<Pki> {
        let pki = Pki::paths(dir);
        let complete = pki.ca.exists()
            && pki.ca_key.exists()
            && pki.server_rsa.key.exists()
            && pki.devices.iter().all(|d| d.key.exists());
        if !complete {
            create(dir).with_context(|| format!("creating the bench PKI in {}", dir.display()))?;
        }
        Ok(pki)
    }

    fn paths(dir: &Path) -> Pki {
        let issued = |name: &str| Issued {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        Pki {
            ca: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_ecdsa: issued("server-ecdsa"),
            server_rsa: issued("server-rsa"),
            devices: (0..DEVICE_CERTS)
                .map(|i| issued(&format!("dev-{i}")))
                .collect(),
            fleet_bundle: dir.join("fleet-devices.pem"),
        }
    }

    /// The CA as an issuer, from `ca.key` and the parameters it was made
    /// with (the subject and key identifier of `ca.crt` follow from them).
    pub fn ca_issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let pem = fs::read_to_string(&self.ca_key)
            .with_context(|| format!("reading {}", self.ca_key.display()))?;
        let key = KeyPair::from_pem(&pem)
            .with_context(|| format!("parsing {}", self.ca_key.display()))?;
        Ok(Issuer::new(ca_params(), key))
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name_of(&[
        (DnType::CommonName, "fleetmq bench CA"),
        (DnType::OrganizationName, "fleetmq bench"),
    ]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A device certificate's parameters: CN `name`, OU `bench`, client
/// authentication, valid 2020–2099. Without a serial, rcgen derives one
/// from the device's public key (unique per key).
pub fn device_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name_of(&[
        (DnType::CommonName, name),
        (DnType::OrganizationalUnitName, "bench"),
    ]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2099, 1, 1);
    params
}

fn create(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    let pki = Pki::paths(dir);
    // A bundle signed by the old CA must not outlive it.
    match fs::remove_file(&pki.fleet_bundle) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("removing {}", pki.fleet_bundle.display()))
        }
        _ => {}
    }
    let ca = CertifiedIssuer::self_signed(ca_params(), KeyPair::generate()?)?;
    fs::write(&pki.ca, ca.pem())?;
    write_private(&pki.ca_key, ca.key().serialize_pem().as_bytes())?;

    for (name, rsa) in [("server-ecdsa", false), ("server-rsa", true)] {
        let key = if rsa {
            KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?
        } else {
            KeyPair::generate()?
        };
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params.distinguished_name = name_of(&[(DnType::CommonName, name)]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if rsa {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        write_issued(dir, name, params, key, &ca)?;
    }
    for i in 0..DEVICE_CERTS {
        let name = format!("dev-{i}");
        let mut params = device_params(&name);
        params.serial_number = Some(SerialNumber::from(0xd000 + i as u64));
        write_issued(dir, &name, params, KeyPair::generate()?, &ca)?;
    }
    Ok(())
}

fn write_issued(
    dir: &Path,
    name: &str,
    params: CertificateParams,
    key: KeyPair,
    ca: &Issuer<'_, KeyPair>,
) -> Result<()> {
    let cert = params.signed_by(&key, ca)?;
    fs::write(dir.join(format!("{name}.crt")), cert.pem())?;
    // Written last: its presence marks the PKI complete.
    fs::write(dir.join(format!("{name}.key")), key.serialize_pem())?;
    Ok(())
}

/// Writes a file only its owner may read (mode 0600): into a new
/// temporary file next to it, then renamed over it, so the file is
/// either whole or absent and never readable by others meanwhile.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    match fs::remove_file(&temp) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("removing {}", temp.display()))
        }
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    fs::rename(&temp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn name_of(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for (kind, value) in parts {
        name.push(kind.clone(), *value);
    }
    name
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A folder of its own under the system's temporary folder, removed
    /// on drop.
    pub(crate) struct TempDir {
        pub path: PathBuf,
    }

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            let path = std::env::temp_dir()
                .join(format!("fleetmq-bench-test-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            TempDir { path }
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.path);
        }
    }

    pub(crate) fn mode(path: &Path) -> Result<u32> {
        Ok(fs::metadata(path)?.permissions().mode() & 0o777)
    }

    #[test]
    fn the_ca_key_is_kept_private_and_a_folder_without_it_is_made_anew() -> Result<()> {
        let dir = TempDir::new("pki-ca-key");
        let pki = Pki::load_or_create(&dir.path)?;
        assert_eq!(mode(&pki.ca_key)?, 0o600);
        assert!(pki.ca_issuer().is_ok());
        let ca = fs::read(&pki.ca)?;
        // Reused while complete.
        Pki::load_or_create(&dir.path)?;
        assert_eq!(fs::read(&pki.ca)?, ca);

        // A folder of before the CA's key was kept: everything anew, and
        // a bundle signed by the old CA goes with it.
        fs::remove_file(&pki.ca_key)?;
        fs::write(&pki.fleet_bundle, "stale")?;
        let pki = Pki::load_or_create(&dir.path)?;
        assert_ne!(fs::read(&pki.ca)?, ca);
        assert_eq!(mode(&pki.ca_key)?, 0o600);
        assert!(!pki.fleet_bundle.exists());
        assert!(pki.devices.iter().all(|device| device.key.exists()));
        Ok(())
    }

    #[test]
    fn private_files_are_written_0600_over_readable_ones() -> Result<()> {
        let dir = TempDir::new("pki-private");
        fs::create_dir_all(&dir.path)?;
        let path = dir.path.join("secret.pem");
        fs::write(&path, "old")?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        write_private(&path, b"new")?;
        assert_eq!(fs::read(&path)?, b"new");
        assert_eq!(mode(&path)?, 0o600);
        assert!(!dir.path.join("secret.pem.tmp").exists());
        Ok(())
    }
}
