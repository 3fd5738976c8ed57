//! `plot`: the binary drawing `.hgrm` files written by `hgrm::render`, and its refusals.

mod support;

use std::path::Path;

use hdrhistogram::Histogram;
use ringcast::metrics::hgrm;
use support::{binary, run, scratch};

/// Writes a `.hgrm` file of `n` latencies around `base` microseconds with a tail every 997th.
fn write_hgrm(path: &Path, base: u64, n: u64) {
    let mut hist = Histogram::<u64>::new_with_max(3_600_000_000, 3).unwrap();
    for i in 0..n {
        let tail = if i % 997 == 0 { 100 * base } else { 0 };
        hist.saturating_record(base + (i * 7919) % base + tail);
    }
    std::fs::write(path, hgrm::render(&hist)).unwrap();
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn plot_draws_one_line_per_file_with_its_label() {
    let dir = scratch("plot");
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, svg) = (
        dir.join("latency_core0.hgrm"),
        dir.join("latency_core1.hgrm"),
        dir.join("cores.svg"),
    );
    write_hgrm(&a, 40, 20_000);
    write_hgrm(&b, 900, 5_000);
    let label = format!("core zero={}", arg(&a));
    let (code, out, err) = run(binary(&[
        "plot",
        "--output",
        arg(&svg),
        "--title",
        "echo, two cores",
        "--label",
        &label,
        arg(&a),
        arg(&b),
    ]));
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.is_empty(), "the SVG goes to --output: {out}");
    let doc = std::fs::read_to_string(&svg).unwrap();
    assert!(doc.starts_with("<?xml") && doc.trim_end().ends_with("</svg>"));
    assert_eq!(doc.matches("<polyline ").count(), 2);
    for text in [
        ">echo, two cores<",
        ">core zero<",
        ">latency_core1<",
        ">99.999%<",
        ">max<",
        ">p50 60 µs<",
        ">p50 1.35 ms<",
        ">max 91.8 ms<",
    ] {
        assert!(doc.contains(text), "{text} missing from {doc}");
    }

    let (code, stdout, err) = run(binary(&[
        "plot",
        "--title",
        "echo, two cores",
        "--label",
        &label,
        arg(&a),
        arg(&b),
    ]));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(stdout, doc, "stdout gets the same bytes as --output");
}

#[test]
fn plot_refuses_malformed_and_unreadable_files() {
    let dir = scratch("plot-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let (good, bad, svg) = (dir.join("good.hgrm"), dir.join("bad.hgrm"), dir.join("out.svg"));
    write_hgrm(&good, 40, 1000);
    std::fs::write(
        &bad,
        "Value Percentile TotalCount 1/(1-Percentile)\n\n12.5 0.5 oops 2.00\n#[Max = 12.5, Total count = 1]\n",
    )
    .unwrap();
    let (code, out, err) = run(binary(&["plot", "--output", arg(&svg), arg(&good), arg(&bad)]));
    assert_eq!(code, 2, "stdout: {out}");
    assert!(
        err.contains(&format!(
            "{}: line 3: TotalCount \"oops\" is not a valid number",
            bad.display()
        )),
        "{err}"
    );
    assert!(!svg.exists(), "no SVG is written");

    let missing = dir.join("missing.hgrm");
    let (code, _, err) = run(binary(&["plot", arg(&good), arg(&missing)]));
    assert_eq!(code, 2);
    assert!(err.contains(&format!("cannot read {}", missing.display())), "{err}");

    let (code, _, err) = run(binary(&["plot", "--label", "x=other.hgrm", arg(&good)]));
    assert_eq!(code, 2);
    assert!(
        err.contains("--label x=other.hgrm: not one of the files to plot"),
        "{err}"
    );
}
