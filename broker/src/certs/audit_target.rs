//! What `fleetmq certs audit` is asked about: which folder (one given, or
//! the broker's `seen-certificates`, `--seen`) and which listener settings
//! (`--ca`/`--crl`/`--accept-v1`, or those of a listener of a
//! `fleetmq.toml`, `--config` and `--listener`), decision 0094.
//!
//! It reads the configuration like `fleetmq run` does (file, then
//! `FLEETMQ_*`), but never creates anything: a listener on the lab PKI
//! is audited against `<data_dir>/pki/ca.crt` and `crl.pem` as they are.
//! The audit itself is [`super::audit`], the same for every folder.

use std::path::{Path, PathBuf};

use super::audit::AuditOptions;
use super::CertError;
use crate::tls::SEEN_DIR;
use fleetmq_core::config::{self as config, ClientCertPolicy, Config, ListenerConfig, TlsConfig};

/// The audit's flags, as given.
#[derive(Debug, Default, Clone)]
pub struct AuditRequest {
    pub folder: Option<PathBuf>,
    pub seen: bool,
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub listener: Option<String>,
    pub ca: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
    pub accept_v1: bool,
    pub expiring_days: u32,
}

/// The folder to audit and the settings to audit it with.
#[derive(Debug, Clone)]
pub struct AuditTarget {
    pub folder: PathBuf,
    pub options: AuditOptions,
    /// `listener "NAME" of FILE`, when the settings came from one.
    pub source: Option<String>,
}

fn problem(text: impl Into<String>) -> CertError {
    CertError::AuditTarget(text.into())
}

/// Resolves `request`: explicit flags win over the listener's settings.
pub fn resolve(request: &AuditRequest) -> Result<AuditTarget, CertError> {
    let loaded = match &request.config {
        Some(path) => Some((
            path,
            config::load(Some(path)).map_err(|error| problem(error.to_string()))?,
        )),
        None => None,
    };
    let data_dir = match (&request.data_dir, &loaded) {
        (Some(dir), _) => dir.clone(),
        (None, Some((_, config))) => config.data_dir.clone(),
        (None, None) => Config::default().data_dir,
    };
    let folder =
        match (&request.folder, request.seen) {
            (Some(_), true) => return Err(problem(
                "give a FOLDER or --seen, not both (--seen audits <data_dir>/seen-certificates)",
            )),
            (Some(folder), false) => folder.clone(),
            (None, true) => data_dir.join(SEEN_DIR),
            (None, false) => {
                return Err(problem(
                    "name a FOLDER of device certificates, or --seen for those the broker has seen",
                ))
            }
        };
    let mut options = AuditOptions {
        ca: PathBuf::new(),
        crls: request.crls.clone(),
        accept_v1: request.accept_v1,
        expiring_days: request.expiring_days,
    };
    let mut source = None;
    if let Some((path, config)) = &loaded {
        let (listener, tls) = pick_listener(config, path, request.listener.as_deref())?;
        let (ca, crls) = listener_files(&config.data_dir, tls);
        options.ca = ca;
        if options.crls.is_empty() {
            options.crls = crls;
        }
        options.accept_v1 |= tls.accept_v1_client_certificates;
        source = Some(format!(
            "listener \"{}\" of {}",
            listener.name,
            path.display()
        ));
    }
    match &request.ca {
        Some(ca) => options.ca.clone_from(ca),
        None if loaded.is_none() => return Err(problem(
            "name the listener's client CA with --ca FILE, or a configuration with --config FILE",
        )),
        None => {}
    }
    Ok(AuditTarget {
        folder,
        options,
        source,
    })
}

/// The listener named, or the only one asking for client certificates.
fn pick_listener<'a>(
    config: &'a Config,
    path: &Path,
    name: Option<&str>,
) -> Result<(&'a ListenerConfig, &'a TlsConfig), CertError> {
    let with_client_certs: Vec<(&ListenerConfig, &TlsConfig)> = config
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref().map(|tls| (l, tls)))
        .filter(|(_, tls)| tls.client_certs != ClientCertPolicy::None)
        .collect();
    let names = || {
        with_client_certs
            .iter()
            .map(|(l, _)| format!("\"{}\"", l.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, with_client_certs.as_slice()) {
        (Some(name), _) => with_client_certs
            .iter()
            .find(|(l, _)| l.name == name)
            .copied()
            .ok_or_else(|| {
                problem(format!(
                    "{} has no listener \"{name}\" with client certificates (those with: {})",
                    path.display(),
                    names()
                ))
            }),
        (None, [only]) => Ok(*only),
        (None, []) => Err(problem(format!(
            "{} has no TLS listener with client_certs = \"optional\" or \"required\"",
            path.display()
        ))),
        (None, _) => Err(problem(format!(
            "{} has several listeners with client certificates; pick one with --listener NAME ({})",
            path.display(),
            names()
        ))),
    }
}

/// The client CA and CRLs a listener uses, as `tls::resolve_files` would
/// resolve them, without creating the lab PKI.
fn listener_files(data_dir: &Path, tls: &TlsConfig) -> (PathBuf, Vec<PathBuf>) {
    let lab = data_dir.join("pki");
    let on_lab_pki = tls.cert.is_none() && tls.key.is_none();
    let ca = tls.client_ca.clone().unwrap_or_else(|| lab.join("ca.crt"));
    let crls = if tls.crl.is_empty() && on_lab_pki {
        vec![lab.join("crl.pem")]
    } else {
        tls.crl.clone()
    };
    (ca, crls)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn request() -> AuditRequest {
        AuditRequest {
            expiring_days: 30,
            ..AuditRequest::default()
        }
    }

    #[test]
    fn seen_without_config_audits_the_default_data_dir_and_needs_a_ca() {
        let mut asked = request();
        asked.seen = true;
        let error = resolve(&asked).unwrap_err().to_string();
        assert!(error.contains("--ca FILE"), "{error}");
        asked.ca = Some(PathBuf::from("ca.crt"));
        asked.data_dir = Some(PathBuf::from("/srv/lab"));
        let target = resolve(&asked).unwrap();
        assert_eq!(target.folder, Path::new("/srv/lab").join(SEEN_DIR));
        assert_eq!(target.options.ca, Path::new("ca.crt"));
        asked.folder = Some(PathBuf::from("devices"));
        assert!(resolve(&asked).is_err());
    }

    #[test]
    fn a_config_gives_its_listener_settings_and_data_dir() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("fleetmq.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/lab\"\n\
             [[listener]]\nname = \"devices\"\nbind = \"127.0.0.1:8883\"\n\
             [listener.tls]\ncert = \"s.crt\"\nkey = \"s.key\"\nclient_ca = \"lab-ca.crt\"\n\
             client_certs = \"required\"\ncrl = [\"lab.crl\"]\naccept_v1_client_certificates = true\n\
             [[listener]]\nname = \"lab\"\nbind = \"127.0.0.1:8884\"\n\
             [listener.tls]\nclient_certs = \"required\"\n",
        )
        .unwrap();
        let mut asked = request();
        asked.seen = true;
        asked.config = Some(path.clone());
        let error = resolve(&asked).unwrap_err().to_string();
        assert!(error.contains("--listener NAME"), "{error}");
        asked.listener = Some("devices".into());
        let target = resolve(&asked).unwrap();
        assert_eq!(target.folder, Path::new("/srv/lab").join(SEEN_DIR));
        assert_eq!(target.options.ca, Path::new("lab-ca.crt"));
        assert_eq!(target.options.crls, vec![PathBuf::from("lab.crl")]);
        assert!(target.options.accept_v1);
        asked.listener = Some("lab".into());
        let target = resolve(&asked).unwrap();
        assert_eq!(target.options.ca, Path::new("/srv/lab/pki/ca.crt"));
        assert_eq!(
            target.options.crls,
            vec![PathBuf::from("/srv/lab/pki/crl.pem")]
        );
        assert!(!target.options.accept_v1);
        asked.listener = Some("nope".into());
        assert!(resolve(&asked).is_err());
    }
}
