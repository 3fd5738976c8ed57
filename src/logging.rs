//! A log sink that never blocks the thread that logs.
//!
//! [`LogWriter`] is a `tracing-subscriber` [`MakeWriter`]: each event is formatted into a
//! per-event line buffer and, when the event is done, appended whole to one bounded in-memory
//! buffer. A dedicated writer thread takes the buffer's contents in one swap and writes them to
//! the sink (stderr) with blocking writes. So a core thread that logs takes one short lock and
//! copies one line; it never waits for the sink. When the buffer is full (the sink is slow or
//! blocked, say stderr is a pipe nobody reads), the line is dropped and counted, process-wide,
//! in [`lines_dropped`] (exported as `ringcast_log_lines_dropped_total`); once the sink takes
//! writes again, the writer thread writes one line saying how many were dropped.
//!
//! Lines are never cut or interleaved: a line enters the buffer whole or not at all, and the
//! writer thread is the only writer of the sink. Memory: the buffer's capacity twice (the part
//! being filled and the part being written).

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// The default buffer size: about 2,000 typical event lines.
pub const DEFAULT_BUFFER_BYTES: usize = 1 << 20;

/// Per-event line buffers bigger than this are not kept for reuse by their thread.
const SPARE_LINE_BYTES: usize = 16 * 1024;

/// Lines dropped by every [`LogWriter`] of the process: the buffer was full, the sink failed,
/// or the writer had been stopped.
static LINES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many log lines this process has dropped so far (see the [module docs](self)).
pub fn lines_dropped() -> u64 {
    LINES_DROPPED.load(Ordering::Relaxed)
}

/// The logging side of a non-blocking sink: hands formatted lines to the writer thread. Cheap
/// to clone; every clone feeds the same buffer.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Owns the writer thread's lifetime: dropping it writes out what is buffered (waiting at most
/// [`LogGuard::EXIT_FLUSH`]) and stops the thread; lines logged afterwards are dropped. Keep it
/// alive for as long as the process logs (in `main`).
pub struct LogGuard {
    writer: LogWriter,
}

/// What the logging threads and the writer thread share.
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread: lines arrived, or it should stop.
    work: Condvar,
    /// Wakes flushers: the writer thread finished a batch.
    progress: Condvar,
    capacity: usize,
}

struct State {
    /// Whole lines waiting for the writer thread.
    pending: Vec<u8>,
    /// Bytes ever accepted into `pending`.
    accepted: u64,
    /// Of those, bytes the writer thread is done with (written, or lost to a failed write).
    finished: u64,
    /// Lines dropped since the writer thread last took the count for its report.
    unreported: u64,
    /// The guard is gone: no more lines are taken, the thread ends once `pending` is empty.
    stopped: bool,
}

thread_local! {
    /// A line buffer kept between events, so formatting an event does not allocate.
    static SPARE_LINE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

impl LogWriter {
    /// A writer to stderr with a buffer of `capacity` bytes; the drop report is formatted as
    /// `format`, like the other lines.
    pub fn stderr(capacity: usize, format: LogFormat) -> io::Result<(LogWriter, LogGuard)> {
        LogWriter::spawn(io::stderr(), capacity, format)
    }

    /// A writer to `sink`, written by a new thread named `ringcast-log`, with a buffer of
    /// `capacity` bytes (a line longer than that is always dropped).
    pub fn spawn<W: Write + Send + 'static>(
        sink: W,
        capacity: usize,
        format: LogFormat,
    ) -> io::Result<(LogWriter, LogGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(capacity),
                accepted: 0,
                finished: 0,
                unreported: 0,
                stopped: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            capacity,
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("ringcast-log".into())
            .spawn(move || write_out(&thread_shared, sink, format))?;
        let writer = LogWriter { shared };
        let guard = LogGuard { writer: writer.clone() };
        Ok((writer, guard))
    }

    /// Waits until every line accepted before the call has been written (or lost to a failed
    /// write), for at most `limit`; whether that happened in time.
    pub fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.lock();
        let target = state.accepted;
        while state.finished < target {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = match self.shared.progress.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Appends one whole line, or drops and counts it.
    fn commit(&self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        let mut state = self.shared.lock();
        if state.stopped || state.pending.len() + line.len() > self.shared.capacity {
            state.unreported += 1;
            LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The writer thread sleeps only while nothing is pending.
        let wake = state.pending.is_empty();
        state.pending.extend_from_slice(line);
        state.accepted += line.len() as u64;
        drop(state);
        if wake {
            self.shared.work.notify_one();
        }
    }
}

impl LogGuard {
    /// How long dropping the guard waits for buffered lines to be written.
    pub const EXIT_FLUSH: Duration = Duration::from_secs(2);

    /// Waits (at most `limit`) until every line accepted so far has been written; see
    /// [`LogWriter::flush`].
    pub fn flush(&self, limit: Duration) -> bool {
        self.writer.flush(limit)
    }

    /// The writer this guard belongs to, e.g. for a thread that must flush before it exits the
    /// process.
    pub fn writer(&self) -> &LogWriter {
        &self.writer
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.writer.flush(LogGuard::EXIT_FLUSH);
        self.writer.shared.lock().stopped = true;
        self.writer.shared.work.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One event's line: collected while the event is formatted, committed whole when dropped.
pub struct LineWriter<'a> {
    writer: &'a LogWriter,
    line: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        self.writer.commit(&self.line);
        let mut line = std::mem::take(&mut self.line);
        if line.capacity() <= SPARE_LINE_BYTES {
            line.clear();
            // During thread teardown the spare is gone; the buffer is then simply freed.
            let _ = SPARE_LINE.try_with(|spare| spare.set(line));
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            writer: self,
            line: SPARE_LINE.try_with(Cell::take).unwrap_or_default(),
        }
    }
}

/// The writer thread: takes what is pending in one swap, writes it, reports drops, repeats
/// until stopped. Drops are reported after a batch was written, i.e. once the sink takes
/// writes again.
fn write_out(shared: &Shared, mut sink: impl Write, format: LogFormat) {
    let mut batch = Vec::with_capacity(shared.capacity);
    loop {
        let (end, dropped) = {
            let mut state = shared.lock();
            while state.pending.is_empty() && !state.stopped {
                state = shared.work.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.pending.is_empty() {
                return;
            }
            std::mem::swap(&mut state.pending, &mut batch);
            (state.accepted, std::mem::take(&mut state.unreported))
        };
        let unreported = if write_whole(&mut sink, &batch).is_err() {
            let lost = batch.iter().filter(|&&b| b == b'\n').count().max(1) as u64;
            LINES_DROPPED.fetch_add(lost, Ordering::Relaxed);
            dropped + lost
        } else if dropped > 0 && write_report(&mut sink, dropped, format).is_err() {
            dropped
        } else {
            0
        };
        batch.clear();
        let mut state = shared.lock();
        state.finished = end;
        state.unreported += unreported;
        drop(state);
        shared.progress.notify_all();
    }
}

/// Writes all of `bytes`, waiting out a sink that is non-blocking and full (this thread has
/// nothing else to do), then flushes.
fn write_whole(sink: &mut impl Write, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match sink.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e),
        }
    }
    sink.flush()
}

/// The line that reports `dropped` lost lines, in the format of the other lines.
fn write_report(sink: &mut impl Write, dropped: u64, format: LogFormat) -> io::Result<()> {
    let mut timestamp = String::new();
    // Formatting the clock into a String cannot fail.
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    let message = format!("dropped {dropped} log lines: the log sink could not keep up");
    let line = match format {
        LogFormat::Text => {
            format!("{timestamp}  WARN ringcast::logging: {message} event=\"log_lines_dropped\" dropped={dropped}\n")
        }
        LogFormat::Json => format!(
            "{{\"timestamp\":\"{timestamp}\",\"level\":\"WARN\",\"message\":\"{message}\",\
             \"event\":\"log_lines_dropped\",\"dropped\":{dropped},\"target\":\"ringcast::logging\"}}\n"
        ),
    };
    write_whole(sink, line.as_bytes())
}
