//! dynsec's say on a CONNECT, taken before the usual checks
//! (`auth::authenticate`), as Mosquitto 2.0 with the plugin decides:
//!
//! - a verified client certificate goes the usual way (dynsec has no
//!   certificates);
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
        return None;
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
