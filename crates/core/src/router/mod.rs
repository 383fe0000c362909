//! Topic routing: topic name and filter rules, the subscription trie
//! (`+`, `#`, `$`-topics, `$share/group/filter`), and the retained store,
//! each behind a trait of [`seams`] ([`Router`], [`RetainedIndex`]).
//!
//! Pure data structures: no IO, no async, no knowledge of sessions beyond
//! an opaque client key. Callers hold whatever lock guards them.

mod retained;
pub mod seams;
mod topic;
mod trie;

pub use retained::RetainedStore;
pub use seams::{DefaultRetained, DefaultRouter, RetainedIndex, Router, SharedGroupKey};
pub use topic::*;
pub use trie::*;

/// Gives back a tree map's memory once most of its entries have left, so
/// that a burst of subscriptions or retained topics does not pin memory
/// after it is gone. Shared by the trie and the retained store.
fn shrink_if_sparse<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(
    map: &mut std::collections::HashMap<K, V, S>,
) {
    if map.capacity() > 16 && map.len() < map.capacity() / 4 {
        map.shrink_to_fit();
    }
}
