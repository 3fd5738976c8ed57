//! HdrHistogram's standard percentile-distribution text format (`.hgrm`), as written by
//! `outputPercentileDistribution` and read by the HdrHistogram plotter. Values are microseconds.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Ticks per half distance to 100%, as HdrHistogram's own tools use.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Renders `hist` in the `.hgrm` format.
pub fn render(hist: &Histogram<u64>) -> String {
    render_scaled(hist, 1.0)
}

/// Renders `hist` with every value divided by `unit_ratio` (HdrHistogram's
/// `outputValueUnitScalingRatio`: 1000.0 writes a nanosecond histogram in microseconds).
pub fn render_scaled(hist: &Histogram<u64>, unit_ratio: f64) -> String {
    let digits = usize::from(hist.sigfig());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !hist.is_empty() {
        for step in hist.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            let q = step.quantile_iterated_to();
            let value = step.value_iterated_to() as f64 / unit_ratio;
            let total = count_below_or_at(hist, step.value_iterated_to());
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}");
            }
        }
    }
    let sub_buckets = (2 * 10u64.pow(u32::from(hist.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        hist.mean() / unit_ratio,
        hist.stdev() / unit_ratio
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        hist.max() as f64 / unit_ratio,
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        hist.buckets(),
        sub_buckets
    );
    out
}

fn count_below_or_at(hist: &Histogram<u64>, value: u64) -> u64 {
    hist.count_between(0, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_standard_layout() {
        let mut hist = Histogram::<u64>::new_with_max(60_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            hist.saturating_record(v);
        }
        let text = render(&hist);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines[1], "");
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first, ["1.000", "0.000000000000", "1", "1.00"]);
        let last_data = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        let last: Vec<&str> = last_data.split_whitespace().collect();
        assert_eq!(last, ["1000.000", "1.000000000000", "1000"]);
        assert!(
            text.contains("#[Max     =     1000.000, Total count    =         1000]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048]"));
        let percentiles: Vec<f64> = lines[2..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(percentiles.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            render(&Histogram::<u64>::new_with_max(60_000_000, 3).unwrap()).contains("Total count    =            0]")
        );
    }
}
