//! Provisioning by claim in the simulation: the device's key and
//! certificate live in `--claim-state DIR` (the simulation's flash). A
//! device without them makes a P-256 key (rcgen on aws-lc-rs standing in
//! for mbedTLS on the chip), builds its CSR with the firmware's
//! `provision::csr`, asks over TLS with the claim certificate until it is
//! issued, writes both files (key 0600) and connects with them from then
//! on. At each start a stored certificate within `--renew-before-secs` of
//! its end is renewed first, asking with that certificate.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use fleetmq_firmware::config::ClientIdentity;
use fleetmq_firmware::provision::csr::{self, CsrSigner};
use fleetmq_firmware::provision::message::{self, Answer};
use fleetmq_firmware::provision::renewal;
use fleetmq_firmware::runner::{self, Clock, Device, Log, Net};
use fleetmq_firmware::topic::Mac;
use mbedtls_rs::TlsReference;
use rcgen::{KeyPair, PublicKeyData, SigningKey};

/// `--claim-state` and `--renew-before-secs`.
#[derive(Debug, Clone)]
pub struct ClaimState {
    /// Where each device keeps `<client id>.crt` and `.key`.
    pub dir: std::path::PathBuf,
    /// Renew a stored certificate this close to its end (seconds).
    pub renew_before_secs: i64,
}

/// The device's key as the CSR's signer.
struct HostKey<'a>(&'a KeyPair);

impl CsrSigner for HostKey<'_> {
    type Error = rcgen::Error;
    fn public_key(&self) -> [u8; 65] {
        self.0.der_bytes().try_into().unwrap_or([0; 65])
    }
    fn sign_der(&mut self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(message)
    }
}

/// The device with its own certificate: read from `dir`, or provisioned
/// first. Retries every few seconds while the broker says pending or
/// refuses (its log says why).
pub async fn own_identity<N: Net, C: Clock, L: Log>(
    net: &mut N,
    clock: &C,
    log: &L,
    device: Device,
    mac: Mac,
    tls: TlsReference<'_>,
    state: &ClaimState,
) -> Result<Device, String> {
    let (dir, renew_before_secs) = (state.dir.as_path(), state.renew_before_secs);
    let id = device.names.client_id.clone();
    let (cert_path, key_path) = (dir.join(format!("{id}.crt")), dir.join(format!("{id}.key")));
    // With a stored certificate: renew it first when it is due (checked at
    // each start), asking with the certificate itself.
    let (device, what) = match (std::fs::read(&cert_path), std::fs::read(&key_path)) {
        (Ok(cert_pem), Ok(key_pem)) => {
            let stored = with_identity(device, mac, cert_pem.clone(), key_pem)?;
            let ends = pem_der(&cert_pem).and_then(|der| renewal::not_after(&der));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
                });
            match ends {
                Some(ends) if renewal::due(ends, now, renew_before_secs) => {
                    log.line(&format!(
                        "PROV certificate ends in {} s: renewing",
                        ends - now
                    ));
                    (stored, "renewed")
                }
                _ => {
                    log.line(&format!(
                        "PROV using the stored certificate {}",
                        cert_path.display()
                    ));
                    return Ok(stored);
                }
            }
        }
        _ => (device, "issued"),
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot make a key: {e}"))?;
    let der =
        csr::build(&id, &mut HostKey(&key)).map_err(|e| format!("cannot build the CSR: {e:?}"))?;
    let request = message::request(&id, &csr::pem(&der), None);
    loop {
        match runner::provision::ask(net, clock, log, &device, tls, &request, 10_000).await {
            Ok(Answer::Issued { chain }) => {
                let leaf_end = chain
                    .find("-----END CERTIFICATE-----")
                    .map_or(chain.len(), |at| at + "-----END CERTIFICATE-----\n".len())
                    .min(chain.len());
                let leaf = chain.get(..leaf_end).unwrap_or(&chain).as_bytes().to_vec();
                store(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
                store(&cert_path, &leaf, 0o644)?;
                log.line(&format!(
                    "PROV certificate {what}, stored in {}",
                    cert_path.display()
                ));
                return with_identity(device, mac, leaf, key.serialize_pem().into_bytes());
            }
            Ok(Answer::Pending) => log.line("PROV pending approval; asking again in 3 s"),
            Ok(Answer::Refused { reason, detail }) => log.line(&format!(
                "PROV refused ({reason}): {detail}; asking again in 3 s"
            )),
            Err(e) => log.line(&format!("PROV failed: {}; asking again in 3 s", e.message)),
        }
        clock.sleep_ms(3_000).await;
    }
}

fn with_identity(
    device: Device,
    mac: Mac,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
) -> Result<Device, String> {
    let chip = device.chip;
    let mut config = device.config;
    config.tls.client = Some(ClientIdentity { cert_pem, key_pem });
    Ok(Device::new(config, mac)?.on_chip(chip))
}

/// Writes `bytes` atomically with `mode` (the key: 0600).
fn store(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let temp = path.with_extension("tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// The DER of the first certificate of `pem`.
fn pem_der(pem: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).ok()?;
    let body = text.split("-----BEGIN CERTIFICATE-----").nth(1)?;
    let body = body.split("-----END CERTIFICATE-----").next()?;
    let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}
