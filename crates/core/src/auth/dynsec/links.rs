//! Priority-ordered references between dynsec objects: a client's or a
//! group's roles, a client's groups, a group's clients.
//!
//! Owns the ordering rule only: higher priority first, and among equal
//! priorities the earlier added first (Mosquitto's in-order hash lists).
//! It never checks that the named object exists.

/// A named reference with a priority; -1 when the command gave none (the
/// plugin's default, left out of its JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub priority: i64,
}

/// The priority the plugin gives a link when the command names none.
pub const NO_PRIORITY: i64 = -1;

/// A list of links kept in decision order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links(Vec<Link>);

impl Links {
    /// Adds `name` after every link of higher or equal priority. Returns
    /// false (and changes nothing) when `name` is already there.
    pub fn insert(&mut self, name: &str, priority: i64) -> bool {
        if self.contains(name) {
            return false;
        }
        let at = self
            .0
            .iter()
            .position(|link| link.priority < priority)
            .unwrap_or(self.0.len());
        self.0.insert(
            at,
            Link {
                name: name.to_string(),
                priority,
            },
        );
        true
    }

    /// Removes `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|link| link.name != name);
        self.0.len() != before
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|link| link.name == name)
    }

    /// In decision order.
    pub fn iter(&self) -> impl Iterator<Item = &Link> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn higher_priority_first_then_insertion_order() {
        let mut links = Links::default();
        assert!(links.insert("a", NO_PRIORITY));
        assert!(links.insert("b", 5));
        assert!(links.insert("c", 5));
        assert!(links.insert("d", 10));
        assert!(!links.insert("a", 99));
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["d", "b", "c", "a"]);
        assert!(links.remove("b"));
        assert!(!links.remove("b"));
    }
}
