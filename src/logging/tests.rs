use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use super::{lines_dropped, LogWriter};
use crate::config::LogFormat;

/// A bound for waits that should end at once; only a hang reaches it.
const GENEROUS: Duration = Duration::from_secs(20);

/// A sink that records what it is given and, while closed, blocks every write.
#[derive(Clone, Default)]
struct Sink {
    inner: Arc<SinkInner>,
}

#[derive(Default)]
struct SinkInner {
    state: Mutex<SinkState>,
    changed: Condvar,
}

#[derive(Default)]
struct SinkState {
    closed: bool,
    /// Writes that have started (blocked or not).
    writes: usize,
    /// Every write fails while set.
    broken: bool,
    out: Vec<u8>,
}

impl Sink {
    fn closed() -> Sink {
        let sink = Sink::default();
        sink.inner.state.lock().unwrap().closed = true;
        sink
    }

    fn set(&self, change: impl FnOnce(&mut SinkState)) {
        change(&mut self.inner.state.lock().unwrap());
        self.inner.changed.notify_all();
    }

    /// Waits until `writes` writes have started.
    fn wait_for_writes(&self, writes: usize) {
        let state = self.inner.state.lock().unwrap();
        let (state, _) = self
            .inner
            .changed
            .wait_timeout_while(state, GENEROUS, |s| s.writes < writes)
            .unwrap();
        assert!(state.writes >= writes, "the writer thread never wrote");
    }

    fn lines(&self) -> Vec<String> {
        let out = self.inner.state.lock().unwrap().out.clone();
        String::from_utf8(out).unwrap().lines().map(str::to_owned).collect()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.inner.state.lock().unwrap();
        state.writes += 1;
        self.inner.changed.notify_all();
        let mut state = self.inner.changed.wait_while(state, |s| s.closed).unwrap();
        if state.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        // Short writes, to show that lines still come out whole.
        let n = buf.len().min(700);
        state.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Logs one line the way `tracing-subscriber` does: several writes into one writer.
fn log(writer: &LogWriter, parts: &[&str]) {
    let mut line = writer.make_writer();
    for part in parts {
        line.write_all(part.as_bytes()).unwrap();
    }
    line.write_all(b"\n").unwrap();
}

#[test]
fn lines_from_many_threads_come_out_whole_and_in_order_per_thread() {
    let sink = Sink::default();
    let (writer, guard) = LogWriter::spawn(sink.clone(), 1 << 20, LogFormat::Text).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let filler = "x".repeat((i * 37) % 300);
                    log(
                        &writer,
                        &[&format!("thread={t} "), &format!("seq={i} "), &filler, " end"],
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(guard.flush(GENEROUS));
    let lines = sink.lines();
    assert_eq!(lines.len(), 2000);
    let mut next = [0usize; 4];
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "a cut or interleaved line: {line:?}");
        let t: usize = fields[0].strip_prefix("thread=").unwrap().parse().unwrap();
        let i: usize = fields[1].strip_prefix("seq=").unwrap().parse().unwrap();
        assert_eq!(i, next[t], "thread {t}'s lines out of order");
        assert_eq!(fields[2].len(), (i * 37) % 300);
        assert_eq!(fields[3], "end");
        next[t] += 1;
    }
}

#[test]
fn a_blocked_sink_drops_lines_without_blocking_and_reports_them_once_it_recovers() {
    let sink = Sink::closed();
    let (writer, guard) = LogWriter::spawn(sink.clone(), 1000, LogFormat::Text).unwrap();
    let dropped_before = lines_dropped();
    log(&writer, &["first"]);
    // The writer thread has taken "first" and is stuck writing it.
    sink.wait_for_writes(1);
    for i in 0..100 {
        // 100 bytes each: ten fit in the buffer, the other 90 are dropped.
        log(&writer, &[&format!("line {i:02} "), &"y".repeat(91)]);
    }
    assert!(lines_dropped() >= dropped_before + 90);
    assert!(!guard.flush(Duration::from_millis(50)), "nothing can be written yet");
    sink.set(|s| s.closed = false);
    assert!(guard.flush(GENEROUS));
    log(&writer, &["after"]);
    assert!(guard.flush(GENEROUS));
    let lines = sink.lines();
    assert_eq!(lines[0], "first");
    for (i, line) in lines[1..11].iter().enumerate() {
        assert!(
            line.starts_with(&format!("line {i:02} ")) && line.len() == 99,
            "{line:?}"
        );
    }
    assert!(
        lines[11].contains("WARN ringcast::logging: dropped 90 log lines")
            && lines[11].ends_with("event=\"log_lines_dropped\" dropped=90"),
        "{:?}",
        lines[11]
    );
    assert_eq!(&lines[12..], ["after"]);
}

#[test]
fn the_drop_report_is_json_when_the_lines_are() {
    let sink = Sink::closed();
    let (writer, guard) = LogWriter::spawn(sink.clone(), 64, LogFormat::Json).unwrap();
    log(&writer, &["{\"n\":1}"]);
    sink.wait_for_writes(1);
    log(&writer, &["{\"n\":2}"]);
    log(&writer, &[&"z".repeat(100)]);
    sink.set(|s| s.closed = false);
    assert!(guard.flush(GENEROUS));
    let lines = sink.lines();
    assert_eq!(lines[..2], ["{\"n\":1}", "{\"n\":2}"]);
    let report: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(report["event"], "log_lines_dropped");
    assert_eq!(report["dropped"], 1);
    assert_eq!(report["level"], "WARN");
    assert!(
        report["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{report}"
    );
    assert_eq!(lines.len(), 3);
}

#[test]
fn a_line_longer_than_the_buffer_is_dropped_whole() {
    let sink = Sink::default();
    let (writer, guard) = LogWriter::spawn(sink.clone(), 100, LogFormat::Text).unwrap();
    log(&writer, &[&"w".repeat(200)]);
    log(&writer, &["short"]);
    assert!(guard.flush(GENEROUS));
    // The drop was made while the sink was fine, so the report follows the next batch.
    let lines = sink.lines();
    assert_eq!(lines[0], "short");
    assert!(lines[1].contains("dropped 1 log lines"), "{lines:?}");
    assert_eq!(lines.len(), 2);
}

#[test]
fn a_failing_sink_counts_its_lost_lines_and_does_not_spin() {
    let sink = Sink::default();
    sink.set(|s| s.broken = true);
    let (writer, guard) = LogWriter::spawn(sink.clone(), 1 << 16, LogFormat::Text).unwrap();
    let before = lines_dropped();
    log(&writer, &["lost"]);
    assert!(guard.flush(GENEROUS), "a failed write still finishes the batch");
    assert!(lines_dropped() > before);
    let writes = sink.inner.state.lock().unwrap().writes;
    assert_eq!(writes, 1, "no retry loop without new lines");
    sink.set(|s| s.broken = false);
    log(&writer, &["back"]);
    assert!(guard.flush(GENEROUS));
    let lines = sink.lines();
    assert_eq!(lines[0], "back");
    assert!(lines[1].contains("dropped 1 log lines"), "{lines:?}");
}

#[test]
fn dropping_the_guard_writes_out_what_is_buffered_then_drops_later_lines() {
    let sink = Sink::default();
    let (writer, guard) = LogWriter::spawn(sink.clone(), 1 << 16, LogFormat::Text).unwrap();
    for i in 0..50 {
        log(&writer, &[&format!("line {i}")]);
    }
    drop(guard);
    assert_eq!(sink.lines().len(), 50, "flushed on drop");
    let before = lines_dropped();
    log(&writer, &["too late"]);
    assert!(lines_dropped() > before);
    assert_eq!(sink.lines().len(), 50);
}
