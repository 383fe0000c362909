//! Topic names and topic filters: validation, `$share` parsing and matching.
//!
//! Owns the rules of MQTT 4.7 and 4.8.2 as pure functions over `&str`:
//! what a valid name or filter is, how a shared subscription filter splits
//! into group and filter, and whether one plain filter matches one name.
//! It must not allocate, keep state, or know about subscriptions; the trie
//! and the retained store build their tree walks on the same rules, and
//! their tests check them against [`topic_matches`].

use fleetmq_codec::ReasonCode;

/// The prefix that marks a shared subscription filter [MQTT-4.8.2-1].
const SHARE_PREFIX: &str = "$share/";

/// Size limits the broker puts on topic names and filters (configurable,
/// because a deep or long topic costs memory in the trie and time in every
/// walk over it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Longest name or filter in bytes; a shared filter counts whole,
    /// `$share/group/` included.
    pub max_length: usize,
    /// Most `/`-separated levels; a shared filter counts only the levels of
    /// the filter after `$share/group/`, the part that is matched.
    pub max_levels: usize,
}

/// What is wrong with a topic name or filter sent by a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is {len} bytes long, the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("topic has {levels} levels, the limit is {max}")]
    TooManyLevels { levels: usize, max: usize },
    #[error("topic name contains a wildcard ('+' or '#')")]
    WildcardInTopicName,
    #[error(
        "topic filter has '#' that is not the whole last level, or '+' that is not a whole level"
    )]
    MisplacedWildcard,
    #[error("topic contains the NUL character U+0000")]
    NulCharacter,
    #[error("invalid shared subscription: {0}")]
    InvalidSharedSubscription(&'static str),
}

/// Whether a string was checked as a topic name (PUBLISH, will) or a topic
/// filter (SUBSCRIBE, UNSUBSCRIBE): the same fault has a different reason
/// code in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Name,
    Filter,
}

impl TopicError {
    /// The 5.0 reason code for this fault: 0x90 Topic Name invalid for a
    /// name, 0x8F Topic Filter invalid for a filter.
    pub fn reason_code(&self, kind: TopicKind) -> ReasonCode {
        match kind {
            TopicKind::Name => ReasonCode::TOPIC_NAME_INVALID,
            TopicKind::Filter => ReasonCode::TOPIC_FILTER_INVALID,
        }
    }
}

/// Checks a topic name from PUBLISH or a will: non-empty [MQTT-4.7.3-1],
/// no wildcard [MQTT-3.3.2-2], no U+0000 [MQTT-4.7.3-2], within `limits`.
pub fn validate_topic_name(topic: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    check_length(topic, limits)?;
    // One pass over the bytes (all four are ASCII, never part of a
    // multi-byte character), giving the error a level-by-level check
    // gives: the first level with a wildcard or a NUL decides, and within
    // that level a wildcard wins over a NUL.
    let mut levels = 1usize;
    let mut nul_in_level = false;
    for byte in topic.bytes() {
        match byte {
            b'/' if nul_in_level => return Err(TopicError::NulCharacter),
            b'/' => levels += 1,
            b'+' | b'#' => return Err(TopicError::WildcardInTopicName),
            0 => nul_in_level = true,
            _ => {}
        }
    }
    if nul_in_level {
        return Err(TopicError::NulCharacter);
    }
    check_levels(levels, limits)
}

/// Checks a topic filter from SUBSCRIBE or UNSUBSCRIBE: non-empty, `#` only
/// as the whole last level [MQTT-4.7.1-2], `+` only as a whole level
/// [MQTT-4.7.1-3], no U+0000, and for `$share/{group}/{filter}` a non-empty
/// group without `+`, `#` or `/` and a non-empty valid filter
/// [MQTT-4.8.2-1], [MQTT-4.8.2-2]. Limits as documented on [`TopicLimits`].
pub fn validate_topic_filter(filter: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    check_length(filter, limits)?;
    let inner = match filter.strip_prefix(SHARE_PREFIX) {
        None => filter,
        Some(rest) => {
            let Some((group, inner)) = rest.split_once('/') else {
                return Err(TopicError::InvalidSharedSubscription(
                    "no topic filter after the share name",
                ));
            };
            if group.is_empty() {
                return Err(TopicError::InvalidSharedSubscription("empty share name"));
            }
            if group.contains(['+', '#']) {
                return Err(TopicError::InvalidSharedSubscription(
                    "share name contains a wildcard",
                ));
            }
            if group.contains('\0') {
                return Err(TopicError::NulCharacter);
            }
            if inner.is_empty() {
                return Err(TopicError::InvalidSharedSubscription(
                    "empty topic filter after the share name",
                ));
            }
            inner
        }
    };
    let mut levels = 0usize;
    let mut after_multi = false;
    for level in inner.split('/') {
        levels += 1;
        if after_multi {
            return Err(TopicError::MisplacedWildcard);
        }
        match level {
            "#" => after_multi = true,
            "+" => {}
            _ if level.contains(['+', '#']) => return Err(TopicError::MisplacedWildcard),
            _ if level.contains('\0') => return Err(TopicError::NulCharacter),
            _ => {}
        }
    }
    check_levels(levels, limits)
}

fn check_length(topic: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > limits.max_length {
        return Err(TopicError::TooLong {
            len: topic.len(),
            max: limits.max_length,
        });
    }
    Ok(())
}

fn check_levels(levels: usize, limits: &TopicLimits) -> Result<(), TopicError> {
    if levels > limits.max_levels {
        return Err(TopicError::TooManyLevels {
            levels,
            max: limits.max_levels,
        });
    }
    Ok(())
}

/// A subscription filter as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind<'a> {
    /// An ordinary filter: every matching subscriber gets the message.
    Plain(&'a str),
    /// `$share/{group}/{filter}`: one member of the group gets each message.
    Shared { group: &'a str, filter: &'a str },
}

impl<'a> FilterKind<'a> {
    /// The filter that is matched against topic names.
    pub fn filter(&self) -> &'a str {
        match *self {
            FilterKind::Plain(filter) | FilterKind::Shared { filter, .. } => filter,
        }
    }
}

/// Splits a shared subscription filter into group and filter. Meant for
/// filters that passed [`validate_topic_filter`]; a malformed `$share/g`
/// without a filter comes back as a group with an empty filter.
pub fn parse_filter(filter: &str) -> FilterKind<'_> {
    match filter.strip_prefix(SHARE_PREFIX) {
        None => FilterKind::Plain(filter),
        Some(rest) => {
            let (group, filter) = rest.split_once('/').unwrap_or((rest, ""));
            FilterKind::Shared { group, filter }
        }
    }
}

/// True when the plain (not `$share`) `filter` matches topic name `topic`.
///
/// `#` matches its parent level too ("sport/#" matches "sport"), `+`
/// matches one level even when it is empty ("a/+/b" matches "a//b"), and a
/// wildcard as the first level does not match a topic starting with `$`
/// ("#" does not match "$SYS/uptime") [MQTT-4.7.2-1].
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(wanted), Some(level)) if wanted == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Splits off the first level of a non-empty rest of a topic: the level and
/// what follows the `/`, `None` when this was the last level. Shared by the
/// tree walks so that they cut levels exactly like [`topic_matches`].
///
/// A plain byte loop: levels are a few bytes long, where `split_once`'s
/// searcher spent ~90 instructions per level on setting up its search
/// (decision 0190). `/` is ASCII, so it is never inside a multi-byte
/// character and both slices are on character boundaries.
pub(super) fn split_level(rest: &str) -> (&str, Option<&str>) {
    let Some(at) = rest.bytes().position(|byte| byte == b'/') else {
        return (rest, None);
    };
    match (rest.get(..at), rest.get(at + 1..)) {
        (Some(level), Some(tail)) => (level, Some(tail)),
        _ => (rest, None),
    }
}

/// (filter, topic, matches): the MQTT 5.0 section 4.7 non-normative
/// examples, then empty levels and `$` topics. One table for every matcher:
/// [`topic_matches`], the trie and the retained store.
#[cfg(test)]
pub(super) const SPEC_MATCH_CASES: &[(&str, &str, bool)] = &[
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
    ),
    ("sport/#", "sport", true),
    ("#", "sport/tennis", true),
    ("sport/tennis/#", "sport/tennis", true),
    ("sport/tennis/+", "sport/tennis/player1", true),
    ("sport/tennis/+", "sport/tennis/player2", true),
    ("sport/tennis/+", "sport/tennis/player1/ranking", false),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("+/+", "/finance", true),
    ("/+", "/finance", true),
    ("+", "/finance", false),
    ("+/tennis/#", "sport/tennis/player1", true),
    ("sport/+/player1", "sport/tennis/player1", true),
    ("a/+/b", "a//b", true),
    ("+/x", "/x", true),
    ("+", "", true),
    ("a/b", "a/b/", false),
    ("a/b/", "a/b/", true),
    ("A/b", "a/b", false),
    ("#", "$SYS/uptime", false),
    ("+/monitor/Clients", "$SYS/monitor/Clients", false),
    ("$SYS/#", "$SYS/monitor/Clients", true),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
    ("$SYS/#", "$SYS", true),
    ("+", "$", false),
    ("a/+", "a/$x", true),
    ("a/#", "a/$x/y", true),
];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const LIMITS: TopicLimits = TopicLimits {
        max_length: 64,
        max_levels: 8,
    };

    #[test]
    fn matching_follows_the_specification_examples() {
        for &(filter, topic, expected) in SPEC_MATCH_CASES {
            assert_eq!(
                topic_matches(filter, topic),
                expected,
                "filter {filter:?} on topic {topic:?}"
            );
        }
    }

    #[test]
    fn topic_names_are_validated() {
        let ok = ["a", "/", "a//b", "$SYS/x", "sport/tennis/player1", "é/ü"];
        for name in ok {
            assert_eq!(validate_topic_name(name, &LIMITS), Ok(()), "{name:?}");
        }
        let bad = [
            ("", TopicError::Empty),
            ("a/+", TopicError::WildcardInTopicName),
            ("#", TopicError::WildcardInTopicName),
            ("a/b#", TopicError::WildcardInTopicName),
            ("a\0b", TopicError::NulCharacter),
            (
                "a/b/c/d/e/f/g/h/i",
                TopicError::TooManyLevels { levels: 9, max: 8 },
            ),
        ];
        for (name, error) in bad {
            assert_eq!(validate_topic_name(name, &LIMITS), Err(error), "{name:?}");
        }
        let long = "x".repeat(65);
        assert_eq!(
            validate_topic_name(&long, &LIMITS),
            Err(TopicError::TooLong { len: 65, max: 64 })
        );
    }

    #[test]
    fn topic_filters_are_validated() {
        let ok = [
            "#",
            "+",
            "+/+",
            "/+",
            "sport/#",
            "sport/+/player1",
            "a//b",
            "$SYS/#",
            "$share/g/a/#",
            "$share/g/+",
            "$share",
            "$shared/x",
        ];
        for filter in ok {
            assert_eq!(validate_topic_filter(filter, &LIMITS), Ok(()), "{filter:?}");
        }
        let bad = [
            ("", TopicError::Empty),
            ("sport/tennis#", TopicError::MisplacedWildcard),
            ("sport/tennis/#/ranking", TopicError::MisplacedWildcard),
            ("#/", TopicError::MisplacedWildcard),
            ("sport+", TopicError::MisplacedWildcard),
            ("a/++", TopicError::MisplacedWildcard),
            ("a/\0", TopicError::NulCharacter),
            ("$share/g/a/b#", TopicError::MisplacedWildcard),
            (
                "$share/g",
                TopicError::InvalidSharedSubscription("no topic filter after the share name"),
            ),
            (
                "$share//a",
                TopicError::InvalidSharedSubscription("empty share name"),
            ),
            (
                "$share/g+/a",
                TopicError::InvalidSharedSubscription("share name contains a wildcard"),
            ),
            (
                "$share/#/a",
                TopicError::InvalidSharedSubscription("share name contains a wildcard"),
            ),
            (
                "$share/g/",
                TopicError::InvalidSharedSubscription("empty topic filter after the share name"),
            ),
            ("$share/g\0/a", TopicError::NulCharacter),
        ];
        for (filter, error) in bad {
            assert_eq!(
                validate_topic_filter(filter, &LIMITS),
                Err(error),
                "{filter:?}"
            );
        }
    }

    #[test]
    fn shared_filters_count_levels_of_the_inner_filter() {
        assert_eq!(
            validate_topic_filter("$share/g/a/b/c/d/e/f/g/h", &LIMITS),
            Ok(())
        );
        assert_eq!(
            validate_topic_filter("$share/g/a/b/c/d/e/f/g/h/i", &LIMITS),
            Err(TopicError::TooManyLevels { levels: 9, max: 8 })
        );
    }

    #[test]
    fn filters_are_parsed_into_plain_and_shared() {
        assert_eq!(parse_filter("a/+"), FilterKind::Plain("a/+"));
        assert_eq!(parse_filter("$share"), FilterKind::Plain("$share"));
        assert_eq!(parse_filter("$SYS/#"), FilterKind::Plain("$SYS/#"));
        assert_eq!(
            parse_filter("$share/workers/jobs/#"),
            FilterKind::Shared {
                group: "workers",
                filter: "jobs/#"
            }
        );
        assert_eq!(parse_filter("$share/workers/jobs/#").filter(), "jobs/#");
        assert_eq!(
            parse_filter("$share/g"),
            FilterKind::Shared {
                group: "g",
                filter: ""
            }
        );
    }

    #[test]
    fn reason_codes_depend_on_what_was_checked() {
        let error = TopicError::Empty;
        assert_eq!(
            error.reason_code(TopicKind::Name),
            ReasonCode::TOPIC_NAME_INVALID
        );
        assert_eq!(
            error.reason_code(TopicKind::Filter),
            ReasonCode::TOPIC_FILTER_INVALID
        );
    }

    #[test]
    fn split_level_cuts_like_split() {
        assert_eq!(split_level("a/b/c"), ("a", Some("b/c")));
        assert_eq!(split_level("a"), ("a", None));
        assert_eq!(split_level("/"), ("", Some("")));
        assert_eq!(split_level(""), ("", None));
    }

    /// The checks as they were written before the byte loops (decision
    /// 0190): the single-pass versions must agree with them everywhere.
    fn reference_name_check(topic: &str) -> Result<usize, TopicError> {
        let mut levels = 0usize;
        for level in topic.split('/') {
            levels += 1;
            if level.contains(['+', '#']) {
                return Err(TopicError::WildcardInTopicName);
            }
            if level.contains('\0') {
                return Err(TopicError::NulCharacter);
            }
        }
        Ok(levels)
    }

    proptest::proptest! {
        #[test]
        fn byte_loops_agree_with_split(topic in "[a/+#\u{0}é]{0,12}") {
            let reference = check_length(&topic, &LIMITS)
                .and_then(|()| reference_name_check(&topic))
                .and_then(|levels| check_levels(levels, &LIMITS));
            proptest::prop_assert_eq!(validate_topic_name(&topic, &LIMITS), reference);
            let expected = match topic.split_once('/') {
                Some((level, tail)) => (level, Some(tail)),
                None => (topic.as_str(), None),
            };
            proptest::prop_assert_eq!(split_level(&topic), expected);
        }
    }
}
