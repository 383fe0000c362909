//! The plugin's two decisions: may this username connect with this
//! password and client id, and may this client do this on this topic.
//!
//! ACL order, as Mosquitto's plugin: the client's own roles in priority
//! order, then each of its groups (in priority order) with that group's
//! roles in priority order; a client without a username uses the
//! anonymous group's roles. Within a role the ACLs of the action's type
//! are tried highest priority first (a literal subscribe ACL before the
//! patterns), and the first that matches decides. Nothing matched: the
//! default access decides, except that `$CONTROL` topics are never allowed
//! by default. An unknown username gets no decision from dynsec
//! ([`Verdict::Defer`]), which the broker treats as a denial.
//!
//! Pure functions of the state; no locks, no I/O.

use super::acl::{covers_filter, matches_topic, AclType};
use super::links::Links;
use super::password::DynsecPassword;
use super::state::Dynsec;

/// What a client wants to do, in the plugin's four kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// PUBLISH from the client.
    Send,
    /// Delivery to the client.
    Receive,
    Subscribe,
    Unsubscribe,
}

/// The answer to one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An ACL decided: `role` and the ACL (`type topic`) say which.
    Acl {
        allow: bool,
        role: String,
        acl: String,
    },
    /// No ACL matched; the default access allowed it.
    DefaultAllow,
    /// dynsec has no answer (unknown user, default deny, `$CONTROL`):
    /// denied unless something else allows it (nothing does in fleetmq).
    Defer,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        matches!(
            self,
            Verdict::Acl { allow: true, .. } | Verdict::DefaultAllow
        )
    }

    /// Words for logs and `fleetmq acl check`.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Acl { allow, role, acl } => format!(
                "dynsec role {role:?}: {} {acl}",
                if *allow { "allow" } else { "deny" }
            ),
            Verdict::DefaultAllow => "dynsec default ACL access: allow".into(),
            Verdict::Defer => "dynsec: no ACL matched and default access denies".into(),
        }
    }
}

/// The answer to a CONNECT with a username dynsec may know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Allowed,
    /// Known client, but disabled, wrong password, no password, or a
    /// client id other than the one it must use.
    Refused,
    /// Not a dynsec client.
    Unknown,
}

impl Dynsec {
    /// Whether `username` may connect with `password` as `client_id`.
    pub fn login(&self, username: &str, password: Option<&[u8]>, client_id: &str) -> Login {
        let Some(client) = self.client(username) else {
            DynsecPassword::decoy_verify(password.unwrap_or_default());
            return Login::Unknown;
        };
        if client.disabled {
            return Login::Refused;
        }
        if client
            .clientid
            .as_deref()
            .is_some_and(|wanted| wanted != client_id)
        {
            return Login::Refused;
        }
        match (&client.password, password) {
            (Some(stored), Some(given)) if stored.verify(given) => Login::Allowed,
            _ => Login::Refused,
        }
    }

    /// Whether the client (`username`, `_client_id`) may do `access` on
    /// `topic` (a topic name, or a filter for subscribe and unsubscribe).
    /// The client id is not used by 2.0.11's rules (no `%c`); it is part
    /// of the question so later plugin rules can use it.
    pub fn check(
        &self,
        username: Option<&str>,
        _client_id: &str,
        access: Access,
        topic: &str,
    ) -> Verdict {
        let decided = match username {
            Some(user) => {
                let Some(client) = self.client(user) else {
                    return Verdict::Defer;
                };
                self.check_links(&client.roles, access, topic).or_else(|| {
                    client.groups.iter().find_map(|link| {
                        let group = self.group(&link.name)?;
                        self.check_links(&group.roles, access, topic)
                    })
                })
            }
            None => self
                .anonymous_group()
                .and_then(|group| self.check_links(&group.roles, access, topic)),
        };
        if let Some(verdict) = decided {
            return verdict;
        }
        let default = match access {
            Access::Send => self.default_access.publish_client_send,
            Access::Receive => self.default_access.publish_client_receive,
            Access::Subscribe => self.default_access.subscribe,
            Access::Unsubscribe => self.default_access.unsubscribe,
        };
        if default && !topic.starts_with("$CONTROL") {
            Verdict::DefaultAllow
        } else {
            Verdict::Defer
        }
    }

    fn check_links(&self, links: &Links, access: Access, topic: &str) -> Option<Verdict> {
        links.iter().find_map(|link| {
            let role = self.role(&link.name)?;
            let hit = match access {
                Access::Send | Access::Receive => {
                    let kind = if access == Access::Send {
                        AclType::PublishClientSend
                    } else {
                        AclType::PublishClientReceive
                    };
                    role.acls_of(kind)
                        .find(|acl| matches_topic(&acl.topic, topic))
                }
                Access::Subscribe | Access::Unsubscribe => {
                    let (literal, pattern) = if access == Access::Subscribe {
                        (AclType::SubscribeLiteral, AclType::SubscribePattern)
                    } else {
                        (AclType::UnsubscribeLiteral, AclType::UnsubscribePattern)
                    };
                    role.find(literal, topic).or_else(|| {
                        role.acls_of(pattern)
                            .find(|acl| covers_filter(&acl.topic, topic))
                    })
                }
            }?;
            Some(Verdict::Acl {
                allow: hit.allow,
                role: role.rolename.clone(),
                acl: format!("{} {}", hit.acltype.name(), hit.topic),
            })
        })
    }
}
