//! Topic aliases the broker gives to topics it sends to one 5.0 client
//! (outbound aliases, decision 0129).
//!
//! A client that announces a Topic Alias Maximum in CONNECT lets the broker
//! name a topic once (topic + alias) and then send the alias alone with an
//! empty topic. [`OutboundAliases`] is this connection's table: at most
//! `min(client's maximum, limits.max_outbound_topic_aliases)` entries, so
//! no alias is ever above the client's maximum [MQTT-3.3.2-9]; when full,
//! the least recently sent topic gives its alias to the new one (LRU). It
//! lives and dies with the connection [MQTT-3.3.2-7]: a reconnect starts
//! empty, and resent (DUP) messages are built without it.
//!
//! Using an alias is two steps, [`OutboundAliases::plan`] then
//! [`OutboundAliases::commit`], so a PUBLISH that is finally not sent (too
//! large for the client) never teaches the table a mapping the client did
//! not learn. It must not decide what is sent, only how the topic is named.

use std::collections::HashMap;
use std::sync::Arc;

use fleetmq_codec::Publish;

/// Topics this short never get an alias: the alias property takes 3 bytes
/// and an aliased PUBLISH still carries the 2-byte length of its empty
/// topic, so a hit saves `topic length - 3` bytes.
const SHORTEST_WORTH_ALIASING: usize = 4;

/// How one PUBLISH names its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasUse {
    /// The client knows this alias: empty topic, alias only.
    Known(u16),
    /// The topic is sent with this alias, which the client (re)learns;
    /// when the table is full the alias was the least recently used one.
    New(u16),
}

/// One alias: the topic it stands for and its place in the recency list.
#[derive(Debug)]
struct Slot {
    topic: Arc<str>,
    /// Alias sent just after this one (0: none, this is the newest).
    newer: u16,
    /// Alias sent just before this one (0: none, this is the oldest).
    older: u16,
}

/// One connection's outbound alias table.
#[derive(Debug)]
pub struct OutboundAliases {
    /// Highest alias this table may use: the client's Topic Alias Maximum
    /// capped by the broker's limit.
    capacity: u16,
    /// Topic to alias, for the lookup on every send.
    by_topic: HashMap<Arc<str>, u16>,
    /// Alias `n` is `slots[n - 1]`; grows to `capacity`, never shrinks.
    slots: Vec<Slot>,
    /// Most recently sent alias (0 while empty).
    newest: u16,
    /// Least recently sent alias, the next to be reused (0 while empty).
    oldest: u16,
    /// The topic of an aliased PUBLISH, shared so a hit allocates nothing.
    empty: Arc<str>,
}

impl OutboundAliases {
    /// The table for a client that announced `client_maximum` (absent or
    /// 0: it accepts no aliases) under the broker's `limit` (0: disabled);
    /// `None`, allocating nothing, when aliases are not to be used.
    pub fn for_client(client_maximum: Option<u16>, limit: u16) -> Option<Box<OutboundAliases>> {
        let capacity = client_maximum?.min(limit);
        (capacity > 0).then(|| {
            Box::new(OutboundAliases {
                capacity,
                by_topic: HashMap::new(),
                slots: Vec::new(),
                newest: 0,
                oldest: 0,
                empty: Arc::from(""),
            })
        })
    }

    /// The most aliases this table uses.
    pub fn capacity(&self) -> u16 {
        self.capacity
    }

    /// How a PUBLISH on `topic` would name it, without changing the table;
    /// `None` for topics too short to gain from an alias.
    pub fn plan(&self, topic: &str) -> Option<AliasUse> {
        if topic.len() < SHORTEST_WORTH_ALIASING {
            return None;
        }
        if let Some(&alias) = self.by_topic.get(topic) {
            return Some(AliasUse::Known(alias));
        }
        if self.slots.len() < usize::from(self.capacity) {
            // Below capacity, so the next number fits in u16.
            let next = u16::try_from(self.slots.len() + 1).ok()?;
            return Some(AliasUse::New(next));
        }
        (self.oldest != 0).then_some(AliasUse::New(self.oldest))
    }

    /// Writes the planned naming into `publish`.
    pub fn apply(&self, publish: &mut Publish, planned: AliasUse) {
        match planned {
            AliasUse::Known(alias) => {
                publish.topic = Arc::clone(&self.empty);
                publish.properties.topic_alias = Some(alias);
            }
            AliasUse::New(alias) => publish.properties.topic_alias = Some(alias),
        }
    }

    /// Records that a PUBLISH on `topic` named as `planned` was sent.
    pub fn commit(&mut self, topic: &Arc<str>, planned: AliasUse) {
        match planned {
            AliasUse::Known(alias) => self.touch(alias),
            AliasUse::New(alias) => {
                let index = usize::from(alias) - 1;
                if let Some(slot) = self.slots.get_mut(index) {
                    let old = std::mem::replace(&mut slot.topic, Arc::clone(topic));
                    self.by_topic.remove(&old);
                    self.touch(alias);
                } else {
                    self.slots.push(Slot {
                        topic: Arc::clone(topic),
                        newer: 0,
                        older: 0,
                    });
                    self.link_newest(alias);
                }
                self.by_topic.insert(Arc::clone(topic), alias);
            }
        }
    }

    /// Moves `alias` to the newest end of the recency list.
    fn touch(&mut self, alias: u16) {
        if self.newest == alias {
            return;
        }
        let (newer, older) = match self.slot(alias) {
            Some(slot) => (slot.newer, slot.older),
            None => return,
        };
        // Unlink: not the newest, so `newer` is a real alias.
        if let Some(slot) = self.slot_mut(newer) {
            slot.older = older;
        }
        match self.slot_mut(older) {
            Some(slot) => slot.newer = newer,
            None => self.oldest = newer,
        }
        self.link_newest(alias);
    }

    /// Puts an unlinked `alias` at the newest end.
    fn link_newest(&mut self, alias: u16) {
        let previous = self.newest;
        if let Some(slot) = self.slot_mut(previous) {
            slot.newer = alias;
        }
        if let Some(slot) = self.slot_mut(alias) {
            slot.older = previous;
            slot.newer = 0;
        }
        self.newest = alias;
        if self.oldest == 0 {
            self.oldest = alias;
        }
    }

    fn slot(&self, alias: u16) -> Option<&Slot> {
        self.slots.get(usize::from(alias).checked_sub(1)?)
    }

    fn slot_mut(&mut self, alias: u16) -> Option<&mut Slot> {
        self.slots.get_mut(usize::from(alias).checked_sub(1)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn send(table: &mut OutboundAliases, topic: &str) -> Option<AliasUse> {
        let topic: Arc<str> = Arc::from(topic);
        let planned = table.plan(&topic)?;
        table.commit(&topic, planned);
        Some(planned)
    }

    #[test]
    fn nothing_without_a_client_maximum_or_with_the_limit_at_zero() {
        assert!(OutboundAliases::for_client(None, 10).is_none());
        assert!(OutboundAliases::for_client(Some(0), 10).is_none());
        assert!(OutboundAliases::for_client(Some(5), 0).is_none());
        assert_eq!(
            OutboundAliases::for_client(Some(5), 10).unwrap().capacity(),
            5
        );
        assert_eq!(
            OutboundAliases::for_client(Some(65535), 10)
                .unwrap()
                .capacity(),
            10
        );
    }

    #[test]
    fn least_recently_sent_topic_gives_its_alias_away() {
        let mut table = OutboundAliases::for_client(Some(2), 10).unwrap();
        assert_eq!(send(&mut table, "lab/a"), Some(AliasUse::New(1)));
        assert_eq!(send(&mut table, "lab/b"), Some(AliasUse::New(2)));
        assert_eq!(send(&mut table, "lab/a"), Some(AliasUse::Known(1)));
        // lab/b is now the oldest: lab/c takes alias 2.
        assert_eq!(send(&mut table, "lab/c"), Some(AliasUse::New(2)));
        assert_eq!(send(&mut table, "lab/a"), Some(AliasUse::Known(1)));
        assert_eq!(send(&mut table, "lab/c"), Some(AliasUse::Known(2)));
        // lab/a is now the oldest.
        assert_eq!(send(&mut table, "lab/b"), Some(AliasUse::New(1)));
        assert_eq!(send(&mut table, "lab/c"), Some(AliasUse::Known(2)));
        assert_eq!(send(&mut table, "lab/a"), Some(AliasUse::New(1)));
        assert_eq!(table.by_topic.len(), 2);
        assert_eq!(table.slots.len(), 2);
    }

    #[test]
    fn a_plan_not_committed_changes_nothing() {
        let mut table = OutboundAliases::for_client(Some(1), 10).unwrap();
        assert_eq!(table.plan("lab/a"), Some(AliasUse::New(1)));
        assert_eq!(table.plan("lab/a"), Some(AliasUse::New(1)));
        assert_eq!(send(&mut table, "lab/b"), Some(AliasUse::New(1)));
        assert_eq!(table.plan("lab/a"), Some(AliasUse::New(1)));
        assert_eq!(table.plan("lab/b"), Some(AliasUse::Known(1)));
    }

    #[test]
    fn short_topics_get_no_alias() {
        let mut table = OutboundAliases::for_client(Some(4), 10).unwrap();
        assert_eq!(send(&mut table, "a/b"), None);
        assert_eq!(send(&mut table, "a/bc"), Some(AliasUse::New(1)));
    }

    #[test]
    fn recency_list_stays_whole_under_a_long_mixed_sequence() {
        let mut table = OutboundAliases::for_client(Some(5), 5).unwrap();
        let mut model: Vec<String> = Vec::new(); // oldest first
        for step in 0..2000u32 {
            let topic = format!("lab/{}", (step * 7 + step / 3) % 9);
            let planned = send(&mut table, &topic).unwrap();
            let known = model.iter().position(|t| *t == topic);
            match (planned, known) {
                (AliasUse::Known(alias), Some(at)) => {
                    assert_eq!(*table.slot(alias).unwrap().topic, *topic);
                    model.remove(at);
                }
                (AliasUse::New(_), None) => {
                    if model.len() == 5 {
                        model.remove(0);
                    }
                }
                other => panic!("step {step}: {other:?}"),
            }
            model.push(topic);
            let mut walk = Vec::new();
            let mut alias = table.oldest;
            while alias != 0 {
                let slot = table.slot(alias).unwrap();
                walk.push(slot.topic.to_string());
                alias = slot.newer;
            }
            assert_eq!(walk, model, "step {step}");
        }
    }
}
