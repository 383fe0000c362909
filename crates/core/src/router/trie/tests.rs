#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;

use super::*;
use crate::router::topic::{topic_matches, SPEC_MATCH_CASES};

fn key(name: &str) -> ClientKey {
    Arc::from(name)
}

fn sub(qos: QoS) -> Subscription {
    Subscription {
        options: SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        },
        identifier: None,
    }
}

fn with_id(mut subscription: Subscription, id: u32) -> Subscription {
    subscription.identifier = Some(id);
    subscription
}

fn no_local(mut subscription: Subscription) -> Subscription {
    subscription.options.no_local = true;
    subscription
}

fn everyone_online(_: &str) -> bool {
    true
}

/// Routes `topic` with everyone online, sorted plain first, then by client.
fn routes(trie: &SubscriptionTrie, topic: &str, publisher: Option<&str>) -> Vec<Route> {
    let mut out = Vec::new();
    trie.route(topic, publisher, &everyone_online, &mut out);
    out.sort_by(|a, b| (a.shared, &a.client).cmp(&(b.shared, &b.client)));
    out
}

fn clients(routes: &[Route]) -> Vec<&str> {
    routes.iter().map(|route| &*route.client).collect()
}

#[test]
fn routing_follows_the_specification_examples() {
    for &(filter, topic, expected) in SPEC_MATCH_CASES {
        let mut trie = SubscriptionTrie::new();
        trie.subscribe(filter, &key("c"), sub(QoS::AtMostOnce));
        let routed = !routes(&trie, topic, None).is_empty();
        assert_eq!(routed, expected, "filter {filter:?} on topic {topic:?}");
    }
}

#[test]
fn sys_topics_only_reach_filters_that_start_with_dollar() {
    let mut trie = SubscriptionTrie::new();
    trie.subscribe("#", &key("all"), sub(QoS::AtMostOnce));
    trie.subscribe("+/monitor/Clients", &key("plus"), sub(QoS::AtMostOnce));
    trie.subscribe("$SYS/#", &key("sys"), sub(QoS::AtMostOnce));
    trie.subscribe("$share/g/#", &key("shared"), sub(QoS::AtMostOnce));
    assert_eq!(
        clients(&routes(&trie, "$SYS/monitor/Clients", None)),
        ["sys"]
    );
    assert_eq!(
        clients(&routes(&trie, "x/monitor/Clients", None)),
        ["all", "plus", "shared"]
    );
}

#[test]
fn empty_levels_are_levels() {
    let mut trie = SubscriptionTrie::new();
    trie.subscribe("a/+/b", &key("plus"), sub(QoS::AtMostOnce));
    trie.subscribe("+/x", &key("first"), sub(QoS::AtMostOnce));
    trie.subscribe("a//b", &key("literal"), sub(QoS::AtMostOnce));
    assert_eq!(clients(&routes(&trie, "a//b", None)), ["literal", "plus"]);
    assert_eq!(clients(&routes(&trie, "/x", None)), ["first"]);
    assert!(routes(&trie, "a/b", None).is_empty());
}

#[test]
fn overlapping_subscriptions_give_one_merged_route() {
    let mut trie = SubscriptionTrie::new();
    let client = key("c");
    trie.subscribe("a/+", &client, with_id(sub(QoS::AtLeastOnce), 1));
    let mut keep_retain = with_id(sub(QoS::ExactlyOnce), 2);
    keep_retain.options.retain_as_published = true;
    trie.subscribe("a/#", &client, keep_retain);
    trie.subscribe("a/b", &client, sub(QoS::AtMostOnce));
    trie.subscribe("a/b", &key("other"), sub(QoS::AtLeastOnce));

    let routed = routes(&trie, "a/b", None);
    assert_eq!(routed.len(), 2);
    let mut merged = routed[0].clone();
    merged.subscription_identifiers.sort_unstable();
    assert_eq!(
        merged,
        Route {
            client,
            qos: QoS::ExactlyOnce,
            retain_as_published: true,
            subscription_identifiers: vec![1, 2],
            shared: false,
        }
    );
    assert_eq!(routed[1].qos, QoS::AtLeastOnce);
    assert!(routed[1].subscription_identifiers.is_empty());
}

#[test]
fn no_local_skips_only_the_publisher_and_only_that_subscription() {
    let mut trie = SubscriptionTrie::new();
    trie.subscribe("chat", &key("me"), no_local(sub(QoS::AtMostOnce)));
    trie.subscribe("chat", &key("you"), no_local(sub(QoS::AtMostOnce)));
    assert_eq!(clients(&routes(&trie, "chat", Some("me"))), ["you"]);
    assert_eq!(clients(&routes(&trie, "chat", None)), ["me", "you"]);

    trie.subscribe("#", &key("me"), sub(QoS::AtLeastOnce));
    let routed = routes(&trie, "chat", Some("me"));
    assert_eq!(clients(&routed), ["me", "you"]);
    assert_eq!(routed[0].qos, QoS::AtLeastOnce);
}

#[test]
fn subscribe_reports_new_subscriptions_and_replaces_existing_ones() {
    let mut trie = SubscriptionTrie::new();
    let client = key("c");
    assert!(trie.subscribe("a/b", &client, sub(QoS::AtMostOnce)));
    assert!(!trie.subscribe("a/b", &client, sub(QoS::ExactlyOnce)));
    assert!(trie.subscribe("$share/g/a/b", &client, sub(QoS::AtMostOnce)));
    assert!(!trie.subscribe("$share/g/a/b", &client, sub(QoS::AtLeastOnce)));
    assert!(trie.subscribe("$share/h/a/b", &client, sub(QoS::AtMostOnce)));
    assert_eq!(trie.len(), 3);

    let routed = routes(&trie, "a/b", None);
    let mut qos: Vec<(bool, QoS)> = routed.iter().map(|r| (r.shared, r.qos)).collect();
    qos.sort();
    let expected = [
        (false, QoS::ExactlyOnce),
        (true, QoS::AtMostOnce),
        (true, QoS::AtLeastOnce),
    ];
    assert_eq!(qos, expected);
    assert!(!trie.unsubscribe("a/c", "c"));
    assert!(!trie.unsubscribe("a/b", "someone else"));
    assert!(!trie.unsubscribe("$share/x/a/b", "c"));
    assert!(trie.unsubscribe("a/b", "c"));
    assert!(!trie.unsubscribe("a/b", "c"));
    assert_eq!(trie.len(), 2);
}

/// Delivers `messages` messages and counts the shared routes per client.
fn share_counts(
    trie: &SubscriptionTrie,
    topic: &str,
    messages: usize,
    is_online: &dyn Fn(&str) -> bool,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..messages {
        let mut out = Vec::new();
        trie.route(topic, None, is_online, &mut out);
        let shared: Vec<_> = out.iter().filter(|r| r.shared).collect();
        assert_eq!(shared.len(), 1, "exactly one member per group");
        *counts.entry(shared[0].client.to_string()).or_default() += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(c, n)| (c.to_string(), n)).collect()
}

#[test]
fn shared_groups_rotate_fairly_and_prefer_online_members() {
    let mut trie = SubscriptionTrie::new();
    for member in ["a", "b", "c"] {
        trie.subscribe("$share/workers/jobs/+", &key(member), sub(QoS::AtLeastOnce));
    }
    let all = share_counts(&trie, "jobs/1", 300, &everyone_online);
    assert_eq!(all, counts(&[("a", 100), ("b", 100), ("c", 100)]));

    let b_offline = |client: &str| client != "b";
    let online = share_counts(&trie, "jobs/1", 100, &b_offline);
    assert_eq!(online, counts(&[("a", 50), ("c", 50)]));

    // With nobody online the message still goes to someone, in turn, so
    // that a persistent session can queue it.
    let nobody = share_counts(&trie, "jobs/1", 30, &|_: &str| false);
    assert_eq!(nobody, counts(&[("a", 10), ("b", 10), ("c", 10)]));
}

#[test]
fn groups_are_independent_of_each_other_and_of_plain_routes() {
    let mut trie = SubscriptionTrie::new();
    for member in ["a", "b", "c"] {
        trie.subscribe("$share/g/jobs/#", &key(member), sub(QoS::AtMostOnce));
    }
    trie.subscribe("$share/h/jobs/#", &key("a"), sub(QoS::AtMostOnce));
    trie.subscribe("$share/g/jobs/+", &key("z"), sub(QoS::AtMostOnce));
    trie.subscribe("jobs/1", &key("a"), sub(QoS::AtMostOnce));
    // Group g on jobs/#, group h on jobs/#, group g on jobs/+, plain a.
    let routed = routes(&trie, "jobs/1", None);
    assert_eq!(routed.iter().filter(|r| r.shared).count(), 3);
    assert_eq!(routed.iter().filter(|r| !r.shared).count(), 1);
}

#[test]
fn members_leave_groups() {
    let mut trie = SubscriptionTrie::new();
    for member in ["a", "b", "c"] {
        trie.subscribe("$share/g/jobs/#", &key(member), sub(QoS::AtMostOnce));
    }
    assert!(trie.unsubscribe("$share/g/jobs/#", "b"));
    let left = share_counts(&trie, "jobs/1", 10, &everyone_online);
    assert_eq!(left, counts(&[("a", 5), ("c", 5)]));
    assert!(trie.unsubscribe("$share/g/jobs/#", "a"));
    assert!(trie.unsubscribe("$share/g/jobs/#", "c"));
    assert!(routes(&trie, "jobs/1", None).is_empty());
    assert!(trie.is_empty());
    assert_eq!(trie.node_count(), 1);
}

#[test]
fn shared_no_local_member_is_passed_over_for_its_own_messages() {
    let mut trie = SubscriptionTrie::new();
    trie.subscribe("$share/g/t", &key("me"), no_local(sub(QoS::AtMostOnce)));
    trie.subscribe("$share/g/t", &key("you"), sub(QoS::AtMostOnce));
    for _ in 0..4 {
        assert_eq!(clients(&routes(&trie, "t", Some("me"))), ["you"]);
    }
}

#[test]
fn unsubscribing_everything_prunes_every_node() {
    let filters = [
        "a",
        "a/b",
        "a/+",
        "a/#",
        "#",
        "+",
        "+/+/c",
        "a//b",
        "/",
        "$SYS/#",
        "$share/g/a/#",
        "$share/g/+/b",
        "$share/h/a/#",
    ];
    let mut trie = SubscriptionTrie::new();
    let mut peak = 0;
    for round in 0..3 {
        for client in 0..20 {
            for filter in filters {
                let client = key(&format!("client-{round}-{client}"));
                assert!(trie.subscribe(filter, &client, sub(QoS::AtMostOnce)));
            }
        }
        assert_eq!(trie.len(), 20 * filters.len());
        peak = peak.max(trie.node_count());
        assert_eq!(trie.node_count(), peak, "churn must not grow the trie");
        for client in 0..20 {
            for filter in filters {
                assert!(trie.unsubscribe(filter, &format!("client-{round}-{client}")));
            }
        }
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 1);
    }
}

#[test]
fn many_matching_filters_spill_past_the_inline_slots() {
    let mut trie = SubscriptionTrie::new();
    let filters = [
        "#",
        "a/#",
        "a/b/#",
        "a/b/c/#",
        "a/b/c/d/#",
        "+/#",
        "+/+/#",
        "+/b/#",
    ];
    let filters = filters
        .iter()
        .chain(&["a/+/c/#", "a/b/c/d", "+/+/+/+", "a/+/+/d"]);
    for (id, filter) in filters.enumerate() {
        trie.subscribe(filter, &key(&format!("own-{id}")), sub(QoS::AtMostOnce));
        trie.subscribe(
            filter,
            &key("all"),
            with_id(sub(QoS::AtMostOnce), id as u32 + 1),
        );
    }
    let routed = routes(&trie, "a/b/c/d", None);
    assert_eq!(routed.len(), 13);
    let all = routed.iter().find(|r| &*r.client == "all").unwrap();
    let ids: BTreeSet<u32> = all.subscription_identifiers.iter().copied().collect();
    assert_eq!(ids, (1..=12).collect());
}

/// A subscription as the property tests draw it.
#[derive(Debug, Clone)]
struct Drawn {
    filter: String,
    client: usize,
    sub: Subscription,
}

fn level(wildcards: bool) -> BoxedStrategy<&'static str> {
    if wildcards {
        prop::sample::select(vec!["a", "b", "$x", "", "+", "#"]).boxed()
    } else {
        prop::sample::select(vec!["a", "b", "$x", ""]).boxed()
    }
}

/// Valid plain filters: levels from the alphabet, cut after the first `#`.
fn plain_filter() -> impl Strategy<Value = String> {
    prop::collection::vec(level(true), 1..5).prop_map(|levels| {
        let end = levels
            .iter()
            .position(|l| *l == "#")
            .map_or(levels.len(), |i| i + 1);
        levels[..end].join("/")
    })
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(level(false), 1..5).prop_map(|levels| levels.join("/"))
}

fn drawn() -> impl Strategy<Value = Drawn> {
    let group = prop::option::weighted(0.3, prop::sample::select(vec!["g", "h"]));
    let qos = prop::sample::select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]);
    let id = prop::option::of(1u32..4);
    (
        plain_filter(),
        group,
        0usize..4,
        qos,
        any::<(bool, bool)>(),
        id,
    )
        .prop_map(
            |(filter, group, client, qos, (no_local, retain_as_published), identifier)| Drawn {
                filter: match group {
                    Some(group) => format!("$share/{group}/{filter}"),
                    None => filter,
                },
                client,
                sub: Subscription {
                    options: SubscriptionOptions {
                        qos,
                        no_local,
                        retain_as_published,
                        retain_handling: 0,
                    },
                    identifier,
                },
            },
        )
}

type Naive = HashMap<(String, usize), Subscription>;

/// Checks `trie.route` against a scan of `naive` with `topic_matches`.
fn check_route(trie: &SubscriptionTrie, naive: &Naive, topic: &str, publisher: Option<usize>) {
    let publisher = publisher.map(|p| p.to_string());
    let publisher = publisher.as_deref();
    let mut expected_plain: BTreeMap<String, (QoS, bool, BTreeSet<u32>)> = BTreeMap::new();
    let mut expected_groups: BTreeMap<(&str, &str), Vec<(String, Subscription)>> = BTreeMap::new();
    for ((filter, client), sub) in naive {
        let client = client.to_string();
        let kind = parse_filter(filter);
        if !topic_matches(kind.filter(), topic) || skipped(sub, &client, publisher) {
            continue;
        }
        match kind {
            FilterKind::Plain(_) => {
                let entry = expected_plain.entry(client).or_default();
                entry.0 = entry.0.max(sub.options.qos);
                entry.1 |= sub.options.retain_as_published;
                entry.2.extend(sub.identifier);
            }
            FilterKind::Shared { group, filter } => {
                expected_groups
                    .entry((group, filter))
                    .or_default()
                    .push((client, *sub));
            }
        }
    }
    let mut out = Vec::new();
    trie.route(topic, publisher, &everyone_online, &mut out);
    let mut actual_plain = BTreeMap::new();
    for route in out.iter().filter(|r| !r.shared) {
        let mut ids = route.subscription_identifiers.clone();
        ids.sort_unstable();
        let unique: BTreeSet<u32> = ids.iter().copied().collect();
        assert_eq!(ids.len(), unique.len(), "duplicate identifiers");
        let value = (route.qos, route.retain_as_published, unique);
        assert!(actual_plain
            .insert(route.client.to_string(), value)
            .is_none());
    }
    assert_eq!(actual_plain, expected_plain, "plain routes for {topic:?}");
    let shared: Vec<&Route> = out.iter().filter(|r| r.shared).collect();
    assert_eq!(shared.len(), expected_groups.len(), "one route per group");
    for route in shared {
        let member_of_a_group = expected_groups.values().flatten().any(|(client, sub)| {
            *client == *route.client
                && sub.options.qos == route.qos
                && sub
                    .identifier
                    .into_iter()
                    .eq(route.subscription_identifiers.clone())
        });
        assert!(member_of_a_group, "{route:?} is no eligible member");
    }
}

proptest! {
    #[test]
    fn route_equals_a_naive_matcher(
        subscriptions in prop::collection::vec(drawn(), 0..24),
        unsubscribe in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        topics in prop::collection::vec(topic(), 1..6),
        publisher in prop::option::of(0usize..4),
    ) {
        let mut trie = SubscriptionTrie::new();
        let mut naive = Naive::new();
        for drawn in &subscriptions {
            let added = trie.subscribe(&drawn.filter, &key(&drawn.client.to_string()), drawn.sub);
            let existed = naive.insert((drawn.filter.clone(), drawn.client), drawn.sub).is_some();
            prop_assert_eq!(added, !existed);
        }
        prop_assert_eq!(trie.len(), naive.len());
        for topic in &topics {
            check_route(&trie, &naive, topic, publisher);
        }
        if !subscriptions.is_empty() {
            for index in &unsubscribe {
                let drawn = index.get(&subscriptions);
                let removed = trie.unsubscribe(&drawn.filter, &drawn.client.to_string());
                let existed = naive.remove(&(drawn.filter.clone(), drawn.client)).is_some();
                prop_assert_eq!(removed, existed);
            }
        }
        prop_assert_eq!(trie.len(), naive.len());
        for topic in &topics {
            check_route(&trie, &naive, topic, publisher);
        }
        for (filter, client) in naive.keys() {
            prop_assert!(trie.unsubscribe(filter, &client.to_string()));
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.node_count(), 1);
    }
}

#[test]
fn the_set_of_shared_groups_follows_first_and_last_members() {
    let mut trie = SubscriptionTrie::new();
    let groups = |trie: &SubscriptionTrie| {
        let mut out = Vec::new();
        trie.shared_groups(&mut out);
        out.sort();
        out.into_iter()
            .map(|(g, f)| format!("{g} {f}"))
            .collect::<Vec<_>>()
    };
    let start = trie.shared_generation();
    trie.subscribe("$share/g/jobs/#", &key("a"), sub(QoS::AtLeastOnce));
    trie.subscribe("$share/g/jobs/#", &key("b"), sub(QoS::AtLeastOnce));
    trie.subscribe("$share/h/+/x", &key("a"), sub(QoS::AtMostOnce));
    trie.subscribe("jobs/1", &key("a"), sub(QoS::AtMostOnce));
    assert_eq!(groups(&trie), ["g jobs/#", "h +/x"]);
    let two_groups = trie.shared_generation();
    assert_eq!(two_groups, start + 2, "only new groups change the set");
    assert!(trie.has_shared_group("g", "jobs/#"));

    let Some((picked, online)) = trie.pick_shared("g", "jobs/#", None, &|c: &str| c == "b") else {
        panic!("group g has members");
    };
    assert_eq!((&*picked.client, online, picked.shared), ("b", true, true));
    assert!(trie
        .pick_shared("g", "jobs/+", None, &everyone_online)
        .is_none());
    assert!(trie
        .pick_shared("z", "jobs/#", None, &everyone_online)
        .is_none());

    trie.unsubscribe("$share/g/jobs/#", "a");
    assert_eq!(trie.shared_generation(), two_groups, "b is still a member");
    trie.unsubscribe("$share/g/jobs/#", "b");
    trie.unsubscribe("$share/h/+/x", "a");
    assert!(groups(&trie).is_empty());
    assert!(!trie.has_shared_group("g", "jobs/#"));
    assert_eq!(trie.shared_generation(), two_groups + 2);
}
