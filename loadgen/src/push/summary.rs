//! The push part of the run summary: publishes, deliveries expected and received, and what went
//! wrong on the way, from the counts merged over every core and process.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::counts::PushCounts;
use crate::plan::{Publishing, PushPlan};

/// Push figures of a run. Field names are a stable interface for scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSummary {
    /// Subscriber connections that were established.
    pub subscribers: u64,
    /// Topics published to.
    pub topics: u32,
    /// `http` or `ws`.
    pub publish_via: String,
    /// WebSocket publisher connections (ws).
    pub publishers: Option<u64>,
    /// Most publishes per request (http).
    pub publish_batch: Option<usize>,
    /// Target publishes per second.
    pub publish_rate: f64,
    /// Seconds subscribers kept receiving after publishing stopped.
    pub drain_s: f64,
    /// Publishes the schedule called for (warmup and window).
    pub publishes_scheduled: u64,
    /// Publishes written to the server.
    pub publishes_sent: u64,
    /// Publishes the server acknowledged.
    pub publishes_acked: u64,
    /// Publishes that failed (by reason among the errors).
    pub publishes_failed: u64,
    /// Each acknowledged publish once for every subscriber of its topic.
    pub deliveries_expected: u64,
    /// Message frames subscribers received by the end of the drain, duplicates included.
    pub deliveries_received: u64,
    /// Distinct messages received.
    pub deliveries_unique: u64,
    /// Deliveries expected that never arrived.
    pub lost: u64,
    /// Of those, sequences missing inside what a subscriber received, or given up by a `gap`
    /// notice.
    pub lost_in_gaps: u64,
    /// Messages received twice (same topic, epoch and sequence).
    pub duplicated: u64,
    /// Messages that arrived after a higher sequence of their topic and epoch.
    pub out_of_order: u64,
    /// Distinct messages beyond those expected (publishes whose acknowledgement was lost, or
    /// other publishers).
    pub deliveries_unexpected: u64,
    /// `gap` notices received.
    pub gaps: u64,
    /// Times a subscription's epoch changed.
    pub epoch_changes: u64,
}

impl PushSummary {
    /// The summary of a run of `plan` that counted `counts`.
    pub fn build(plan: &PushPlan, counts: &PushCounts) -> PushSummary {
        let (publish_via, publishers, publish_batch) = match &plan.publishing {
            Publishing::Http(http) => ("http", None, Some(http.batch)),
            Publishing::Ws(n) => ("ws", Some(*n), None),
        };
        let seq = &counts.seq;
        PushSummary {
            subscribers: counts.subscribers.iter().sum(),
            topics: plan.topics,
            publish_via: publish_via.to_string(),
            publishers,
            publish_batch,
            publish_rate: plan.rate,
            drain_s: plan.drain.as_secs_f64(),
            publishes_scheduled: counts.scheduled,
            publishes_sent: counts.sent,
            publishes_acked: counts.acked_total(),
            publishes_failed: counts.failed,
            deliveries_expected: counts.expected(),
            deliveries_received: seq.received,
            deliveries_unique: seq.unique(),
            lost: counts.lost(),
            lost_in_gaps: seq.lost_in_gaps,
            duplicated: seq.duplicated,
            out_of_order: seq.out_of_order,
            deliveries_unexpected: counts.unexpected(),
            gaps: seq.gaps,
            epoch_changes: seq.epoch_changes,
        }
    }

    /// The human-readable lines, indented like the rest of the report.
    pub fn human(&self, out: &mut String) {
        let via = match (self.publishers, self.publish_batch) {
            (Some(n), _) => format!("ws, {n} publisher connections"),
            (None, Some(b)) if b > 1 => format!("http, batches of up to {b}"),
            _ => "http".to_string(),
        };
        let _ = writeln!(out, "  subscribers   {} on {} topics", self.subscribers, self.topics);
        let _ = writeln!(
            out,
            "  publishes     {} scheduled at {}/s ({via}), {} sent, {} acked, {} failed",
            self.publishes_scheduled,
            self.publish_rate,
            self.publishes_sent,
            self.publishes_acked,
            self.publishes_failed
        );
        let _ = writeln!(
            out,
            "  deliveries    {} expected, {} received ({} distinct, {} unexpected) by the end of a {:.3} s drain",
            self.deliveries_expected,
            self.deliveries_received,
            self.deliveries_unique,
            self.deliveries_unexpected,
            self.drain_s
        );
        let _ = writeln!(
            out,
            "  faults        lost {} ({} in seq gaps), duplicated {}, out of order {}, gap notices {}, epoch changes {}",
            self.lost, self.lost_in_gaps, self.duplicated, self.out_of_order, self.gaps, self.epoch_changes
        );
    }
}
