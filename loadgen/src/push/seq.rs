//! Sequence accounting for one subscription: which sequence numbers of a topic arrived, in
//! what order, and which never did.
//!
//! Per epoch the tracker keeps the range of sequences seen (`low..next`) and the holes in it,
//! as sorted ranges; a hole shrinks when its message turns up late. Holes left at the end (or
//! given up by a `gap` notice) are losses inside the stream; messages after the last one
//! seen are not visible here and are counted against the publishes at the end of the run.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// What one or more subscribers saw of their topics' sequence numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqCounts {
    /// Message frames received, duplicates included.
    pub received: u64,
    /// Messages whose sequence had been received before (same epoch).
    pub duplicated: u64,
    /// First arrivals of a sequence lower than the highest seen (same epoch).
    pub out_of_order: u64,
    /// Sequences inside the seen range that never arrived, or that a `gap` notice gave up.
    pub lost_in_gaps: u64,
    /// `gap` notices received.
    pub gaps: u64,
    /// Times a subscription's epoch changed.
    pub epoch_changes: u64,
}

impl SeqCounts {
    /// Distinct messages received.
    pub fn unique(&self) -> u64 {
        self.received - self.duplicated
    }

    /// Adds `other` into these counts.
    pub fn add(&mut self, other: &SeqCounts) {
        self.received += other.received;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.lost_in_gaps += other.lost_in_gaps;
        self.gaps += other.gaps;
        self.epoch_changes += other.epoch_changes;
    }
}

/// How a message relates to those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Higher than every sequence seen so far (or the first of an epoch).
    InOrder,
    /// The first arrival of a sequence lower than the highest seen.
    Late,
    /// Seen before.
    Duplicate,
}

/// The state of one subscription's sequence numbers.
#[derive(Debug, Default)]
pub struct SeqTracker {
    epoch: Option<u64>,
    /// Lowest sequence accounted for in this epoch.
    low: u64,
    /// One past the highest sequence accounted for.
    next: u64,
    /// Sequences in `low..next` not received yet: sorted, disjoint, never empty ranges.
    holes: Vec<Range<u64>>,
    counts: SeqCounts,
}

impl SeqTracker {
    /// Accounts for message `seq` of `epoch`.
    pub fn record(&mut self, epoch: u64, seq: u64) -> Arrival {
        self.counts.received += 1;
        if self.epoch != Some(epoch) {
            self.begin_epoch(epoch, seq, seq + 1);
            return Arrival::InOrder;
        }
        if seq >= self.next {
            self.hole(self.next..seq, self.holes.len());
            self.next = seq + 1;
            return Arrival::InOrder;
        }
        if seq < self.low {
            self.hole(seq + 1..self.low, 0);
            self.low = seq;
        } else if let Some(i) = self.holes.iter().position(|h| h.contains(&seq)) {
            let hole = self.holes.remove(i);
            self.hole(seq + 1..hole.end, i);
            self.hole(hole.start..seq, i);
        } else {
            self.counts.duplicated += 1;
            return Arrival::Duplicate;
        }
        self.counts.out_of_order += 1;
        Arrival::Late
    }

    /// A `gap` notice: sequences of `epoch` before `next` will not come.
    pub fn gap(&mut self, epoch: u64, next: u64) {
        self.counts.gaps += 1;
        if self.epoch != Some(epoch) {
            self.begin_epoch(epoch, next, next);
            return;
        }
        let mut given_up = 0;
        self.holes.retain_mut(|h| {
            given_up += h.end.min(next).saturating_sub(h.start);
            h.start = h.start.max(next);
            !h.is_empty()
        });
        if self.next < next {
            given_up += next - self.next;
            self.next = next;
        }
        self.counts.lost_in_gaps += given_up;
    }

    /// The counts so far, holes still open counted as lost.
    pub fn finish(&self) -> SeqCounts {
        SeqCounts {
            lost_in_gaps: self.counts.lost_in_gaps + self.open_holes(),
            ..self.counts
        }
    }

    fn begin_epoch(&mut self, epoch: u64, low: u64, next: u64) {
        if self.epoch.is_some() {
            self.counts.epoch_changes += 1;
            self.counts.lost_in_gaps += self.open_holes();
            self.holes.clear();
        }
        (self.epoch, self.low, self.next) = (Some(epoch), low, next);
    }

    fn hole(&mut self, range: Range<u64>, at: usize) {
        if !range.is_empty() {
            self.holes.insert(at, range);
        }
    }

    fn open_holes(&self) -> u64 {
        self.holes.iter().map(|h| h.end - h.start).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[(u64, u64)]) -> (Vec<Arrival>, SeqCounts) {
        let mut tracker = SeqTracker::default();
        let arrivals = events.iter().map(|&(epoch, seq)| tracker.record(epoch, seq)).collect();
        (arrivals, tracker.finish())
    }

    #[test]
    fn an_unbroken_stream_counts_nothing_wrong() {
        let (arrivals, counts) = run(&(41..=50).map(|s| (7, s)).collect::<Vec<_>>());
        assert!(arrivals.iter().all(|&a| a == Arrival::InOrder));
        assert_eq!(
            counts,
            SeqCounts {
                received: 10,
                ..SeqCounts::default()
            }
        );
        assert_eq!(counts.unique(), 10);
    }

    #[test]
    fn a_hole_that_stays_open_is_a_loss() {
        let (_, counts) = run(&[(1, 1), (1, 2), (1, 5), (1, 6)]);
        assert_eq!((counts.received, counts.lost_in_gaps, counts.out_of_order), (4, 2, 0));
    }

    #[test]
    fn a_late_message_fills_its_hole_and_counts_as_out_of_order() {
        use Arrival::*;
        let (arrivals, counts) = run(&[(1, 1), (1, 3), (1, 2), (1, 4), (1, 7), (1, 5), (1, 6)]);
        assert_eq!(arrivals, [InOrder, InOrder, Late, InOrder, InOrder, Late, Late]);
        assert_eq!(counts.out_of_order, 3);
        assert_eq!(counts.lost_in_gaps, 0);
        assert_eq!(counts.duplicated, 0);
        // A message older than the first one seen opens a hole below it.
        let (arrivals, counts) = run(&[(1, 10), (1, 7), (1, 9)]);
        assert_eq!(arrivals, [InOrder, Late, Late]);
        assert_eq!((counts.out_of_order, counts.lost_in_gaps), (2, 1));
    }

    #[test]
    fn a_second_copy_is_a_duplicate_wherever_it_falls() {
        use Arrival::*;
        let (arrivals, counts) = run(&[(1, 1), (1, 2), (1, 2), (1, 4), (1, 1), (1, 3), (1, 3)]);
        assert_eq!(
            arrivals,
            [InOrder, InOrder, Duplicate, InOrder, Duplicate, Late, Duplicate]
        );
        assert_eq!((counts.duplicated, counts.out_of_order, counts.lost_in_gaps), (3, 1, 0));
        assert_eq!(counts.unique(), 4);
    }

    #[test]
    fn sequences_compare_only_within_an_epoch() {
        let (arrivals, counts) = run(&[(1, 5), (1, 7), (2, 1), (2, 2), (2, 1)]);
        assert_eq!(arrivals[2], Arrival::InOrder);
        assert_eq!(counts.epoch_changes, 1);
        assert_eq!(counts.lost_in_gaps, 1, "seq 6 of epoch 1 never came");
        assert_eq!(counts.duplicated, 1);
    }

    #[test]
    fn a_gap_notice_gives_up_what_is_missing_before_next() {
        let mut tracker = SeqTracker::default();
        for seq in [1, 2, 4] {
            tracker.record(1, seq);
        }
        tracker.gap(1, 9);
        assert_eq!(tracker.record(1, 9), Arrival::InOrder);
        assert_eq!(tracker.record(1, 12), Arrival::InOrder);
        let counts = tracker.finish();
        // 3 (a hole) and 5..9 (never sent) given up by the notice; 10 and 11 still open.
        assert_eq!((counts.gaps, counts.lost_in_gaps), (1, 1 + 4 + 2));
        assert_eq!(counts.out_of_order, 0);
        // A notice in a new epoch starts it at `next`.
        let mut tracker = SeqTracker::default();
        tracker.gap(3, 57);
        assert_eq!(tracker.record(3, 57), Arrival::InOrder);
        assert_eq!(tracker.finish().lost_in_gaps, 0);
    }

    #[test]
    fn counts_add_up() {
        let mut a = SeqCounts {
            received: 3,
            duplicated: 1,
            ..SeqCounts::default()
        };
        a.add(&SeqCounts {
            received: 2,
            gaps: 1,
            ..SeqCounts::default()
        });
        assert_eq!((a.received, a.duplicated, a.gaps, a.unique()), (5, 1, 1, 4));
    }
}
