//! A simulated device of the provisioning tests: it makes its own P-256
//! key (never sent anywhere), asks over real mutual TLS with the claim
//! certificate (or its own), keeps the answer as files and connects with
//! them. The broker, TLS and MQTT are real; the CSR, the request document
//! and the reading of the answer are the firmware crate's
//! (`fleetmq_firmware::provision`); only the key is rcgen's (aws-lc-rs)
//! instead of mbedTLS's.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use fleetmq_firmware::provision::message::Answer;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::harness::pki::Issued;
use crate::harness::tls::{self, client_config, ANY_VERSION};
use crate::harness::{ConnectBuilder, RawClient, WAIT};

/// One device and its folder (key, certificate).
pub struct Device {
    pub id: String,
    pub key: KeyPair,
    pub dir: PathBuf,
}

impl Device {
    pub fn new(root: &Path, id: &str) -> Device {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key_path = dir.join("device.key");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_path)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, key.serialize_pem().as_bytes())
            })
            .unwrap();
        Device {
            id: id.to_owned(),
            key,
            dir,
        }
    }

    /// A CSR for this device's key: CN = id, nothing else, unless `edit`
    /// asks for more.
    pub fn csr_with(&self, edit: impl FnOnce(&mut CertificateParams)) -> String {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, self.id.as_str());
        params.distinguished_name = name;
        edit(&mut params);
        params.serialize_request(&self.key).unwrap().pem().unwrap()
    }

    /// The CSR the firmware builds for this device's key.
    pub fn csr(&self) -> String {
        let der =
            fleetmq_firmware::provision::csr::build(&self.id, &mut HostKey(&self.key)).unwrap();
        fleetmq_firmware::provision::csr::pem(&der)
    }

    /// The device's own identity files, once it has a certificate.
    pub fn own(&self) -> Issued {
        let cert = self.dir.join("device.crt");
        Issued {
            der: Vec::new(),
            serial: Vec::new(),
            key: self.dir.join("device.key"),
            cert,
        }
    }

    /// The chain last issued (leaf then CA), as received.
    pub fn chain_path(&self) -> PathBuf {
        self.dir.join("chain.pem")
    }

    /// Keeps an issued chain: the leaf as the device's certificate.
    pub fn store(&self, chain: &str) {
        std::fs::write(self.chain_path(), chain).unwrap();
        let leaf_end = chain
            .find("-----END CERTIFICATE-----")
            .map(|at| at + "-----END CERTIFICATE-----\n".len())
            .unwrap();
        std::fs::write(
            self.dir.join("device.crt"),
            &chain[..leaf_end.min(chain.len())],
        )
        .unwrap();
    }
}

/// Connects over mutual TLS as `client_id` with `identity` (3.1.1 or 5.0).
pub fn connect(
    addr: SocketAddr,
    ca: &Path,
    identity: &Issued,
    client_id: &str,
    v5: bool,
) -> std::io::Result<RawClient> {
    let connect = if v5 {
        ConnectBuilder::v5(client_id)
    } else {
        ConnectBuilder::v311(client_id)
    };
    connect_with(addr, ca, identity, connect)
}

/// Connects over mutual TLS with `connect` as the CONNECT.
pub fn connect_with(
    addr: SocketAddr,
    ca: &Path,
    identity: &Issued,
    connect: ConnectBuilder,
) -> std::io::Result<RawClient> {
    let transport = tls::connect(addr, client_config(ca, Some(identity), ANY_VERSION))?;
    let mut client = RawClient::over(transport);
    client.send_connect(&connect);
    match client.recv_packet(WAIT) {
        Some(fleetmq_codec::Packet::ConnAck(ack)) if !ack.reason.is_error() => Ok(client),
        other => Err(std::io::Error::other(format!(
            "no CONNACK accepted: {other:?}"
        ))),
    }
}

/// Sends one request on an open connection and returns the answer.
pub fn ask(
    client: &mut RawClient,
    client_id: &str,
    request: &serde_json::Value,
) -> serde_json::Value {
    let response = format!("$fleetmq/provision/{client_id}/response");
    let reasons = client.subscribe(1, &response, 1);
    assert!(
        !reasons[0].is_error(),
        "subscribe to {response}: {reasons:?}"
    );
    let request_topic = format!("$fleetmq/provision/{client_id}/request");
    client.publish(&request_topic, request.to_string().as_bytes(), 1, false);
    let answer = client.expect_app_publish();
    assert_eq!(&*answer.topic, response.as_str());
    // The firmware reads what the device needs from the same bytes.
    let read = fleetmq_firmware::provision::message::answer(&answer.payload);
    let json: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
    match (&read, json["status"].as_str()) {
        (Some(Answer::Issued { chain }), Some("issued")) => {
            assert_eq!(Some(chain.as_str()), json["chain"].as_str())
        }
        (Some(Answer::Pending), Some("pending")) => {}
        (Some(Answer::Refused { reason, .. }), Some("refused")) => {
            assert_eq!(Some(reason.as_str()), json["reason"].as_str())
        }
        other => panic!("the firmware read {other:?} from {json}"),
    }
    json
}

/// `{"device_id", "csr", "token"?}`.
/// The request document as the firmware writes it.
pub fn request(id: &str, csr: &str, token: Option<&str>) -> serde_json::Value {
    let text = fleetmq_firmware::provision::message::request(id, csr, token);
    serde_json::from_str(&text).unwrap()
}

/// `openssl verify` of an issued chain against the CA, for a TLS client.
pub fn openssl_verify(ca: &Path, chain: &Path) -> (bool, String) {
    let output = Command::new("/usr/bin/openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(ca)
        .arg(chain)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The device's key as the firmware's signer.
struct HostKey<'a>(&'a KeyPair);

impl fleetmq_firmware::provision::csr::CsrSigner for HostKey<'_> {
    type Error = rcgen::Error;
    fn public_key(&self) -> [u8; 65] {
        use rcgen::PublicKeyData;
        self.0.der_bytes().try_into().unwrap()
    }
    fn sign_der(&mut self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use rcgen::SigningKey;
        self.0.sign(message)
    }
}
