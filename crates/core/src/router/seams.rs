//! The two seams of routing, so that the cluster work can put NATS behind
//! them (docs/decisions/0102 and 0103):
//!
//! - [`Router`]: subscriptions in, the deliveries of one topic out.
//!   Default: the in-process [`SubscriptionTrie`].
//! - [`RetainedIndex`]: the retained message of each topic, and the ones a
//!   filter matches. Default: the in-process [`RetainedStore`]. Durability
//!   is not its job: retained changes reach the disk as store ops
//!   (`Op::RetainSet`, `Op::RetainClear`) through the store's own seam.
//!
//! Both are called on the per-message path, so they are used through
//! static dispatch only: the engine names the implementation
//! ([`DefaultRouter`], [`DefaultRetained`]); a second implementation makes
//! these aliases an enum of both (or the engine generic), never a
//! `dyn Router`. Like the types behind them, implementations do no IO and
//! no async work: callers hold whatever lock guards them.

use super::{RetainedStore, Route, Subscription, SubscriptionTrie};
use crate::router::ClientKey;

/// A shared group with members: (share name, filter after `$share/name/`).
pub type SharedGroupKey = (Box<str>, Box<str>);

/// Who is subscribed to what, and who gets a message on a topic.
pub trait Router {
    /// Adds or replaces the client's subscription to exactly this filter
    /// (a `$share/g/f` filter joins group g of filter f). Returns true when
    /// it did not exist before (needed for retain handling 1). The filter
    /// has passed [`validate_topic_filter`](super::validate_topic_filter).
    fn subscribe(&mut self, filter: &str, client: &ClientKey, sub: Subscription) -> bool;

    /// Removes the client's subscription to exactly this filter; true when
    /// it existed.
    fn unsubscribe(&mut self, filter: &str, client: &str) -> bool;

    /// Appends the deliveries for a message on `topic` (a valid topic
    /// name) to `out`: one route per client however many of its filters
    /// match, none to a no-local `publisher`, one member per matching
    /// shared group (preferring members for which `is_online` holds).
    fn route(
        &self,
        topic: &str,
        publisher: Option<&str>,
        is_online: &dyn Fn(&str) -> bool,
        out: &mut Vec<Route>,
    );

    /// Number of (client, filter) subscriptions, shared ones included.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool;

    /// Changes whenever a shared group gains its first member or loses
    /// its last one (a cluster node watches it, decision 0182).
    fn shared_generation(&self) -> u64;

    /// Appends every shared group with members, as (share name, filter).
    fn shared_groups(&self, out: &mut Vec<SharedGroupKey>);

    /// True while group `group` of `filter` has a member.
    fn has_shared_group(&self, group: &str, filter: &str) -> bool;

    /// The member of group `group` of `filter` (the plain filter, after
    /// `$share/group/`) that gets the next message, chosen as [`route`]
    /// chooses, and whether `is_online` holds for it. `None` when the
    /// group has no member left here.
    ///
    /// [`route`]: Router::route
    fn pick_shared(
        &self,
        group: &str,
        filter: &str,
        publisher: Option<&str>,
        is_online: &dyn Fn(&str) -> bool,
    ) -> Option<(Route, bool)>;
}

/// Retained messages (any `V`, the engine's `Arc<Message>`) by topic name.
pub trait RetainedIndex<V> {
    /// Stores `value` as the retained message of `topic` (a valid topic
    /// name), returning the one it replaces.
    fn set(&mut self, topic: &str, value: V) -> Option<V>;

    /// Removes the retained message of `topic`.
    fn remove(&mut self, topic: &str) -> Option<V>;

    fn get(&self, topic: &str) -> Option<&V>;

    /// Appends the values whose topics match the plain `filter` (the caller
    /// strips `$share/group/`); a wildcard first level does not match
    /// topics starting with `$` [MQTT-4.7.2-1].
    fn matching(&self, filter: &str, out: &mut Vec<V>);

    /// Keeps only the values for which `keep(topic, value)` is true.
    fn retain(&mut self, keep: impl FnMut(&str, &V) -> bool);

    fn len(&self) -> usize;

    fn is_empty(&self) -> bool;
}

/// The router the engine uses.
pub type DefaultRouter = SubscriptionTrie;

/// The retained index the engine uses.
pub type DefaultRetained<V> = RetainedStore<V>;
