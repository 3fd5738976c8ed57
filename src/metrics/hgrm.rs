//! HdrHistogram's standard percentile-distribution text format (`.hgrm`): [`render`] writes it as
//! `outputPercentileDistribution` does (the HdrHistogram plotter reads it), [`parse`] reads it
//! back, from HdrHistogram's Java and C tools too. Values are microseconds.

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

/// One row of a percentile distribution: `percentile` (0..=1) of the recorded values are at or
/// below `value`, and `total_count` of them were counted up to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// The value reached (microseconds in the files ringcast writes).
    pub value: f64,
    /// The percentile level of the row, 0 to 1.
    pub percentile: f64,
    /// Recorded values at or below `value`.
    pub total_count: u64,
}

/// A parsed `.hgrm` file: its rows in file order and the trailer's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Percentiles {
    /// The data rows; empty for an empty histogram.
    pub rows: Vec<Row>,
    /// The largest recorded value (the trailer's `Max`).
    pub max: f64,
    /// Recorded values (the trailer's `Total count`).
    pub total_count: u64,
}

impl Percentiles {
    /// The value at percentile `p` (0 to 1): that of the first row whose count reaches `p` of the
    /// total, so with HdrHistogram's spacing of rows it may be a little above the exact figure;
    /// `None` for an empty histogram.
    pub fn value_at(&self, p: f64) -> Option<f64> {
        if self.total_count == 0 || self.rows.is_empty() {
            return None;
        }
        let target = (p * self.total_count as f64).ceil() as u64;
        let row = self.rows.iter().find(|r| r.total_count >= target);
        Some(row.map_or(self.max, |r| r.value))
    }
}

/// Why a `.hgrm` text was refused, with the line (1-based) where it was noticed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct HgrmError {
    /// The line, counting from 1; one past the last line when the text ended too early.
    pub line: usize,
    /// What was wrong.
    pub kind: HgrmErrorKind,
}

/// What was wrong with a `.hgrm` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HgrmErrorKind {
    /// A data row without 3 or 4 columns.
    #[error("expected Value Percentile TotalCount [1/(1-Percentile)], found {0} columns")]
    Columns(usize),
    /// A column that does not hold the number it should.
    #[error("{column} {text:?} is not a valid number")]
    Number {
        /// The column's name in the header.
        column: &'static str,
        /// The text found.
        text: String,
    },
    /// A percentile outside 0 to 1.
    #[error("percentile {0} is outside 0..1")]
    PercentileRange(String),
    /// A column smaller than in the row before.
    #[error("{0} is lower than in the row before")]
    Decreasing(&'static str),
    /// A `#[Max ...` line that does not read `#[Max = V, Total count = N]`.
    #[error("expected #[Max = VALUE, Total count = COUNT]")]
    Trailer,
    /// A second `#[Max ...` line, or a data row after it (two files run together?).
    #[error("{0} after the #[Max = ..., Total count = ...] line")]
    AfterTrailer(&'static str),
    /// The text ended before the `#[Max = ..., Total count = ...]` line.
    #[error("the text ends without a #[Max = ..., Total count = ...] line")]
    NoTrailer,
}

/// Parses a `.hgrm` text as [`render`] and HdrHistogram's Java and C tools write it: an
/// optional header line starting with `Value`, blank lines, rows of
/// `Value Percentile TotalCount [1/(1-Percentile)]`, and `#`-lines, of which only
/// `#[Max = ..., Total count = ...]` is read. Values keep the file's unit.
pub fn parse(text: &str) -> Result<Percentiles, HgrmError> {
    let mut rows: Vec<Row> = Vec::new();
    let mut trailer = None;
    let mut lines = 0;
    for (index, line) in text.lines().enumerate() {
        lines = index + 1;
        let fail = |kind| HgrmError { line: index + 1, kind };
        let line = line.trim();
        if line.starts_with("#[Max") {
            if trailer.is_some() {
                return Err(fail(HgrmErrorKind::AfterTrailer("a second #[Max ...] line")));
            }
            trailer = Some(parse_trailer(line).ok_or(fail(HgrmErrorKind::Trailer))?);
        } else if !(line.is_empty() || line.starts_with('#') || line.starts_with("Value")) {
            if trailer.is_some() {
                return Err(fail(HgrmErrorKind::AfterTrailer("a data row")));
            }
            let row = parse_row(line).map_err(fail)?;
            if let Some(column) = rows.last().and_then(|last| lower_column(last, &row)) {
                return Err(fail(HgrmErrorKind::Decreasing(column)));
            }
            rows.push(row);
        }
    }
    let (max, total_count) = trailer.ok_or(HgrmError {
        line: lines + 1,
        kind: HgrmErrorKind::NoTrailer,
    })?;
    Ok(Percentiles { rows, max, total_count })
}

/// One data row: `Value Percentile TotalCount [1/(1-Percentile)]`.
fn parse_row(line: &str) -> Result<Row, HgrmErrorKind> {
    let columns: Vec<&str> = line.split_whitespace().collect();
    if !(3..=4).contains(&columns.len()) {
        return Err(HgrmErrorKind::Columns(columns.len()));
    }
    let bad = |column: &'static str, text: &str| HgrmErrorKind::Number {
        column,
        text: text.to_string(),
    };
    let value = columns[0]
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| bad("Value", columns[0]))?;
    let percentile = columns[1].parse::<f64>().map_err(|_| bad("Percentile", columns[1]))?;
    if !(0.0..=1.0).contains(&percentile) {
        return Err(HgrmErrorKind::PercentileRange(columns[1].to_string()));
    }
    let total_count = columns[2].parse().map_err(|_| bad("TotalCount", columns[2]))?;
    // The C tool's last row reads `inf` here; the Java tool's has no fourth column.
    if let Some(inverse) = columns.get(3) {
        inverse
            .parse::<f64>()
            .ok()
            .filter(|v| !v.is_nan())
            .ok_or_else(|| bad("1/(1-Percentile)", inverse))?;
    }
    Ok(Row {
        value,
        percentile,
        total_count,
    })
}

/// The first column of `row` that is lower than in `last`, the row before it.
fn lower_column(last: &Row, row: &Row) -> Option<&'static str> {
    [
        ("Value", row.value < last.value),
        ("Percentile", row.percentile < last.percentile),
        ("TotalCount", row.total_count < last.total_count),
    ]
    .into_iter()
    .find_map(|(column, lower)| lower.then_some(column))
}

/// `(max, total count)` of `#[Max = V, Total count = N]`.
fn parse_trailer(line: &str) -> Option<(f64, u64)> {
    let inner = line.strip_prefix("#[")?.strip_suffix(']')?;
    let (max, total) = inner.split_once(',')?;
    let field = |part: &str, name: &str| {
        let (key, value) = part.split_once('=')?;
        (key.trim() == name).then(|| value.trim().to_string())
    };
    let max: f64 = field(max, "Max")?.parse().ok()?;
    let total = field(total, "Total count")?.parse().ok()?;
    (max.is_finite() && max >= 0.0).then_some((max, total))
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

    #[test]
    fn parse_reads_back_what_render_writes() {
        let mut hist = Histogram::<u64>::new_with_max(60_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            hist.saturating_record_n(v * v, v);
        }
        let text = render(&hist);
        let parsed = parse(&text).unwrap();
        let data_lines = text.lines().skip(2).take_while(|l| !l.starts_with('#')).count();
        assert_eq!(parsed.rows.len(), data_lines);
        assert_eq!((parsed.max, parsed.total_count), (hist.max() as f64, hist.len()));
        let last = parsed.rows.last().unwrap();
        assert_eq!((last.percentile, last.total_count), (1.0, hist.len()));
        for (row, step) in parsed.rows.iter().zip(hist.iter_quantiles(TICKS_PER_HALF_DISTANCE)) {
            assert_eq!(row.value, step.value_iterated_to() as f64);
            assert!((row.percentile - step.quantile_iterated_to()).abs() < 1e-12);
        }
        for p in [0.5, 0.9, 0.99] {
            let exact = hist.value_at_quantile(p) as f64;
            let read = parsed.value_at(p).unwrap();
            assert!(read >= exact && read <= exact * 1.05, "p{p}: {read} vs {exact}");
        }
        assert_eq!(parsed.value_at(1.0), Some(hist.max() as f64));
        let micros = parse(&render_scaled(&hist, 1000.0)).unwrap();
        assert_eq!(
            (micros.rows.len(), micros.max),
            (parsed.rows.len(), hist.max() as f64 / 1000.0)
        );

        let empty = parse(&render(&Histogram::<u64>::new(3).unwrap())).unwrap();
        assert_eq!((empty.rows.len(), empty.max, empty.total_count), (0, 0.0, 0));
        assert_eq!(empty.value_at(0.5), None);
    }

    /// As HdrHistogram's Java `outputPercentileDistribution` (and `HistogramLogProcessor`) and the
    /// C library's `hdr_percentiles_print` write it.
    #[test]
    fn parse_reads_the_java_and_c_layouts() {
        let java = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n       \
                    0.026 0.000000000000          1           1.00\n       \
                    0.057 0.100000000000      10241           1.11\n       \
                    0.064 0.500000000000      51355           2.00\n       \
                    0.091 0.900000000000      92171          10.00\n       \
                    0.499 0.990000000000     101377         100.00\n      \
                    16.431 1.000000000000     102400\n\
                    #[Mean    =        0.090, StdDeviation   =        0.137]\n\
                    #[Max     =       16.416, Total count    =       102400]\n\
                    #[Buckets =           20, SubBuckets     =         2048]\n";
        let parsed = parse(java).unwrap();
        assert_eq!(parsed.rows.len(), 6);
        assert_eq!(
            parsed.rows[2],
            Row {
                value: 0.064,
                percentile: 0.5,
                total_count: 51355
            }
        );
        assert_eq!((parsed.max, parsed.total_count), (16.416, 102400));
        assert_eq!(parsed.value_at(0.5), Some(0.064));
        assert_eq!(parsed.value_at(0.99), Some(0.499));

        let c = "       Value   Percentile   TotalCount 1/(1-Percentile)\r\n\r\n       \
                 1.000     0.000000            1         1.00\r\n     \
                 500.000     0.500000          500         2.00\r\n    \
                 1000.000     1.000000         1000          inf\r\n\
                 #[Mean    =      500.500, StdDeviation   =      288.675]\r\n\
                 #[Max     =     1000.000, Total count    =         1000]\r\n\
                 #[Buckets =           20, SubBuckets     =         2048]\r\n";
        let parsed = parse(c).unwrap();
        assert_eq!(parsed.rows.len(), 3);
        assert_eq!((parsed.max, parsed.total_count), (1000.0, 1000));
        assert_eq!(parsed.value_at(0.5), Some(500.0));
    }

    #[test]
    fn parse_names_the_line_and_the_fault() {
        const HEAD: &str = "Value Percentile TotalCount 1/(1-Percentile)\n\n1.000 0.000000000000 1 1.00\n";
        const TAIL: &str = "#[Max = 2.000, Total count = 2]\n";
        let err = |text: &str| parse(text).unwrap_err();
        let number = |column, text: &str| HgrmErrorKind::Number {
            column,
            text: text.to_string(),
        };
        let cases = [
            ("2.000 1.0\n", HgrmErrorKind::Columns(2)),
            ("2.000 1.0 2 1 9\n", HgrmErrorKind::Columns(5)),
            ("2.0ms 1.0 2\n", number("Value", "2.0ms")),
            ("-2 1.0 2\n", number("Value", "-2")),
            ("2.000 x 2\n", number("Percentile", "x")),
            ("2.000 1.5 2\n", HgrmErrorKind::PercentileRange("1.5".into())),
            ("2.000 1.0 -2\n", number("TotalCount", "-2")),
            ("2.000 0.9 2 ten\n", number("1/(1-Percentile)", "ten")),
            ("0.500 1.0 2\n", HgrmErrorKind::Decreasing("Value")),
            ("2.000 1.0 0\n", HgrmErrorKind::Decreasing("TotalCount")),
        ];
        for (row, kind) in cases {
            assert_eq!(err(&format!("{HEAD}{row}{TAIL}")), HgrmError { line: 4, kind }, "{row}");
        }
        assert_eq!(
            err(&format!("{HEAD}#[Max = 2.000]\n")),
            HgrmError {
                line: 4,
                kind: HgrmErrorKind::Trailer
            }
        );
        assert_eq!(
            err(&format!("{HEAD}{TAIL}2.0 1.0 2\n")).kind,
            HgrmErrorKind::AfterTrailer("a data row")
        );
        assert_eq!(err(&format!("{HEAD}{TAIL}{TAIL}")).line, 5);
        assert_eq!(
            err(HEAD),
            HgrmError {
                line: 4,
                kind: HgrmErrorKind::NoTrailer
            }
        );
        assert_eq!(err("").line, 1);
        assert_eq!(
            err("{\"not\": \"hgrm\"}\n").to_string(),
            "line 1: expected Value Percentile TotalCount [1/(1-Percentile)], found 2 columns"
        );
        let percentile_down = "1.000 0.5 1\n1.000 0.25 1\n#[Max = 1, Total count = 1]\n";
        assert_eq!(err(percentile_down).kind, HgrmErrorKind::Decreasing("Percentile"));
    }

    proptest::proptest! {
        #[test]
        fn parse_refuses_garbage_without_panicking(text in "(Value|#\\[Max =|, Total count =|inf|[0-9.e# =,\\]-]|\n){0,60}") {
            let _ = parse(&text);
        }
    }
}
