//! Topic matching against a reference model written straight from the
//! specification (MQTT 4.7): `topic_matches`, the subscription trie and
//! the retained store must all agree with it.
//!
//! Input: UTF-8 lines; the last is the topic name, the others (up to 16)
//! are filters, each subscribed by a client of its own (`$share/g/...`
//! allowed). Invalid names or filters are skipped, as the broker refuses
//! them before they reach the router.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fleetmq_codec::{QoS, SubscriptionOptions};
use fleetmq_core::router::{
    parse_filter, topic_matches, validate_topic_filter, validate_topic_name, RetainedIndex,
    RetainedStore, Router, Subscription, SubscriptionTrie, TopicLimits,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: TopicLimits = TopicLimits {
    max_length: 65_535,
    max_levels: 1_000,
};

/// [MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.7.2-1], level by level.
fn reference(filter: &str, topic: &str) -> bool {
    fn levels(filter: &[&str], topic: &[&str]) -> bool {
        match (filter.first(), topic.first()) {
            (None, None) => true,
            // `#` is the last level and matches the parent and any
            // number of levels below it.
            (Some(&"#"), _) => true,
            (Some(_), None) | (None, Some(_)) => false,
            (Some(&"+"), Some(_)) => levels(&filter[1..], &topic[1..]),
            (Some(f), Some(t)) => f == t && levels(&filter[1..], &topic[1..]),
        }
    }
    let filter_levels: Vec<&str> = filter.split('/').collect();
    let topic_levels: Vec<&str> = topic.split('/').collect();
    let wildcard_first = matches!(filter_levels[0], "+" | "#");
    if topic.starts_with('$') && wildcard_first {
        return false;
    }
    levels(&filter_levels, &topic_levels)
}

fn subscription() -> Subscription {
    Subscription {
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriptionOptions::default()
        },
        identifier: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let Some(topic) = lines.pop() else {
        return;
    };
    if validate_topic_name(topic, &LIMITS).is_err() {
        return;
    }
    let mut trie = SubscriptionTrie::new();
    // Plain subscribers that must get the message; and for each matching
    // shared subscription (the whole `$share/group/filter`), its members,
    // of whom exactly one must get it.
    let mut expected = BTreeSet::new();
    let mut groups: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (index, filter) in lines.iter().take(16).enumerate() {
        if validate_topic_filter(filter, &LIMITS).is_err() {
            continue;
        }
        let plain = parse_filter(filter).filter();
        let want = reference(plain, topic);
        assert_eq!(
            topic_matches(plain, topic),
            want,
            "topic_matches({plain:?}, {topic:?})"
        );
        let client: Arc<str> = Arc::from(index.to_string());
        trie.subscribe(filter, &client, subscription());
        if want {
            if plain.len() == filter.len() {
                expected.insert(index.to_string());
            } else {
                groups.entry(filter).or_default().insert(index.to_string());
            }
        }
        let mut retained = RetainedStore::new();
        retained.set(topic, ());
        let mut found = Vec::new();
        retained.matching(plain, &mut found);
        assert_eq!(
            !found.is_empty(),
            want,
            "retained store matching({plain:?}) for {topic:?}"
        );
    }
    let mut routes = Vec::new();
    trie.route(topic, None, &|_: &str| true, &mut routes);
    let routed: BTreeSet<String> = routes
        .iter()
        .filter(|r| !r.shared)
        .map(|r| r.client.to_string())
        .collect();
    assert_eq!(routed, expected, "trie routes for {topic:?} from {lines:?}");
    let mut shared: Vec<String> = routes
        .iter()
        .filter(|r| r.shared)
        .map(|r| r.client.to_string())
        .collect();
    for members in groups.values() {
        let Some(position) = shared.iter().position(|c| members.contains(c)) else {
            panic!("no member of {members:?} got {topic:?} from {lines:?}");
        };
        shared.remove(position);
    }
    assert!(
        shared.is_empty(),
        "shared routes {shared:?} beyond one per group for {topic:?} from {lines:?}"
    );
    // Unsubscribing everything leaves an empty trie.
    for (index, filter) in lines.iter().take(16).enumerate() {
        trie.unsubscribe(filter, &index.to_string());
    }
    assert!(
        trie.is_empty(),
        "subscriptions left after unsubscribing all"
    );
    assert_eq!(trie.node_count(), 1, "nodes left after unsubscribing all");
});
