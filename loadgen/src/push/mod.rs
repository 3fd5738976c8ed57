//! The `push` scenario (README.md, "Push mode"): subscriber connections, each subscribed to one
//! topic with `?topics=` on its upgrade URL, receive what publishers send to those topics.
//!
//! Publishers follow an open-loop schedule over the whole run, split into units: one per lane
//! for HTTP ([`http`]), one per publisher connection for WebSocket ([`ws`]). Every payload
//! carries its intended publish time ([`payload`], [`clock`]); each subscriber parses the
//! envelopes ([`envelope`]), tracks sequence numbers ([`seq`]) and records latency
//! ([`subscriber`]). Cores count per topic ([`counts`]); expected deliveries and losses are
//! worked out over the merged counts of every process ([`summary`]).

pub mod clock;
pub mod counts;
pub mod envelope;
pub mod http;
pub mod payload;
pub mod publish;
pub mod seq;
pub mod subscriber;
pub mod summary;
pub mod ws;

use std::rc::Rc;

use monoio::task::JoinHandle;

use crate::engine::Engine;
use crate::plan::Publishing;
use publish::Unit;

/// The name of topic number `n`.
pub fn topic_name(n: u32) -> String {
    format!("t{n}")
}

/// The number of the topic named `name`, when it is one of ours.
pub fn topic_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('t')?;
    if digits.starts_with('+') || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.parse().ok()
}

/// Starts this lane's publishers at the go signal; they stop by themselves when the window ends
/// (HTTP: once its last requests are answered).
pub fn start(engine: &Rc<Engine>) -> Vec<JoinHandle<()>> {
    let plan = &engine.plan;
    let push = plan.push.as_ref().expect("a push run");
    let lane = engine.lane;
    match push.publishing {
        Publishing::Http(_) => {
            let outbox = Rc::new(http::Outbox::default());
            let unit = Unit {
                index: lane.index as u64,
                count: lane.total as u64,
            };
            let pacer = {
                let (engine, outbox) = (engine.clone(), outbox.clone());
                monoio::spawn(async move { publish::pace(&engine, unit, |p| outbox.push(p)).await })
            };
            vec![pacer, monoio::spawn(http::run(engine.clone(), outbox))]
        }
        Publishing::Ws(publishers) => lane
            .conns(plan.conns_total)
            .enumerate()
            .filter(|&(_, global)| global >= push.subscribers)
            .map(|(slot, global)| {
                let unit = Unit {
                    index: global - push.subscribers,
                    count: publishers,
                };
                let engine = engine.clone();
                monoio::spawn(async move { publish::pace(&engine, unit, |p| ws::deliver(&engine, slot, p)).await })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_round_trip() {
        for n in [0, 7, 10, u32::MAX] {
            assert_eq!(topic_number(&topic_name(n)), Some(n));
        }
        for other in ["t", "x1", "t01", "t+1", "t-1", "t1.5", "t99999999999"] {
            assert_eq!(topic_number(other), None, "{other}");
        }
    }
}
