//! "Did you mean": the setting a mistyped key most likely meant, by edit
//! distance among its siblings, else the same name in another section.
//!
//! It owns the guessing only; the wording is the caller's.

use super::schema::join_key;

/// The dotted key a mistyped `name` (inside the table at `prefix`, whose
/// settings are `siblings`) most likely meant: a close sibling, else the
/// same name in another section of `root`.
pub(super) fn suggest(
    name: &str,
    prefix: &str,
    siblings: &toml::Table,
    root: &toml::Table,
) -> Option<String> {
    let closest = siblings
        .keys()
        .filter(|known| resembles(name, known))
        .min_by_key(|known| edit_distance(name, known));
    if let Some(known) = closest {
        return Some(join_key(prefix, known));
    }
    root.iter().find_map(|(section, value)| match value {
        toml::Value::Table(table) if table.contains_key(name) => Some(format!("{section}.{name}")),
        _ => None,
    })
}

/// Whether `name` is plausibly a misspelling of `known`, or of its start
/// (`retian` for `retain_available`).
fn resembles(name: &str, known: &str) -> bool {
    let tolerance = |len: usize| (len / 3).max(1);
    if edit_distance(name, known) <= tolerance(name.len().max(known.len())) {
        return true;
    }
    let start: String = known.chars().take(name.chars().count()).collect();
    name.len() >= 4 && edit_distance(name, &start) <= tolerance(name.len())
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}
