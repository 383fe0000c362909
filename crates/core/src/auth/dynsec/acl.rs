//! One ACL of a dynsec role: its type, topic, priority and allow flag, and
//! how each type matches what a client does (as Mosquitto's plugin does).
//!
//! Owns the matching of one ACL against one topic or filter; it does not
//! know clients, roles or the order in which ACLs are tried (`decide.rs`).

use crate::router::topic_matches;

/// The six ACL types of Mosquitto's dynamic-security plugin, in the order
/// `getRole` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclType {
    /// A PUBLISH from the client (matched with `%c`/`%u` substitution).
    PublishClientSend,
    /// A message delivered to the client.
    PublishClientReceive,
    /// A SUBSCRIBE filter equal to the topic, character for character.
    SubscribeLiteral,
    /// A SUBSCRIBE filter the ACL's wildcards cover.
    SubscribePattern,
    /// An UNSUBSCRIBE filter equal to the topic.
    UnsubscribeLiteral,
    /// An UNSUBSCRIBE filter the ACL's wildcards cover.
    UnsubscribePattern,
}

impl AclType {
    /// Every type, in listing order.
    pub const ALL: [AclType; 6] = [
        AclType::PublishClientSend,
        AclType::PublishClientReceive,
        AclType::SubscribeLiteral,
        AclType::SubscribePattern,
        AclType::UnsubscribeLiteral,
        AclType::UnsubscribePattern,
    ];

    /// The name in JSON (`publishClientSend` ...).
    pub fn name(self) -> &'static str {
        match self {
            AclType::PublishClientSend => "publishClientSend",
            AclType::PublishClientReceive => "publishClientReceive",
            AclType::SubscribeLiteral => "subscribeLiteral",
            AclType::SubscribePattern => "subscribePattern",
            AclType::UnsubscribeLiteral => "unsubscribeLiteral",
            AclType::UnsubscribePattern => "unsubscribePattern",
        }
    }

    /// Parses a name, ignoring ASCII case as the plugin does.
    pub fn parse(name: &str) -> Option<AclType> {
        AclType::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
    }
}

/// One ACL of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    pub acltype: AclType,
    /// A topic filter (validated when added).
    pub topic: String,
    /// Higher first within the role; 0 when not given.
    pub priority: i64,
    pub allow: bool,
}

/// Whether a publish or receive ACL `pattern` matches `topic`: MQTT
/// wildcard matching, nothing substituted. Mosquitto 2.0.11's plugin reads
/// `%c` and `%u` literally (checked against it by the differential test);
/// substitution came with later plugins.
pub fn matches_topic(pattern: &str, topic: &str) -> bool {
    topic_matches(pattern, topic)
}

/// Whether a subscribe or unsubscribe pattern ACL covers `filter`: `#` in
/// the ACL covers the rest, `+` covers one level that is not `#`, any other
/// level must be equal.
pub fn covers_filter(acl: &str, filter: &str) -> bool {
    let mut wanted = filter.split('/');
    for level in acl.split('/') {
        if level == "#" {
            return true;
        }
        match wanted.next() {
            Some("#") => return false,
            Some(_) if level == "+" => {}
            Some(got) if got == level => {}
            _ => return false,
        }
    }
    wanted.next().is_none()
}

/// What is allowed when no ACL of the client's roles matched
/// (`setDefaultACLAccess`); Mosquitto's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultAccess {
    pub publish_client_send: bool,
    pub publish_client_receive: bool,
    pub subscribe: bool,
    pub unsubscribe: bool,
}

impl Default for DefaultAccess {
    fn default() -> Self {
        DefaultAccess {
            publish_client_send: false,
            publish_client_receive: true,
            subscribe: false,
            unsubscribe: true,
        }
    }
}

impl DefaultAccess {
    /// The names `getDefaultACLAccess` uses, in its order.
    pub const NAMES: [&'static str; 4] = [
        "publishClientSend",
        "publishClientReceive",
        "subscribe",
        "unsubscribe",
    ];

    /// The value of one name.
    pub fn get(&self, name: &str) -> Option<bool> {
        match name {
            "publishClientSend" => Some(self.publish_client_send),
            "publishClientReceive" => Some(self.publish_client_receive),
            "subscribe" => Some(self.subscribe),
            "unsubscribe" => Some(self.unsubscribe),
            _ => None,
        }
    }

    /// Sets one name; false when the name is unknown.
    pub fn set(&mut self, name: &str, allow: bool) -> bool {
        let slot = match name {
            "publishClientSend" => &mut self.publish_client_send,
            "publishClientReceive" => &mut self.publish_client_receive,
            "subscribe" => &mut self.subscribe,
            "unsubscribe" => &mut self.unsubscribe,
            _ => return false,
        };
        *slot = allow;
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn pattern_acls_cover_filters_level_by_level() {
        assert!(covers_filter("a/#", "a/b/c"));
        assert!(covers_filter("a/#", "a/#"));
        assert!(covers_filter("a/+", "a/+"));
        assert!(covers_filter("a/+", "a/x"));
        assert!(!covers_filter("a/+", "a/#"));
        assert!(!covers_filter("a/b", "a/+"));
        assert!(!covers_filter("a/+", "a/b/c"));
        assert!(covers_filter("#", "$SYS/x"));
    }

    #[test]
    fn publish_patterns_are_plain_mqtt_filters() {
        assert!(matches_topic("d/%c/up", "d/%c/up"));
        assert!(!matches_topic("d/%c/up", "d/dev1/up"));
        assert!(matches_topic("a/#", "a/b"));
        assert!(!matches_topic("#", "$SYS/x"));
    }

    #[test]
    fn acl_type_names_parse_without_case() {
        assert_eq!(
            AclType::parse("PUBLISHCLIENTSEND"),
            Some(AclType::PublishClientSend)
        );
        assert_eq!(AclType::parse("publish"), None);
    }
}
