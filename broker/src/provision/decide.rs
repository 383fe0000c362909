//! Deciding one provisioning request: who asks (a claim certificate for a
//! first certificate, a device's own certificate for a renewal), whether
//! the policy lets it, and signing when it does (decisions 0151-0153).
//! Synchronous and socket-free: the worker runs it on a blocking thread,
//! the tests call it directly.
//!
//! Nothing is issued unless every check passed; a refusal changes no file
//! except the pending-approval record.

use std::collections::HashSet;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::approvals::{Approvals, Pending};
use super::csr::{self, CheckedCsr};
use super::message::{Answer, Refusal, Request};
use super::policy::{self, Tokens};
use crate::certs::{device_name_check, IssuedCert, KeyRequest, Pki};
use fleetmq_core::auth::Identity;
use fleetmq_core::config::{Config, ProvisionConfig, ProvisionPolicy, RevokeReplaced};

/// What the worker does after a decision besides answering.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Serials just revoked: reload the CRLs and disconnect their holders.
    pub revoked: Vec<String>,
    /// A renewal to watch: when a connection presents `.0` (fingerprint),
    /// revoke `.1` (serial).
    pub supersede: Option<(String, String)>,
}

/// Everything a decision reads.
#[derive(Debug)]
pub struct Decider {
    pub settings: ProvisionConfig,
    pub claim_group: String,
    pub pki: Pki,
    pub approvals: Approvals,
    pub tokens: Option<Tokens>,
    /// Names of the listeners with `provision = true`.
    pub listeners: HashSet<Arc<str>>,
}

impl Decider {
    /// Opens the CA and the state folder for `config`.
    pub fn open(config: &Config, listeners: HashSet<Arc<str>>) -> Result<Decider, String> {
        let settings = config.provision.clone();
        let pki_dir = settings
            .pki_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("pki"));
        let pki = Pki::open(&pki_dir).map_err(|error| format!("provisioning: {error}"))?;
        let state = config.data_dir.join("provision");
        let tokens = settings.tokens_file.clone().map(|file| Tokens {
            file,
            used: state.join("used-tokens"),
        });
        Ok(Decider {
            claim_group: settings.claim_group.clone(),
            settings,
            pki,
            approvals: Approvals::new(&state),
            tokens,
            listeners,
        })
    }

    /// Decides the request `payload` sent by `identity`.
    pub fn decide(&self, identity: &Identity, payload: &[u8]) -> (Answer, Effects) {
        let client_id = &*identity.client_id;
        match self.try_decide(identity, payload) {
            Ok(done) => done,
            Err((reason, detail)) => {
                tracing::info!(
                    client = %client_id,
                    "Provisioning request of client {client_id} refused ({}): {detail}.",
                    serde_json::to_string(&reason).unwrap_or_default().trim_matches('"'),
                );
                (
                    Answer::refused(client_id, reason, detail),
                    Effects::default(),
                )
            }
        }
    }

    fn try_decide(
        &self,
        identity: &Identity,
        payload: &[u8],
    ) -> Result<(Answer, Effects), (Refusal, String)> {
        if !self.listeners.contains(&identity.listener) {
            return Err((
                Refusal::NotOnThisListener,
                format!(
                    "listener \"{}\" does not serve provisioning",
                    identity.listener
                ),
            ));
        }
        let request: Request = serde_json::from_slice(payload).map_err(|error| {
            (
                Refusal::MalformedRequest,
                format!("not a provisioning request: {error}"),
            )
        })?;
        let id = request.device_id.as_str();
        if id != &*identity.client_id {
            return Err((
                Refusal::IdMismatch,
                format!(
                    "device_id {id:?} is not the client id {:?}",
                    identity.client_id
                ),
            ));
        }
        device_name_check(id).map_err(|detail| (Refusal::IdNotAllowed, detail))?;
        let csr = csr::check(&request.csr, id)?;
        let Some(fingerprint) = identity.fingerprint.as_deref() else {
            return Err((
                Refusal::UnknownCertificate,
                "no client certificate: ask with a claim certificate or your own".to_owned(),
            ));
        };
        let is_claim = identity.groups.contains(&self.claim_group);
        if is_claim {
            self.first_certificate(identity, id, &request, &csr)
        } else {
            self.renewal(id, fingerprint, &csr)
        }
    }

    /// A device with the claim certificate asks for its first certificate.
    fn first_certificate(
        &self,
        identity: &Identity,
        id: &str,
        request: &Request,
        csr: &CheckedCsr,
    ) -> Result<(Answer, Effects), (Refusal, String)> {
        let history = self.pki.device_history(id).map_err(internal)?;
        if history.iter().any(|cert| cert.revoked_at.is_some()) {
            return Err((
                Refusal::Revoked,
                format!("{id} has a revoked certificate; a claim certificate cannot bring it back"),
            ));
        }
        if let Some(current) = history.last() {
            // The same key asking again: its answer was lost. Send it again.
            if current.not_after > OffsetDateTime::now_utc()
                && self.pki.public_key_of(current).map_err(internal)? == csr.raw_key
            {
                return self.resend(current);
            }
            return Err((
                Refusal::AlreadyProvisioned,
                format!("{id} has a certificate already; renew with it"),
            ));
        }
        if !policy::id_matches(&self.settings.id_pattern, id) {
            return Err((
                Refusal::IdNotAllowed,
                format!(
                    "{id} does not match id_pattern {:?}",
                    self.settings.id_pattern
                ),
            ));
        }
        let issued_by = match self.settings.policy {
            ProvisionPolicy::Pattern => "claim",
            ProvisionPolicy::AllowList => {
                let Some(path) = &self.settings.allow_list else {
                    return Err(internal("no allow_list configured"));
                };
                if !policy::allow_listed(path, id).map_err(internal)? {
                    return Err((
                        Refusal::IdNotAllowed,
                        format!("{id} is not on the allow-list"),
                    ));
                }
                "allow-list"
            }
            ProvisionPolicy::Token => {
                let Some(tokens) = &self.tokens else {
                    return Err(internal("no tokens_file configured"));
                };
                tokens.consume(request.token.as_deref(), id)?;
                "token"
            }
            ProvisionPolicy::Approval => {
                let key_sha256 = policy::hex(&Sha256::digest(&csr.raw_key));
                if !self.approvals.is_approved(id, &key_sha256) {
                    return self.wait_for_approval(identity, id, key_sha256);
                }
                "approval"
            }
        };
        let answer = self.issue(id, None, csr, issued_by, None)?;
        if self.settings.policy == ProvisionPolicy::Approval {
            self.approvals.done(id);
        }
        Ok((answer, Effects::default()))
    }

    fn wait_for_approval(
        &self,
        identity: &Identity,
        id: &str,
        key_sha256: String,
    ) -> Result<(Answer, Effects), (Refusal, String)> {
        let pending = self.approvals.list().map_err(internal)?;
        let known = pending.iter().any(|p| p.device_id == id);
        if !known && pending.len() >= self.settings.max_pending {
            return Err((
                Refusal::TooManyPending,
                format!("{} requests wait for approval already", pending.len()),
            ));
        }
        let same = pending
            .iter()
            .any(|p| p.device_id == id && p.key_sha256 == key_sha256);
        if !same {
            self.approvals
                .add(&Pending {
                    device_id: id.to_owned(),
                    key_sha256,
                    requested_by: identity.cert_identity.as_deref().map(String::from),
                    requested_at: now_text(),
                })
                .map_err(internal)?;
            tracing::info!(
                client = %id,
                "Provisioning request of {id} waits for approval (fleetmq certs approve {id})."
            );
        }
        Ok((
            Answer::Pending {
                device_id: id.to_owned(),
            },
            Effects::default(),
        ))
    }

    /// A device asks with its own certificate for the next one.
    fn renewal(
        &self,
        id: &str,
        fingerprint: &str,
        csr: &CheckedCsr,
    ) -> Result<(Answer, Effects), (Refusal, String)> {
        let Some(presented) = self
            .pki
            .find_by_fingerprint(fingerprint)
            .map_err(internal)?
            .filter(|cert| cert.id == id && cert.kind == crate::certs::CertKind::Device)
        else {
            return Err((
                Refusal::UnknownCertificate,
                format!("the presented certificate is not one this CA issued for {id}"),
            ));
        };
        if presented.revoked_at.is_some() {
            return Err((
                Refusal::Revoked,
                format!(
                    "the presented certificate (serial {}) is revoked",
                    presented.serial
                ),
            ));
        }
        let history = self.pki.device_history(id).map_err(internal)?;
        if let Some(successor) = history.iter().rev().find(|cert| {
            cert.replaces.as_deref() == Some(presented.serial.as_str()) && cert.revoked_at.is_none()
        }) {
            if history.last() == Some(successor)
                && self.pki.public_key_of(successor).map_err(internal)? == csr.raw_key
            {
                return self.resend(successor);
            }
            return Err((
                Refusal::AlreadyProvisioned,
                format!("{id} was renewed already (serial {})", successor.serial),
            ));
        }
        let left = presented.not_after - OffsetDateTime::now_utc();
        let window =
            Duration::seconds(i64::try_from(self.settings.renew_before_secs).unwrap_or(i64::MAX));
        if left > window {
            return Err((
                Refusal::NotDue,
                format!(
                    "the certificate has {}s left; renewal opens {}s before it ends",
                    left.whole_seconds(),
                    self.settings.renew_before_secs
                ),
            ));
        }
        let answer = self.issue(
            id,
            presented.group.clone(),
            csr,
            "renewal",
            Some(presented.serial.clone()),
        )?;
        let mut effects = Effects::default();
        match self.settings.revoke_replaced {
            RevokeReplaced::AtIssue => {
                self.pki.revoke(&presented.serial).map_err(internal)?;
                effects.revoked.push(presented.serial.clone());
            }
            RevokeReplaced::OnFirstUse => {
                if let Answer::Issued { serial, .. } = &answer {
                    if let Some(new) = self
                        .pki
                        .device_history(id)
                        .map_err(internal)?
                        .into_iter()
                        .find(|cert| &cert.serial == serial)
                    {
                        effects.supersede = Some((new.fingerprint, presented.serial.clone()));
                    }
                }
            }
            RevokeReplaced::Never => {}
        }
        Ok((answer, effects))
    }

    fn issue(
        &self,
        id: &str,
        group: Option<String>,
        csr: &CheckedCsr,
        issued_by: &'static str,
        replaces: Option<String>,
    ) -> Result<Answer, (Refusal, String)> {
        let validity =
            Duration::seconds(i64::try_from(self.settings.validity_secs).unwrap_or(i64::MAX));
        let issued = self
            .pki
            .issue_for_key(
                &KeyRequest {
                    id: id.to_owned(),
                    group,
                    validity,
                    issued_by,
                    replaces,
                },
                &csr.public_key,
            )
            .map_err(internal)?;
        tracing::info!(
            client = %id,
            serial = %issued.serial,
            "Issued certificate {} to {id} ({issued_by}), valid until {}.",
            issued.serial,
            rfc3339(issued.not_after),
        );
        Ok(Answer::Issued {
            device_id: id.to_owned(),
            chain: issued.chain_pem,
            serial: issued.serial,
            not_after: rfc3339(issued.not_after),
        })
    }

    fn resend(&self, cert: &IssuedCert) -> Result<(Answer, Effects), (Refusal, String)> {
        Ok((
            Answer::Issued {
                device_id: cert.id.clone(),
                chain: self.pki.chain_of(cert).map_err(internal)?,
                serial: cert.serial.clone(),
                not_after: rfc3339(cert.not_after),
            },
            Effects::default(),
        ))
    }
}

fn internal(error: impl std::fmt::Display) -> (Refusal, String) {
    tracing::error!("Provisioning failed: {error}.");
    (
        Refusal::Internal,
        "the broker could not issue (see its log)".to_owned(),
    )
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

fn now_text() -> String {
    rfc3339(OffsetDateTime::now_utc())
}
