//! Authentication tests: one table over certificate, username, password,
//! password file and listener settings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::auth::identity::tests::cert;
use crate::auth::{hash_password, PasswordFile};
use crate::config::{IdentitySource, ListenerConfig};

const ALLOW_CERT: AuthOutcome = AuthOutcome::Allowed {
    method: AuthMethod::Certificate,
};
const ALLOW_PASSWORD: AuthOutcome = AuthOutcome::Allowed {
    method: AuthMethod::Password,
};
const ALLOW_ANON: AuthOutcome = AuthOutcome::Allowed {
    method: AuthMethod::Anonymous,
};
const BAD: AuthOutcome = AuthOutcome::BadCredentials;
const NOT_AUTH: AuthOutcome = AuthOutcome::NotAuthorized;
const MISMATCH: AuthOutcome = AuthOutcome::ClientIdMismatch;

fn passwords() -> PasswordFile {
    let text = format!(
        "dev-a:{}\nalice:{}\n",
        hash_password(b"pw-a").unwrap(),
        hash_password(b"pw-alice").unwrap()
    );
    PasswordFile::parse(&text, "test").unwrap()
}

#[derive(Clone, Copy)]
enum Setting {
    Plain,
    PlainAnonymous,
    PlainMustMatch,
    Tls,
    TlsAnonymous,
    IdentityAsUsername,
    SubjectAsUsername,
    MustMatch,
    AsClientId,
    SanUri,
}

fn listener(setting: Setting) -> ListenerConfig {
    let mut config = ListenerConfig::default_tls();
    match setting {
        Setting::Plain => config = ListenerConfig::default(),
        Setting::PlainAnonymous => {
            config = ListenerConfig::default();
            config.allow_anonymous = Some(true);
        }
        Setting::PlainMustMatch => {
            config = ListenerConfig::default();
            config.clientid_must_match_identity = true;
        }
        Setting::Tls => {}
        Setting::TlsAnonymous => config.allow_anonymous = Some(true),
        Setting::IdentityAsUsername => config.use_identity_as_username = true,
        Setting::SubjectAsUsername => config.use_subject_as_username = true,
        Setting::MustMatch => config.clientid_must_match_identity = true,
        Setting::AsClientId => config.identity_as_clientid = true,
        Setting::SanUri => config.identity = IdentitySource::SanUri,
    }
    config
}

/// (listener, with password file, certificate CN, client id, username,
/// password, expected outcome)
type Case = (
    Setting,
    bool,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    AuthOutcome,
);

#[test]
fn authentication_table() {
    use Setting::*;
    let cases: &[Case] = &[
        // Plain listener: anonymous by default.
        (Plain, false, None, "c", None, None, ALLOW_ANON),
        (Plain, false, None, "c", Some("anyone"), None, ALLOW_ANON),
        // Password file: every username must verify.
        (
            Plain,
            true,
            None,
            "c",
            Some("alice"),
            Some("pw-alice"),
            ALLOW_PASSWORD,
        ),
        (Plain, true, None, "c", Some("alice"), Some("pw-a"), BAD),
        (Plain, true, None, "c", Some("alice"), None, BAD),
        (Plain, true, None, "c", Some("mallory"), Some("x"), BAD),
        (Plain, true, None, "c", None, Some("pw-alice"), BAD),
        // A password file makes plain listeners refuse anonymous clients
        // too (Mosquitto 2.0), unless `allow_anonymous = true` says so.
        (Plain, true, None, "c", None, None, NOT_AUTH),
        (PlainAnonymous, true, None, "c", None, None, ALLOW_ANON),
        // TLS listener: anonymous refused by default.
        (Tls, false, None, "c", None, None, NOT_AUTH),
        (
            Tls,
            false,
            None,
            "c",
            Some("alice"),
            Some("pw-alice"),
            NOT_AUTH,
        ),
        (
            Tls,
            true,
            None,
            "c",
            Some("alice"),
            Some("pw-alice"),
            ALLOW_PASSWORD,
        ),
        (TlsAnonymous, false, None, "c", None, None, ALLOW_ANON),
        // Mutual TLS authenticates.
        (Tls, false, Some("dev-a"), "c", None, None, ALLOW_CERT),
        (Tls, true, Some("dev-a"), "c", None, None, ALLOW_CERT),
        // A password sent with a certificate must verify when there is a file.
        (
            Tls,
            true,
            Some("dev-a"),
            "c",
            Some("dev-a"),
            Some("pw-a"),
            ALLOW_CERT,
        ),
        (
            Tls,
            true,
            Some("dev-a"),
            "c",
            Some("dev-a"),
            Some("wrong"),
            BAD,
        ),
        (Tls, true, Some("dev-a"), "c", None, Some("pw-a"), BAD),
        // A verified password may name another user than the certificate.
        (
            Tls,
            true,
            Some("dev-a"),
            "c",
            Some("alice"),
            Some("pw-alice"),
            ALLOW_CERT,
        ),
        // An unverified username must be the certificate identity.
        (
            Tls,
            false,
            Some("dev-a"),
            "c",
            Some("dev-a"),
            None,
            ALLOW_CERT,
        ),
        (Tls, false, Some("dev-b"), "c", Some("dev-a"), None, BAD),
        (
            Tls,
            false,
            Some("dev-b"),
            "c",
            Some("dev-a"),
            Some("pw-a"),
            BAD,
        ),
        (Tls, true, Some("dev-b"), "c", Some("dev-a"), None, BAD),
        // Certificate as username: the certificate alone authenticates.
        (
            IdentityAsUsername,
            true,
            Some("dev-a"),
            "c",
            None,
            None,
            ALLOW_CERT,
        ),
        (
            IdentityAsUsername,
            true,
            Some("dev-a"),
            "c",
            Some("x"),
            Some("y"),
            ALLOW_CERT,
        ),
        (
            SubjectAsUsername,
            false,
            Some("dev-a"),
            "c",
            None,
            None,
            ALLOW_CERT,
        ),
        // ...and nobody without one claims a username there, unless verified.
        (
            IdentityAsUsername,
            false,
            None,
            "c",
            Some("dev-a"),
            None,
            BAD,
        ),
        (
            IdentityAsUsername,
            true,
            None,
            "c",
            Some("alice"),
            Some("pw-alice"),
            ALLOW_PASSWORD,
        ),
        // Client id must match the certificate identity.
        (
            MustMatch,
            false,
            Some("dev-a"),
            "dev-a",
            None,
            None,
            ALLOW_CERT,
        ),
        (
            MustMatch,
            false,
            Some("dev-a"),
            "dev-b",
            None,
            None,
            MISMATCH,
        ),
        // Without a certificate the identity is the verified username.
        (
            MustMatch,
            true,
            None,
            "alice",
            Some("alice"),
            Some("pw-alice"),
            ALLOW_PASSWORD,
        ),
        (
            MustMatch,
            true,
            None,
            "dev-a",
            Some("alice"),
            Some("pw-alice"),
            MISMATCH,
        ),
        // Every listener that sets it: an anonymous client has no identity,
        // so no client id matches (it cannot take a device's name).
        (PlainMustMatch, false, None, "dev-b", None, None, MISMATCH),
        (
            PlainMustMatch,
            false,
            None,
            "dev-b",
            Some("dev-b"),
            None,
            MISMATCH,
        ),
        (
            PlainMustMatch,
            true,
            None,
            "alice",
            Some("alice"),
            Some("pw-alice"),
            ALLOW_PASSWORD,
        ),
        (
            MustMatch,
            true,
            Some("dev-a"),
            "dev-b",
            Some("dev-a"),
            Some("wrong"),
            BAD,
        ),
        (
            AsClientId,
            false,
            Some("dev-a"),
            "anything",
            None,
            None,
            ALLOW_CERT,
        ),
        // A certificate without the configured identity field is refused.
        (SanUri, false, Some("dev-a"), "c", None, None, BAD),
    ];
    let passwords = passwords();
    for (number, &(setting, with_file, cn, client_id, username, password, expected)) in
        cases.iter().enumerate()
    {
        let config = listener(setting);
        let cert = cn.map(|cn| cert(cn, &[]));
        let mut identity =
            Identity::build(&config, "l".into(), &[], cert.as_ref(), client_id, username);
        let (outcome, _) = authenticate(
            &config,
            with_file.then_some(&passwords),
            &mut identity,
            password.map(str::as_bytes),
        );
        assert_eq!(
            outcome, expected,
            "case #{number}: cert {cn:?}, client id {client_id:?}, user {username:?}, \
             password {password:?}, file {with_file}"
        );
    }
}

#[test]
fn identity_as_clientid_returns_the_replacement() {
    let config = listener(Setting::AsClientId);
    let cert = cert("dev-a", &[]);
    let mut identity = Identity::build(&config, "l".into(), &[], Some(&cert), "other", None);
    let (outcome, replacement) = authenticate(&config, None, &mut identity, None);
    assert_eq!(outcome, ALLOW_CERT);
    assert_eq!(replacement.as_deref(), Some("dev-a"));
    assert_eq!(&*identity.client_id, "dev-a");

    let config = listener(Setting::Tls);
    let mut identity = Identity::build(&config, "l".into(), &[], Some(&cert), "other", None);
    assert_eq!(authenticate(&config, None, &mut identity, None).1, None);
}
