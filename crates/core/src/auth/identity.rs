//! The identity of a connected client: the names ACL rules are matched
//! against, derived once at CONNECT from the client certificate, the
//! CONNECT packet and the listener's settings.
//!
//! Nothing here decides whether the client may connect; that is
//! [`super::authenticate()`], which reads the same [`Identity`].

use std::sync::Arc;

use crate::config::{GroupConfig, IdentitySource, ListenerConfig};
use crate::peer::PeerCertificate;

/// Who a client is, as far as authorization is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The client id the session is stored under (`%c` in ACL patterns).
    /// Already the certificate identity when the listener has
    /// `identity_as_clientid` and a certificate was presented.
    pub client_id: Arc<str>,
    /// The username (`%u`, and Mosquitto `user` lines). With
    /// `use_identity_as_username` / `use_subject_as_username` and a
    /// certificate, it is taken from the certificate and whatever the client
    /// sent is ignored, so a device cannot claim another device's name.
    pub username: Option<String>,
    /// The name the listener's `identity` source reads from the verified
    /// certificate (CN by default); `None` without a certificate, or when
    /// the certificate lacks that field.
    pub cert_identity: Option<Arc<str>>,
    /// Certificate groups: the certificate's OU values, then the configured
    /// `[[auth.group]]`s that list the certificate's identity or
    /// fingerprint. Empty without a certificate: a username or client id
    /// never joins a group, because a client chooses those itself.
    pub groups: Vec<String>,
    /// Name of the listener the client connected to (for logs).
    pub listener: Arc<str>,
    /// SHA-256 fingerprint of the client certificate, lower-case hex; its
    /// presence means a verified certificate was presented. The
    /// certificate's own string when it is lower-case already (always, for
    /// one read from a handshake).
    pub fingerprint: Option<Arc<str>>,
    /// Whether the password file verified `username`. Set by
    /// [`super::authenticate()`] only: a username nobody verified (an
    /// anonymous client's claim) names no one.
    pub password_verified: bool,
    /// Whether `username` was taken from the certificate
    /// (`use_identity_as_username` / `use_subject_as_username`).
    pub username_from_certificate: bool,
    /// The local side of a bridge (`[[bridge]]`): part of the broker, so
    /// topic rules do not apply to it, as in Mosquitto. Never set for a
    /// network client.
    pub bridge: bool,
}

impl Identity {
    /// Builds the identity from what the connection knows. Applies the
    /// listener's `identity` source, `use_identity_as_username` /
    /// `use_subject_as_username` (the username is replaced by the
    /// certificate's) and `identity_as_clientid` (the client id is replaced
    /// by the certificate identity), and collects the groups.
    pub fn build(
        listener: &ListenerConfig,
        listener_name: Arc<str>,
        groups: &[GroupConfig],
        cert: Option<&PeerCertificate>,
        client_id: &str,
        username: Option<&str>,
    ) -> Identity {
        let cert_identity = cert.and_then(|cert| identity_of(cert, listener.identity));
        let username_from_certificate = cert.is_some()
            && (listener.use_identity_as_username || listener.use_subject_as_username);
        let username = match cert {
            Some(_) if listener.use_identity_as_username => {
                cert_identity.as_deref().map(String::from)
            }
            Some(cert) if listener.use_subject_as_username => Some(cert.subject.clone()),
            _ => username.map(str::to_string),
        };
        let client_id: Arc<str> = match &cert_identity {
            Some(identity) if listener.identity_as_clientid => Arc::clone(identity),
            _ => Arc::from(client_id),
        };
        let groups = cert
            .map(|cert| groups_of(cert, cert_identity.as_deref(), groups))
            .unwrap_or_default();
        Identity {
            client_id,
            username,
            cert_identity,
            groups,
            listener: listener_name,
            fingerprint: cert.map(|cert| lower_case_shared(&cert.fingerprint_sha256)),
            password_verified: false,
            username_from_certificate,
            bridge: false,
        }
    }

    /// The name ACL `identity = ...` rules, `%i` and
    /// `clientid_must_match_identity` use: the certificate identity, else
    /// the username a password file verified. `None` for a client with
    /// neither: a client id or an unverified username is a claim anyone can
    /// make, so it never names an identity (docs/decisions/0080).
    pub fn principal(&self) -> Option<&str> {
        match (&self.cert_identity, &self.username) {
            (Some(cert_identity), _) => Some(cert_identity),
            (None, Some(username)) if self.password_verified => Some(username),
            _ => None,
        }
    }

    /// The name dynamic security knows this client by: a username the
    /// certificate gave or a password check verified (dynsec's own, or the
    /// password file's); else, for a certificate client, its certificate
    /// identity (so a device certificate is a dynsec client of that name,
    /// and a username it merely claims names no one); else the username
    /// (of a client dynsec admitted without one it knows: anonymous).
    pub fn dynsec_name(&self) -> Option<&str> {
        if self.username_from_certificate || self.password_verified || !self.has_certificate() {
            self.username.as_deref()
        } else {
            self.cert_identity.as_deref()
        }
    }

    /// The identity of bridge `name`'s local session `client_id`.
    pub fn bridge(name: &str, client_id: &str) -> Identity {
        Identity {
            client_id: Arc::from(client_id),
            username: None,
            cert_identity: None,
            groups: Vec::new(),
            listener: Arc::from(format!("bridge {name}")),
            fingerprint: None,
            password_verified: false,
            username_from_certificate: false,
            bridge: true,
        }
    }

    /// Whether the client presented a verified certificate.
    pub fn has_certificate(&self) -> bool {
        self.fingerprint.is_some()
    }
}

/// The certificate field the listener names as identity, if present and
/// non-empty.
fn identity_of(cert: &PeerCertificate, source: IdentitySource) -> Option<Arc<str>> {
    let value = match source {
        IdentitySource::Cn => cert.cn.clone(),
        IdentitySource::Subject => Some(Arc::from(cert.subject.as_str())),
        IdentitySource::SanDns => cert.san_dns.first().map(|name| Arc::from(name.as_str())),
        IdentitySource::SanUri => cert.san_uri.first().map(|name| Arc::from(name.as_str())),
        IdentitySource::Fingerprint => Some(lower_case_shared(&cert.fingerprint_sha256)),
    };
    value.filter(|value| !value.is_empty())
}

fn groups_of(
    cert: &PeerCertificate,
    cert_identity: Option<&str>,
    configured: &[GroupConfig],
) -> Vec<String> {
    // Only groups that list fingerprints need the certificate's own in the
    // compared form: most labs list none, and this runs on every connect.
    let fingerprint = configured
        .iter()
        .any(|group| !group.fingerprints.is_empty())
        .then(|| normalize_fingerprint(&cert.fingerprint_sha256));
    let mut groups: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !name.is_empty() && !groups.iter().any(|known| known == name) {
            groups.push(name.to_string());
        }
    };
    for unit in cert.organizational_units.iter() {
        add(unit);
    }
    for group in configured {
        let by_identity = cert_identity
            .is_some_and(|identity| group.identities.iter().any(|listed| listed == identity));
        let by_fingerprint = group
            .fingerprints
            .iter()
            .any(|listed| fingerprint.as_deref() == Some(normalize_fingerprint(listed).as_str()));
        if by_identity || by_fingerprint {
            add(&group.name);
        }
    }
    groups
}

/// `text` in lower case, sharing it when it is already.
fn lower_case_shared(text: &Arc<str>) -> Arc<str> {
    if text.bytes().any(|byte| byte.is_ascii_uppercase()) {
        text.to_ascii_lowercase().into()
    } else {
        Arc::clone(text)
    }
}

/// Fingerprints are compared as lower-case hex without `:` separators, so
/// `AB:CD:...` copied from `openssl x509 -fingerprint` matches too.
fn normalize_fingerprint(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    /// A certificate with the given CN and OUs, for tests.
    pub(crate) fn cert(cn: &str, units: &[&str]) -> PeerCertificate {
        PeerCertificate {
            cn: Some(cn.into()),
            subject: format!("CN={cn}"),
            organizational_units: units.iter().map(|u| Arc::from(*u)).collect(),
            san_dns: vec![format!("{cn}.devices.lab")],
            san_uri: Vec::new(),
            san_email: Vec::new(),
            serial: "01".into(),
            fingerprint_sha256: format!("{:0>64}", hex_of(cn)).into(),
            issuer: "CN=lab CA".into(),
            not_before: 0,
            not_after: i64::MAX,
            version: 3,
            weakness: None,
            key_type: "".into(),
        }
    }

    fn hex_of(text: &str) -> String {
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn listener() -> ListenerConfig {
        ListenerConfig::default_tls()
    }

    #[test]
    fn certificate_identity_wins_over_username_and_client_id() {
        let cert = cert("dev-a", &[]);
        let identity = Identity::build(
            &listener(),
            "tls".into(),
            &[],
            Some(&cert),
            "client-1",
            Some("dev-b"),
        );
        assert_eq!(identity.principal(), Some("dev-a"));
        assert_eq!(identity.username.as_deref(), Some("dev-b"));
        assert!(identity.has_certificate());
    }

    #[test]
    fn the_fingerprint_is_shared_with_the_certificate_and_lower_case() {
        let cert = cert("dev-a", &[]);
        let build = |cert: &PeerCertificate| {
            Identity::build(&listener(), "tls".into(), &[], Some(cert), "c", None)
        };
        let identity = build(&cert);
        let fingerprint = identity.fingerprint.unwrap();
        assert!(Arc::ptr_eq(&fingerprint, &cert.fingerprint_sha256));
        let mut upper = cert.clone();
        upper.fingerprint_sha256 = "AB".repeat(32).into();
        assert_eq!(
            build(&upper).fingerprint.as_deref(),
            Some(&*"ab".repeat(32))
        );
    }

    #[test]
    fn principal_is_a_verified_username_never_a_client_id() {
        let mut with_user = Identity::build(&listener(), "l".into(), &[], None, "c", Some("u"));
        // A username nobody verified is a claim, not an identity.
        assert_eq!(with_user.principal(), None);
        with_user.password_verified = true;
        assert_eq!(with_user.principal(), Some("u"));
        let bare = Identity::build(&listener(), "l".into(), &[], None, "c", None);
        assert_eq!(bare.principal(), None);
        assert!(bare.groups.is_empty());
    }

    #[test]
    fn identity_as_username_replaces_the_sent_username() {
        let cert = cert("dev-a", &[]);
        let mut config = listener();
        config.use_identity_as_username = true;
        let identity = Identity::build(&config, "l".into(), &[], Some(&cert), "c", Some("dev-b"));
        assert_eq!(identity.username.as_deref(), Some("dev-a"));
        config.use_identity_as_username = false;
        config.use_subject_as_username = true;
        let identity = Identity::build(&config, "l".into(), &[], Some(&cert), "c", Some("dev-b"));
        assert_eq!(identity.username.as_deref(), Some("CN=dev-a"));
        // Without a certificate the sent username stays (authenticate decides).
        let identity = Identity::build(&config, "l".into(), &[], None, "c", Some("dev-b"));
        assert_eq!(identity.username.as_deref(), Some("dev-b"));
    }

    #[test]
    fn identity_sources_read_the_configured_field() {
        let cert = cert("dev-a", &[]);
        let mut config = listener();
        let cases = [
            (IdentitySource::Cn, Some("dev-a".to_string())),
            (IdentitySource::Subject, Some("CN=dev-a".to_string())),
            (
                IdentitySource::SanDns,
                Some("dev-a.devices.lab".to_string()),
            ),
            (IdentitySource::SanUri, None),
            (
                IdentitySource::Fingerprint,
                Some(cert.fingerprint_sha256.to_string()),
            ),
        ];
        for (source, expected) in cases {
            config.identity = source;
            let identity = Identity::build(&config, "l".into(), &[], Some(&cert), "c", None);
            assert_eq!(
                identity.cert_identity.as_deref(),
                expected.as_deref(),
                "{source:?}"
            );
        }
    }

    #[test]
    fn identity_as_clientid_replaces_the_client_id() {
        let cert = cert("dev-a", &[]);
        let mut config = listener();
        config.identity_as_clientid = true;
        let identity = Identity::build(&config, "l".into(), &[], Some(&cert), "other", None);
        assert_eq!(&*identity.client_id, "dev-a");
        let identity = Identity::build(&config, "l".into(), &[], None, "other", None);
        assert_eq!(&*identity.client_id, "other");
    }

    #[test]
    fn groups_come_from_units_and_configured_groups() {
        let cert = cert("dev-a", &["sensors", "sensors"]);
        let groups = [
            GroupConfig {
                name: "ops".to_string(),
                identities: vec!["dev-a".to_string()],
                fingerprints: Vec::new(),
            },
            GroupConfig {
                name: "pinned".to_string(),
                identities: Vec::new(),
                fingerprints: vec![cert.fingerprint_sha256.to_uppercase()],
            },
            GroupConfig {
                name: "others".to_string(),
                identities: vec!["dev-b".to_string()],
                fingerprints: vec!["00".to_string()],
            },
        ];
        let identity = Identity::build(&listener(), "l".into(), &groups, Some(&cert), "c", None);
        assert_eq!(identity.groups, ["sensors", "ops", "pinned"]);
        // A password or anonymous client named like a member joins nothing.
        let identity = Identity::build(&listener(), "l".into(), &groups, None, "dev-a", None);
        assert!(identity.groups.is_empty());
    }
}
