//! The chart as a self-contained SVG document: a title, the plot frame with its grid and axis
//! ticks, one polyline per series, and a legend with each series' label, p50, p99 and max.
//! Nothing in it depends on anything but the series, so the same input gives the same bytes.

use std::fmt::Write as _;

use ringcast::metrics::hgrm::Percentiles;

use super::scale::{latency_label, LatencyAxis, PercentileAxis};

/// Least width of the document, in pixels.
const MIN_WIDTH: f64 = 960.0;
/// The plot frame.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 930.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 470.0;
/// First legend row's baseline, and the distance between rows.
const LEGEND_TOP: f64 = 535.0;
const LEGEND_ROW: f64 = 20.0;
/// Width of a legend figure's column, and an estimate of a character's width at 12 px.
const FIGURE_COLUMN: f64 = 120.0;
const CHAR_WIDTH: f64 = 7.0;
/// Line colours, in series order; after the last one they repeat, dashed.
const COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
];

/// One distribution to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// Its rows, in microseconds.
    pub percentiles: Percentiles,
}

/// The SVG document drawing every series in `series` under `title`.
pub fn chart(title: &str, series: &[Series]) -> String {
    let rows = || series.iter().flat_map(|s| &s.percentiles.rows);
    let frame = Frame {
        x_axis: PercentileAxis::covering(rows().map(|r| r.percentile)),
        y_axis: LatencyAxis::covering(rows().map(|r| r.value).chain(series.iter().map(|s| s.percentiles.max))),
    };
    let label_width = series.iter().map(|s| s.label.chars().count()).max().unwrap_or(0) as f64 * CHAR_WIDTH;
    let figures_left = LEFT + 30.0 + label_width + 20.0;
    let width = MIN_WIDTH.max(figures_left + 3.0 * FIGURE_COLUMN + 20.0);
    let height = LEGEND_TOP + series.len() as f64 * LEGEND_ROW;

    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{width}" height="{height}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="30" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        (LEFT + RIGHT) / 2.0,
        escape(title)
    );
    frame.write_axes(&mut out);
    frame.write_lines(&mut out, series);
    write_legend(&mut out, series, figures_left);
    let _ = writeln!(out, "</svg>");
    out
}

/// The plot frame and its two axes.
struct Frame {
    x_axis: PercentileAxis,
    y_axis: LatencyAxis,
}

impl Frame {
    /// The horizontal coordinate of percentile `p`.
    fn x(&self, p: f64) -> f64 {
        LEFT + self.x_axis.position(p) * (RIGHT - LEFT)
    }

    /// The vertical coordinate of `us` microseconds.
    fn y(&self, us: f64) -> f64 {
        BOTTOM - self.y_axis.position(us) * (BOTTOM - TOP)
    }

    /// Grid lines with their tick labels, the frame, and the axis titles.
    fn write_axes(&self, out: &mut String) {
        let _ = writeln!(out, r#"<g class="x-ticks" text-anchor="middle">"#);
        for (at, label) in self.x_axis.ticks() {
            let at = LEFT + at * (RIGHT - LEFT);
            let _ = writeln!(
                out,
                r##"<line x1="{at:.1}" y1="{TOP}" x2="{at:.1}" y2="{BOTTOM}" stroke="#e0e0e0"/><text x="{at:.1}" y="{:.1}">{label}</text>"##,
                BOTTOM + 18.0
            );
        }
        let _ = writeln!(out, "</g>");
        let _ = writeln!(out, r#"<g class="y-ticks" text-anchor="end">"#);
        for (at, label) in self.y_axis.ticks() {
            let at = BOTTOM - at * (BOTTOM - TOP);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{at:.1}" x2="{RIGHT}" y2="{at:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}">{label}</text>"##,
                LEFT - 6.0,
                at + 4.0
            );
        }
        let _ = writeln!(out, "</g>");
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
            RIGHT - LEFT,
            BOTTOM - TOP
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 40.0
        );
        let middle = (TOP + BOTTOM) / 2.0;
        let _ = writeln!(
            out,
            r#"<text x="20" y="{middle:.1}" text-anchor="middle" transform="rotate(-90 20 {middle:.1})">latency</text>"#
        );
    }

    /// A polyline per series with rows.
    fn write_lines(&self, out: &mut String, series: &[Series]) {
        let _ = writeln!(out, r#"<g class="series" fill="none" stroke-width="1.5">"#);
        for (index, s) in series.iter().enumerate() {
            if s.percentiles.rows.is_empty() {
                continue;
            }
            let points: Vec<String> = s
                .percentiles
                .rows
                .iter()
                .map(|r| format!("{:.1},{:.1}", self.x(r.percentile), self.y(r.value)))
                .collect();
            let _ = writeln!(out, r#"<polyline {} points="{}"/>"#, stroke(index), points.join(" "));
        }
        let _ = writeln!(out, "</g>");
    }
}

/// A legend row per series: its line's colour, its label, and its figures from `figures_left`.
fn write_legend(out: &mut String, series: &[Series], figures_left: f64) {
    let _ = writeln!(out, r#"<g class="legend">"#);
    for (index, s) in series.iter().enumerate() {
        let base = LEGEND_TOP + index as f64 * LEGEND_ROW;
        let _ = writeln!(
            out,
            r#"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke-width="3" {}/><text x="{:.1}" y="{base:.1}">{}</text>"#,
            base - 4.0,
            LEFT + 22.0,
            base - 4.0,
            stroke(index),
            LEFT + 30.0,
            escape(&s.label)
        );
        for (column, figure) in figures(&s.percentiles).iter().enumerate() {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{base:.1}">{figure}</text>"#,
                figures_left + column as f64 * FIGURE_COLUMN
            );
        }
    }
    let _ = writeln!(out, "</g>");
}

/// The legend's figures of one series: `p50 ...`, `p99 ...`, `max ...`, or `no samples`.
fn figures(p: &Percentiles) -> Vec<String> {
    match (p.value_at(0.5), p.value_at(0.99)) {
        (Some(p50), Some(p99)) => vec![
            format!("p50 {}", latency_label(p50)),
            format!("p99 {}", latency_label(p99)),
            format!("max {}", latency_label(p.max)),
        ],
        _ => vec!["no samples".to_string()],
    }
}

/// The stroke attributes of series `index`.
fn stroke(index: usize) -> String {
    let colour = COLOURS[index % COLOURS.len()];
    if index < COLOURS.len() {
        format!(r#"stroke="{colour}""#)
    } else {
        format!(r#"stroke="{colour}" stroke-dasharray="6 3""#)
    }
}

/// `text` with XML's special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast::metrics::hgrm;

    fn series(label: &str, values: impl Iterator<Item = u64>) -> Series {
        let mut hist = crate::stats::new_histogram();
        for v in values {
            hist.saturating_record(v);
        }
        Series {
            label: label.to_string(),
            percentiles: hgrm::parse(&hgrm::render(&hist)).unwrap(),
        }
    }

    /// The elements of a well-formed XML document, by name, in document order; panics at the
    /// first fault: a tag unclosed or closed out of order, an unquoted attribute, a bare `<` or
    /// `&` in text, anything after the root element.
    fn elements(doc: &str) -> Vec<String> {
        let body = doc
            .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
            .expect("XML declaration");
        let (mut open, mut seen): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        let mut rest = body;
        while let Some(start) = rest.find('<') {
            check_text(&rest[..start]);
            let end = rest[start..].find('>').expect("unterminated tag") + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name), "closing tag out of order");
            } else {
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
                assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
                check_attributes(attributes);
                seen.push(name.to_string());
                if !self_closing {
                    open.push(name.to_string());
                }
            }
            rest = &rest[end + 1..];
            assert!(!open.is_empty() || rest.trim().is_empty(), "content after the root");
        }
        assert!(open.is_empty(), "unclosed {open:?}");
        seen
    }

    fn check_text(text: &str) {
        assert!(!text.contains('>'), "bare > in {text:?}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                "bare & in {text:?}"
            );
        }
    }

    fn check_attributes(mut attributes: &str) {
        while !attributes.trim().is_empty() {
            let (name, value) = attributes
                .trim_start()
                .split_once("=\"")
                .expect("attribute with a quoted value");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                "{name:?}"
            );
            let end = value.find('"').expect("closing quote");
            check_text(&value[..end]);
            assert!(!value[..end].contains('<'));
            attributes = &value[end + 1..];
        }
    }

    #[test]
    fn a_chart_draws_each_series_with_its_legend() {
        let all = [
            series("core0", 1..=1000),
            series("core1", (1..=1000).map(|v| v * 20)),
            series("idle", std::iter::empty()),
        ];
        let doc = chart("echo <16 in flight> & more", &all);
        let elements = elements(&doc);
        assert_eq!(elements[0], "svg");
        assert_eq!(elements.iter().filter(|e| *e == "polyline").count(), 2);
        assert!(doc.contains(">echo &lt;16 in flight&gt; &amp; more</text>"));
        for label in [">core0<", ">core1<", ">idle<", ">no samples<"] {
            assert!(doc.contains(label), "{label}");
        }
        let figure = |text: &str| assert!(doc.contains(&format!(">{text}</text>")), "{text}");
        figure("p50 500 µs");
        figure("p99 990 µs");
        figure("max 1 ms");
        figure("p50 10 ms");
        figure("max 20 ms");
        for tick in [
            "0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max", "1 µs", "10 µs", "100 µs", "1 ms", "10 ms",
        ] {
            figure(tick);
        }
        assert_eq!(
            doc.matches("http").count(),
            1,
            "nothing external, only the SVG namespace"
        );
        assert!(!doc.contains("<script") && !doc.contains("href"));
        assert_eq!(chart("echo <16 in flight> & more", &all), doc, "deterministic");
    }

    #[test]
    fn the_xml_check_refuses_broken_documents() {
        const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
        assert_eq!(
            elements(&format!("{DECLARATION}<svg a=\"1\"><g/>&amp;</svg>\n")),
            ["svg", "g"]
        );
        for broken in [
            "<svg><g></svg>",
            "<svg></g></svg>",
            "<svg a=1></svg>",
            "<svg>a & b</svg>",
            "<svg><text>x</svg>",
            "<svg></svg><svg></svg>",
            "<svg",
        ] {
            let doc = format!("{DECLARATION}{broken}");
            assert!(std::panic::catch_unwind(|| elements(&doc)).is_err(), "{broken}");
        }
    }

    #[test]
    fn series_beyond_the_palette_are_dashed() {
        let all: Vec<Series> = (0..12).map(|i| series(&format!("s{i}"), 1..=10)).collect();
        let doc = chart("many", &all);
        assert_eq!(elements(&doc).iter().filter(|e| *e == "polyline").count(), 12);
        assert_eq!(
            doc.matches("stroke-dasharray").count(),
            4,
            "two polylines, two legend lines"
        );
        assert!(elements(&chart("none", &[])).contains(&"svg".to_string()));
    }
}
