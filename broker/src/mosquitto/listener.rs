//! One Mosquitto listener as the directives describe it, and the fleetmq
//! [`ListenerConfig`] it becomes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::parse::Line;
use super::{Note, Source};
use fleetmq_core::config::{
    ClientCertPolicy, ListenerConfig, ListenerProtocol, ProxyProtocol, TlsConfig, TlsVersion,
};

/// A listener being read: the default listener (`port`, `bind_address`
/// and listener options before any `listener` line) or one `listener`.
#[derive(Debug, Default)]
pub(crate) struct ListenerDraft {
    /// The `listener` line; `None` for the default listener.
    pub line: Option<Line>,
    /// Whether any directive configured it (the default listener exists
    /// only then, or when no listener is configured at all).
    pub used: bool,
    pub port: Option<u16>,
    pub address: Option<String>,
    pub ipv6: bool,
    pub cafile: Option<Line>,
    /// `capath`: a folder of CA certificates (becomes `tls.client_ca`).
    pub capath: Option<Line>,
    pub certfile: Option<Line>,
    pub keyfile: Option<Line>,
    pub crlfile: Option<Line>,
    pub require_certificate: bool,
    pub use_identity_as_username: bool,
    pub use_subject_as_username: bool,
    pub tls_version: Option<TlsVersion>,
    /// `ciphers`: TLS 1.2 suites (IANA names) when written.
    pub ciphers: Option<Vec<String>>,
    /// `ciphers_tls1.3`: TLS 1.3 suites when written.
    pub ciphers_tls13: Option<Vec<String>>,
    pub max_connections: usize,
    /// Mosquitto 2.1 `accept_protocol_versions` (protocol levels).
    pub accept_protocol_versions: Vec<u8>,
    /// `mount_point`: topic prefix of this listener's clients.
    pub mount_point: Option<String>,
    /// `protocol websockets`: MQTT over WebSockets (any request path).
    pub protocol: ListenerProtocol,
    /// `enable_proxy_protocol 1|2` (Mosquitto 2.1).
    pub proxy_protocol: ProxyProtocol,
    /// With `per_listener_settings true` (or `listener_allow_anonymous`).
    pub allow_anonymous: Option<bool>,
    /// Per-listener `password_file` / `acl_file` (`per_listener_settings`).
    pub password_file: Option<(String, Line)>,
    pub acl_file: Option<(String, Line)>,
    /// Why the listener is left out (`protocol http_api`), at which line.
    pub left_out: Option<Line>,
    pub psk: Option<Line>,
    /// Settings' sources, by key relative to the listener (`bind`, `tls.cert`).
    pub provenance: BTreeMap<&'static str, Vec<Source>>,
}

impl ListenerDraft {
    /// Records that `line` set `key`, which makes the listener exist.
    pub fn set(&mut self, key: &'static str, line: &Line) {
        self.used = true;
        self.record(key, line);
    }

    /// Records that `line` set `key` (a security option, which does not
    /// make the default listener exist).
    pub fn record(&mut self, key: &'static str, line: &Line) {
        self.provenance.entry(key).or_default().push(source(line));
    }
}

/// The source a line gives a setting.
pub(crate) fn source(line: &Line) -> Source {
    Source::Line {
        file: line.file.clone(),
        line: line.number,
        text: line.text(),
    }
}

/// What finishing a draft gives.
pub(crate) struct Finished {
    pub listener: ListenerConfig,
    pub provenance: BTreeMap<&'static str, Vec<Source>>,
}

/// Turns a draft into a listener: `Ok(None)` when it is left out (notes
/// say why), `Err` with problems when Mosquitto would refuse it too.
pub(crate) fn finish(
    mut draft: ListenerDraft,
    allow_anonymous: bool,
    anonymous_source: Source,
    notes: &mut Vec<Note>,
) -> Result<Option<Finished>, Vec<Note>> {
    if draft.left_out.is_some() {
        return Ok(None);
    }
    let port = draft.port.unwrap_or(1883);
    let ip = match &draft.address {
        None if draft.ipv6 => IpAddr::from([0u16; 8]),
        None => IpAddr::from([0u8; 4]),
        Some(address) if address == "localhost" => IpAddr::from([127, 0, 0, 1]),
        Some(address) => match address.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                let at = draft.line.as_ref();
                let problem = match at {
                    Some(line) => line.note(format!(
                        "{address:?} is not an IP address; fleetmq does not resolve host names \
                         (write the address the name resolves to, or 0.0.0.0 for every address)"
                    )),
                    None => Note {
                        file: "".into(),
                        line: None,
                        directive: "bind_address".into(),
                        why: format!("{address:?} is not an IP address (write one)"),
                    },
                };
                return Err(vec![problem]);
            }
        },
    };
    let bind = std::net::SocketAddr::new(ip, port).to_string();
    if draft.address.is_none() && draft.line.is_some() {
        draft
            .provenance
            .entry("bind")
            .or_default()
            .push(Source::Default(format!(
                "Mosquitto listens on every IPv4 and IPv6 address here; fleetmq on every {} \
             address (add a listener with bind = \"{}\" for the other family)",
                if draft.ipv6 { "IPv6" } else { "IPv4" },
                if draft.ipv6 {
                    format!("0.0.0.0:{port}")
                } else {
                    format!("[::]:{port}")
                },
            )));
    }
    let tls = tls(&mut draft, notes)?;
    if let (Some(_), Some(psk)) = (&tls, &draft.psk) {
        notes.push(psk.note("rustls has no TLS-PSK: this listener serves certificate TLS only"));
    }
    if tls.is_none() {
        if let Some(psk) = &draft.psk {
            // A PSK-only listener would become a plain one: leave it out.
            notes.push(psk.note(
                "rustls has no TLS-PSK, and this listener has no certificate, so it is left out",
            ));
            return Ok(None);
        }
    }
    let mut provenance = std::mem::take(&mut draft.provenance);
    let anonymous = match draft.allow_anonymous {
        Some(allowed) => allowed,
        None => {
            provenance
                .entry("allow_anonymous")
                .or_default()
                .push(anonymous_source);
            allow_anonymous
        }
    };
    Ok(Some(Finished {
        listener: ListenerConfig {
            name: String::new(),
            bind,
            max_connections: draft.max_connections,
            tls,
            protocol: draft.protocol,
            allow_anonymous: Some(anonymous),
            use_identity_as_username: draft.use_identity_as_username,
            use_subject_as_username: draft.use_subject_as_username,
            accept_protocol_versions: draft.accept_protocol_versions,
            mount_point: draft.mount_point,
            proxy_protocol: draft.proxy_protocol,
            ..ListenerConfig::default()
        },
        provenance,
    }))
}

/// Mosquitto 2.1's `accept_protocol_versions 3,4,5`: protocol levels
/// separated by commas (or blanks).
pub(crate) fn protocol_levels(value: &str) -> Result<Vec<u8>, String> {
    let mut levels = Vec::new();
    for word in value.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        match word.parse::<u8>() {
            Ok(level @ 3..=5) if !levels.contains(&level) => levels.push(level),
            Ok(3..=5) => {}
            _ => {
                return Err(format!(
                    "{word:?} is not a protocol version (write levels 3, 4 or 5 separated by \
                     commas: 3 is MQTT 3.1, 4 is 3.1.1, 5 is 5.0)"
                ))
            }
        }
    }
    if levels.is_empty() {
        return Err("needs at least one protocol version (such as 4,5)".into());
    }
    Ok(levels)
}

/// The TLS settings, when `certfile` and `keyfile` make this a TLS listener.
fn tls(draft: &mut ListenerDraft, notes: &mut Vec<Note>) -> Result<Option<TlsConfig>, Vec<Note>> {
    let (cert, key) = match (&draft.certfile, &draft.keyfile) {
        (Some(cert), Some(key)) => (cert.value.clone(), key.value.clone()),
        (Some(line), None) => {
            return Err(vec![line.note(
                "certfile without keyfile: a TLS listener needs both (Mosquitto refuses this too)",
            )])
        }
        (None, Some(line)) => {
            return Err(vec![line.note(
                "keyfile without certfile: a TLS listener needs both (Mosquitto refuses this too)",
            )])
        }
        (None, None) => {
            if let Some(line) = &draft.line {
                if draft.cafile.is_some() || draft.capath.is_some() || draft.require_certificate {
                    return Err(vec![line.note(
                        "this listener has cafile or require_certificate but no certfile and \
                         keyfile (Mosquitto refuses this too): add them, or remove the TLS options",
                    )]);
                }
            }
            return Ok(None);
        }
    };
    let client_certs = if draft.require_certificate {
        ClientCertPolicy::Required
    } else {
        // Mosquitto asks for no client certificate unless required
        // (SSL_VERIFY_NONE), so cafile alone is one-way TLS.
        ClientCertPolicy::None
    };
    if client_certs == ClientCertPolicy::Required
        && draft.cafile.is_none()
        && draft.capath.is_none()
    {
        let at = draft.certfile.as_ref().map(|line| {
            line.note(
                "require_certificate true needs a cafile or capath that client certificates chain to",
            )
        });
        return Err(at.into_iter().collect());
    }
    if let (Some(_), Some(capath)) = (&draft.cafile, &draft.capath) {
        if client_certs == ClientCertPolicy::Required {
            return Err(vec![capath.note(
                "fleetmq reads client CAs from one place: copy the cafile into this folder \
                 and remove cafile, or concatenate the folder's certificates into the cafile \
                 and remove capath",
            )]);
        }
    }
    let mut settings = TlsConfig {
        cert: Some(PathBuf::from(cert)),
        key: Some(PathBuf::from(key)),
        client_certs,
        min_version: draft.tls_version.unwrap_or_default(),
        cipher_suites: cipher_suites(draft),
        // Mosquitto (OpenSSL) accepts v1 client certificates; devices
        // made with `openssl x509 -req` must keep connecting (0090).
        accept_v1_client_certificates: client_certs == ClientCertPolicy::Required,
        // OpenSSL completes a leaf-only certfile from cafile and capath,
        // whether or not client certificates are asked for (0136).
        complete_chain_from: draft
            .cafile
            .iter()
            .chain(&draft.capath)
            .map(|line| PathBuf::from(&line.value))
            .collect(),
        ..TlsConfig::default()
    };
    for line in draft.cafile.iter().chain(&draft.capath) {
        draft
            .provenance
            .entry("tls.complete_chain_from")
            .or_default()
            .push(source(line));
    }
    if client_certs == ClientCertPolicy::Required {
        draft
            .provenance
            .entry("tls.accept_v1_client_certificates")
            .or_default()
            .push(Source::Default(
                "Mosquitto (OpenSSL) accepts X.509 version 1 client certificates, as made by \
                 `openssl x509 -req` without an extension file"
                    .to_string(),
            ));
        // A capath folder is read whole (broker/src/tls/ca_dir.rs).
        settings.client_ca = draft
            .cafile
            .as_ref()
            .or(draft.capath.as_ref())
            .map(|line| PathBuf::from(&line.value));
        settings.crl = draft
            .crlfile
            .iter()
            .map(|line| PathBuf::from(&line.value))
            .collect();
    } else {
        // With no client certificate requested, cafile and crlfile check
        // nothing; cafile and capath only complete the server's chain.
        draft.provenance.remove("tls.client_ca");
        draft.provenance.remove("tls.crl");
        if let Some(line) = &draft.crlfile {
            notes.push(line.note(
                "not needed: without require_certificate no client certificate is asked for \
                 (one-way TLS)",
            ));
        }
    }
    Ok(Some(settings))
}

/// `tls.cipher_suites` from `ciphers` and `ciphers_tls1.3`: each replaces
/// its own version's suites; empty (all suites) when neither is written.
fn cipher_suites(draft: &ListenerDraft) -> Vec<String> {
    if draft.ciphers.is_none() && draft.ciphers_tls13.is_none() {
        return Vec::new();
    }
    let tls13 = draft.ciphers_tls13.clone().unwrap_or_else(|| {
        super::ciphers::TLS13
            .iter()
            .map(|s| (*s).to_string())
            .collect()
    });
    let tls12 = draft
        .ciphers
        .clone()
        .unwrap_or_else(super::ciphers::all_tls12);
    tls13.into_iter().chain(tls12).collect()
}
