//! The subscription trie: which clients get a message published on a topic.
//!
//! Owns every (client, filter) subscription, plain and `$share`, in a tree
//! of topic levels, and turns one topic name into one [`Route`] per plain
//! subscriber plus one per matching shared group. It must not know about
//! sessions, queues or QoS downgrade beyond reporting each subscription's
//! maximum QoS, and must not do IO; the caller holds the lock around it.
//!
//! [`SubscriptionTrie::route`] runs once per published message, so it walks
//! only the branches the topic can match, borrows levels from the topic
//! instead of splitting into a vector, and allocates only for its output
//! (and a merge index when one client has several matching filters).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::seams::{Router, SharedGroupKey};
use super::shrink_if_sparse;
use super::topic::{parse_filter, split_level, FilterKind};
use crate::fast_map::FastMap;
use fleetmq_codec::{QoS, SubscriptionOptions};

/// Identifies a client: its client id, shared with the session.
pub type ClientKey = Arc<str>;

/// One client's subscription to one filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    /// The 5.0 Subscription Identifier given in the SUBSCRIBE, if any.
    pub identifier: Option<u32>,
}

/// One delivery of a message to one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub client: ClientKey,
    /// The highest QoS among the client's matching subscriptions; the
    /// caller delivers at the lower of this and the message's QoS.
    pub qos: QoS,
    /// Whether any matching subscription asked to keep the RETAIN flag.
    pub retain_as_published: bool,
    /// The identifiers of all matching subscriptions that have one.
    pub subscription_identifiers: Vec<u32>,
    /// The route comes from a shared subscription (never merged with the
    /// client's plain routes, so the client may get the message twice).
    pub shared: bool,
}

/// The subscriptions of one filter: the node where the filter ends.
#[derive(Debug, Default)]
struct Subscribers {
    plain: FastMap<ClientKey, Subscription>,
    /// Shared subscription groups on this filter, by share name.
    shared: HashMap<Box<str>, SharedGroup>,
}

impl Subscribers {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.shared.is_empty()
    }
}

/// The members of one `$share/{group}/{filter}` subscription.
#[derive(Debug, Default)]
struct SharedGroup {
    members: Vec<(ClientKey, Subscription)>,
    /// Where the next round-robin pick starts. Atomic so that routing needs
    /// only `&self`; concurrent routers racing on it only skew the rotation.
    next: AtomicUsize,
}

/// One level of the trie. `#` needs no node of its own: it is always the
/// last level, so its subscribers hang on the node of the level before.
#[derive(Debug, Default)]
struct Node {
    /// Children for literal levels (including the empty level).
    literal: FastMap<Box<str>, Node>,
    /// The child for a `+` level, kept apart so matching needs no lookup.
    single: Option<Box<Node>>,
    /// Subscribers of the filter ending at this node.
    exact: Subscribers,
    /// Subscribers of this node's filter followed by `/#`, which match here
    /// and everywhere below.
    multi: Subscribers,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.single.is_none()
            && self.exact.is_empty()
            && self.multi.is_empty()
    }

    fn count(&self) -> usize {
        1 + self.literal.values().map(Node::count).sum::<usize>()
            + self.single.as_deref().map_or(0, Node::count)
    }
}

/// All subscriptions of all clients, indexed by topic level.
#[derive(Debug, Default)]
pub struct SubscriptionTrie {
    root: Node,
    /// Number of (client, filter) subscriptions, kept so `len` is O(1).
    subscriptions: usize,
    /// Every shared group with at least one member, as (share name,
    /// filter): a cluster node pulls the messages of exactly these groups
    /// (decision 0182). Changed only when a group appears or empties.
    shared_groups: HashSet<SharedGroupKey>,
    /// Bumped whenever `shared_groups` changes, so a watcher copies the
    /// set only then.
    shared_generation: u64,
}

impl SubscriptionTrie {
    pub fn new() -> Self {
        SubscriptionTrie::default()
    }

    /// Number of trie nodes, the root included; walks the whole trie. For
    /// statistics and for tests that churn must not grow memory.
    pub fn node_count(&self) -> usize {
        self.root.count()
    }
}

impl Router for SubscriptionTrie {
    /// Adds or replaces the client's subscription to exactly this filter (a
    /// `$share/g/f` filter joins group g of filter f). Returns true when it
    /// did not exist before (needed for retain handling 1).
    ///
    /// The filter must have passed
    /// [`validate_topic_filter`](super::validate_topic_filter): its depth
    /// bounds the depth of the trie and of the walks over it.
    fn subscribe(&mut self, filter: &str, client: &ClientKey, sub: Subscription) -> bool {
        let kind = parse_filter(filter);
        let subscribers = subscribers_entry(&mut self.root, kind.filter());
        let added = match kind {
            FilterKind::Plain(_) => subscribers.plain.insert(client.clone(), sub).is_none(),
            FilterKind::Shared {
                group: name,
                filter: inner,
            } => {
                if !subscribers.shared.contains_key(name) {
                    self.shared_groups.insert((name.into(), inner.into()));
                    self.shared_generation += 1;
                }
                let group = subscribers.shared.entry(name.into()).or_default();
                match group
                    .members
                    .iter_mut()
                    .find(|(member, _)| member == client)
                {
                    Some((_, existing)) => {
                        *existing = sub;
                        false
                    }
                    None => {
                        group.members.push((client.clone(), sub));
                        true
                    }
                }
            }
        };
        if added {
            self.subscriptions += 1;
        }
        added
    }

    /// Removes the client's subscription to exactly this filter (leaving the
    /// group for a `$share` filter) and prunes nodes left empty. Returns
    /// true when the subscription existed.
    fn unsubscribe(&mut self, filter: &str, client: &str) -> bool {
        let kind = parse_filter(filter);
        let emptied = Cell::new(false);
        let removed = remove_at(&mut self.root, Some(kind.filter()), &|subscribers| {
            remove_subscriber(subscribers, kind, client, &emptied)
        });
        if removed {
            self.subscriptions -= 1;
        }
        if let (true, FilterKind::Shared { group, filter }) = (emptied.get(), kind) {
            self.shared_groups
                .remove(&(Box::from(group), Box::from(filter)));
            self.shared_generation += 1;
        }
        removed
    }

    /// Appends the deliveries for a message on `topic` (a valid topic name)
    /// to `out`.
    ///
    /// Plain subscriptions give one route per client however many of its
    /// filters match: the highest QoS, retain-as-published if any has it,
    /// every subscription identifier. A no-local subscription is skipped
    /// when its client is the `publisher`. Each matching shared group gives
    /// one route to a member chosen round-robin, preferring members for
    /// which `is_online` holds.
    fn route(
        &self,
        topic: &str,
        publisher: Option<&str>,
        is_online: &dyn Fn(&str) -> bool,
        out: &mut Vec<Route>,
    ) {
        let mut matched = Matched::default();
        walk(
            &self.root,
            Some(topic),
            topic.starts_with('$'),
            &mut matched,
        );

        let plain_sets = matched.iter().filter(|s| !s.plain.is_empty()).count();
        if plain_sets <= 1 {
            for subscribers in matched.iter() {
                push_plain(subscribers, publisher, out);
            }
        } else {
            merge_plain(&matched, publisher, out);
        }
        for subscribers in matched.iter() {
            for group in subscribers.shared.values() {
                if let Some(route) = pick_member(group, publisher, is_online) {
                    out.push(route);
                }
            }
        }
    }

    /// Number of (client, filter) subscriptions, shared ones included.
    fn len(&self) -> usize {
        self.subscriptions
    }

    fn is_empty(&self) -> bool {
        self.subscriptions == 0
    }

    fn shared_generation(&self) -> u64 {
        self.shared_generation
    }

    fn shared_groups(&self, out: &mut Vec<SharedGroupKey>) {
        out.extend(self.shared_groups.iter().cloned());
    }

    fn has_shared_group(&self, group: &str, filter: &str) -> bool {
        self.shared_groups
            .contains(&(Box::<str>::from(group), Box::<str>::from(filter)))
    }

    fn pick_shared(
        &self,
        group: &str,
        filter: &str,
        publisher: Option<&str>,
        is_online: &dyn Fn(&str) -> bool,
    ) -> Option<(Route, bool)> {
        let members = subscribers_at(&self.root, filter)?.shared.get(group)?;
        let route = pick_member(members, publisher, is_online)?;
        let online = is_online(&route.client);
        Some((route, online))
    }
}

/// The subscriber sets of exactly the filter `filter`, if it has any.
fn subscribers_at<'t>(root: &'t Node, filter: &str) -> Option<&'t Subscribers> {
    let mut node = root;
    let mut rest = filter;
    loop {
        let (level, tail) = split_level(rest);
        if level == "#" && tail.is_none() {
            return Some(&node.multi);
        }
        node = if level == "+" {
            node.single.as_deref()?
        } else {
            node.literal.get(level)?
        };
        match tail {
            Some(tail) => rest = tail,
            None => return Some(&node.exact),
        }
    }
}

/// The subscriber sets of the filter, creating the nodes on its path.
fn subscribers_entry<'t>(root: &'t mut Node, filter: &str) -> &'t mut Subscribers {
    let mut node = root;
    let mut rest = filter;
    loop {
        let (level, tail) = split_level(rest);
        if level == "#" && tail.is_none() {
            return &mut node.multi;
        }
        node = if level == "+" {
            node.single.get_or_insert_with(Box::default)
        } else {
            node.literal.entry(level.into()).or_default()
        };
        match tail {
            Some(tail) => rest = tail,
            None => return &mut node.exact,
        }
    }
}

/// Finds the subscriber set of the filter `rest` below `node`, lets
/// `remove` take the subscription out, and prunes every node on the path
/// that is left empty. Recursion depth is the filter's level count.
fn remove_at(
    node: &mut Node,
    rest: Option<&str>,
    remove: &dyn Fn(&mut Subscribers) -> bool,
) -> bool {
    let Some(rest) = rest else {
        return remove(&mut node.exact);
    };
    let (level, tail) = split_level(rest);
    if level == "#" && tail.is_none() {
        return remove(&mut node.multi);
    }
    if level == "+" {
        let Some(child) = node.single.as_deref_mut() else {
            return false;
        };
        let removed = remove_at(child, tail, remove);
        if child.is_empty() {
            node.single = None;
        }
        return removed;
    }
    let Some(child) = node.literal.get_mut(level) else {
        return false;
    };
    let removed = remove_at(child, tail, remove);
    if child.is_empty() {
        node.literal.remove(level);
        shrink_if_sparse(&mut node.literal);
    }
    removed
}

/// Takes `client`'s subscription out of `subscribers`; sets `emptied` when
/// that leaves a shared group without members.
fn remove_subscriber(
    subscribers: &mut Subscribers,
    kind: FilterKind<'_>,
    client: &str,
    emptied: &Cell<bool>,
) -> bool {
    match kind {
        FilterKind::Plain(_) => {
            let removed = subscribers.plain.remove(client).is_some();
            shrink_if_sparse(&mut subscribers.plain);
            removed
        }
        FilterKind::Shared { group: name, .. } => {
            let Some(group) = subscribers.shared.get_mut(name) else {
                return false;
            };
            let Some(index) = group.members.iter().position(|(m, _)| &**m == client) else {
                return false;
            };
            // `remove`, not `swap_remove`: keeps the rotation order of the
            // members that stay.
            group.members.remove(index);
            if group.members.is_empty() {
                subscribers.shared.remove(name);
                emptied.set(true);
            }
            true
        }
    }
}

/// Collects the subscriber sets matching the topic rest `rest` below
/// `node`. Loops down while the path is unique and recurses only where both
/// a literal and a `+` child match, so depth stays small on real trees.
///
/// `dollar_root` is set when `node` is the root and the topic starts with
/// `$`: wildcards of the first level then match nothing [MQTT-4.7.2-1].
fn walk<'t>(
    mut node: &'t Node,
    mut rest: Option<&str>,
    mut dollar_root: bool,
    matched: &mut Matched<'t>,
) {
    loop {
        if !dollar_root {
            // `a/#` matches `a` itself and anything below it.
            matched.push(&node.multi);
        }
        let Some(current) = rest else {
            matched.push(&node.exact);
            return;
        };
        let (level, tail) = split_level(current);
        let single = if dollar_root {
            None
        } else {
            node.single.as_deref()
        };
        node = match (node.literal.get(level), single) {
            (Some(literal), Some(single)) => {
                walk(single, tail, false, matched);
                literal
            }
            (Some(child), None) | (None, Some(child)) => child,
            (None, None) => return,
        };
        rest = tail;
        dollar_root = false;
    }
}

/// The matching subscriber sets of one `route` call: a few inline slots so
/// that the common case allocates nothing, then a vector.
#[derive(Default)]
struct Matched<'t> {
    inline: [Option<&'t Subscribers>; 8],
    inline_len: usize,
    spilled: Vec<&'t Subscribers>,
}

impl<'t> Matched<'t> {
    fn push(&mut self, subscribers: &'t Subscribers) {
        if subscribers.is_empty() {
            return;
        }
        match self.inline.get_mut(self.inline_len) {
            Some(slot) => {
                *slot = Some(subscribers);
                self.inline_len += 1;
            }
            None => self.spilled.push(subscribers),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &'t Subscribers> + '_ {
        self.inline
            .iter()
            .flatten()
            .copied()
            .chain(self.spilled.iter().copied())
    }
}

fn skipped(sub: &Subscription, client: &str, publisher: Option<&str>) -> bool {
    sub.options.no_local && publisher == Some(client)
}

fn plain_route(client: &ClientKey, sub: &Subscription, shared: bool) -> Route {
    Route {
        client: client.clone(),
        qos: sub.options.qos,
        retain_as_published: sub.options.retain_as_published,
        subscription_identifiers: sub.identifier.into_iter().collect(),
        shared,
    }
}

fn push_plain(subscribers: &Subscribers, publisher: Option<&str>, out: &mut Vec<Route>) {
    out.reserve(subscribers.plain.len());
    for (client, sub) in &subscribers.plain {
        if !skipped(sub, client, publisher) {
            out.push(plain_route(client, sub, false));
        }
    }
}

/// Several plain subscriber sets match: one route per client, merged.
///
/// The largest set goes last: the others are indexed by client, and the
/// largest (typically a wildcard with thousands of subscribers) is only
/// looked up in that small index, never inserted into it.
fn merge_plain(matched: &Matched<'_>, publisher: Option<&str>, out: &mut Vec<Route>) {
    let largest = matched
        .iter()
        .enumerate()
        .max_by_key(|(_, subscribers)| subscribers.plain.len())
        .map(|(position, _)| position);
    let others = matched
        .iter()
        .enumerate()
        .filter(|(position, _)| Some(*position) != largest)
        .map(|(_, subscribers)| subscribers);
    let mut index: FastMap<&str, usize> = FastMap::default();
    for subscribers in others {
        for (client, sub) in &subscribers.plain {
            if skipped(sub, client, publisher) {
                continue;
            }
            match index.get(&**client).and_then(|&at| out.get_mut(at)) {
                Some(route) => merge_into(route, sub),
                None => {
                    index.insert(client, out.len());
                    out.push(plain_route(client, sub, false));
                }
            }
        }
    }
    let Some(largest) = largest.and_then(|position| matched.iter().nth(position)) else {
        return;
    };
    if index.is_empty() {
        return push_plain(largest, publisher, out);
    }
    out.reserve(largest.plain.len());
    for (client, sub) in &largest.plain {
        if skipped(sub, client, publisher) {
            continue;
        }
        match index.get(&**client).and_then(|&at| out.get_mut(at)) {
            Some(route) => merge_into(route, sub),
            None => out.push(plain_route(client, sub, false)),
        }
    }
}

/// Folds one more matching subscription of a client into its route.
fn merge_into(route: &mut Route, sub: &Subscription) {
    route.qos = route.qos.max(sub.options.qos);
    route.retain_as_published |= sub.options.retain_as_published;
    if let Some(id) = sub.identifier {
        if !route.subscription_identifiers.contains(&id) {
            route.subscription_identifiers.push(id);
        }
    }
}

/// Picks the group member for one message: the first member from the
/// rotation point that is online (or, if none is, the first at all) and
/// not excluded by no-local; the rotation then moves past it.
fn pick_member(
    group: &SharedGroup,
    publisher: Option<&str>,
    is_online: &dyn Fn(&str) -> bool,
) -> Option<Route> {
    let count = group.members.len();
    let start = group.next.load(Ordering::Relaxed) % count.max(1);
    let rotation = group.members[start..].iter().chain(&group.members[..start]);
    let mut fallback = None;
    let mut chosen = None;
    for (offset, (client, sub)) in rotation.enumerate() {
        if skipped(sub, client, publisher) {
            continue;
        }
        if is_online(client) {
            chosen = Some((offset, client, sub));
            break;
        }
        fallback = fallback.or(Some((offset, client, sub)));
    }
    let (offset, client, sub) = chosen.or(fallback)?;
    group
        .next
        .store((start + offset + 1) % count, Ordering::Relaxed);
    Some(plain_route(client, sub, true))
}

#[cfg(test)]
mod tests;
