//! Child processes with bounded lifetimes: every process started here is killed, with every
//! process it started in turn, when its handle is dropped, and also when the harness itself
//! dies (`PR_SET_PDEATHSIG`, which reaches the direct child only).

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::sysinfo::{descendants, is_alive};

/// How often running children are polled.
const POLL: Duration = Duration::from_millis(20);
/// Grace period between SIGTERM and SIGKILL when stopping a child.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How much of a child's stderr is quoted in error messages.
const STDERR_TAIL: usize = 2000;

/// Output of a finished child.
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Finished {
    /// The last `STDERR_TAIL` bytes of stderr, for error messages.
    pub fn stderr_tail(&self) -> &str {
        tail(&self.stderr)
    }
}

/// A running child whose stdout and stderr are drained by background threads.
pub struct Running {
    name: String,
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    /// Spawns `cmd`, naming it `name` in errors; it receives SIGKILL if the harness dies.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self, String> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|err| format!("cannot start {name} ({cmd:?}): {err}"))?;
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Ok(Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        })
    }

    /// Process id of the child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT to the child (perf stat then prints what it counted and exits).
    pub fn interrupt(&self) {
        signal(self.child.id(), libc::SIGINT);
    }

    /// Returns an error (with the child's stderr) if the child has already exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let stderr = self.stderr.take().map(join).unwrap_or_default();
                Err(format!("{} exited early ({status}): {}", self.name, tail(&stderr)))
            }
            Err(err) => Err(format!("cannot poll {}: {err}", self.name)),
        }
    }

    /// Waits up to `timeout` for the child to exit by itself; kills it and errs past that.
    pub fn finish(mut self, timeout: Duration) -> Result<Finished, String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    return Err(format!("{} still running after {timeout:?}; killed", self.name));
                }
                Ok(None) => thread::sleep(POLL),
                Err(err) => return Err(format!("cannot wait for {}: {err}", self.name)),
            }
        };
        Ok(Finished {
            status,
            stdout: self.stdout.take().map(join).unwrap_or_default(),
            stderr: self.stderr.take().map(join).unwrap_or_default(),
        })
    }

    /// Sends SIGTERM to the child and its descendants (a shell's server, say), then SIGKILL to
    /// those still alive after `STOP_GRACE`, and reaps the child.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let offspring = descendants(self.child.id());
            signal(self.child.id(), libc::SIGTERM);
            offspring.iter().for_each(|pid| signal(*pid, libc::SIGTERM));
            let deadline = Instant::now() + STOP_GRACE;
            while (matches!(self.child.try_wait(), Ok(None)) || offspring.iter().any(|pid| is_alive(*pid)))
                && Instant::now() < deadline
            {
                thread::sleep(POLL);
            }
            let _ = self.child.kill();
            offspring
                .iter()
                .filter(|pid| is_alive(**pid))
                .for_each(|pid| signal(*pid, libc::SIGKILL));
        }
        let _ = self.child.wait();
    }
}

/// Sends `sig` to process `pid`, ignoring failure (it may have exited already).
fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain syscall; the pid is a child or a descendant seen a moment ago.
        unsafe { libc::kill(pid, sig) };
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
        // The pipes close once the child is gone, so the drain threads end.
        self.stdout.take().map(join);
        self.stderr.take().map(join);
    }
}

/// Runs `cmd` to completion within `timeout`.
pub fn run_bounded(name: &str, cmd: &mut Command, timeout: Duration) -> Result<Finished, String> {
    Running::spawn(name, cmd)?.finish(timeout)
}

/// Waits until `addr` accepts TCP connections, failing if `child` exits or `timeout` passes.
pub fn wait_for_port(child: &mut Running, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        child.check_alive()?;
        if TcpStream::connect_timeout(&addr, POLL * 5).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{} did not accept on {addr} within {timeout:?}", child.name));
        }
        thread::sleep(POLL);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|err| format!("cannot find a free loopback port: {err}"))
}

/// Reads a pipe to its end on a background thread.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Joins a drain thread; a panicked drain yields empty output.
fn join(handle: JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

/// The last `STDERR_TAIL` bytes of `text`, cut at a character boundary.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(STDERR_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim()
}
