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

use std::ops::Bound;

use super::acl::{covers_filter, matches_topic, AclType};
use super::links::Links;
use super::password::DynsecPassword;
use super::state::Dynsec;

/// Name prefix of the groups bound to a certificate OU (`ou:sensors`).
pub const UNIT_PREFIX: &str = "ou:";

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

    /// The dynsec client named by a verified certificate: `Allowed` when
    /// it exists, is enabled and its client id rule holds (no password:
    /// the certificate proved who it is), `Refused` otherwise, `Unknown`
    /// when dynsec has no client of that name.
    pub fn certificate_login(&self, name: &str, client_id: &str) -> Login {
        let Some(client) = self.client(name) else {
            return Login::Unknown;
        };
        let wrong_id = client
            .clientid
            .as_deref()
            .is_some_and(|wanted| wanted != client_id);
        if client.disabled || wrong_id {
            Login::Refused
        } else {
            Login::Allowed
        }
    }

    /// Whether the client (`username`, `_client_id`) may do `access` on
    /// `topic` (a topic name, or a filter for subscribe and unsubscribe).
    /// The client id is not used by 2.0.11's rules (no `%c`); it is part
    /// of the question so later plugin rules can use it.
    pub fn check(
        &self,
        username: Option<&str>,
        client_id: &str,
        access: Access,
        topic: &str,
    ) -> Verdict {
        self.check_units(username, client_id, &[], access, topic)
    }

    /// [`Dynsec::check`] for a client whose certificate puts it in
    /// `units` (its OUs, then configured certificate groups): beyond
    /// Mosquitto, a dynsec group named `ou:<unit>` applies to every such
    /// certificate, after the client's own roles and groups; a certificate
    /// without a dynsec client of its name but in such a group gets that
    /// group's roles and then the default access (decision 0162).
    pub fn check_units(
        &self,
        username: Option<&str>,
        _client_id: &str,
        units: &[String],
        access: Access,
        topic: &str,
    ) -> Verdict {
        let decided = match username {
            Some(user) => {
                let client = self.client(user);
                if client.is_none() && self.unit_groups(units).next().is_none() {
                    return Verdict::Defer;
                }
                client
                    .and_then(|client| {
                        self.check_links(&client.roles, access, topic).or_else(|| {
                            client.groups.iter().find_map(|link| {
                                let group = self.group(&link.name)?;
                                self.check_links(&group.roles, access, topic)
                            })
                        })
                    })
                    .or_else(|| {
                        self.unit_groups(units)
                            .find_map(|group| self.check_links(&group.roles, access, topic))
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

    /// The `ou:<unit>` groups of any of `units`, in group name order.
    fn unit_groups<'a>(
        &'a self,
        units: &'a [String],
    ) -> impl Iterator<Item = &'a super::group::Group> + 'a {
        let bound = !units.is_empty();
        self.groups
            .range::<str, _>((Bound::Included(UNIT_PREFIX), Bound::Unbounded))
            .take_while(move |(name, _)| bound && name.starts_with(UNIT_PREFIX))
            .filter(move |(name, _)| {
                let unit = &name[UNIT_PREFIX.len()..];
                units.iter().any(|held| held == unit)
            })
            .map(|(_, group)| group)
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
