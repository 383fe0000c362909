//! A dynsec role: a named list of ACLs, one topic per ACL type.
//!
//! Owns the order of its ACLs (by type, then higher priority first, then
//! the earlier added) and the rule that a type holds a topic once.

use super::acl::{AclEntry, AclType};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    pub rolename: String,
    pub textname: Option<String>,
    pub textdescription: Option<String>,
    acls: Vec<AclEntry>,
}

impl Role {
    pub fn new(rolename: &str) -> Role {
        Role {
            rolename: rolename.to_string(),
            ..Role::default()
        }
    }

    /// Adds an ACL; false (nothing changed) when its type already holds
    /// its topic.
    pub fn add_acl(&mut self, acl: AclEntry) -> bool {
        if self.find(acl.acltype, &acl.topic).is_some() {
            return false;
        }
        let at = self
            .acls
            .iter()
            .position(|held| {
                held.acltype > acl.acltype
                    || (held.acltype == acl.acltype && held.priority < acl.priority)
            })
            .unwrap_or(self.acls.len());
        self.acls.insert(at, acl);
        true
    }

    /// Removes the ACL of `acltype` on `topic`; whether it was there.
    pub fn remove_acl(&mut self, acltype: AclType, topic: &str) -> bool {
        let before = self.acls.len();
        self.acls
            .retain(|acl| !(acl.acltype == acltype && acl.topic == topic));
        self.acls.len() != before
    }

    pub fn find(&self, acltype: AclType, topic: &str) -> Option<&AclEntry> {
        self.acls
            .iter()
            .find(|acl| acl.acltype == acltype && acl.topic == topic)
    }

    /// All ACLs in listing order.
    pub fn acls(&self) -> &[AclEntry] {
        &self.acls
    }

    /// The ACLs of one type, higher priority first.
    pub fn acls_of(&self, acltype: AclType) -> impl Iterator<Item = &AclEntry> {
        self.acls.iter().filter(move |acl| acl.acltype == acltype)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn acl(acltype: AclType, topic: &str, priority: i64) -> AclEntry {
        AclEntry {
            acltype,
            topic: topic.into(),
            priority,
            allow: true,
        }
    }

    #[test]
    fn acls_keep_type_then_priority_order_and_unique_topics() {
        let mut role = Role::new("r");
        assert!(role.add_acl(acl(AclType::SubscribePattern, "a", 0)));
        assert!(role.add_acl(acl(AclType::PublishClientSend, "b", 1)));
        assert!(role.add_acl(acl(AclType::PublishClientSend, "c", 5)));
        assert!(!role.add_acl(acl(AclType::PublishClientSend, "c", 9)));
        assert!(role.add_acl(acl(AclType::SubscribeLiteral, "c", 9)));
        let order: Vec<&str> = role.acls().iter().map(|a| a.topic.as_str()).collect();
        assert_eq!(order, ["c", "b", "c", "a"]);
        assert!(role.remove_acl(AclType::PublishClientSend, "c"));
        assert!(!role.remove_acl(AclType::PublishClientSend, "c"));
    }
}
