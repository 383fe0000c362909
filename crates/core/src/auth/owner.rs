//! Who owns a session: the principal that created it, and the rule for who
//! may attach to it later (take it over, resume it or discard it with a
//! clean start).
//!
//! A client id is chosen by the client, so it proves nothing: without this
//! rule a device holding the certificate of `dev-a` could connect as
//! `dev-b`, kick `dev-b` and read what was queued for it. The owner is
//! recorded when the session is created and stored with it; an attach by
//! anyone else is refused before anything of the session is touched
//! (decision 0088). This module reads [`Identity`] fields only, never
//! `Identity::principal()`, so it keeps its meaning whatever that method
//! falls back to.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::Identity;

/// The principal a session belongs to. The kinds never match each other:
/// a password client named `dev-b` is not the device whose certificate
/// says `dev-b` (on a listener without a password file a username is only
/// a claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionOwner {
    /// A verified client certificate with this identity (the listener's
    /// `identity` source: CN by default); survives certificate renewal.
    /// Shared with the identity it was made from.
    Certificate(Arc<str>),
    /// A verified client certificate without the identity field, by its
    /// SHA-256 fingerprint.
    Fingerprint(String),
    /// A client without a certificate, by its username.
    Username(String),
    /// A client with no certificate and no username: only another such
    /// client may attach, and never one with an identity.
    Anonymous,
    /// The local session of a bridge (by its client id): no network client
    /// can claim it, whatever client id it sends.
    Bridge(String),
}

impl SessionOwner {
    /// The owner a session created by `identity` gets.
    pub fn of(identity: &Identity) -> SessionOwner {
        if identity.bridge {
            SessionOwner::Bridge(identity.client_id.to_string())
        } else if let Some(name) = &identity.cert_identity {
            SessionOwner::Certificate(Arc::clone(name))
        } else if let Some(fingerprint) = &identity.fingerprint {
            SessionOwner::Fingerprint(fingerprint.to_string())
        } else if let Some(username) = &identity.username {
            SessionOwner::Username(username.clone())
        } else {
            SessionOwner::Anonymous
        }
    }

    /// Whether `identity` is this owner.
    pub fn admits(&self, identity: &Identity) -> bool {
        *self == SessionOwner::of(identity)
    }
}

impl std::fmt::Display for SessionOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionOwner::Certificate(name) => write!(f, "certificate '{}'", name.escape_debug()),
            SessionOwner::Fingerprint(fp) => write!(f, "certificate sha256 {fp}"),
            SessionOwner::Username(name) => write!(f, "user '{}'", name.escape_debug()),
            SessionOwner::Anonymous => f.write_str("anonymous"),
            SessionOwner::Bridge(id) => write!(f, "the bridge session '{}'", id.escape_debug()),
        }
    }
}

/// An attach refused because the session belongs to someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignSession {
    /// Who owns the session.
    pub owner: SessionOwner,
    /// Who tried to attach.
    pub claimant: SessionOwner,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::auth::identity::tests::cert;
    use crate::config::ListenerConfig;

    fn identity(cert_cn: Option<&str>, username: Option<&str>) -> Identity {
        let cert = cert_cn.map(|cn| cert(cn, &[]));
        Identity::build(
            &ListenerConfig::default_tls(),
            "l".into(),
            &[],
            cert.as_ref(),
            "dev-b",
            username,
        )
    }

    #[test]
    fn owners_of_different_kinds_never_match() {
        let device = SessionOwner::of(&identity(Some("dev-b"), None));
        assert_eq!(device, SessionOwner::Certificate("dev-b".into()));
        assert!(device.admits(&identity(Some("dev-b"), Some("anything"))));
        assert!(!device.admits(&identity(Some("dev-a"), None)));
        assert!(!device.admits(&identity(None, Some("dev-b"))));
        assert!(!device.admits(&identity(None, None)));

        let user = SessionOwner::of(&identity(None, Some("dev-b")));
        assert_eq!(user, SessionOwner::Username("dev-b".into()));
        assert!(!user.admits(&identity(Some("dev-b"), None)));
        assert!(!user.admits(&identity(None, None)));

        let anonymous = SessionOwner::of(&identity(None, None));
        assert_eq!(anonymous, SessionOwner::Anonymous);
        assert!(anonymous.admits(&identity(None, None)));
        assert!(!anonymous.admits(&identity(None, Some("dev-b"))));
        assert!(!anonymous.admits(&identity(Some("dev-b"), None)));
    }

    #[test]
    fn owners_are_stored_as_tagged_json() {
        let owner = SessionOwner::Certificate("dev-b".into());
        let json = serde_json::to_string(&owner).unwrap();
        assert_eq!(json, r#"{"certificate":"dev-b"}"#);
        let back: SessionOwner = serde_json::from_str(&json).unwrap();
        assert_eq!(back, owner);
        let anonymous: SessionOwner = serde_json::from_str(r#""anonymous""#).unwrap();
        assert_eq!(anonymous, SessionOwner::Anonymous);
    }
}
