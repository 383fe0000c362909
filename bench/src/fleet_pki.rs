//! The fleet's device certificates: one per device, as a lab gives every
//! device its own. Device i has CN `fleet-<i>`, OU `bench`, an ECDSA P-256
//! key, client authentication, validity 2020–2099, and is signed by the
//! bench CA ([`crate::pki`]). fleetmq caches verified chains per broker
//! process; with a certificate per device, a fleet coming up, or coming
//! back after a broker restart, makes it verify every chain, as Mosquitto
//! and rumqttd do on every connect anyway.
//!
//! It owns the bundle `fleet-devices.pem` in the PKI folder (per device
//! the certificate PEM, then its PKCS#8 key PEM; mode 0600): made from
//! `ca.key` when it is missing, holds fewer devices than asked for or was
//! not issued by the current CA, and read into memory once per run. The
//! rustls configurations built from it are [`crate::tls`]'s.

use std::fs;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{Issuer, KeyPair};
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::pki::{device_params, write_private, Pki};

/// One device's certificate and key.
#[derive(Debug)]
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
}

/// The fleet's identities in memory, device i at index i.
#[derive(Debug, Clone)]
pub struct FleetPool {
    devices: Arc<[Identity]>,
}

impl FleetPool {
    /// The first `count` identities of the bundle of `pki`, which is made
    /// anew first when it cannot give them (a line on stderr says how
    /// many and how long that took).
    pub fn load_or_create(pki: &Pki, count: usize) -> Result<FleetPool> {
        if count == 0 {
            return Ok(FleetPool {
                devices: Arc::from(Vec::new()),
            });
        }
        match read(pki, count) {
            Ok(pool) => return Ok(pool),
            Err(why) if pki.fleet_bundle.exists() => {
                eprintln!(
                    "fleet PKI: making {} anew: {why:#}",
                    pki.fleet_bundle.display()
                );
            }
            Err(_) => {}
        }
        let started = Instant::now();
        let issuer = pki.ca_issuer()?;
        let pem = generate(&issuer, count)?;
        write_private(&pki.fleet_bundle, pem.as_bytes())?;
        eprintln!(
            "fleet PKI: {count} device certificates made in {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            pki.fleet_bundle.display()
        );
        read(pki, count).context("reading the bundle just made")
    }

    /// How many devices the pool holds.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// The identities of devices 0..n (an error when the pool is smaller:
    /// a fleet must not share certificates).
    pub fn first(&self, n: usize) -> Result<&[Identity]> {
        self.devices.get(..n).with_context(|| {
            format!(
                "the fleet's certificate pool holds {} devices, {n} asked for",
                self.len()
            )
        })
    }
}

/// The first `count` identities of the bundle, when it has that many and
/// the current CA issued them.
fn read(pki: &Pki, count: usize) -> Result<FleetPool> {
    let path = &pki.fleet_bundle;
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut devices = Vec::with_capacity(count);
    let mut cert = None;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        if devices.len() == count {
            break;
        }
        let (kind, der) = section.map_err(|e| anyhow!("{}: {e}", path.display()))?;
        match (kind, cert.take()) {
            (SectionKind::Certificate, None) => cert = Some(CertificateDer::from(der)),
            (SectionKind::PrivateKey, Some(cert)) => devices.push(Identity {
                cert,
                key: PrivatePkcs8KeyDer::from(der),
            }),
            (kind, _) => bail!(
                "{}: a {kind:?} where device {} should be",
                path.display(),
                devices.len()
            ),
        }
    }
    if devices.len() < count {
        bail!("it holds {} devices, {count} are needed", devices.len());
    }
    // Written whole after the CA: its first and last certificate tell.
    let verifier = client_verifier(pki)?;
    for (index, device) in [(0, devices.first()), (count - 1, devices.last())] {
        if let Some(device) = device {
            verifier
                .verify_client_cert(&device.cert, &[], UnixTime::now())
                .map_err(|e| anyhow!("device {index}: not the current CA's: {e}"))?;
        }
    }
    Ok(FleetPool {
        devices: Arc::from(devices),
    })
}

/// What a broker requiring client certificates of the bench CA checks.
pub fn client_verifier(pki: &Pki) -> Result<Arc<dyn ClientCertVerifier>> {
    let pem = fs::read(&pki.ca).with_context(|| format!("reading {}", pki.ca.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| anyhow!("{}: {e}", pki.ca.display()))?;
        roots.add(cert).context("adding the bench CA")?;
    }
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(aws_lc_rs::default_provider()),
    )
    .build()
    .context("building a client certificate verifier")
}

/// The bundle of devices 0..count, signed in a few threads.
fn generate(issuer: &Issuer<'_, KeyPair>, count: usize) -> Result<String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let chunk = count.div_ceil(threads).max(1);
    let parts: Vec<Result<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| scope.spawn(move || issue(issuer, start..(start + chunk).min(count))))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a signing thread panicked")))
            })
            .collect()
    });
    let mut pem = String::new();
    for part in parts {
        pem.push_str(&part?);
    }
    Ok(pem)
}

/// The bundle's part for `devices`: per device its certificate, then its
/// key.
fn issue(issuer: &Issuer<'_, KeyPair>, devices: Range<usize>) -> Result<String> {
    let mut pem = String::with_capacity(devices.len() * 1024);
    for i in devices {
        let key = KeyPair::generate()?;
        let cert = device_params(&format!("fleet-{i}")).signed_by(&key, issuer)?;
        pem.push_str(&cert.pem());
        pem.push_str(&key.serialize_pem());
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::pki::tests::{mode, TempDir};

    fn contains(der: &[u8], text: &str) -> bool {
        der.windows(text.len()).any(|w| w == text.as_bytes())
    }

    #[test]
    fn each_device_has_its_own_certificate_signed_by_the_ca() -> Result<()> {
        let dir = TempDir::new("fleet-pool");
        let pki = Pki::load_or_create(&dir.path)?;
        let pool = FleetPool::load_or_create(&pki, 20)?;
        assert_eq!(pool.len(), 20);
        assert_eq!(mode(&pki.fleet_bundle)?, 0o600);
        let devices = pool.first(20)?;
        let certs: HashSet<&[u8]> = devices.iter().map(|d| d.cert.as_ref()).collect();
        let keys: HashSet<&[u8]> = devices.iter().map(|d| d.key.secret_pkcs8_der()).collect();
        assert_eq!((certs.len(), keys.len()), (20, 20));
        let verifier = client_verifier(&pki)?;
        for (i, device) in devices.iter().enumerate() {
            assert!(contains(&device.cert, &format!("fleet-{i}")), "device {i}");
            assert!(contains(&device.cert, "bench"));
            // Signed by the CA, for client authentication, valid now.
            verifier.verify_client_cert(&device.cert, &[], UnixTime::now())?;
        }
        // Another CA does not accept them.
        let other_dir = TempDir::new("fleet-pool-other");
        let other = Pki::load_or_create(&other_dir.path)?;
        let foreign = client_verifier(&other)?;
        assert!(foreign
            .verify_client_cert(&devices[0].cert, &[], UnixTime::now())
            .is_err());
        assert!(pool.first(21).is_err());
        Ok(())
    }

    #[test]
    fn the_bundle_is_reused_when_big_enough_and_the_current_cas() -> Result<()> {
        let dir = TempDir::new("fleet-bundle");
        let pki = Pki::load_or_create(&dir.path)?;
        let pool = FleetPool::load_or_create(&pki, 12)?;
        let bundle = fs::read(&pki.fleet_bundle)?;

        // Fewer wanted: the same file, the same first devices.
        let fewer = FleetPool::load_or_create(&pki, 5)?;
        assert_eq!(fs::read(&pki.fleet_bundle)?, bundle);
        assert_eq!(fewer.len(), 5);
        for (a, b) in fewer.first(5)?.iter().zip(pool.first(5)?) {
            assert_eq!(
                (&a.cert, a.key.secret_pkcs8_der()),
                (&b.cert, b.key.secret_pkcs8_der())
            );
        }

        // More wanted: made anew, from the kept CA key.
        let more = FleetPool::load_or_create(&pki, 30)?;
        assert_eq!(more.len(), 30);
        let verifier = client_verifier(&pki)?;
        for device in more.first(30)? {
            verifier.verify_client_cert(&device.cert, &[], UnixTime::now())?;
        }

        // Another PKI's bundle: not this CA's, so made anew.
        let other_dir = TempDir::new("fleet-bundle-other");
        let other = Pki::load_or_create(&other_dir.path)?;
        FleetPool::load_or_create(&other, 30)?;
        fs::copy(&other.fleet_bundle, &pki.fleet_bundle)?;
        assert!(read(&pki, 30).is_err());
        let remade = FleetPool::load_or_create(&pki, 30)?;
        verifier.verify_client_cert(&remade.first(30)?[29].cert, &[], UnixTime::now())?;
        assert_eq!(mode(&pki.fleet_bundle)?, 0o600);
        Ok(())
    }
}
