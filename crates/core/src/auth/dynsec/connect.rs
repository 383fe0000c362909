//! dynsec's say on a CONNECT, taken before the usual checks
//! (`auth::authenticate`), as Mosquitto 2.0 with the plugin decides:
//!
//! - a client with a verified certificate (beyond Mosquitto: certificate
//!   identities are first-class dynsec clients, decision 0162):
//!   a username it sends that is not the certificate's own and that dynsec
//!   knows needs its password, as Mosquitto asks (a device certificate must
//!   not lend its holder another client's roles); otherwise it is the
//!   dynsec client named by its certificate identity, when dynsec has one,
//!   which must be enabled and keep its client id rule; no password. Then
//!   the certificate goes the usual way;
//! - a username dynsec knows connects only if enabled, with its password,
//!   and with its client id when one is set; a username dynsec does not
//!   know is refused unless a password file may verify it;
//! - a client without a username connects only where the listener sets
//!   `allow_anonymous = true` (Mosquitto 2.0's default is false), and then
//!   has the anonymous group's roles.
//!
//! Refusals are "not authorised" (5.0: 0x87; 3.1.1: return code 5), the
//! code Mosquitto sends for each of them.

use super::{DynsecStore, Login};
use crate::auth::{AuthMethod, AuthOutcome, Identity};
use crate::config::ListenerConfig;

/// `Some` when dynsec decides the CONNECT; `None` to go on with the usual
/// checks. Records a verified password in the identity.
pub fn authenticate(
    listener: &ListenerConfig,
    dynsec: &DynsecStore,
    has_password_file: bool,
    identity: &mut Identity,
    password: Option<&[u8]>,
) -> Option<AuthOutcome> {
    if identity.has_certificate() {
        return certificate(dynsec, has_password_file, identity, password);
    }
    let Some(username) = identity.username.as_deref() else {
        return if listener.allow_anonymous == Some(true) {
            None
        } else {
            Some(AuthOutcome::NotAuthorized)
        };
    };
    match dynsec.login(username, password, &identity.client_id) {
        Login::Allowed => {
            identity.password_verified = true;
            Some(AuthOutcome::Allowed {
                method: AuthMethod::Password,
            })
        }
        Login::Refused => Some(AuthOutcome::NotAuthorized),
        Login::Unknown if has_password_file => None,
        Login::Unknown => Some(AuthOutcome::NotAuthorized),
    }
}

/// A client with a verified certificate: see the module documentation.
fn certificate(
    dynsec: &DynsecStore,
    has_password_file: bool,
    identity: &mut Identity,
    password: Option<&[u8]>,
) -> Option<AuthOutcome> {
    if let (false, Some(username)) = (
        identity.username_from_certificate,
        identity.username.as_deref(),
    ) {
        // A name the client chose: verified by dynsec, or by the password
        // file, or refused, exactly as without a certificate.
        return match dynsec.login(username, password, &identity.client_id) {
            Login::Allowed => {
                identity.password_verified = true;
                None
            }
            Login::Refused => Some(AuthOutcome::NotAuthorized),
            Login::Unknown if has_password_file => None,
            Login::Unknown => Some(AuthOutcome::NotAuthorized),
        };
    }
    let name = identity.dynsec_name()?;
    match dynsec.certificate_login(name, &identity.client_id) {
        Login::Refused => Some(AuthOutcome::NotAuthorized),
        Login::Allowed | Login::Unknown => None,
    }
}
