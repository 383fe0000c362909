//! The device's own certificate, by claim (docs/provisioning.md): the same
//! flow on the ESP32 (key and certificate in a flash partition) and in the
//! host simulation (a folder per fleet).
//!
//! At start: with a stored identity that is not due for renewal, use it.
//! Without one, make a P-256 key from the platform's true random source,
//! ask with the configured (claim) certificate until a certificate is
//! issued, keep both ([`IdentityStore`]) and use them from then on. With a
//! stored identity within `renew_before_secs` of its end, ask once with it
//! for a new certificate (a new key too); if the broker does not issue one,
//! keep using the stored identity and try again at the next check.
//!
//! This module owns the order of those steps; what the bytes mean is
//! `provision`'s, where they are kept is the platform's.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mbedtls_rs::TlsReference;

use super::{Clock, Device, Log, Net};
use crate::config::ClientIdentity;
use crate::provision::csr;
use crate::provision::key::DeviceKey;
use crate::provision::message::{self, Answer};
use crate::provision::renewal;
use crate::topic::Mac;

/// How long one exchange may take before the device asks again.
const ASK_TIMEOUT_MS: u64 = 10_000;
/// Pause between requests while pending or refused (first certificate).
const RETRY_MS: u64 = 3_000;

/// Where the platform keeps the device's key and certificate.
pub trait IdentityStore {
    /// The stored certificate (PEM) and key (PEM), if any.
    fn load(&mut self) -> Result<Option<ClientIdentity>, String>;
    /// Keeps `key` and the certificate `cert_pem` as the device's identity.
    fn save(&mut self, key: &DeviceKey, cert_pem: &[u8]) -> Result<(), String>;
    /// Where it is kept, for log lines.
    fn describe(&self) -> String;
}

/// The platform's true random source: fills 32 bytes.
pub trait TrueRandom {
    /// Fills `out` with bytes from a true random source.
    fn fill(&mut self, out: &mut [u8; 32]);
}

/// The device with its identity, and when (Unix seconds) it should next
/// check for renewal (`None`: unknown, e.g. an unreadable notAfter).
pub struct Identified {
    /// The device, presenting its own certificate.
    pub device: Device,
    /// When renewal becomes due (notAfter minus the threshold).
    pub renew_at_unix: Option<i64>,
}

impl Identified {
    /// From "the certificate ends then" to "renew this long before".
    fn due_before(self, renew_before_secs: i64) -> Identified {
        Identified {
            renew_at_unix: self
                .renew_at_unix
                .map(|ends| ends.saturating_sub(renew_before_secs)),
            ..self
        }
    }
}

/// Returns the device with its own certificate: stored, renewed or issued.
/// `now_unix` is the wall clock set by SNTP (the caller syncs it first).
#[allow(clippy::too_many_arguments)]
pub async fn own_identity<N: Net, C: Clock, L: Log, S: IdentityStore, R: TrueRandom>(
    net: &mut N,
    clock: &C,
    log: &L,
    claim: &Device,
    mac: Mac,
    tls: TlsReference<'_>,
    store: &mut S,
    random: &mut R,
    now_unix: i64,
    renew_before_secs: i64,
) -> Result<Identified, String> {
    let id = claim.names.client_id.clone();
    let stored = match store.load() {
        Ok(stored) => stored,
        Err(e) => {
            // Unreadable is not empty: log it, then provision afresh (the
            // broker hands the same certificate to the same key only, so a
            // new key gets `already-provisioned` and the log says why).
            log.line(&format!("PROV cannot read {}: {e}", store.describe()));
            None
        }
    };
    if let Some(identity) = stored {
        let ends =
            first_certificate_der(&identity.cert_pem).and_then(|der| renewal::not_after(&der));
        let current = with_identity(claim, mac, identity)?;
        match ends {
            Some(ends) if renewal::due(ends, now_unix, renew_before_secs) => {
                log.line(&format!(
                    "PROV certificate ends in {} s: renewing",
                    ends - now_unix
                ));
                match ask_once(net, clock, log, &current, mac, tls, store, random).await {
                    Ok(Some(renewed)) => {
                        log.line(&format!(
                            "PROV certificate renewed, stored in {}",
                            store.describe()
                        ));
                        return Ok(renewed.due_before(renew_before_secs));
                    }
                    Ok(None) => {}
                    Err(e) => log.line(&format!("PROV renewal failed: {e}")),
                }
                log.line("PROV keeping the stored certificate for now");
                return Ok(Identified {
                    device: current,
                    renew_at_unix: Some(now_unix.saturating_add(renew_retry_secs(ends, now_unix))),
                });
            }
            _ => {
                log.line(&format!(
                    "PROV using the stored certificate {}",
                    store.describe()
                ));
                return Ok(Identified {
                    device: current,
                    renew_at_unix: ends.map(|ends| ends.saturating_sub(renew_before_secs)),
                });
            }
        }
    }
    log.line(&format!("PROV no certificate of its own: asking as {id}"));
    loop {
        match ask_once(net, clock, log, claim, mac, tls, store, random).await? {
            Some(issued) => {
                log.line(&format!(
                    "PROV certificate issued, stored in {}",
                    store.describe()
                ));
                return Ok(issued.due_before(renew_before_secs));
            }
            None => clock.sleep_ms(RETRY_MS).await,
        }
    }
}

/// Runs a device provisioned by claim: joins the network, sets the
/// clock, gets its identity ([`own_identity`]), runs until renewal is due
/// (checked on the device's clock while connected, not only at start),
/// renews and runs again with the new certificate. With `ota`, the OTA
/// agent runs on the device's own connection (never on the claim
/// certificate's); returns only when it asks for a reset.
#[allow(clippy::too_many_arguments)]
pub async fn run_provisioned<N: Net, C: Clock, L: Log, S: IdentityStore, R: TrueRandom>(
    net: &mut N,
    clock: &C,
    log: &L,
    claim: &Device,
    mac: Mac,
    tls: TlsReference<'_>,
    store: &mut S,
    random: &mut R,
    mut ota: Option<&mut dyn super::ota::OtaHook>,
) {
    let renew_before_secs = i64::from(claim.config.renew_before_secs);
    loop {
        let (now_unix, at_ms) = online(net, clock, log, claim).await;
        match own_identity(
            net,
            clock,
            log,
            claim,
            mac,
            tls,
            store,
            random,
            now_unix,
            renew_before_secs,
        )
        .await
        {
            Ok(identified) => {
                let until_ms = identified.renew_at_unix.map(|renew_at| {
                    let secs = u64::try_from(renew_at.saturating_sub(now_unix)).unwrap_or(0);
                    at_ms.saturating_add(secs.saturating_mul(1000))
                });
                if let Some(renew_at) = identified.renew_at_unix {
                    log.line(&format!(
                        "PROV next renewal check in {} s",
                        renew_at.saturating_sub(now_unix).max(0)
                    ));
                }
                let ota = super::reborrow(&mut ota);
                let stopped =
                    super::run_until(net, clock, log, &identified.device, tls, until_ms, ota).await;
                if stopped == super::Stopped::Reset {
                    return;
                }
            }
            Err(e) => {
                log.line(&format!("PROV cannot go on: {e}; trying again in 60 s"));
                clock.sleep_ms(60_000).await;
            }
        }
    }
}

/// WiFi up and the clock set (certificate dates need it): Unix seconds
/// and the device clock's milliseconds at that moment. Retries with the
/// configured backoff until both succeed.
async fn online<N: Net, C: Clock, L: Log>(
    net: &mut N,
    clock: &C,
    log: &L,
    device: &Device,
) -> (i64, u64) {
    let config = &device.config;
    let mut backoff =
        crate::backoff::Backoff::new(config.reconnect_min_ms, config.reconnect_max_ms);
    loop {
        let failure = match net.join_wifi().await {
            Ok(()) => match net.sync_time(&config.sntp_server).await {
                Ok(unix) => return (i64::try_from(unix).unwrap_or(i64::MAX), clock.now_ms()),
                Err(e) => e,
            },
            Err(e) => e,
        };
        let wait = backoff.next_delay_ms(clock.random_u32());
        log.line(&format!(
            "PROV {} failed: {}; again in {wait} ms",
            failure.phase.as_str(),
            failure.message
        ));
        clock.sleep_ms(u64::from(wait)).await;
    }
}

/// A renewal that did not happen is tried again in a tenth of the time
/// left, at least 5 s and at most an hour later.
fn renew_retry_secs(ends: i64, now: i64) -> i64 {
    (ends.saturating_sub(now) / 10).clamp(5, 3_600)
}

/// One request with a new key, presenting `asking`'s certificate. `Ok(None)`
/// when the broker did not issue (pending, refused, no answer: logged).
/// The answer's `renew_at_unix` is the new certificate's end (notAfter).
#[allow(clippy::too_many_arguments)]
async fn ask_once<N: Net, C: Clock, L: Log, S: IdentityStore, R: TrueRandom>(
    net: &mut N,
    clock: &C,
    log: &L,
    asking: &Device,
    mac: Mac,
    tls: TlsReference<'_>,
    store: &mut S,
    random: &mut R,
) -> Result<Option<Identified>, String> {
    let id = asking.names.client_id.as_str();
    let mut key = DeviceKey::generate(|out| random.fill(out))
        .ok_or("the true random source gives no usable key (8 draws out of range)")?;
    let der = csr::build(id, &mut key).map_err(|e| format!("cannot build the CSR: {e:?}"))?;
    let request = message::request(id, &csr::pem(&der), None);
    match super::provision::ask(net, clock, log, asking, tls, &request, ASK_TIMEOUT_MS).await {
        Ok(Answer::Issued { chain }) => {
            let leaf = leaf_pem(&chain);
            store.save(&key, &leaf)?;
            let ends = first_certificate_der(&leaf).and_then(|der| renewal::not_after(&der));
            let identity = ClientIdentity {
                cert_pem: leaf,
                key_pem: key.sec1_pem().into_bytes(),
            };
            Ok(Some(Identified {
                device: with_identity(asking, mac, identity)?,
                renew_at_unix: ends,
            }))
        }
        Ok(Answer::Pending) => {
            log.line("PROV pending approval");
            Ok(None)
        }
        Ok(Answer::Refused { reason, detail }) => {
            log.line(&format!("PROV refused ({reason}): {detail}"));
            Ok(None)
        }
        Err(e) => {
            log.line(&format!("PROV failed: {}", e.message));
            Ok(None)
        }
    }
}

/// The same device presenting `identity`.
fn with_identity(device: &Device, mac: Mac, identity: ClientIdentity) -> Result<Device, String> {
    let mut config = device.config.clone();
    config.tls.client = Some(identity);
    Ok(Device::new(config, mac)?.on_chip(device.chip))
}

/// The first certificate of a PEM chain (the device's own), PEM.
fn leaf_pem(chain: &str) -> Vec<u8> {
    const END: &str = "-----END CERTIFICATE-----";
    let leaf_end = chain
        .find(END)
        .map_or(chain.len(), |at| at + END.len())
        .min(chain.len());
    let mut leaf = chain.get(..leaf_end).unwrap_or(chain).as_bytes().to_vec();
    leaf.push(b'\n');
    leaf
}

/// The DER of the first certificate of `pem`.
pub fn first_certificate_der(pem: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = core::str::from_utf8(pem).ok()?;
    let body = text.split("-----BEGIN CERTIFICATE-----").nth(1)?;
    let body = body.split("-----END CERTIFICATE-----").next()?;
    let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_leaf_is_the_first_certificate() {
        let chain = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nREVG\n-----END CERTIFICATE-----\n";
        let leaf = leaf_pem(chain);
        assert_eq!(
            leaf,
            b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(first_certificate_der(&leaf).unwrap(), b"ABC");
        assert_eq!(first_certificate_der(b"no pem"), None);
    }

    #[test]
    fn a_failed_renewal_is_retried_soon_but_not_in_a_loop() {
        assert_eq!(renew_retry_secs(1_000, 990), 5);
        assert_eq!(renew_retry_secs(1_000_000, 0), 3_600);
        assert_eq!(renew_retry_secs(1_000, 500), 50);
        assert_eq!(renew_retry_secs(0, 100), 5);
    }
}
