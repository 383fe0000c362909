//! The benchmark PKI, made with rcgen: one ECDSA P-256 CA, an ECDSA P-256
//! and an RSA-2048 server certificate for `localhost`/`127.0.0.1`, and a
//! few ECDSA P-256 device certificates. Every broker is given the very same
//! files, so every broker does the same public-key work per handshake.
//!
//! Device certificates carry CN and OU but no O: rumqttd (with
//! `verify-client-cert`) turns O into a tenant prefix, which would split its
//! topic space and make fan-in/out incomparable.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, RsaKeySize, SerialNumber,
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
    pub server_ecdsa: Issued,
    pub server_rsa: Issued,
    pub devices: Vec<Issued>,
}

/// How many distinct device certificates clients cycle through. No broker
/// caches verified client certificates, so more would cost nothing more;
/// several keep it from looking like one device connecting again and again.
pub const DEVICE_CERTS: usize = 8;

impl Pki {
    /// The PKI in `dir`, created on first use and reused afterwards (RSA key
    /// generation takes a moment, and reuse keeps runs comparable).
    pub fn load_or_create(dir: &Path) -> Result<Pki> {
        let pki = Pki::paths(dir);
        let complete = pki.ca.exists()
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
            server_ecdsa: issued("server-ecdsa"),
            server_rsa: issued("server-rsa"),
            devices: (0..DEVICE_CERTS)
                .map(|i| issued(&format!("dev-{i}")))
                .collect(),
        }
    }
}

fn create(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name_of(&[
        (DnType::CommonName, "fleetmq bench CA"),
        (DnType::OrganizationName, "fleetmq bench"),
    ]);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    fs::write(dir.join("ca.crt"), ca.pem())?;

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
        let mut params = CertificateParams::default();
        params.distinguished_name = name_of(&[
            (DnType::CommonName, &name),
            (DnType::OrganizationalUnitName, "bench"),
        ]);
        params.serial_number = Some(SerialNumber::from(0xd000 + i as u64));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2099, 1, 1);
        write_issued(dir, &name, params, KeyPair::generate()?, &ca)?;
    }
    Ok(())
}

fn write_issued(
    dir: &Path,
    name: &str,
    params: CertificateParams,
    key: KeyPair,
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> Result<()> {
    let cert = params.signed_by(&key, ca)?;
    fs::write(dir.join(format!("{name}.crt")), cert.pem())?;
    // Written last: its presence marks the PKI complete.
    fs::write(dir.join(format!("{name}.key")), key.serialize_pem())?;
    Ok(())
}

fn name_of(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for (kind, value) in parts {
        name.push(kind.clone(), *value);
    }
    name
}
