//! `GET /debug/latency?core=N&metric=NAME`: what core N last published for one latency metric,
//! as HdrHistogram's `.hgrm` percentile distribution in microseconds (all cores merged when
//! `core` is left out), for `ringcast-loadgen plot` and HdrHistogram's own plotter.

use crate::api::Response;
use crate::metrics::{hgrm, LatencyHistograms, LatencyMetric, Registry};
use crate::proto::handshake::Request;

/// Answers one `/debug/latency` request: 400 for a bad or missing parameter (with the valid
/// names), 404 for a core that does not exist.
pub(crate) fn debug_latency(registry: &Registry, request: &Request) -> Response {
    match histogram_for(registry, request.query.as_deref().unwrap_or("")) {
        Ok((histograms, metric)) => Response {
            status: 200,
            content_type: "text/plain; charset=utf-8".into(),
            body: hgrm::render_scaled(&histograms.get(metric).histogram, 1000.0).into_bytes(),
        },
        Err((status, reason)) => Response::text(status, format!("{reason}\n")),
    }
}

fn histogram_for(registry: &Registry, query: &str) -> Result<(LatencyHistograms, LatencyMetric), (u16, String)> {
    let (mut core, mut metric) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("core", value)) => core = Some(value),
            Some(("metric", value)) => metric = Some(value),
            _ => return Err((400, format!("unknown parameter {pair:?}; use core=N&metric=NAME"))),
        }
    }
    let names = || {
        LatencyMetric::ALL
            .iter()
            .map(|m| m.short_name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let metric = match metric {
        None => return Err((400, format!("missing metric=NAME; one of {}", names()))),
        Some(name) => LatencyMetric::from_short_name(name)
            .ok_or_else(|| (400, format!("unknown metric {name:?}; one of {}", names())))?,
    };
    let cores = registry.core_count();
    let histograms = match core {
        None => {
            let mut merged = LatencyHistograms::new();
            (0..cores).for_each(|c| merged.add(&registry.published(c).totals));
            merged
        }
        Some(text) => {
            let index: usize = text
                .parse()
                .map_err(|_| (400, format!("core must be a number, got {text:?}")))?;
            if index >= cores {
                return Err((
                    404,
                    format!("no core {index}: this server runs {cores} (0-{})", cores - 1),
                ));
            }
            registry.published_copy(index).totals
        }
    };
    Ok((histograms, metric))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::test_get;

    fn get(registry: &Registry, query: &str) -> Response {
        debug_latency(registry, &test_get(&format!("/debug/latency?{query}"), ""))
    }

    #[test]
    fn serves_a_core_or_all_and_refuses_bad_parameters() {
        let registry = Registry::new(2);
        registry.published(1).totals.record_n(LatencyMetric::LoopLag, 5_000, 3);
        registry.published(0).totals.record_n(LatencyMetric::LoopLag, 9_000, 1);
        let one = String::from_utf8(get(&registry, "core=1&metric=loop_lag").body).unwrap();
        assert!(one.contains("Total count    =            3]"), "{one}");
        let max_line = one.lines().find(|l| l.starts_with("#[Max")).unwrap();
        let max: f64 = max_line.split(['=', ',']).nth(1).unwrap().trim().parse().unwrap();
        assert!((4.9..5.1).contains(&max), "5,000 ns shown in microseconds: {max_line}");
        let all = String::from_utf8(get(&registry, "metric=loop_lag").body).unwrap();
        assert!(all.contains("Total count    =            4]"), "{all}");
        for (query, status, says) in [
            ("core=0", 400, "missing metric"),
            ("core=0&metric=nope", 400, "handshake_duration, loop_lag"),
            ("core=x&metric=loop_lag", 400, "core must be a number"),
            ("core=2&metric=loop_lag", 404, "no core 2"),
            ("metric=loop_lag&color=red", 400, "unknown parameter"),
        ] {
            let response = get(&registry, query);
            assert_eq!(response.status, status, "{query}");
            assert!(String::from_utf8(response.body).unwrap().contains(says), "{query}");
        }
    }
}
