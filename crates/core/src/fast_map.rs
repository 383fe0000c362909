//! The hash map of the routing path: keyed by topic levels and client ids,
//! looked up several times for every published message (the trie's levels,
//! the subscriber's session). std's SipHash cost ~160 instructions per
//! short key there, ~5% of a QoS 1 message's work (decision 0190).
//!
//! It owns the choice of hasher only. foldhash's `fast::RandomState` is
//! seeded per process and per map, so keys chosen by clients (topic levels
//! of their subscriptions, their client ids) cannot be aimed at one bucket
//! without knowing the seed; maps keyed by anything else stay std's.

/// A `HashMap` with foldhash's seeded fast hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
