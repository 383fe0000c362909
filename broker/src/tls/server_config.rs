//! Building a listener's rustls `ServerConfig` from files, and swapping it
//! on reload.
//!
//! A [`TlsListener`] keeps the session cache and the ticket keys across
//! reloads, so devices resume their sessions after a certificate rotation.
//! Its cache of verified client-certificate chains does not survive a
//! reload: new CA or CRL files must be able to refuse a certificate at once
//! (see `chain_cache`). A reload that fails (unreadable file, key not
//! matching the certificate, bad CRL) leaves the configuration in force
//! untouched.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::fair_slots::HandshakeSlots;
use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use super::chain_cache::{CachingClientVerifier, ChainCacheCounters, MAX_CACHED_CHAINS};
use super::seen::SeenCertificates;
use super::tickets::TicketKeys;
use super::v1_client::{V1ClientVerifier, V1Trust};
use fleetmq_core::config::{ClientCertPolicy, TlsConfig, TlsVersion};

/// The files a TLS listener is built from, with lab-PKI defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: Option<PathBuf>,
    /// CA certificates completing a leaf-only `cert` (decision 0136).
    pub complete_chain_from: Vec<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
}

/// Why a TLS configuration could not be built; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoPrivateKey { path: PathBuf },
    #[error("{path}: {detail}")]
    BadPem { path: PathBuf, detail: String },
    #[error("client CA {path}: {detail}")]
    BadClientCa { path: PathBuf, detail: String },
    #[error("client certificates are {policy:?} but no client_ca is configured (set listener.tls.client_ca)")]
    NoClientCa { policy: ClientCertPolicy },
    #[error("cannot build the client certificate verifier (CA or CRL files): {0}")]
    Verifier(String),
    #[error("certificate {cert} and key {key} do not form a usable pair: {detail}")]
    CertKey {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("set both cert and key, or neither to use the lab PKI in data_dir")]
    CertWithoutKey,
    #[error("lab PKI: {0}")]
    LabPki(String),
    #[error("{0}")]
    CipherSuites(String),
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// TLS state of one listener.
#[derive(Debug)]
pub struct TlsListener {
    /// Listener name, for logs.
    pub name: Arc<str>,
    pub policy: ClientCertPolicy,
    pub files: TlsFiles,
    settings: TlsConfig,
    /// The configuration new handshakes use, with its chain cache;
    /// replaced on reload.
    current: RwLock<Arc<ActiveConfig>>,
    /// TLS 1.2 session ids (and TLS 1.3 stateful tickets), kept across
    /// reloads.
    session_cache: Arc<dyn StoresServerSessions>,
    /// Ticket encryption (keys rotate, and persist in the data directory),
    /// kept across reloads.
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
    /// Chain cache hits and misses over every configuration of this
    /// listener, for `/metrics`.
    chain_counters: Arc<ChainCacheCounters>,
    /// Bounds handshakes in progress.
    pub handshakes: Arc<HandshakeSlots>,
    /// From TCP accept to handshake complete.
    pub handshake_timeout: Duration,
    /// From the ClientHello to handshake complete (decision 0086).
    pub client_flight_timeout: Duration,
    /// Where the client certificates of handshakes are kept for
    /// `certs audit --seen` (decision 0094); None keeps none.
    pub(super) seen: Option<Arc<SeenCertificates>>,
}

/// One configuration of a listener and the chain cache of its client
/// verifier: a handshake uses both from the same reload.
#[derive(Debug)]
pub(super) struct ActiveConfig {
    pub(super) config: Arc<ServerConfig>,
    /// None when client certificates are off.
    chains: Option<Arc<CachingClientVerifier>>,
}

impl ActiveConfig {
    /// Checks a client chain again, for a resumed session: its certificate
    /// was verified when the session was made, possibly before a CRL
    /// reload or a restart, or it may have expired since. Usually a cache
    /// hit (a hash lookup).
    pub(super) fn recheck_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        match &self.chains {
            Some(chains) => chains
                .verify_client_cert(end_entity, intermediates, UnixTime::now())
                .map(|_| ()),
            // Client certificates are off now; a session made with one when
            // they were on must not keep that identity.
            // (Tickets outlive restarts, and so configuration changes.)
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }
}

impl TlsListener {
    /// Loads every file and builds the first configuration. Session
    /// tickets use `ticket_keys` (shared by the listeners of a process,
    /// bound to this listener's name), or keys in memory when None.
    pub fn new(
        name: Arc<str>,
        settings: &TlsConfig,
        files: TlsFiles,
        ticket_keys: Option<&Arc<TicketKeys>>,
    ) -> Result<TlsListener, TlsError> {
        let session_cache: Arc<dyn StoresServerSessions> =
            ServerSessionMemoryCache::new(settings.session_cache_size.max(1));
        let ticketer = if settings.session_tickets {
            let keys = match ticket_keys {
                Some(keys) => Arc::clone(keys),
                None => TicketKeys::in_memory()?,
            };
            Some(keys.for_listener(Arc::clone(&name)))
        } else {
            None
        };
        let chain_counters = Arc::new(ChainCacheCounters::default());
        let active = build(
            settings,
            &files,
            &session_cache,
            ticketer.as_ref(),
            &chain_counters,
        )?;
        Ok(TlsListener {
            name,
            policy: settings.client_certs,
            files,
            settings: settings.clone(),
            current: RwLock::new(Arc::new(active)),
            session_cache,
            ticketer,
            chain_counters,
            handshakes: HandshakeSlots::new(settings.max_concurrent_handshakes),
            handshake_timeout: Duration::from_secs(settings.handshake_timeout_secs.max(1)),
            client_flight_timeout: Duration::from_secs(settings.client_flight_timeout_secs.max(1)),
            seen: None,
        })
    }

    /// Keeps the client certificates of this listener's handshakes in
    /// `seen` (shared by the listeners of a process).
    pub fn keep_seen_certificates(mut self, seen: Arc<SeenCertificates>) -> TlsListener {
        self.seen = Some(seen);
        self
    }

    /// The configuration for a new handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().config)
    }

    /// The configuration for a new handshake, with its chain cache.
    pub(super) fn active(&self) -> Arc<ActiveConfig> {
        Arc::clone(&self.current.read())
    }

    /// Hits and misses of the client-certificate chain cache.
    pub fn chain_cache_counters(&self) -> Arc<ChainCacheCounters> {
        Arc::clone(&self.chain_counters)
    }

    /// Re-reads certificate, key, CA and CRL files; the new configuration
    /// starts with an empty chain cache. On error the old configuration
    /// (and its cache) stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let active = build(
            &self.settings,
            &self.files,
            &self.session_cache,
            self.ticketer.as_ref(),
            &self.chain_counters,
        )?;
        *self.current.write() = Arc::new(active);
        Ok(())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn build(
    settings: &TlsConfig,
    files: &TlsFiles,
    session_cache: &Arc<dyn StoresServerSessions>,
    ticketer: Option<&Arc<dyn rustls::server::ProducesTickets>>,
    chain_counters: &Arc<ChainCacheCounters>,
) -> Result<ActiveConfig, TlsError> {
    let provider = Arc::new(
        super::cipher_suites::narrow(
            (*provider()).clone(),
            &settings.cipher_suites,
            settings.min_version == TlsVersion::Tls12,
        )
        .map_err(TlsError::CipherSuites)?,
    );
    let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)?;
    let mut chains = None;
    let builder = match settings.client_certs {
        ClientCertPolicy::None => builder.with_no_client_auth(),
        policy => {
            let ca = files
                .client_ca
                .as_ref()
                .ok_or(TlsError::NoClientCa { policy })?;
            let verifier = client_verifier(
                ca,
                &files.crls,
                policy,
                settings.accept_v1_client_certificates,
            )?;
            let cache = Arc::new(CachingClientVerifier::new(
                verifier,
                MAX_CACHED_CHAINS,
                Arc::clone(chain_counters),
            ));
            chains = Some(Arc::clone(&cache));
            builder.with_client_cert_verifier(cache as Arc<dyn ClientCertVerifier>)
        }
    };
    let mut chain = read_certs(&files.cert)?;
    if let Some(extra) = &files.chain {
        chain.extend(read_certs(extra)?);
    } else if let [leaf] = chain.as_slice() {
        // As OpenSSL: only a certificate file without intermediates is
        // completed, and only when no chain file is named.
        let mut pool = Vec::new();
        for path in &files.complete_chain_from {
            pool.extend(super::ca_dir::read_ca_certs(path)?);
        }
        let completion = super::chain_completion::complete(leaf, &pool);
        chain.extend(completion);
    }
    let key = read_key(&files.key)?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::CertKey {
            cert: files.cert.clone(),
            key: files.key.clone(),
            detail: e.to_string(),
        })?;
    config.session_storage = Arc::clone(session_cache);
    // Without a ticketer, TLS 1.3 "tickets" are ids into the session cache
    // (stateful resumption), so returning devices still resume.
    if let Some(ticketer) = ticketer {
        config.ticketer = Arc::clone(ticketer);
    }
    Ok(ActiveConfig {
        config: Arc::new(config),
        chains,
    })
}

/// The client-certificate verifier of a listener asking for certificates
/// (`policy` not `None`): webpki for v3 chains under the v1 wrapper
/// (decision 0090). What handshakes ask, under the chain cache, and what
/// `fleetmq certs audit` asks.
pub fn client_verifier(
    client_ca: &Path,
    crl_files: &[PathBuf],
    policy: ClientCertPolicy,
    accept_v1: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    let ca_certs = super::ca_dir::read_ca_certs(client_ca)?;
    for cert in ca_certs.iter().cloned() {
        roots.add(cert).map_err(|e| TlsError::BadClientCa {
            path: client_ca.to_path_buf(),
            detail: e.to_string(),
        })?;
    }
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
    let crls = read_crls(crl_files)?;
    let v1_trust = V1Trust::new(&ca_certs, &crls);
    if !crls.is_empty() {
        // Intermediates without a CRL of their own must not lock
        // every device out; the device certificate is what a lab
        // revokes.
        verifier = verifier
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    if policy == ClientCertPolicy::Optional {
        verifier = verifier.allow_unauthenticated();
    }
    // Built without `enforce_revocation_expiration`: a CRL past its
    // nextUpdate still applies (the chain cache relies on that).
    let verifier = verifier
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    // webpki decides v3 chains; v1 leaves and refusals in the lab's
    // words are the wrapper's (decision 0090).
    Ok(Arc::new(V1ClientVerifier::new(
        verifier,
        accept_v1,
        v1_trust,
        provider.signature_verification_algorithms,
    )))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => TlsError::BadPem {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    })
}

fn read_crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        let pem = read_file(path)?;
        let found = CertificateRevocationListDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::BadPem {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if found.is_empty() {
            return Err(TlsError::BadPem {
                path: path.clone(),
                detail: "no PEM CRL (expected -----BEGIN X509 CRL-----)".to_string(),
            });
        }
        crls.extend(found);
    }
    Ok(crls)
}
