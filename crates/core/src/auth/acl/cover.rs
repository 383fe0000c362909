//! Whether a rule's topic covers a requested subscription filter: every
//! topic the filter can match is matched by the rule. A SUBSCRIBE is
//! granted (or denied outright) only by rules that cover its filter.

/// Whether every topic name `filter` matches is also matched by `rule`
/// (both plain filters, `$share` already removed). Level by level: a rule
/// `#` covers the rest, including a filter `#` and the parent level; a rule
/// `+` covers a literal or a `+`, not a `#` (except that a rule `+/#`
/// covers a filter `#`); a literal covers only itself.
/// A rule starting with a wildcard does not cover a filter starting with
/// `$`, as such a rule matches no `$` topic [MQTT-4.7.2-1].
pub fn covers(rule: &str, filter: &str) -> bool {
    if filter.starts_with('$') && rule.starts_with(['+', '#']) {
        return false;
    }
    let mut rule_levels = rule.split('/');
    let mut filter_levels = filter.split('/');
    let mut top_level = true;
    loop {
        match (rule_levels.next(), filter_levels.next()) {
            (Some("#"), _) => return true,
            // Every topic has a first level, so a rule `+/#` matches all
            // that a filter `#` does; deeper, `a/#` matches `a` and
            // `a/+/#` does not.
            (Some("+"), Some("#")) if top_level => return rule_levels.next() == Some("#"),
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(wanted), Some(level)) if wanted == level && level != "+" && level != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
        top_level = false;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::router::topic_matches;

    #[test]
    fn covering_table() {
        let cases = [
            ("#", "#", true),
            ("#", "a/+/#", true),
            ("#", "$SYS/#", false),
            ("+/#", "$SYS/x", false),
            ("+/#", "#", true),
            ("+/+/#", "#", false),
            ("$SYS/#", "$SYS/#", true),
            ("$SYS/#", "$SYS/broker/+", true),
            ("a/#", "a", true),
            ("a/#", "a/#", true),
            ("a/#", "a/b/+/c", true),
            ("a/#", "b/#", false),
            ("a/#", "#", false),
            ("a/+", "a/b", true),
            ("a/+", "a/+", true),
            ("a/+", "a/#", false),
            ("a/+", "a", false),
            ("a/+/#", "a/+", true),
            ("a/+/#", "a/#", false),
            ("a/b", "a/+", false),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a//b", "a//b", true),
            ("a/+/b", "a//b", true),
            ("a/b", "a//b", false),
            ("+/+/#", "+/+/#", true),
            ("devices/dev-a/#", "+/+/#", false),
            ("devices/dev-a/#", "#", false),
        ];
        for (rule, filter, expected) in cases {
            assert_eq!(
                covers(rule, filter),
                expected,
                "rule {rule:?} filter {filter:?}"
            );
        }
    }

    /// Every filter of 1 to 3 levels over `levels` (`#` only last).
    fn filters(levels: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        let mut frontier: Vec<String> = vec![String::new()];
        for depth in 0..3 {
            let mut next = Vec::new();
            for prefix in &frontier {
                for level in levels {
                    let filter = if depth == 0 {
                        level.to_string()
                    } else {
                        format!("{prefix}/{level}")
                    };
                    all.push(filter.clone());
                    if *level != "#" {
                        next.push(filter);
                    }
                }
            }
            frontier = next;
        }
        all
    }

    /// `covers` agrees with its definition over a small universe: a rule
    /// covers a filter exactly when every topic (1 to 4 levels over a
    /// literal the filters use, one they do not, a `$` level and an empty
    /// level) matched by the filter is matched by the rule.
    #[test]
    fn covering_agrees_with_matching() {
        let filters = filters(&["a", "$x", "+", "#"]);
        let mut topics: Vec<String> = Vec::new();
        let mut frontier = vec![String::new()];
        for depth in 0..4 {
            let mut next = Vec::new();
            for prefix in &frontier {
                for level in ["a", "c", "$x", ""] {
                    let topic = if depth == 0 {
                        level.to_string()
                    } else {
                        format!("{prefix}/{level}")
                    };
                    topics.push(topic.clone());
                    next.push(topic);
                }
            }
            frontier = next;
        }
        for rule in &filters {
            for filter in &filters {
                let by_definition = topics
                    .iter()
                    .filter(|topic| topic_matches(filter, topic))
                    .all(|topic| topic_matches(rule, topic));
                assert_eq!(
                    covers(rule, filter),
                    by_definition,
                    "rule {rule:?} filter {filter:?}"
                );
            }
        }
    }
}
