//! rustls client configurations for the load generator: one per device
//! certificate, the connect storms' few ([`crate::pki::DEVICE_CERTS`]) or
//! a fleet's one per device ([`crate::fleet_pki`]).
//!
//! Every broker meets the same client: one cipher suite per run (the one an
//! ESP32 with mbedTLS negotiates), one key-exchange group in use (X25519,
//! what OpenSSL and rustls both prefer; rustls would otherwise offer the
//! larger post-quantum hybrid that only the rustls brokers accept), and resumption
//! only where a scenario asks for it.
//!
//! [`Verify::Cached`] keeps the load generator from becoming the bottleneck
//! (see docs/decisions/0061): the server's chain is verified once per
//! process and then pinned byte for byte; the handshake signature is still
//! checked on every connection, so the client does one ECDSA verify less
//! per handshake, the broker exactly the same work. [`Verify::Sampled`]
//! (the run's default) also checks the handshake signature only on a
//! sample (the first [`SAMPLE_FIRST`] handshakes, then one in
//! [`SAMPLE_EVERY`]): in a one-way storm the client's verify was the
//! costliest step on either side and held the load generator's core at
//! its limit while the broker idled. The broker's work is unchanged; a
//! broker that signed wrongly still fails the sampled checks.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption, WebPkiServerVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};

use crate::fleet_pki::Identity;
use crate::pki::Pki;

/// TLS protocol version a run pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Version {
    #[serde(rename = "1.2")]
    #[value(name = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    #[value(name = "1.3")]
    Tls13,
}

/// Which server certificate (and so which listener) a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum ServerKey {
    /// ECDSA P-256: ECDHE-ECDSA-AES128-GCM-SHA256 under TLS 1.2.
    Ecdsa,
    /// RSA-2048: ECDHE-RSA-AES128-GCM-SHA256 under TLS 1.2, like an ESP32's
    /// mbedTLS default against an RSA certificate.
    Rsa,
}

/// How the client checks the server (the broker's work is the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Verify {
    /// webpki chain verification on every handshake, as a device does.
    Full,
    /// Chain verified once, then pinned; handshake signatures always checked.
    Cached,
    /// Chain pinned as `Cached`; handshake signatures checked on a sample.
    Sampled,
}

/// Handshakes whose signature [`Verify::Sampled`] always checks.
pub const SAMPLE_FIRST: u64 = 64;
/// After those, one handshake signature in this many is checked.
pub const SAMPLE_EVERY: u64 = 16;

/// Everything that shapes a client configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub version: Version,
    pub server_key: ServerKey,
    pub verify: Verify,
}

/// Client configurations, one per device certificate, sharing one
/// verifier and one provider.
#[derive(Clone)]
pub struct Clients {
    /// Shared, not copied, by every device of a fleet that holds it.
    configs: Arc<[Arc<ClientConfig>]>,
    /// The name every client asks for: the server certificates' SAN.
    pub server_name: ServerName<'static>,
}

impl Clients {
    /// Configurations for the [`crate::pki::DEVICE_CERTS`] device
    /// certificates the connect storms cycle through, without resumption:
    /// every connection a full handshake.
    pub fn new(pki: &Pki, profile: Profile) -> Result<Clients> {
        let identities = pki.devices.iter().map(|device| {
            let chain = read_certs(&device.cert)?;
            let key = PrivateKeyDer::from_pem_file(&device.key)
                .map_err(|e| anyhow!("reading {}: {e}", device.key.display()))?;
            Ok((chain, key))
        });
        Clients::build(pki, profile, identities)
    }

    /// The same with a certificate of its own per device: device i of
    /// `identities` is `for_device(i)` (a fleet, or the first-connects
    /// storm; see [`crate::fleet_pki`]).
    pub fn per_device(pki: &Pki, profile: Profile, identities: &[Identity]) -> Result<Clients> {
        let identities = identities.iter().map(|identity| {
            Ok((
                vec![identity.cert.clone()],
                PrivateKeyDer::Pkcs8(identity.key.clone_key()),
            ))
        });
        Clients::build(pki, profile, identities)
    }

    fn build(
        pki: &Pki,
        profile: Profile,
        identities: impl Iterator<Item = Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
    ) -> Result<Clients> {
        let provider = Arc::new(provider(profile.version));
        let mut roots = RootCertStore::empty();
        for cert in read_certs(&pki.ca)? {
            roots.add(cert).context("adding the bench CA")?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .context("building the server verifier")?;
        let verifier: Arc<dyn ServerCertVerifier> = match profile.verify {
            Verify::Full => webpki,
            Verify::Cached | Verify::Sampled => Arc::new(PinAfterFirst {
                inner: webpki,
                verified: Mutex::new(None),
                sample: profile.verify == Verify::Sampled,
                signatures: AtomicU64::new(0),
            }),
        };
        let versions: &[&'static rustls::SupportedProtocolVersion] = match profile.version {
            Version::Tls12 => &[&rustls::version::TLS12],
            Version::Tls13 => &[&rustls::version::TLS13],
        };
        let mut configs = Vec::new();
        for identity in identities {
            let (chain, key) = identity?;
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions)
                .context("protocol versions")?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_client_auth_cert(chain, key)
                .context("device certificate and key")?;
            config.resumption = Resumption::disabled();
            configs.push(Arc::new(config));
        }
        if configs.is_empty() {
            bail!("no device certificate to build clients with");
        }
        let server_name = ServerName::try_from("localhost").context("server name")?;
        Ok(Clients {
            configs: Arc::from(configs),
            server_name,
        })
    }

    /// How many device certificates these clients cycle through.
    pub fn len(&self) -> usize {
        self.configs.len()
    }

    /// The same configurations without a client certificate: one-way TLS,
    /// where only the broker proves who it is.
    pub fn one_way(self) -> Clients {
        let configs: Vec<Arc<ClientConfig>> = self
            .configs
            .iter()
            .map(|config| {
                let mut config = (**config).clone();
                config.client_auth_cert_resolver = Arc::new(NoClientCert);
                Arc::new(config)
            })
            .collect();
        Clients {
            configs: Arc::from(configs),
            server_name: self.server_name,
        }
    }

    /// The configuration for device `index` (device certificates cycle:
    /// index modulo [`Clients::len`]).
    pub fn for_device(&self, index: usize) -> Arc<ClientConfig> {
        // `build` made one per device certificate, and there is at least one.
        Arc::clone(&self.configs[index % self.configs.len()])
    }

    /// A configuration of device `index` with a session store of its own,
    /// as a real device keeps its last session: a later connection made
    /// with it resumes when the broker still knows the session.
    pub fn resuming(&self, index: usize) -> Arc<ClientConfig> {
        let mut config = (*self.for_device(index)).clone();
        config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(2)));
        Arc::new(config)
    }
}

/// A client that has no certificate to offer.
#[derive(Debug)]
struct NoClientCert;

impl rustls::client::ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

fn provider(version: Version) -> CryptoProvider {
    let mut provider = aws_lc_rs::default_provider();
    // X25519 is what every server here picks. P-256 is offered too because
    // a TLS 1.2 server may only use an ECDSA P-256 certificate with a
    // client that lists P-256 (RFC 8422 5.1); OpenSSL enforces that.
    provider.kx_groups = vec![aws_lc_rs::kx_group::X25519, aws_lc_rs::kx_group::SECP256R1];
    provider.cipher_suites = match version {
        Version::Tls12 => vec![
            aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        Version::Tls13 => vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256],
    };
    provider
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{}: no certificate", path.display()));
    }
    Ok(certs)
}

/// Verifies the server chain once with webpki, then accepts exactly those
/// bytes again without re-verifying: pinning after a first full check.
#[derive(Debug)]
struct PinAfterFirst {
    inner: Arc<WebPkiServerVerifier>,
    /// End-entity and intermediates of the chain that passed, per server
    /// certificate seen (ECDSA and RSA listeners run in separate processes
    /// or one after the other, so this holds one or two entries).
    verified: Mutex<Option<Vec<Vec<u8>>>>,
    /// Check handshake signatures on a sample only ([`Verify::Sampled`]).
    sample: bool,
    /// Handshake signatures seen.
    signatures: AtomicU64,
}

impl PinAfterFirst {
    /// Whether this handshake's signature is checked.
    fn checks_signature(&self) -> bool {
        let n = self.signatures.fetch_add(1, Ordering::Relaxed);
        !self.sample || in_sample(n)
    }
}

/// Whether the `n`th handshake signature (from 0) is in the sample.
fn in_sample(n: u64) -> bool {
    n < SAMPLE_FIRST || n % SAMPLE_EVERY == 0
}

impl ServerCertVerifier for PinAfterFirst {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(seen) = self.verified.lock() {
            if let Some(seen) = seen.as_ref() {
                if seen.iter().any(|der| der.as_slice() == end_entity.as_ref()) {
                    return Ok(ServerCertVerified::assertion());
                }
            }
        }
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        if let Ok(mut seen) = self.verified.lock() {
            seen.get_or_insert_with(Vec::new)
                .push(end_entity.as_ref().to_vec());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if !self.checks_signature() {
            return Ok(HandshakeSignatureValid::assertion());
        }
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if !self.checks_signature() {
            return Ok(HandshakeSignatureValid::assertion());
        }
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet_pki::FleetPool;
    use crate::pki::tests::TempDir;
    use crate::pki::DEVICE_CERTS;

    /// The certificate device `index` presents.
    fn presented(clients: &Clients, index: usize) -> Option<Vec<u8>> {
        let config = clients.for_device(index);
        let key = config
            .client_auth_cert_resolver
            .resolve(&[], &[SignatureScheme::ECDSA_NISTP256_SHA256])?;
        key.cert.first().map(|cert| cert.as_ref().to_vec())
    }

    #[test]
    fn fleet_devices_present_their_own_certificates_storms_cycle_eight() -> Result<()> {
        let dir = TempDir::new("tls-clients");
        let pki = Pki::load_or_create(&dir.path)?;
        let pool = FleetPool::load_or_create(&pki, 10)?;
        let profile = Profile {
            version: Version::Tls12,
            server_key: ServerKey::Ecdsa,
            verify: Verify::Sampled,
        };
        let fleet = Clients::per_device(&pki, profile, pool.first(10)?)?;
        assert_eq!(fleet.len(), 10);
        for (i, identity) in pool.first(10)?.iter().enumerate() {
            assert_eq!(presented(&fleet, i), Some(identity.cert.as_ref().to_vec()));
        }
        // Past the pool the certificates come round again.
        assert_eq!(presented(&fleet, 10), presented(&fleet, 0));

        let storms = Clients::new(&pki, profile)?;
        assert_eq!(storms.len(), DEVICE_CERTS);
        assert_eq!(presented(&storms, DEVICE_CERTS), presented(&storms, 0));
        assert_ne!(presented(&storms, 1), presented(&storms, 0));
        assert!(presented(&storms.one_way(), 0).is_none());
        Ok(())
    }

    #[test]
    fn the_sample_is_the_first_handshakes_then_one_in_sixteen() {
        let checked = |range: std::ops::Range<u64>| range.filter(|n| in_sample(*n)).count();
        assert_eq!(checked(0..SAMPLE_FIRST), SAMPLE_FIRST as usize);
        assert_eq!(checked(SAMPLE_FIRST..SAMPLE_FIRST + 16 * SAMPLE_EVERY), 16);
        assert!(!in_sample(SAMPLE_FIRST + 1));
    }
}
