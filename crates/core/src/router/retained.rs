//! The retained message store: the last retained message of each topic.
//!
//! Owns one value per topic name in a tree of topic levels, so that a new
//! subscription's filter walks only the branches it can match instead of
//! scanning every retained topic. It is generic over the stored value and
//! must not know what a message is, when it expires or who may read it:
//! the caller decides, and uses [`RetainedStore::retain`] to drop values.

use std::collections::HashMap;

use super::seams::RetainedIndex;
use super::shrink_if_sparse;
use super::topic::split_level;

/// One topic level; the value is the retained message of the topic that
/// ends here. The root is the level before the first and never holds one.
#[derive(Debug)]
struct Node<V> {
    children: HashMap<Box<str>, Node<V>>,
    value: Option<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            value: None,
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }

    fn count(&self) -> usize {
        1 + self.children.values().map(Node::count).sum::<usize>()
    }
}

/// Retained messages by topic name.
#[derive(Debug)]
pub struct RetainedStore<V> {
    root: Node<V>,
    /// Number of stored values, kept so `len` is O(1).
    values: usize,
}

impl<V> Default for RetainedStore<V> {
    fn default() -> Self {
        RetainedStore {
            root: Node::default(),
            values: 0,
        }
    }
}

impl<V: Clone> RetainedStore<V> {
    pub fn new() -> Self {
        RetainedStore::default()
    }

    /// Number of tree nodes, the root included; walks the whole tree. For
    /// statistics and for tests that churn must not grow memory.
    pub fn node_count(&self) -> usize {
        self.root.count()
    }
}

impl<V: Clone> RetainedIndex<V> for RetainedStore<V> {
    /// Stores `value` as the retained message of `topic` (a valid topic
    /// name), returning the one it replaces.
    fn set(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let previous = node.value.replace(value);
        if previous.is_none() {
            self.values += 1;
        }
        previous
    }

    /// Removes the retained message of `topic` and prunes the levels left
    /// empty.
    fn remove(&mut self, topic: &str) -> Option<V> {
        let removed = remove_at(&mut self.root, topic);
        if removed.is_some() {
            self.values -= 1;
        }
        removed
    }

    fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// Appends the retained messages whose topics match the plain `filter`
    /// (the caller strips `$share/group/`). A wildcard first level does not
    /// match topics starting with `$` [MQTT-4.7.2-1].
    fn matching(&self, filter: &str, out: &mut Vec<V>) {
        let (level, tail) = split_level(filter);
        match level {
            "#" => {
                for (name, child) in &self.root.children {
                    if !name.starts_with('$') {
                        collect_all(child, out);
                    }
                }
            }
            "+" => {
                for (name, child) in &self.root.children {
                    if !name.starts_with('$') {
                        collect_matching(child, tail, out);
                    }
                }
            }
            _ => {
                if let Some(child) = self.root.children.get(level) {
                    collect_matching(child, tail, out);
                }
            }
        }
    }

    /// Keeps only the values for which `keep(topic, value)` is true (for
    /// example drops expired messages), pruning the levels left empty.
    fn retain(&mut self, mut keep: impl FnMut(&str, &V) -> bool) {
        let mut topic = String::new();
        let mut dropped = 0;
        for (level, child) in &mut self.root.children {
            topic.clear();
            topic.push_str(level);
            dropped += retain_below(child, &mut topic, &mut keep);
        }
        self.root.children.retain(|_, child| !child.is_empty());
        shrink_if_sparse(&mut self.root.children);
        self.values -= dropped;
    }

    fn len(&self) -> usize {
        self.values
    }

    fn is_empty(&self) -> bool {
        self.values == 0
    }
}

/// Collects below `node`, the node of the level just matched, the values
/// matching the rest of the filter. Recursion depth is bounded by the
/// filter's level count.
fn collect_matching<V: Clone>(mut node: &Node<V>, mut rest: Option<&str>, out: &mut Vec<V>) {
    loop {
        let Some(current) = rest else {
            out.extend(node.value.iter().cloned());
            return;
        };
        let (level, tail) = split_level(current);
        match level {
            // `a/#` matches `a` itself and everything below it.
            "#" => return collect_all(node, out),
            "+" => {
                for child in node.children.values() {
                    collect_matching(child, tail, out);
                }
                return;
            }
            _ => match node.children.get(level) {
                Some(child) => node = child,
                None => return,
            },
        }
        rest = tail;
    }
}

/// Collects the value of `node` and of every node below it.
fn collect_all<V: Clone>(node: &Node<V>, out: &mut Vec<V>) {
    out.extend(node.value.iter().cloned());
    for child in node.children.values() {
        collect_all(child, out);
    }
}

fn remove_at<V>(node: &mut Node<V>, rest: &str) -> Option<V> {
    let (level, tail) = split_level(rest);
    let child = node.children.get_mut(level)?;
    let removed = match tail {
        Some(tail) => remove_at(child, tail),
        None => child.value.take(),
    };
    if child.is_empty() {
        node.children.remove(level);
        shrink_if_sparse(&mut node.children);
    }
    removed
}

/// Applies `keep` to `node` (whose topic is in `topic`) and everything
/// below it, pruning emptied children; returns how many values it dropped.
fn retain_below<V>(
    node: &mut Node<V>,
    topic: &mut String,
    keep: &mut impl FnMut(&str, &V) -> bool,
) -> usize {
    let mut dropped = 0;
    if let Some(value) = &node.value {
        if !keep(topic, value) {
            node.value = None;
            dropped += 1;
        }
    }
    let length = topic.len();
    for (level, child) in &mut node.children {
        topic.push('/');
        topic.push_str(level);
        dropped += retain_below(child, topic, keep);
        topic.truncate(length);
    }
    node.children.retain(|_, child| !child.is_empty());
    shrink_if_sparse(&mut node.children);
    dropped
}

#[cfg(test)]
mod tests;
