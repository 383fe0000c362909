//! The one builder of certificates made with the `openssl` command line,
//! for the tests that need what rcgen ([`super::Pki`]) does not make: X.509
//! v1 device certificates (the classic `openssl x509 -req` recipe without
//! an extension file), RSA-1024 or SHA-1 signatures, `openssl ca`
//! databases with dated certificates and CRLs, or simply the files a lab
//! makes with openssl.
//!
//! [`Openssl`] runs openssl in one folder; [`Openssl::ca`] and
//! [`Openssl::cert`] describe a certificate and [`CertBuilder::create`]
//! makes it. It knows nothing of brokers or listeners.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The key of a certificate.
#[derive(Clone, Copy, Debug)]
pub enum Key {
    /// ECDSA on P-256 (`-newkey ec -pkeyopt ec_paramgen_curve:P-256`).
    P256,
    /// RSA with this many bits (`-newkey rsa:BITS`).
    Rsa(u32),
}

/// A folder in which openssl makes certificates; file names are relative
/// to it.
pub struct Openssl {
    dir: PathBuf,
}

/// The files of a certificate made by [`CertBuilder::create`].
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Openssl {
    /// Runs openssl in `dir` (created if missing).
    pub fn in_dir(dir: &Path) -> Openssl {
        std::fs::create_dir_all(dir).expect("pki dir");
        Openssl {
            dir: dir.to_path_buf(),
        }
    }

    /// `openssl ARGS...` in the folder, which must succeed.
    pub fn run(&self, args: &[&str]) -> Output {
        let output = self.output(args);
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn output(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run openssl (Debian package openssl)")
    }

    /// A self-signed certificate `<name>.crt`/`<name>.key` (a CA; add
    /// [`CertBuilder::ca_extensions`] for a v3 one).
    pub fn ca(&self, name: &str, subject: &str) -> CertBuilder<'_> {
        CertBuilder {
            issuer: None,
            ..self.cert(name, subject)
        }
    }

    /// A certificate `<name>.crt`/`<name>.key` signed by the CA `ca` (see
    /// [`CertBuilder::issuer`]): v1 unless it has
    /// [`CertBuilder::extensions`].
    pub fn cert(&self, name: &str, subject: &str) -> CertBuilder<'_> {
        CertBuilder {
            openssl: self,
            name: name.to_string(),
            subject: subject.to_string(),
            key: Key::P256,
            days: 365,
            issuer: Some("ca".to_string()),
            ca_extensions: false,
            extensions: None,
            extra: Vec::new(),
            key_dir: None,
            cert_dir: None,
        }
    }

    /// The serial number of `cert` as the broker reports it (upper-case
    /// hex).
    pub fn serial(&self, cert: &str) -> String {
        let output = self.run(&["x509", "-noout", "-serial", "-in", cert]);
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_uppercase()
    }

    /// Panics unless `cert` is an X.509 version 1 certificate.
    pub fn assert_v1(&self, cert: &str) {
        let output = self.run(&["x509", "-noout", "-text", "-in", cert]);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("Version: 1 (0x0)"),
            "{cert} is not v1:\n{text}"
        );
    }

    /// An `openssl ca` database for the CA `ca`: the configuration
    /// `ca.cnf` (given), an empty `index.txt`, the serial file `ca-serial`
    /// (1000) and `crlnumber` (01).
    pub fn ca_database(&self, config: &str) {
        for (file, text) in [
            ("ca.cnf", config),
            ("index.txt", ""),
            ("ca-serial", "1000\n"),
            ("crlnumber", "01\n"),
        ] {
            std::fs::write(self.dir.join(file), text).expect("ca database");
        }
    }

    /// `openssl ca` signs `csr` into `cert`, valid from `start` to `end`
    /// (`YYYYMMDDHHMMSSZ`): the way to make an expired certificate.
    pub fn ca_sign_dated(&self, csr: &str, cert: &str, start: &str, end: &str) {
        self.run(&[
            "ca",
            "-config",
            "ca.cnf",
            "-batch",
            "-notext",
            "-in",
            csr,
            "-out",
            cert,
            "-startdate",
            start,
            "-enddate",
            end,
        ]);
    }

    /// `openssl ca` revokes `cert`.
    pub fn ca_revoke(&self, cert: &str) {
        self.run(&["ca", "-config", "ca.cnf", "-revoke", cert]);
    }

    /// `openssl ca` writes the CRL `out`.
    pub fn ca_crl(&self, out: &str) {
        self.run(&["ca", "-config", "ca.cnf", "-gencrl", "-out", out]);
    }

    /// A key and its CSR, without a certificate (for [`Self::ca_sign_dated`]).
    pub fn key_and_csr(&self, key_type: Key, key: &str, csr: &str, subject: &str) {
        let key_args = key_type.args();
        let mut args = vec!["req"];
        args.extend(key_args.iter().map(String::as_str));
        args.extend(["-nodes", "-keyout", key, "-out", csr, "-subj", subject]);
        self.run(&args);
    }
}

impl Key {
    /// The `openssl req` arguments that make the key.
    fn args(self) -> Vec<String> {
        match self {
            Key::P256 => ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
                .map(String::from)
                .to_vec(),
            Key::Rsa(bits) => vec!["-newkey".to_string(), format!("rsa:{bits}")],
        }
    }
}

/// One certificate to make (see [`Openssl::ca`], [`Openssl::cert`]).
pub struct CertBuilder<'a> {
    openssl: &'a Openssl,
    /// File stem of the key, CSR, certificate and extension file.
    name: String,
    /// `-subj`, e.g. `/CN=dev-a/OU=sensors`.
    subject: String,
    key: Key,
    days: u32,
    /// The file stem of the signing CA; None: self-signed.
    issuer: Option<String>,
    /// A self-signed CA with critical basicConstraints and keyUsage.
    ca_extensions: bool,
    /// The `-extfile` of a signed certificate (which makes it v3).
    extensions: Option<String>,
    /// More `openssl x509 -req` arguments (e.g. `-sha1`).
    extra: Vec<String>,
    /// Folders (relative) for the key and CSR, and for the certificate.
    key_dir: Option<String>,
    cert_dir: Option<String>,
}

impl CertBuilder<'_> {
    pub fn key(mut self, key: Key) -> Self {
        self.key = key;
        self
    }

    pub fn days(mut self, days: u32) -> Self {
        self.days = days;
        self
    }

    /// Signed by the CA `<name>.crt`/`<name>.key`.
    pub fn issuer(mut self, name: &str) -> Self {
        self.issuer = Some(name.to_string());
        self
    }

    pub fn ca_extensions(mut self) -> Self {
        self.ca_extensions = true;
        self
    }

    /// Extension lines, written to `<name>.ext` and given as `-extfile`.
    pub fn extensions(mut self, lines: &str) -> Self {
        self.extensions = Some(lines.to_string());
        self
    }

    pub fn extra(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Key and CSR in `key_dir`, certificate in `cert_dir` (folders made
    /// here if missing).
    pub fn folders(mut self, key_dir: &str, cert_dir: &str) -> Self {
        self.key_dir = Some(key_dir.to_string());
        self.cert_dir = Some(cert_dir.to_string());
        self
    }

    /// Runs openssl; panics with its output if it fails.
    pub fn create(self) -> CertFiles {
        let at = |folder: &Option<String>, file: String| match folder {
            Some(folder) => {
                std::fs::create_dir_all(self.openssl.dir.join(folder)).expect("pki folder");
                format!("{folder}/{file}")
            }
            None => file,
        };
        let key = at(&self.key_dir, format!("{}.key", self.name));
        let csr = at(&self.key_dir, format!("{}.csr", self.name));
        let cert = at(&self.cert_dir, format!("{}.crt", self.name));
        let days = self.days.to_string();
        match &self.issuer {
            None => {
                let key_args = self.key.args();
                let mut args = vec!["req", "-x509"];
                args.extend(key_args.iter().map(String::as_str));
                args.extend(["-nodes", "-keyout", &key, "-out", &cert, "-days", &days]);
                args.extend(["-subj", &self.subject]);
                if self.ca_extensions {
                    args.extend([
                        "-addext",
                        "basicConstraints=critical,CA:TRUE",
                        "-addext",
                        "keyUsage=critical,keyCertSign,cRLSign",
                    ]);
                }
                self.openssl.run(&args);
            }
            Some(issuer) => {
                self.openssl
                    .key_and_csr(self.key, &key, &csr, &self.subject);
                let (ca_cert, ca_key) = (format!("{issuer}.crt"), format!("{issuer}.key"));
                let ext = format!("{}.ext", self.name);
                let mut args = vec![
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_cert,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-out",
                    &cert,
                    "-days",
                    &days,
                ];
                if let Some(lines) = &self.extensions {
                    std::fs::write(self.openssl.dir.join(&ext), lines).expect("extension file");
                    args.extend(["-extfile", &ext]);
                }
                args.extend(self.extra.iter().map(String::as_str));
                self.openssl.run(&args);
            }
        }
        CertFiles {
            cert: self.openssl.dir.join(cert),
            key: self.openssl.dir.join(key),
        }
    }
}
