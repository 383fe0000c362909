//! Which `$share` groups this cluster node pulls for (decision 0182), so
//! that the SUBACK of a group's first member waits until the group's
//! consumer serves this node: an acknowledged shared subscription then
//! gets what is published after it, as on one broker.
//!
//! The broker's shared-group task reports each NATS subject it pulls
//! ([`SharedReadiness::subject_ready`]); a SUBSCRIBE gets a cell that is
//! settled once every group it names is served, or after a bound
//! ([`SharedReadiness::expire`]): a SUBACK never waits for ever, and a
//! message published meanwhile is still delivered (the consumer starts
//! before the group was seen). No IO here; one short lock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ClusterAck;
use crate::router::SharedGroupKey;

/// A SUBACK's cell and how many of its groups are not served yet.
#[derive(Debug)]
struct Waiter {
    cell: Arc<ClusterAck>,
    remaining: AtomicUsize,
    since: Instant,
}

#[derive(Debug, Default)]
struct Group {
    /// NATS subjects of the group pulled now.
    pulling: HashSet<String>,
    /// True once every subject of the group is pulled.
    served: bool,
    waiters: Vec<Arc<Waiter>>,
}

/// The served groups and the SUBACKs waiting for them.
#[derive(Debug, Default)]
pub struct SharedReadiness {
    groups: Mutex<HashMap<SharedGroupKey, Group>>,
}

impl SharedReadiness {
    /// A cell for a SUBACK naming the shared groups `groups` (share name,
    /// filter); `None` when all are served already. Each cell is settled
    /// through `settle` (stored: never a refusal).
    pub fn waiter(&self, groups: &[(&str, &str)]) -> Option<Arc<ClusterAck>> {
        let Ok(mut table) = self.groups.lock() else {
            return None;
        };
        let missing: Vec<SharedGroupKey> = groups
            .iter()
            .filter(|(group, filter)| {
                !table
                    .get(&(Box::from(*group), Box::from(*filter)))
                    .is_some_and(|g| g.served)
            })
            .map(|(group, filter)| (Box::from(*group), Box::from(*filter)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return None;
        }
        let waiter = Arc::new(Waiter {
            cell: Arc::new(ClusterAck::default()),
            remaining: AtomicUsize::new(missing.len()),
            since: Instant::now(),
        });
        for key in missing {
            table
                .entry(key)
                .or_default()
                .waiters
                .push(Arc::clone(&waiter));
        }
        Some(Arc::clone(&waiter.cell))
    }

    /// Subject `subject` of group `group` of `filter` is pulled
    /// (`pulling`) or not any more; the group is served while all of its
    /// `subjects` are. Returns the cells to settle as stored.
    pub fn subject_ready(
        &self,
        group: &str,
        filter: &str,
        subject: &str,
        subjects: usize,
        pulling: bool,
    ) -> Vec<Arc<ClusterAck>> {
        let Ok(mut table) = self.groups.lock() else {
            return Vec::new();
        };
        let key = (Box::from(group), Box::from(filter));
        let entry = table.entry(key.clone()).or_default();
        if pulling {
            entry.pulling.insert(subject.to_owned());
        } else {
            entry.pulling.remove(subject);
        }
        entry.served = entry.pulling.len() >= subjects;
        let mut done = Vec::new();
        if entry.served {
            for waiter in entry.waiters.drain(..) {
                if waiter.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    done.push(Arc::clone(&waiter.cell));
                }
            }
        }
        if entry.pulling.is_empty() && entry.waiters.is_empty() {
            table.remove(&key);
        }
        done
    }

    /// The cells that waited longer than `bound`, removed everywhere.
    pub fn expire(&self, bound: Duration) -> Vec<Arc<ClusterAck>> {
        let Ok(mut table) = self.groups.lock() else {
            return Vec::new();
        };
        let mut done: Vec<Arc<ClusterAck>> = Vec::new();
        for group in table.values_mut() {
            group.waiters.retain(|waiter| {
                if waiter.since.elapsed() < bound {
                    return true;
                }
                if !done.iter().any(|cell| Arc::ptr_eq(cell, &waiter.cell)) {
                    done.push(Arc::clone(&waiter.cell));
                }
                false
            });
        }
        table.retain(|_, group| !group.pulling.is_empty() || !group.waiters.is_empty());
        done
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_suback_waits_for_every_subject_of_every_new_group() {
        let ready = SharedReadiness::default();
        let Some(cell) = ready.waiter(&[("g", "a/#"), ("h", "b")]) else {
            panic!("nothing is served yet");
        };
        assert!(ready
            .subject_ready("g", "a/#", "fmq.m.a", 2, true)
            .is_empty());
        assert!(
            ready
                .subject_ready("g", "a/#", "fmq.m.a.>", 2, true)
                .is_empty(),
            "h is not served"
        );
        let done = ready.subject_ready("h", "b", "fmq.m.b", 1, true);
        assert_eq!(done.len(), 1);
        assert!(Arc::ptr_eq(&done[0], &cell));
        // Served groups give no cell; a group that stops is waited for again.
        assert!(ready.waiter(&[("g", "a/#")]).is_none());
        ready.subject_ready("h", "b", "fmq.m.b", 1, false);
        assert!(ready.waiter(&[("h", "b")]).is_some());
    }

    #[test]
    fn a_waiter_is_let_go_after_the_bound() {
        let ready = SharedReadiness::default();
        let Some(cell) = ready.waiter(&[("g", "x")]) else {
            panic!("nothing is served yet");
        };
        assert!(ready.expire(Duration::from_secs(60)).is_empty());
        let done = ready.expire(Duration::ZERO);
        assert_eq!(done.len(), 1);
        assert!(Arc::ptr_eq(&done[0], &cell));
        assert!(ready.expire(Duration::ZERO).is_empty());
    }
}
