//! Topic routing: topic name and filter rules, the subscription trie
//! (`+`, `#`, `$`-topics, `$share/group/filter`), and the retained store.
//!
//! Pure data structures: no IO, no async, no knowledge of sessions beyond
//! an opaque client key. Callers hold whatever lock guards them.

mod retained;
mod topic;
mod trie;

pub use retained::RetainedStore;
pub use topic::*;
pub use trie::*;
