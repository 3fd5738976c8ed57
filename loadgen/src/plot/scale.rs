//! The chart's two axes and its latency figures.
//!
//! Percentiles run along HdrHistogram's usual log scale of 1/(1-p): one decade per nine, so 0%,
//! 90%, 99%, 99.9% ... are evenly spaced and the tail gets most of the width. Latency runs up a
//! log scale too, with 1-2-5 ticks: a tail spans decades (tens of microseconds at the median,
//! milliseconds at the maximum), and on a linear axis everything below the tail would lie flat
//! on the floor, where per-core differences could not be told apart.

/// Decades of 1/(1-p) the percentile axis always shows: 0% to 99.999%.
const MIN_DECADES: u32 = 5;
/// The width of the `max` column past the last percentile tick, in decades.
const MAX_COLUMN: f64 = 0.75;
/// More decades of latency than this and only powers of ten get a tick.
const DENSE_TICK_DECADES: i32 = 3;

/// The percentile axis: 0% at the left, one decade of 1/(1-p) per tick, and the 100% rows (the
/// maxima, which have no place on a log scale of 1/(1-p)) in a column labelled `max` at the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentileAxis {
    /// Ticks after 0%: 5 shows 90% to 99.999%.
    decades: u32,
}

impl PercentileAxis {
    /// An axis reaching the highest percentile below 100% in `percentiles` (0 to 1), and at
    /// least 99.999%.
    pub fn covering(percentiles: impl IntoIterator<Item = f64>) -> PercentileAxis {
        let highest = percentiles
            .into_iter()
            .filter(|&p| p < 1.0)
            .map(decades_of)
            .fold(0.0, f64::max);
        // The tolerance keeps 99.999% printed with 12 decimals from asking for a sixth decade.
        let decades = ((highest - 1e-6).ceil() as u32).max(MIN_DECADES);
        PercentileAxis { decades }
    }

    /// Where percentile `p` (0 to 1) lies, from 0 (left) to 1 (right).
    pub fn position(&self, p: f64) -> f64 {
        let at = if p >= 1.0 { self.width() } else { decades_of(p.max(0.0)) };
        at / self.width()
    }

    /// (position, label) of 0%, 90%, 99%, ... and `max`.
    pub fn ticks(&self) -> Vec<(f64, String)> {
        let mut ticks: Vec<(f64, String)> = (0..=self.decades)
            .map(|d| (f64::from(d) / self.width(), percent_label(d)))
            .collect();
        ticks.push((1.0, "max".to_string()));
        ticks
    }

    fn width(&self) -> f64 {
        f64::from(self.decades) + MAX_COLUMN
    }
}

/// log10(1/(1-p)), for p below 1.
fn decades_of(p: f64) -> f64 {
    -(1.0 - p).log10()
}

/// `0%`, `90%`, `99%`, `99.9%`, ... for 0, 1, 2, 3, ... decades.
fn percent_label(decades: u32) -> String {
    match decades {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        d => {
            let nines = "9".repeat(d as usize);
            let (whole, fraction) = nines.split_at(2);
            if fraction.is_empty() {
                format!("{whole}%")
            } else {
                format!("{whole}.{fraction}%")
            }
        }
    }
}

/// The latency axis, in microseconds on a log scale, between two 1-2-5 steps: one at or below
/// the lowest positive value and one at or above the highest. Spanning more than three decades,
/// it runs from power of ten to power of ten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyAxis {
    /// The bottom step (see [`step`]).
    low: i32,
    /// The top step, above `low`.
    high: i32,
}

impl LatencyAxis {
    /// An axis holding every value in `values` (microseconds); values of 0 sit on its floor, and
    /// without a positive value it shows 1 to 10 µs.
    pub fn covering(values: impl IntoIterator<Item = f64>) -> LatencyAxis {
        let (lowest, highest) = values
            .into_iter()
            .filter(|v| *v > 0.0 && v.is_finite())
            .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if highest == 0.0 {
            return LatencyAxis { low: 0, high: 3 };
        }
        let (mut low, mut high) = (step_at_or_below(lowest), step_at_or_above(highest));
        if high == low {
            high += 1;
        }
        if high - low > 3 * DENSE_TICK_DECADES {
            low = low.div_euclid(3) * 3;
            high = (high + 2).div_euclid(3) * 3;
        }
        LatencyAxis { low, high }
    }

    /// Where `us` lies, from 0 (bottom) to 1 (top); values below the floor sit on it.
    pub fn position(&self, us: f64) -> f64 {
        let (low, high) = (step(self.low).log10(), step(self.high).log10());
        let at = if us > 0.0 { us.log10().max(low) } else { low };
        (at - low) / (high - low)
    }

    /// (position, label) of every 1-2-5 step from bottom to top (only the powers of ten when the
    /// axis spans more than three decades).
    pub fn ticks(&self) -> Vec<(f64, String)> {
        let dense = self.high - self.low <= 3 * DENSE_TICK_DECADES;
        (self.low..=self.high)
            .filter(|n| dense || n.rem_euclid(3) == 0)
            .map(|n| (self.position(step(n)), latency_label(step(n))))
            .collect()
    }
}

/// Step `n` of the 1-2-5 sequence: ..., 0.5, 1, 2, 5, 10, 20, ... with step 0 = 1.
fn step(n: i32) -> f64 {
    [1.0, 2.0, 5.0][n.rem_euclid(3) as usize] * 10f64.powi(n.div_euclid(3))
}

/// The highest step at or below `v` (positive).
fn step_at_or_below(v: f64) -> i32 {
    let mut n = 3 * (v.log10().floor() as i32);
    while step(n + 1) <= v * (1.0 + 1e-9) {
        n += 1;
    }
    while step(n) > v * (1.0 + 1e-9) {
        n -= 1;
    }
    n
}

/// The lowest step at or above `v` (positive).
fn step_at_or_above(v: f64) -> i32 {
    let n = step_at_or_below(v);
    if step(n) < v * (1.0 - 1e-9) {
        n + 1
    } else {
        n
    }
}

/// `us` microseconds in µs, ms or s, whichever keeps the number below 1000, with three
/// significant digits and no trailing zeros: `41 µs`, `1.25 ms`, `2 s`.
pub fn latency_label(us: f64) -> String {
    let (value, unit) = if us < 999.5 {
        (us, "µs")
    } else if us < 999_500.0 {
        (us / 1e3, "ms")
    } else {
        (us / 1e6, "s")
    };
    format!("{} {unit}", significant(value))
}

/// `v` (not negative) to three significant digits, trailing zeros dropped.
fn significant(v: f64) -> String {
    if v <= 0.0 {
        return "0".to_string();
    }
    let decimals = (2 - v.log10().floor() as i32).clamp(0, 9) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ticks: &[(f64, String)]) -> Vec<&str> {
        ticks.iter().map(|(_, l)| l.as_str()).collect()
    }

    #[test]
    fn the_percentile_axis_has_a_decade_per_nine_and_a_max_column() {
        let axis = PercentileAxis::covering([0.0, 0.5, 0.99999, 1.0]);
        let ticks = axis.ticks();
        assert_eq!(
            labels(&ticks),
            ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"]
        );
        let gap = ticks[1].0;
        assert!(ticks.windows(2).take(5).all(|w| (w[1].0 - w[0].0 - gap).abs() < 1e-12));
        assert_eq!(axis.position(0.0), 0.0);
        assert!((axis.position(0.99) - ticks[2].0).abs() < 1e-9);
        assert_eq!(axis.position(1.0), 1.0);
        assert!(axis.position(0.5) > 0.0 && axis.position(0.5) < gap);
        let deep = PercentileAxis::covering(["0.999999900000".parse::<f64>().unwrap()]);
        assert_eq!(deep.ticks()[7].1, "99.99999%");
        assert_eq!(deep.ticks().len(), 9);
    }

    #[test]
    fn the_latency_axis_spans_the_values_in_1_2_5_steps() {
        let axis = LatencyAxis::covering([0.0, 38.0, 120.0, 4100.0]);
        assert_eq!(
            labels(&axis.ticks()),
            ["20 µs", "50 µs", "100 µs", "200 µs", "500 µs", "1 ms", "2 ms", "5 ms"]
        );
        assert_eq!(axis.position(0.0), 0.0);
        assert_eq!(axis.position(5000.0), 1.0);
        assert!(axis.position(38.0) > 0.0 && axis.position(4100.0) < 1.0);
        let wide = LatencyAxis::covering([3.0, 2.5e7]);
        assert_eq!(
            labels(&wide.ticks()),
            ["1 µs", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s", "100 s"]
        );
        assert_eq!(labels(&LatencyAxis::covering([100.0]).ticks()), ["100 µs", "200 µs"]);
        assert_eq!(
            labels(&LatencyAxis::covering([0.0]).ticks()),
            ["1 µs", "2 µs", "5 µs", "10 µs"]
        );
        assert_eq!(
            labels(&LatencyAxis::covering([0.3, 0.6]).ticks()),
            ["0.2 µs", "0.5 µs", "1 µs"]
        );
    }

    #[test]
    fn latency_labels_carry_their_unit() {
        let cases = [
            (0.0, "0 µs"),
            (0.25, "0.25 µs"),
            (41.0, "41 µs"),
            (999.4, "999 µs"),
            (999.6, "1 ms"),
            (1250.0, "1.25 ms"),
            (12_345.0, "12.3 ms"),
            (2_000_000.0, "2 s"),
            (3.6e9, "3600 s"),
        ];
        for (us, label) in cases {
            assert_eq!(latency_label(us), label);
        }
    }
}
