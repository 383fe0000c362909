//! A throw-away PKI for the TLS tests, made with rcgen in a tempdir when a
//! test starts: nothing secret is ever committed, and every test has its own
//! keys.
//!
//! What it holds (files under [`Pki::dir`], private keys mode 0600):
//! - `ca.crt`: the test CA (ECDSA P-256) that signs the server and device
//!   certificates and the CRLs; `other-ca.crt`: an unrelated CA.
//! - `server-ecdsa`, `server-rsa` (RSA-2048), `server-b` (ECDSA, another
//!   serial, for rotation): server certificates for `localhost`/`127.0.0.1`.
//! - `dev-a` (CN=dev-a, OU=sensors), `dev-b`: valid device certificates;
//!   `dev-expired` (not_after in the past); `dev-revoked` (on `crl.pem`);
//!   `rogue` (CN=dev-a, issued by the unrelated CA).
//! - `crl.pem` revokes `dev-revoked`; `crl-empty.pem` revokes nothing;
//!   [`Pki::write_crl`] signs fresh CRLs for reload tests.
//!
//! What rcgen does not make (X.509 v1 leaves, `openssl ca` databases,
//! weak keys and SHA-1) or what must be made the way a lab makes it is
//! made by the one openssl builder, [`openssl::Openssl`];
//! [`openssl_pki::OpensslPki`] is a ready CA and server made with it.

pub mod openssl;
pub mod openssl_pki;

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, RsaKeySize, SerialNumber,
    PKCS_RSA_SHA256,
};

/// A certificate (and its key) written to disk.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate in DER, to compare with what a peer presented.
    pub der: Vec<u8>,
    /// Serial number: the bytes of the DER integer in the certificate.
    pub serial: Vec<u8>,
}

/// A certificate authority that can sign more certificates and CRLs.
pub struct Authority {
    pub cert: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// Every file a TLS test needs; removed with the tempdir.
pub struct Pki {
    dir: tempfile::TempDir,
    pub ca: Authority,
    pub server_ecdsa: Issued,
    pub server_rsa: Issued,
    /// A second ECDSA server certificate (different key and serial).
    pub server_b: Issued,
    pub dev_a: Issued,
    pub dev_b: Issued,
    pub dev_expired: Issued,
    pub dev_revoked: Issued,
    /// CN=dev-a, but issued by the unrelated CA (`other-ca.crt`).
    pub rogue: Issued,
    /// Revokes `dev_revoked`.
    pub crl: PathBuf,
    /// Revokes nothing.
    pub crl_empty: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("pki tempdir");
        let path = |name: &str| dir.path().join(name);
        let ca = Authority::new(&path("ca.crt"), "fleetmq test CA");
        let other_ca = Authority::new(&path("other-ca.crt"), "unrelated test CA");
        let server = |name: &str, serial: u64, rsa: bool| {
            let key = if rsa {
                KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).expect("rsa key")
            } else {
                KeyPair::generate().expect("ecdsa key")
            };
            let mut params =
                CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                    .expect("server params");
            params.distinguished_name = name_of(&[(DnType::CommonName, name)]);
            params.serial_number = Some(SerialNumber::from(serial));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            if rsa {
                params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
            }
            ca.issue(dir.path(), name, params, key)
        };
        let server_ecdsa = server("server-ecdsa", 0x5e01, false);
        let server_rsa = server("server-rsa", 0x5e02, true);
        let server_b = server("server-b", 0x5e0b, false);
        let dev_a = ca.device(dir.path(), "dev-a", "dev-a", 0xd0a, false);
        let dev_b = ca.device(dir.path(), "dev-b", "dev-b", 0xd0b, false);
        let dev_expired = ca.device(dir.path(), "dev-expired", "dev-expired", 0xd0e, true);
        let dev_revoked = ca.device(dir.path(), "dev-revoked", "dev-revoked", 0xd0f, false);
        let rogue = other_ca.device(dir.path(), "rogue", "dev-a", 0xd0a, false);
        let crl = path("crl.pem");
        ca.write_crl(&crl, 2, &[&dev_revoked]);
        let crl_empty = path("crl-empty.pem");
        ca.write_crl(&crl_empty, 1, &[]);
        Pki {
            dir,
            ca,
            server_ecdsa,
            server_rsa,
            server_b,
            dev_a,
            dev_b,
            dev_expired,
            dev_revoked,
            rogue,
            crl,
            crl_empty,
        }
    }

    /// The folder holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a CRL of the test CA revoking `revoked` to `path` (atomically,
    /// so a broker reading it never sees half a file). `number` must grow
    /// from one CRL to the next.
    pub fn write_crl(&self, path: &Path, number: u64, revoked: &[&Issued]) {
        self.ca.write_crl(path, number, revoked);
    }

    /// A further valid device certificate of the test CA, written as
    /// `<name>.crt`/`<name>.key`: CN `common_name`, OU `unit` (e.g. an
    /// operator's `ops`).
    pub fn issue_device(&self, name: &str, common_name: &str, unit: &str, serial: u64) -> Issued {
        self.ca
            .device_in_unit(self.dir(), name, common_name, unit, serial, false)
    }

    /// The `[listener.tls]` lines for `server` with client certificates
    /// `policy` (`none`, `optional`, `required`), the test CA as client CA
    /// and `crl.pem`.
    pub fn listener_toml(&self, server: &Issued, policy: &str) -> String {
        format!(
            "cert = {}\nkey = {}\nclient_ca = {}\nclient_certs = \"{policy}\"\ncrl = [{}]\n",
            toml_path(&server.cert),
            toml_path(&server.key),
            toml_path(&self.ca.cert),
            toml_path(&self.crl),
        )
    }
}

impl Authority {
    fn new(cert: &Path, common_name: &str) -> Authority {
        let mut params = CertificateParams::default();
        params.distinguished_name = name_of(&[
            (DnType::CommonName, common_name),
            (DnType::OrganizationName, "fleetmq tests"),
        ]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ca key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signed ca");
        write_atomic(cert, issuer.pem().as_bytes(), 0o644);
        Authority {
            cert: cert.to_path_buf(),
            issuer,
        }
    }

    /// Signs `params` for `key`; writes `<name>.crt` and `<name>.key`.
    fn issue(&self, dir: &Path, name: &str, params: CertificateParams, key: KeyPair) -> Issued {
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        write_atomic(&cert_path, cert.pem().as_bytes(), 0o644);
        write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600);
        Issued {
            cert: cert_path,
            key: key_path,
            der: cert.der().to_vec(),
            serial: serial_of(cert.der()),
        }
    }

    /// A device (client) certificate: CN `common_name`, OU=sensors.
    fn device(
        &self,
        dir: &Path,
        name: &str,
        common_name: &str,
        serial: u64,
        expired: bool,
    ) -> Issued {
        self.device_in_unit(dir, name, common_name, "sensors", serial, expired)
    }

    /// A client certificate: CN `common_name`, OU `unit`.
    fn device_in_unit(
        &self,
        dir: &Path,
        name: &str,
        common_name: &str,
        unit: &str,
        serial: u64,
        expired: bool,
    ) -> Issued {
        let mut params = CertificateParams::default();
        params.distinguished_name = name_of(&[
            (DnType::CommonName, common_name),
            (DnType::OrganizationalUnitName, unit),
        ]);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = if expired {
            date_time_ymd(2021, 1, 1)
        } else {
            date_time_ymd(2099, 1, 1)
        };
        self.issue(dir, name, params, KeyPair::generate().expect("device key"))
    }

    fn write_crl(&self, path: &Path, number: u64, revoked: &[&Issued]) {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|cert| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&cert.serial),
                    revocation_time: date_time_ymd(2024, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).expect("sign crl");
        write_atomic(path, crl.pem().expect("crl pem").as_bytes(), 0o644);
    }
}

/// The serial number of a DER certificate, as its DER integer's bytes.
pub fn serial_of(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse certificate");
    cert.raw_serial().to_vec()
}

fn name_of(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for (kind, value) in parts {
        name.push(kind.clone(), *value);
    }
    name
}

/// Writes `bytes` to a sibling temp file with `mode`, then renames it over
/// `path`: readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) {
    let tmp = path.with_extension("tmp-write");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .expect("create file");
    file.write_all(bytes).expect("write file");
    file.sync_all().expect("sync file");
    drop(file);
    fs::rename(&tmp, path).expect("rename file");
}

/// A path as a TOML string.
pub fn toml_path(path: &Path) -> String {
    let text = path.display().to_string();
    assert!(
        !text.contains(['"', '\\']),
        "test paths must not need TOML escapes: {text}"
    );
    format!("\"{text}\"")
}
