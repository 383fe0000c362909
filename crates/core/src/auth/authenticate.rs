//! Whether a client may connect, decided once per CONNECT.
//!
//! Order, per listener:
//!
//! 1. **Verified certificate.** Mutual TLS is authentication. The
//!    certificate must yield the listener's identity field (CN by default),
//!    else the client is refused. With `use_identity_as_username` /
//!    `use_subject_as_username` the certificate alone authenticates and the
//!    username comes from it (a sent password is ignored, as in Mosquitto).
//!    Otherwise a password, if sent, must verify against the password file
//!    when there is one (or dynamic security verified it before); and a username that no password verified must be
//!    the certificate identity itself: a device may not present another
//!    device's name (Mosquitto `user` lines and `%u` match the username).
//! 2. **Password file.** Without a certificate, a username is checked
//!    against the password file when there is one; unknown users and wrong
//!    passwords are refused, as Mosquitto does.
//! 3. **Anonymous**, when [`ListenerConfig::anonymous_allowed`] (by
//!    default: plain listeners of a broker without a password file, as
//!    Mosquitto 2.0). An anonymous client has no identity
//!    ([`Identity::principal`] is `None`): `identity = ...` rules and `%i`
//!    never match it, whatever client id or username it sends. On
//!    `use_identity_as_username` listeners a client without certificate may
//!    not claim a username unless a password file verifies it.
//!
//! Then `clientid_must_match_identity`, on every listener that sets it: the
//! client id must equal the identity (the certificate identity, else the
//! verified username); a client without one is refused.

use crate::config::ListenerConfig;

use super::{Identity, PasswordFile};

/// How a client was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A verified client certificate (possibly with a verified password).
    Certificate,
    /// Username and password from the password file.
    Password,
    /// Nothing: the listener admits anonymous clients.
    Anonymous,
}

/// The answer to a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Connect, authenticated this way.
    Allowed { method: AuthMethod },
    /// Wrong credentials, or a name the client may not claim
    /// (5.0: 0x86 Bad User Name or Password; 3.1.1: return code 4).
    BadCredentials,
    /// No credentials where some are required
    /// (5.0: 0x87 Not authorized; 3.1.1: return code 5).
    NotAuthorized,
    /// `clientid_must_match_identity` and the client id differs
    /// (5.0: 0x85 Client Identifier not valid; 3.1.1: return code 2).
    ClientIdMismatch,
}

impl AuthOutcome {
    /// Whether the client may connect.
    pub fn is_allowed(&self) -> bool {
        matches!(self, AuthOutcome::Allowed { .. })
    }
}

/// Decides whether the client described by `identity` (built with
/// [`Identity::build`] for the same listener) may connect, given the
/// password it sent, and records a verified password in
/// [`Identity::password_verified`]. Returns also the client id to use
/// instead of the one the client sent, when the listener has
/// `identity_as_clientid` and a certificate named the client
/// ([`Identity::client_id`] already holds it).
pub fn authenticate(
    listener: &ListenerConfig,
    passwords: Option<&PasswordFile>,
    identity: &mut Identity,
    password: Option<&[u8]>,
) -> (AuthOutcome, Option<String>) {
    let outcome = check_credentials(listener, passwords, identity, password);
    if !outcome.is_allowed() {
        return (outcome, None);
    }
    // Every admission with a password file, a username and a password
    // verified the password, except where the certificate names the client
    // and a sent password is ignored (Mosquitto does the same).
    let certificate_names_client = identity.has_certificate()
        && (listener.use_identity_as_username || listener.use_subject_as_username);
    identity.password_verified = identity.password_verified
        || (passwords.is_some()
            && identity.username.is_some()
            && password.is_some()
            && !certificate_names_client);
    if listener.clientid_must_match_identity && identity.principal() != Some(&*identity.client_id) {
        return (AuthOutcome::ClientIdMismatch, None);
    }
    let replacement = match &identity.cert_identity {
        Some(cert_identity) if listener.identity_as_clientid => Some(cert_identity.to_string()),
        _ => None,
    };
    (outcome, replacement)
}

fn check_credentials(
    listener: &ListenerConfig,
    passwords: Option<&PasswordFile>,
    identity: &Identity,
    password: Option<&[u8]>,
) -> AuthOutcome {
    let names_from_certificate =
        listener.use_identity_as_username || listener.use_subject_as_username;
    let verified = |user: &str, password: &[u8]| {
        passwords.is_some_and(|passwords| passwords.verify(user, password))
    };

    if identity.has_certificate() {
        let Some(cert_identity) = identity.cert_identity.as_deref() else {
            // Verified, but without the field that names the client: nothing
            // to match rules against, and falling back to a name the client
            // chose would let it pose as another device.
            return AuthOutcome::BadCredentials;
        };
        if names_from_certificate {
            return if identity.username.is_some() {
                AuthOutcome::Allowed {
                    method: AuthMethod::Certificate,
                }
            } else {
                AuthOutcome::BadCredentials
            };
        }
        let username = identity.username.as_deref();
        // Dynamic security may have verified the username already.
        let password_verified = identity.password_verified
            || match (passwords, username, password) {
                (Some(_), Some(user), Some(password)) => {
                    if !verified(user, password) {
                        return AuthOutcome::BadCredentials;
                    }
                    true
                }
                // A password the file cannot check (no username to look up).
                (Some(_), None, Some(_)) => return AuthOutcome::BadCredentials,
                _ => false,
            };
        if let Some(user) = username {
            if !password_verified && user != cert_identity {
                return AuthOutcome::BadCredentials;
            }
        }
        return AuthOutcome::Allowed {
            method: AuthMethod::Certificate,
        };
    }

    match (passwords, identity.username.as_deref(), password) {
        (Some(_), Some(user), Some(password)) => {
            return if verified(user, password) {
                AuthOutcome::Allowed {
                    method: AuthMethod::Password,
                }
            } else {
                AuthOutcome::BadCredentials
            };
        }
        // With a password file every username must verify (Mosquitto too).
        (Some(_), Some(_), None) => return AuthOutcome::BadCredentials,
        (Some(_), None, Some(_)) => return AuthOutcome::BadCredentials,
        // On listeners where usernames are certificate identities, an
        // unverified username would pose as a device.
        (None, Some(_), _) if names_from_certificate => return AuthOutcome::BadCredentials,
        _ => {}
    }
    if listener.anonymous_allowed(passwords.is_some()) {
        AuthOutcome::Allowed {
            method: AuthMethod::Anonymous,
        }
    } else {
        AuthOutcome::NotAuthorized
    }
}

#[cfg(test)]
#[path = "authenticate_tests.rs"]
mod tests;
