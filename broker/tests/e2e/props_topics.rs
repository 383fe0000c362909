//! Property test of `topic_matches`, which the subscription trie's own
//! property test uses as its oracle, against a reference matcher written
//! level by level from the specification (MQTT 4.7), on filters and names
//! drawn from a small alphabet (`+`, `#`, `$`-levels and empty levels
//! included) so that matches are frequent. The fuzz target
//! fuzz/fuzz_targets/topic_match.rs checks the same on arbitrary text.
use fleetmq_core::router::{
    topic_matches, validate_topic_filter, validate_topic_name, TopicLimits,
};
use proptest::prelude::*;

const LIMITS: TopicLimits = TopicLimits {
    max_length: 65_535,
    max_levels: 1_000,
};

fn reference(filter: &str, topic: &str) -> bool {
    fn levels(filter: &[&str], topic: &[&str]) -> bool {
        match (filter.first(), topic.first()) {
            (None, None) => true,
            (Some(&"#"), _) => true,
            (Some(_), None) | (None, Some(_)) => false,
            (Some(&"+"), Some(_)) => levels(&filter[1..], &topic[1..]),
            (Some(f), Some(t)) => f == t && levels(&filter[1..], &topic[1..]),
        }
    }
    let filter_levels: Vec<&str> = filter.split('/').collect();
    let topic_levels: Vec<&str> = topic.split('/').collect();
    if topic.starts_with('$') && matches!(filter_levels[0], "+" | "#") {
        return false;
    }
    levels(&filter_levels, &topic_levels)
}

fn text(alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), 1..7).prop_map(|levels| levels.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]
    #[test]
    fn topic_matches_equals_the_reference(
        filter in text(&["a", "b", "$SYS", "$x", "", "+", "#"]).prop_map(|f| match f.find('#') {
            Some(at) => f[..=at].to_string(),
            None => f,
        }),
        topic in text(&["a", "b", "$SYS", "$x", "", "ab"]),
    ) {
        prop_assume!(validate_topic_filter(&filter, &LIMITS).is_ok());
        prop_assume!(validate_topic_name(&topic, &LIMITS).is_ok());
        prop_assert_eq!(topic_matches(&filter, &topic), reference(&filter, &topic),
            "filter {:?} topic {:?}", filter, topic);
    }
}
