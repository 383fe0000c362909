//! A throw-away PKI made with the `openssl` command line: a CA, a server
//! certificate for 127.0.0.1/localhost, and client certificates with a
//! chosen CN and lifetime. Files are PEM in the given folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of a generated PKI.
pub struct OpensslPki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A client certificate and its key.
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Upper-case hex, as the broker reports it.
    pub serial: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl OpensslPki {
    /// A CA "fleetmq test CA" and a server certificate signed by it.
    pub fn generate(dir: &Path) -> OpensslPki {
        OpensslPki::generate_named(dir, "fleetmq test CA")
    }

    /// Like [`OpensslPki::generate`] with the CA's common name.
    pub fn generate_named(dir: &Path, ca_name: &str) -> OpensslPki {
        let ca_subject = format!("/CN={ca_name}/O=fleetmq tests");
        std::fs::create_dir_all(dir).expect("pki dir");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "365",
                "-subj",
                &ca_subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
             basicConstraints=CA:FALSE\n",
        )
        .expect("server.ext");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "365",
                "-extfile",
                "server.ext",
            ],
        );
        OpensslPki {
            dir: dir.to_path_buf(),
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }

    /// A client certificate with subject `CN=cn, OU=ou`, valid for `days`.
    pub fn client(&self, cn: &str, ou: &str, days: u32) -> ClientCert {
        let dir = &self.dir;
        let ext = format!("{cn}.ext");
        std::fs::write(
            dir.join(&ext),
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        )
        .expect("client ext");
        let (key, csr, cert) = (
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.crt"),
        );
        let subject = format!("/CN={cn}/OU={ou}");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
        );
        let days = days.to_string();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                &days,
                "-extfile",
                &ext,
            ],
        );
        let output = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in", &cert])
            .current_dir(dir)
            .output()
            .expect("openssl x509 -serial");
        let serial = String::from_utf8_lossy(&output.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_uppercase();
        ClientCert {
            cert: dir.join(cert),
            key: dir.join(key),
            serial,
        }
    }

    /// An X.509 version 1 client certificate `CN=cn`, made with the classic
    /// recipe: `openssl req -newkey` then `openssl x509 -req -CA -CAkey`
    /// with no extension file.
    pub fn client_v1(&self, cn: &str) -> ClientCert {
        let dir = &self.dir;
        let (key, csr, cert) = (
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.crt"),
        );
        let subject = format!("/CN={cn}");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "30",
            ],
        );
        let output = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-text", "-in", &cert])
            .current_dir(dir)
            .output()
            .expect("openssl x509 -text");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("Version: 1 (0x0)"),
            "{cert} is not v1:\n{text}"
        );
        let serial = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("serial=")
            .to_uppercase();
        ClientCert {
            cert: dir.join(cert),
            key: dir.join(key),
            serial,
        }
    }

    /// A second, unrelated CA and a client certificate from it (which the
    /// broker must refuse as `unknown_ca`).
    pub fn foreign_client(&self, cn: &str) -> ClientCert {
        let foreign = OpensslPki::generate_named(&self.dir.join("foreign"), "some other CA");
        foreign.client(cn, "foreign", 30)
    }
}
