//! --procs: the parent re-runs this binary as worker processes, starts their load together
//! and collects their reports.
//!
//! Workers talk to the parent in lines on stdout: `ready`, `progress OPEN MESSAGES ERRORS`
//! and finally `result JSON`; the parent answers `go` on each worker's stdin once all are
//! ready, so every process measures the same window.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::progress::{ProgressMode, Snapshot, Ticker};
use crate::run::ProcessReport;

/// Writes one protocol line to stdout and flushes it.
pub fn send_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints this worker's report for the parent.
pub fn send_result(report: &ProcessReport) -> Result<(), String> {
    let json = serde_json::to_string(report).map_err(|e| format!("encoding the worker report: {e}"))?;
    send_line(&format!("result {json}"));
    Ok(())
}

enum Msg {
    Ready,
    Progress(Snapshot),
    Result(Box<ProcessReport>),
    Bad(String),
    Gone,
}

/// Runs `procs` workers with this process's arguments and returns their reports.
pub fn run_parent(procs: usize, progress: ProgressMode, conns_target: u64) -> Result<Vec<ProcessReport>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let (tx, rx) = mpsc::channel();
    let mut children: Vec<Child> = Vec::with_capacity(procs);
    for index in 0..procs {
        let mut child = Command::new(&exe)
            .args(&args)
            .args([
                "--worker-index",
                &index.to_string(),
                "--worker-count",
                &procs.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start worker {index}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let tx = tx.clone();
        std::thread::spawn(move || read_worker(index, stdout, tx));
        children.push(child);
    }
    drop(tx);

    let mut ticker = Ticker::new(progress, conns_target);
    let mut latest = vec![Snapshot::default(); procs];
    let mut results: Vec<Option<ProcessReport>> = (0..procs).map(|_| None).collect();
    let mut problems = Vec::new();
    let (mut ready, mut gone) = (0, 0);
    while gone < procs {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((_, Msg::Ready)) => {
                ready += 1;
                if ready == procs {
                    for child in &mut children {
                        if let Some(stdin) = child.stdin.as_mut() {
                            let _ = writeln!(stdin, "go").and_then(|()| stdin.flush());
                        }
                    }
                }
            }
            Ok((i, Msg::Progress(snap))) => latest[i] = snap,
            Ok((i, Msg::Result(report))) => results[i] = Some(*report),
            Ok((i, Msg::Bad(line))) => problems.push(format!("worker {i} printed an unexpected line: {line}")),
            Ok((i, Msg::Gone)) => {
                gone += 1;
                if results[i].is_none() && ready < procs {
                    // A worker that dies early would leave the others waiting for go forever.
                    for child in &mut children {
                        child.stdin.take();
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        ticker.tick(|| latest.iter().fold(Snapshot::default(), |a, &b| a + b));
    }
    for (index, child) in children.iter_mut().enumerate() {
        match child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => problems.push(format!("worker {index} exited with {status}")),
            Err(e) => problems.push(format!("waiting for worker {index}: {e}")),
        }
    }
    let reports: Vec<ProcessReport> = results.into_iter().flatten().collect();
    if reports.len() < procs {
        problems.push(format!("only {} of {procs} workers reported", reports.len()));
        return Err(problems.join("; "));
    }
    for problem in problems {
        eprintln!("ringcast-loadgen: {problem}");
    }
    Ok(reports)
}

fn read_worker(index: usize, stdout: std::process::ChildStdout, tx: mpsc::Sender<(usize, Msg)>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let msg = match line.split_once(' ') {
            _ if line == "ready" => Msg::Ready,
            Some(("progress", rest)) => Snapshot::parse(rest).map_or(Msg::Bad(line.clone()), Msg::Progress),
            Some(("result", json)) => match serde_json::from_str(json) {
                Ok(report) => Msg::Result(Box::new(report)),
                Err(e) => Msg::Bad(format!("unreadable result ({e})")),
            },
            _ => Msg::Bad(line.clone()),
        };
        if tx.send((index, msg)).is_err() {
            return;
        }
    }
    let _ = tx.send((index, Msg::Gone));
}
