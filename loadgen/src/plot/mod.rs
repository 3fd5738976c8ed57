//! `plot FILE...`: draws `.hgrm` percentile distributions (server or client, per core or per run)
//! as one SVG percentile chart, to compare them by eye.

mod scale;
mod svg;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ringcast::metrics::hgrm;

use crate::cli::PlotArgs;
use svg::Series;

/// `--label NAME=FILE`: the legend's name for one of the files to plot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The name shown.
    pub name: String,
    /// The file it names, as given among the files.
    pub file: PathBuf,
}

impl FromStr for Label {
    type Err = String;

    fn from_str(s: &str) -> Result<Label, String> {
        match s.split_once('=') {
            Some((name, file)) if !name.is_empty() && !file.is_empty() => Ok(Label {
                name: name.to_string(),
                file: PathBuf::from(file),
            }),
            _ => Err(format!("expected NAME=FILE, found {s:?}")),
        }
    }
}

/// Runs `plot`: reads every file, draws them and writes the SVG to --output, else to stdout.
pub fn run(args: &PlotArgs) -> Result<(), String> {
    for (i, label) in args.labels.iter().enumerate() {
        if !args.files.contains(&label.file) {
            return Err(format!(
                "--label {}={}: not one of the files to plot",
                label.name,
                label.file.display()
            ));
        }
        if args.labels[..i].iter().any(|l| l.file == label.file) {
            return Err(format!("--label: {} is labelled twice", label.file.display()));
        }
    }
    let series = args
        .files
        .iter()
        .map(|path| {
            let label = args.labels.iter().find(|l| &l.file == path).map_or_else(
                || {
                    path.file_stem()
                        .unwrap_or(path.as_os_str())
                        .to_string_lossy()
                        .into_owned()
                },
                |l| l.name.clone(),
            );
            load(path, label)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let doc = svg::chart(&args.title, &series);
    match &args.output {
        Some(path) => std::fs::write(path, doc).map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => std::io::stdout()
            .lock()
            .write_all(doc.as_bytes())
            .map_err(|e| format!("cannot write the SVG to stdout: {e}")),
    }
}

/// Reads and parses one `.hgrm` file.
fn load(path: &Path, label: String) -> Result<Series, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let percentiles = hgrm::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Series { label, percentiles })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_name_equals_file() {
        let label: Label = "core 0=runs/a=b.hgrm".parse().unwrap();
        assert_eq!(
            (label.name.as_str(), label.file.to_str()),
            ("core 0", Some("runs/a=b.hgrm"))
        );
        for bad in ["runs/a.hgrm", "=a.hgrm", "core0="] {
            assert!(bad.parse::<Label>().is_err(), "{bad}");
        }
    }
}
