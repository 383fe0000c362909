//! A throw-away PKI made with the `openssl` command line ([`super::openssl`]):
//! a CA, a server certificate for 127.0.0.1/localhost, and client
//! certificates with a chosen CN and lifetime, v3 or v1. Files are PEM in
//! the given folder.

use std::path::{Path, PathBuf};

use super::openssl::{CertFiles, Openssl};

/// Paths of a generated PKI.
pub struct OpensslPki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    openssl: Openssl,
}

/// A client certificate and its key.
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Upper-case hex, as the broker reports it.
    pub serial: String,
}

/// The extensions of a server certificate for this host.
const SERVER_EXTENSIONS: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
     extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n";

/// The extensions of a (v3) client certificate.
const CLIENT_EXTENSIONS: &str = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";

impl OpensslPki {
    /// A CA "fleetmq test CA" and a server certificate signed by it.
    pub fn generate(dir: &Path) -> OpensslPki {
        OpensslPki::generate_named(dir, "fleetmq test CA")
    }

    /// Like [`OpensslPki::generate`] with the CA's common name.
    pub fn generate_named(dir: &Path, ca_name: &str) -> OpensslPki {
        let openssl = Openssl::in_dir(dir);
        let ca = openssl
            .ca("ca", &format!("/CN={ca_name}/O=fleetmq tests"))
            .ca_extensions()
            .create();
        let server = openssl
            .cert("server", "/CN=localhost")
            .extensions(SERVER_EXTENSIONS)
            .create();
        OpensslPki {
            dir: dir.to_path_buf(),
            ca_cert: ca.cert,
            server_cert: server.cert,
            server_key: server.key,
            openssl,
        }
    }

    /// A client certificate with subject `CN=cn, OU=ou`, valid for `days`.
    pub fn client(&self, cn: &str, ou: &str, days: u32) -> ClientCert {
        let files = self
            .openssl
            .cert(cn, &format!("/CN={cn}/OU={ou}"))
            .days(days)
            .extensions(CLIENT_EXTENSIONS)
            .create();
        self.client_cert(cn, files)
    }

    /// An X.509 version 1 client certificate `CN=cn`, made with the classic
    /// recipe: `openssl req -newkey` then `openssl x509 -req -CA -CAkey`
    /// with no extension file.
    pub fn client_v1(&self, cn: &str) -> ClientCert {
        let files = self
            .openssl
            .cert(cn, &format!("/CN={cn}"))
            .days(30)
            .create();
        self.openssl.assert_v1(&format!("{cn}.crt"));
        self.client_cert(cn, files)
    }

    fn client_cert(&self, cn: &str, files: CertFiles) -> ClientCert {
        ClientCert {
            serial: self.openssl.serial(&format!("{cn}.crt")),
            cert: files.cert,
            key: files.key,
        }
    }

    /// A second, unrelated CA and a client certificate from it (which the
    /// broker must refuse as `unknown_ca`).
    pub fn foreign_client(&self, cn: &str) -> ClientCert {
        let foreign = OpensslPki::generate_named(&self.dir.join("foreign"), "some other CA");
        foreign.client(cn, "foreign", 30)
    }
}
