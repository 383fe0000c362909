//! Authentication data and access decisions as the running broker holds
//! them: the ACL rules, the password file and the certificate groups,
//! swapped whole on reload, and the denial accounting (a counter, and one
//! log line per client and topic per minute so a misbehaving device cannot
//! flood the log).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Engine;
use crate::auth::acl::Decision;
use crate::auth::dynsec::{Access, DynsecStore};
use crate::auth::{Acl, Action, AuthError, Identity, PasswordFile};
use crate::config::{Config, GroupConfig};
use crate::events::AclAction;

/// How long one client/topic denial stays quiet in the log after it was
/// logged.
const DENIAL_LOG_WINDOW: Duration = Duration::from_secs(60);
/// Most client/topic pairs remembered for log suppression.
const DENIAL_LOG_MAX: usize = 10_000;

/// What authentication and authorization read, loaded from the config.
#[derive(Debug, Default)]
pub struct AuthState {
    pub acl: Acl,
    pub passwords: Option<PasswordFile>,
    pub groups: Vec<GroupConfig>,
    /// Mosquitto's dynamic security, when `auth.dynsec_file` is set: it
    /// then decides topic access instead of `acl`. Kept across reloads
    /// (the running state is never older than its file).
    pub dynsec: Option<Arc<DynsecStore>>,
}

impl AuthState {
    /// Reads the password file and the ACL rules (`[[acl]]` and acl_file).
    pub fn load(config: &Config) -> Result<AuthState, AuthError> {
        let dynsec = match &config.auth.dynsec_file {
            Some(path) => Some(Arc::new(DynsecStore::load(path)?)),
            None => None,
        };
        AuthState::load_keeping(config, dynsec)
    }

    /// Reads password file and ACL rules, with `dynsec` already loaded.
    fn load_keeping(
        config: &Config,
        dynsec: Option<Arc<DynsecStore>>,
    ) -> Result<AuthState, AuthError> {
        let passwords = match &config.auth.password_file {
            Some(path) => Some(PasswordFile::load(path)?),
            None => None,
        };
        let acl = Acl::from_config(&config.acl, config.auth.acl_file.as_deref())?;
        Ok(AuthState {
            acl,
            passwords,
            groups: config.auth.groups.clone(),
            dynsec,
        })
    }

    /// Whether `identity` may do `action` on `topic`: dynsec's decision
    /// when it is configured (publishing to `$SYS` is refused first, as
    /// Mosquitto does), else the ACL rules'.
    pub fn check(&self, identity: &Identity, action: Action, topic: &str) -> Decision {
        if identity.bridge {
            return Decision {
                allowed: true,
                rule: None,
                reason: crate::auth::acl::REASON_BRIDGE,
            };
        }
        let Some(dynsec) = &self.dynsec else {
            return self.acl.check(identity, action, topic);
        };
        if action == Action::Publish && (topic == "$SYS" || topic.starts_with("$SYS/")) {
            return Decision {
                allowed: false,
                rule: None,
                reason: crate::auth::acl::REASON_SYS_PUBLISH,
            };
        }
        let (access, topic) = match action {
            Action::Publish => (Access::Send, topic),
            Action::Receive => (Access::Receive, topic),
            Action::Subscribe => (
                Access::Subscribe,
                crate::router::parse_filter(topic).filter(),
            ),
        };
        let verdict = dynsec.check_units(
            identity.dynsec_name(),
            &identity.client_id,
            &identity.groups,
            access,
            topic,
        );
        Decision {
            allowed: verdict.allowed(),
            rule: Some(Arc::from(verdict.describe())),
            reason: "dynsec",
        }
    }
}

/// When each client/topic denial was last logged.
#[derive(Debug, Default)]
pub struct DenialLog {
    last_logged: Mutex<HashMap<(Arc<str>, String), Instant>>,
}

impl DenialLog {
    /// True when this denial should be logged now.
    fn should_log(&self, client: &Arc<str>, topic: &str) -> bool {
        let now = Instant::now();
        let mut seen = self.last_logged.lock();
        if seen.len() >= DENIAL_LOG_MAX {
            seen.retain(|_, at| now.duration_since(*at) < DENIAL_LOG_WINDOW);
            if seen.len() >= DENIAL_LOG_MAX {
                seen.clear();
            }
        }
        let key = (Arc::clone(client), topic.to_string());
        match seen.get(&key) {
            Some(at) if now.duration_since(*at) < DENIAL_LOG_WINDOW => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

impl Engine {
    /// The authentication data in force.
    pub fn auth(&self) -> Arc<AuthState> {
        Arc::clone(&self.auth.read())
    }

    /// Re-reads password file and ACL rules from `config`; on error the
    /// rules in force stay and the error is returned.
    pub fn reload_auth(&self, config: &Config) -> Result<(), AuthError> {
        let dynsec = self.auth().dynsec.clone();
        let state = AuthState::load_keeping(config, dynsec)?;
        *self.auth.write() = Arc::new(state);
        Ok(())
    }

    /// Whether `identity` may do `action` on `topic`; a denial is counted
    /// and logged (at most once a minute per client and topic).
    pub fn allows(&self, identity: &Identity, action: Action, topic: &str) -> bool {
        // Claim certificates and provisioning topics first (decision 0150).
        // OTA topics (decision 0163) likewise.
        let decision = match crate::provision::access(&self.config, identity, action, topic)
            .or_else(|| crate::ota::access(&self.config, identity, action, topic))
        {
            Some((allowed, reason)) => Decision {
                allowed,
                rule: None,
                reason,
            },
            None => self.auth.read().check(identity, action, topic),
        };
        if decision.allowed {
            return true;
        }
        self.events.acl_denied(match action {
            Action::Publish => AclAction::Publish,
            Action::Subscribe => AclAction::Subscribe,
            Action::Receive => AclAction::Receive,
        });
        if self.denials.should_log(&identity.client_id, topic) {
            tracing::info!(
                client = %identity.client_id,
                action = %action,
                "Denied {action} on '{}' for client {} (identity {}): {}.",
                topic.escape_debug(),
                identity.client_id,
                identity.principal().unwrap_or("none"),
                decision.rule.as_deref().unwrap_or(decision.reason),
            );
        }
        false
    }
}
