//! A bridge's topic mapping: which local topics go out and under which
//! remote name, which remote topics come in and under which local name
//! (Mosquitto's `topic PATTERN DIRECTION QOS LOCAL_PREFIX REMOTE_PREFIX`).
//!
//! It must not hold state: the same topic always maps the same way.

use fleetmq_core::config::BridgeTopic;
use fleetmq_core::router::topic_matches;

/// The remote name of local `topic`, if an `out`/`both` line covers it.
pub fn to_remote(topics: &[BridgeTopic], topic: &str) -> Option<String> {
    topics
        .iter()
        .filter(|t| t.is_out() && topic_matches(&t.local_filter(), topic))
        .find_map(|t| {
            let rest = topic.strip_prefix(t.local_prefix.as_str())?;
            Some(format!("{}{rest}", t.remote_prefix))
        })
}

/// The local name of remote `topic`, if an `in`/`both` line covers it.
pub fn to_local(topics: &[BridgeTopic], topic: &str) -> Option<String> {
    topics
        .iter()
        .filter(|t| t.is_in() && topic_matches(&t.remote_filter(), topic))
        .find_map(|t| {
            let rest = topic.strip_prefix(t.remote_prefix.as_str())?;
            Some(format!("{}{rest}", t.local_prefix))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmq_core::config::BridgeDirection;

    fn line(pattern: &str, direction: BridgeDirection, local: &str, remote: &str) -> BridgeTopic {
        BridgeTopic {
            pattern: pattern.into(),
            direction,
            qos: 1,
            local_prefix: local.into(),
            remote_prefix: remote.into(),
        }
    }

    #[test]
    fn prefixes_are_swapped_each_way_and_direction_is_kept() {
        let topics = [
            line("sensors/#", BridgeDirection::Out, "lab/", "site1/"),
            line("cmd/+", BridgeDirection::In, "lab/", "site1/"),
            line("", BridgeDirection::Both, "shared/x", "remote/x"),
        ];
        assert_eq!(
            to_remote(&topics, "lab/sensors/t").as_deref(),
            Some("site1/sensors/t")
        );
        assert_eq!(to_remote(&topics, "lab/cmd/a"), None, "in only");
        assert_eq!(
            to_local(&topics, "site1/cmd/a").as_deref(),
            Some("lab/cmd/a")
        );
        assert_eq!(to_local(&topics, "site1/sensors/t"), None, "out only");
        assert_eq!(to_remote(&topics, "shared/x").as_deref(), Some("remote/x"));
        assert_eq!(to_local(&topics, "remote/x").as_deref(), Some("shared/x"));
    }
}
