//! A core's push counts, in the form workers send to the parent, and their merge.
//!
//! Counts are kept per topic so the expected deliveries can be worked out after the merge:
//! every acknowledged publish to a topic is due once to each of that topic's subscribers,
//! wherever (core, process) the publisher and the subscribers ran.

use serde::{Deserialize, Serialize};

use super::seq::SeqCounts;

/// What one core (or, merged, the whole run) counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushCounts {
    /// Per topic: subscriptions that were established (counted when they end).
    pub subscribers: Vec<u64>,
    /// Per topic: publishes the server acknowledged.
    pub acked: Vec<u64>,
    /// Per topic: distinct messages its subscribers received.
    pub delivered: Vec<u64>,
    /// Sequence accounting over every subscription.
    pub seq: SeqCounts,
    /// Publishes the schedule called for.
    pub scheduled: u64,
    /// Publishes written to the server.
    pub sent: u64,
    /// Publishes that failed; each is also counted as an error by reason.
    pub failed: u64,
}

impl PushCounts {
    /// Empty counts for `topics` topics.
    pub fn new(topics: u32) -> PushCounts {
        let zeros = vec![0; topics as usize];
        PushCounts {
            subscribers: zeros.clone(),
            acked: zeros.clone(),
            delivered: zeros,
            ..PushCounts::default()
        }
    }

    /// A subscription to `topic` ended having seen `seq`.
    pub fn subscription_ended(&mut self, topic: u32, seq: &SeqCounts) {
        self.subscribers[topic as usize] += 1;
        self.delivered[topic as usize] += seq.unique();
        self.seq.add(seq);
    }

    /// Adds `other` (counts over the same topics) into these counts.
    pub fn add(&mut self, other: &PushCounts) {
        for (into, from) in [
            (&mut self.subscribers, &other.subscribers),
            (&mut self.acked, &other.acked),
            (&mut self.delivered, &other.delivered),
        ] {
            for (a, b) in into.iter_mut().zip(from) {
                *a += b;
            }
        }
        self.seq.add(&other.seq);
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.failed += other.failed;
    }

    /// Per topic: (deliveries expected, distinct deliveries received).
    fn per_topic(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.acked
            .iter()
            .zip(&self.subscribers)
            .zip(&self.delivered)
            .map(|((acked, subs), got)| (acked * subs, *got))
    }

    /// Deliveries due: each acknowledged publish once to every subscriber of its topic.
    pub fn expected(&self) -> u64 {
        self.per_topic().map(|(due, _)| due).sum()
    }

    /// Deliveries due that never arrived, over the topics where fewer arrived than were due.
    pub fn lost(&self) -> u64 {
        self.per_topic().map(|(due, got)| due.saturating_sub(got)).sum()
    }

    /// Distinct deliveries beyond those due, over the topics where more arrived (publishes
    /// delivered although their acknowledgement was lost, or publishers other than this run).
    pub fn unexpected(&self) -> u64 {
        self.per_topic().map(|(due, got)| got.saturating_sub(due)).sum()
    }

    /// Publishes the server acknowledged.
    pub fn acked_total(&self) -> u64 {
        self.acked.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_and_lost_are_worked_out_per_topic_after_the_merge() {
        // Core A publishes 10 to t0 and 4 to t1; core B holds the subscribers.
        let mut a = PushCounts::new(2);
        a.acked = vec![10, 4];
        a.scheduled = 15;
        a.sent = 14;
        a.failed = 1;
        let mut b = PushCounts::new(2);
        let full = SeqCounts {
            received: 10,
            ..SeqCounts::default()
        };
        b.subscription_ended(0, &full);
        b.subscription_ended(
            0,
            &SeqCounts {
                received: 9,
                duplicated: 1,
                ..SeqCounts::default()
            },
        );
        b.subscription_ended(
            1,
            &SeqCounts {
                received: 5,
                ..SeqCounts::default()
            },
        );
        let mut run = PushCounts::new(2);
        run.add(&a);
        run.add(&b);
        assert_eq!(run.subscribers, [2, 1]);
        assert_eq!(run.expected(), 2 * 10 + 4);
        assert_eq!(run.lost(), 2, "the second t0 subscriber got 8 distinct of 10");
        assert_eq!(run.unexpected(), 1, "t1 got one more than was acknowledged");
        assert_eq!(run.acked_total(), 14);
        assert_eq!((run.scheduled, run.sent, run.failed), (15, 14, 1));
        assert_eq!((run.seq.received, run.seq.duplicated), (24, 1));
    }
}
