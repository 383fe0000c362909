#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::router::topic::{topic_matches, SPEC_MATCH_CASES};

fn matching(store: &RetainedStore<u32>, filter: &str) -> Vec<u32> {
    let mut out = Vec::new();
    store.matching(filter, &mut out);
    out.sort_unstable();
    out
}

fn store_of(topics: &[&str]) -> RetainedStore<u32> {
    let mut store = RetainedStore::new();
    for (value, topic) in topics.iter().enumerate() {
        store.set(topic, value as u32);
    }
    store
}

#[test]
fn matching_follows_the_specification_examples() {
    for &(filter, topic, expected) in SPEC_MATCH_CASES {
        let store = store_of(&[topic]);
        let found = !matching(&store, filter).is_empty();
        assert_eq!(found, expected, "filter {filter:?} on topic {topic:?}");
    }
}

#[test]
fn set_replaces_and_remove_prunes() {
    let mut store = RetainedStore::new();
    assert_eq!(store.set("a/b", 1), None);
    assert_eq!(store.set("a/b", 2), Some(1));
    assert_eq!(store.set("a", 3), None);
    assert_eq!(store.len(), 2);
    assert_eq!(store.get("a/b"), Some(&2));
    assert_eq!(store.get("a"), Some(&3));
    assert_eq!(store.get("a/b/c"), None);
    assert_eq!(store.get("b"), None);

    assert_eq!(store.remove("a/b/c"), None);
    assert_eq!(store.remove("a"), Some(3));
    assert_eq!(store.remove("a"), None);
    assert_eq!(store.get("a/b"), Some(&2), "removing a keeps a/b");
    assert_eq!(store.remove("a/b"), Some(2));
    assert!(store.is_empty());
    assert_eq!(store.node_count(), 1);
}

#[test]
fn wildcards_find_every_matching_topic() {
    let topics = [
        "sport",
        "sport/tennis",
        "sport/tennis/player1",
        "sport/tennis/player2",
        "sport/football/player1",
        "sport/",
        "/finance",
        "a//b",
        "$SYS/broker/uptime",
        "$SYS",
        "a/$x",
    ];
    let store = store_of(&topics);
    let cases: [(&str, &[u32]); 14] = [
        ("#", &[0, 1, 2, 3, 4, 5, 6, 7, 10]),
        ("sport/#", &[0, 1, 2, 3, 4, 5]),
        ("sport/+", &[1, 5]),
        ("sport/+/player1", &[2, 4]),
        ("sport/tennis/#", &[1, 2, 3]),
        ("+", &[0]),
        ("+/+", &[1, 5, 6, 10]),
        ("+/finance", &[6]),
        ("a/+/b", &[7]),
        ("$SYS/#", &[8, 9]),
        ("+/broker/uptime", &[]),
        ("$SYS/+/uptime", &[8]),
        ("a/+", &[10]),
        ("nothing/#", &[]),
    ];
    for (filter, expected) in cases {
        assert_eq!(matching(&store, filter), expected, "{filter:?}");
    }
}

#[test]
fn retain_drops_values_and_prunes_their_levels() {
    let mut store = store_of(&["a/b/c", "a/b", "a/x", "$SYS/y", "/", "z"]);
    let mut seen = Vec::new();
    store.retain(|topic, value| {
        seen.push(topic.to_string());
        value % 2 == 1
    });
    seen.sort();
    assert_eq!(seen, ["$SYS/y", "/", "a/b", "a/b/c", "a/x", "z"]);
    assert_eq!(store.len(), 3);
    assert_eq!(matching(&store, "#"), [1, 5]);
    assert_eq!(matching(&store, "$SYS/#"), [3]);
    store.retain(|_, _| false);
    assert!(store.is_empty());
    assert_eq!(store.node_count(), 1);
}

#[test]
fn churn_does_not_grow_the_tree() {
    let mut store = RetainedStore::new();
    for round in 0..3u32 {
        for device in 0..50u32 {
            store.set(&format!("fleet/{round}-{device}/state"), device);
        }
        assert_eq!(store.len(), 50);
        assert_eq!(store.node_count(), 1 + 1 + 50 * 2);
        for device in 0..50u32 {
            assert_eq!(
                store.remove(&format!("fleet/{round}-{device}/state")),
                Some(device)
            );
        }
        assert_eq!(store.node_count(), 1);
    }
}

fn level(wildcards: bool) -> BoxedStrategy<&'static str> {
    if wildcards {
        prop::sample::select(vec!["a", "b", "$x", "", "+", "#"]).boxed()
    } else {
        prop::sample::select(vec!["a", "b", "$x", ""]).boxed()
    }
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(level(false), 1..5).prop_map(|levels| levels.join("/"))
}

fn filter() -> impl Strategy<Value = String> {
    prop::collection::vec(level(true), 1..5).prop_map(|levels| {
        let end = levels
            .iter()
            .position(|l| *l == "#")
            .map_or(levels.len(), |i| i + 1);
        levels[..end].join("/")
    })
}

proptest! {
    #[test]
    fn matching_equals_a_naive_scan(
        stored in prop::collection::vec((topic(), any::<bool>()), 0..30),
        filters in prop::collection::vec(filter(), 1..8),
    ) {
        let mut store = RetainedStore::new();
        let mut naive = BTreeMap::new();
        for (value, (topic, keep)) in stored.iter().enumerate() {
            let value = value as u32;
            prop_assert_eq!(store.set(topic, value), naive.insert(topic.clone(), value));
            if !keep {
                prop_assert_eq!(store.remove(topic), naive.remove(topic));
            }
        }
        prop_assert_eq!(store.len(), naive.len());
        for filter in &filters {
            let mut expected: Vec<u32> = naive
                .iter()
                .filter(|(topic, _)| topic_matches(filter, topic))
                .map(|(_, value)| *value)
                .collect();
            expected.sort_unstable();
            prop_assert_eq!(matching(&store, filter), expected, "{}", filter);
        }
        store.retain(|_, value| value % 3 == 0);
        naive.retain(|_, value| *value % 3 == 0);
        for (topic, value) in &naive {
            prop_assert_eq!(store.get(topic), Some(value));
        }
        prop_assert_eq!(store.len(), naive.len());
        for topic in naive.keys() {
            prop_assert!(store.remove(topic).is_some());
        }
        prop_assert_eq!(store.node_count(), 1);
    }
}
