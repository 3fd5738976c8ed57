//! One core's subscribers: for each topic, the connections of this core subscribed to it, and
//! for each connection, its topics. Only its own core touches it, so fan-out takes no lock.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use slab::Slab;

use super::envelope::Epoch;
use crate::api::ConnId;

/// Messages up to this position were already given to the subscriber when it joined
/// (replayed, or before its resume point): later copies still in the inbox are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipThrough {
    /// The epoch the position belongs to.
    pub epoch: Epoch,
    /// The last sequence number already accounted for.
    pub seq: u64,
}

impl SkipThrough {
    /// Whether message `seq` of `epoch` was already accounted for.
    pub fn covers(&self, epoch: Epoch, seq: u64) -> bool {
        epoch == self.epoch && seq <= self.seq
    }
}

/// The subscribers of one topic on this core.
#[derive(Debug)]
pub struct TopicSubscribers {
    /// The topic.
    pub name: Arc<str>,
    /// The subscribers, each with what it already has.
    pub members: IndexMap<ConnId, SkipThrough>,
    /// The epoch of the last message fanned out (for gap notices).
    pub epoch: Epoch,
}

/// One core's topic table.
#[derive(Debug, Default)]
pub struct Subscribers {
    topics: Slab<TopicSubscribers>,
    by_name: HashMap<Arc<str>, usize>,
    by_conn: HashMap<ConnId, Vec<usize>>,
}

/// What [`Subscribers::join`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Subscribed.
    Joined,
    /// It was subscribed already (the resume point was updated).
    Already,
    /// It is subscribed to the most topics allowed.
    TooMany,
}

impl Subscribers {
    /// Subscribes `id` to `topic` (at most `max_per_conn` topics per connection).
    pub fn join(&mut self, topic: &str, id: ConnId, skip: SkipThrough, max_per_conn: usize) -> JoinOutcome {
        let index = self.by_name.get(topic).copied();
        if let Some(members) = index.map(|i| &mut self.topics[i].members) {
            if let Some(existing) = members.get_mut(&id) {
                *existing = skip;
                return JoinOutcome::Already;
            }
        }
        let mine = self.by_conn.entry(id).or_default();
        if mine.len() >= max_per_conn {
            return JoinOutcome::TooMany;
        }
        let index = index.unwrap_or_else(|| {
            let name: Arc<str> = topic.into();
            let index = self.topics.insert(TopicSubscribers {
                name: name.clone(),
                members: IndexMap::new(),
                epoch: skip.epoch,
            });
            self.by_name.insert(name, index);
            index
        });
        mine.push(index);
        self.topics[index].members.insert(id, skip);
        JoinOutcome::Joined
    }

    /// Unsubscribes `id` from `topic`; returns whether it was subscribed and whether the
    /// topic has no subscriber left on this core.
    pub fn leave(&mut self, topic: &str, id: ConnId) -> (bool, bool) {
        let Some(&index) = self.by_name.get(topic) else {
            return (false, false);
        };
        if let Some(mine) = self.by_conn.get_mut(&id) {
            mine.retain(|&i| i != index);
            if mine.is_empty() {
                self.by_conn.remove(&id);
            }
        }
        let was = self.topics[index].members.swap_remove(&id).is_some();
        (was, self.drop_if_empty(index))
    }

    /// Unsubscribes `id` from everything (it closed); returns the topics left without
    /// subscribers on this core.
    pub fn leave_all(&mut self, id: ConnId) -> Vec<Arc<str>> {
        let mut emptied = Vec::new();
        for index in self.by_conn.remove(&id).unwrap_or_default() {
            self.topics[index].members.swap_remove(&id);
            let name = self.topics[index].name.clone();
            if self.drop_if_empty(index) {
                emptied.push(name);
            }
        }
        emptied
    }

    /// The topic's subscribers here, with its slot (stable while it has subscribers).
    pub fn topic_mut(&mut self, topic: &str) -> Option<(usize, &mut TopicSubscribers)> {
        let index = *self.by_name.get(topic)?;
        Some((index, &mut self.topics[index]))
    }

    /// The topic in slot `index`.
    pub fn by_index(&self, index: usize) -> Option<&TopicSubscribers> {
        self.topics.get(index)
    }

    /// How many topics `id` is subscribed to.
    pub fn count_of(&self, id: ConnId) -> usize {
        self.by_conn.get(&id).map_or(0, Vec::len)
    }

    fn drop_if_empty(&mut self, index: usize) -> bool {
        if !self.topics[index].members.is_empty() {
            return false;
        }
        let gone = self.topics.remove(index);
        self.by_name.remove(&gone.name);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKIP: SkipThrough = SkipThrough {
        epoch: Epoch(1),
        seq: 0,
    };

    #[test]
    fn joins_and_leaves_keep_both_directions_in_step() {
        let mut subs = Subscribers::default();
        let (a, b) = (ConnId::new(0, 1, 1), ConnId::new(0, 2, 2));
        assert_eq!(subs.join("t", a, SKIP, 2), JoinOutcome::Joined);
        assert_eq!(subs.join("t", b, SKIP, 2), JoinOutcome::Joined);
        assert_eq!(subs.join("t", a, SKIP, 2), JoinOutcome::Already);
        assert_eq!(subs.join("u", a, SKIP, 2), JoinOutcome::Joined);
        assert_eq!(subs.join("v", a, SKIP, 2), JoinOutcome::TooMany);
        assert_eq!(subs.count_of(a), 2);
        assert_eq!(subs.topic_mut("t").unwrap().1.members.len(), 2);
        assert_eq!(subs.leave("t", b), (true, false));
        assert_eq!(subs.leave("t", b), (false, false));
        let mut emptied = subs.leave_all(a);
        emptied.sort();
        assert_eq!(emptied, vec![Arc::from("t"), Arc::from("u")]);
        assert!(subs.topic_mut("t").is_none());
        assert_eq!(subs.count_of(a), 0);
    }

    #[test]
    fn skip_points_cover_only_their_epoch() {
        let skip = SkipThrough {
            epoch: Epoch(3),
            seq: 10,
        };
        assert!(skip.covers(Epoch(3), 10));
        assert!(!skip.covers(Epoch(3), 11));
        assert!(!skip.covers(Epoch(4), 1));
    }
}
