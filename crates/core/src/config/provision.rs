//! The `[provision]` table: whether and how the broker's provisioning
//! service hands out device certificates to devices that present a claim
//! certificate (docs/provisioning.md, decisions 0150-0153).
//!
//! Owns the settings and their defaults only. It must not read the files
//! it names (the broker's `provision` module does) or decide a request.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the service decides whether a device id may have a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProvisionPolicy {
    /// Any id matching `id_pattern` is issued at once.
    Pattern,
    /// Ids listed in `allow_list` (one per line, `#` comments) and
    /// matching `id_pattern`.
    AllowList,
    /// A one-time token from `tokens_file` must come with the request;
    /// each token works once, ever (its use is recorded on disk before the
    /// certificate is sent).
    Token,
    /// The request waits until an operator approves it (`fleetmq certs
    /// approve ID` or the dashboard); the device asks again. The default:
    /// nothing is issued without a human or a list saying so.
    #[default]
    Approval,
}

/// What happens to a device's previous certificate after a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RevokeReplaced {
    /// Revoked when the device first connects with the new certificate
    /// (so a device that lost the answer can still ask again). Default.
    #[default]
    OnFirstUse,
    /// Revoked as soon as the new certificate is issued.
    AtIssue,
    /// Never revoked: it expires on its own.
    Never,
}

/// The provisioning service (off unless `enabled` and a listener has
/// `provision = true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvisionConfig {
    /// Run the service. Listeners still opt in one by one.
    pub enabled: bool,
    /// The certificate group (OU) that marks a claim certificate: a client
    /// presenting one may only use its own provisioning topics, whatever
    /// the ACL says (`fleetmq certs claim` writes this OU).
    pub claim_group: String,
    /// The lab CA folder that signs; default `<data_dir>/pki`.
    pub pki_dir: Option<PathBuf>,
    /// How a first certificate is granted.
    pub policy: ProvisionPolicy,
    /// Device ids accepted, `*` matching any run of characters (`esp32_*`).
    /// Applies under every policy, renewals excepted.
    pub id_pattern: String,
    /// `allow-list` policy: one device id per line.
    pub allow_list: Option<PathBuf>,
    /// `token` policy: one token per line, optionally `TOKEN DEVICE-ID` to
    /// bind it to one device.
    pub tokens_file: Option<PathBuf>,
    /// Validity of an issued certificate, in seconds (default one year).
    pub validity_secs: u64,
    /// A device may renew once its certificate has less than this many
    /// seconds left (default 30 days); earlier requests are refused.
    pub renew_before_secs: u64,
    /// What happens to the certificate a renewal replaces.
    pub revoke_replaced: RevokeReplaced,
    /// Most requests waiting for approval at once; more are refused.
    pub max_pending: usize,
}

impl Default for ProvisionConfig {
    fn default() -> Self {
        ProvisionConfig {
            enabled: false,
            claim_group: "fleetmq-claim".to_owned(),
            pki_dir: None,
            policy: ProvisionPolicy::default(),
            id_pattern: "*".to_owned(),
            allow_list: None,
            tokens_file: None,
            validity_secs: 365 * 24 * 3600,
            renew_before_secs: 30 * 24 * 3600,
            revoke_replaced: RevokeReplaced::default(),
            max_pending: 1000,
        }
    }
}
