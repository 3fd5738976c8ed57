//! One core's life: its data path, its accept loops and its timer pass, then the graceful
//! shutdown.

use std::rc::Rc;
use std::time::Duration;

use std::os::fd::AsRawFd;

use monoio::net::{TcpListener, TcpStream};

use super::closing::abandon_at_shutdown;
use super::conn::EngineClose;
use super::core::CoreCtx;
use super::listener::ListenerRole;
use super::sched::{either, yield_now};
use super::sys::accept_nonblocking;
use super::upgrade::serve;
use super::{epoll, uring};
use crate::handler::Handler;
use crate::metrics::Counter;
use crate::proto::close::CloseCode;

/// The driver the cores actually run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    /// Linux io_uring: monoio on io_uring, and open connections on the native io_uring data
    /// path (multishot recv into a provided-buffer ring, batched sends).
    IoUring,
    /// epoll: monoio's legacy driver, and open connections on the epoll readiness set.
    Epoll,
}

impl IoDriver {
    /// "io_uring" or "epoll".
    pub fn as_str(self) -> &'static str {
        match self {
            IoDriver::IoUring => "io_uring",
            IoDriver::Epoll => "epoll",
        }
    }

    /// `ringcast_build_info` for this driver: monoio's driver and the data path's.
    pub fn build_info(self) -> crate::metrics::BuildInfo {
        let (io_driver, data_path) = match self {
            IoDriver::IoUring => ("io_uring", "io_uring"),
            IoDriver::Epoll => ("legacy", "epoll"),
        };
        crate::metrics::BuildInfo::current(io_driver, data_path)
    }
}

/// Runs one core until shutdown: the data path, the accept loops and the timer pass, then the
/// drain.
pub(crate) async fn run_core<H: Handler>(
    core: Rc<CoreCtx<H>>,
    driver: IoDriver,
    listeners: Vec<(TcpListener, ListenerRole)>,
) -> std::io::Result<()> {
    let _data_path = match driver {
        IoDriver::IoUring => {
            let config = &core.shared.config;
            let sizes = uring::RingSizes {
                cq_entries: config.uring_cq_entries,
                buffers: config.uring_buffers,
                buffer_size: config.uring_buffer_size,
            };
            monoio::spawn(uring::start(core.clone(), sizes)?)
        }
        IoDriver::Epoll => monoio::spawn(epoll::start(core.clone())?),
    };
    let _timer_pass = monoio::spawn(timer_loop(core.clone()));
    let accepts: Vec<_> = listeners
        .into_iter()
        .map(|(listener, role)| monoio::spawn(accept_loop(core.clone(), listener, role)))
        .collect();
    core.shutdown.wait().await;
    for accept in accepts {
        accept.await;
    }
    let code = CloseCode(core.shared.config.shutdown_close_code);
    let reason = if code == CloseCode::SERVICE_RESTART {
        "service restart"
    } else {
        "going away"
    };
    for id in core.conns.ids() {
        core.conns
            .with(id, |c| c.close_by_engine(EngineClose::Shutdown, code, reason));
    }
    if core.conns.is_empty() {
        core.drained.fire();
    }
    let drained = monoio::time::timeout(core.shared.config.shutdown_timeout, core.drained.wait()).await;
    if drained.is_err() {
        tracing::warn!(
            event = "shutdown_timeout",
            core = core.index,
            open = core.conns.len(),
            "closing remaining connections"
        );
        for id in core.conns.ids() {
            abandon_at_shutdown(&core, id);
        }
    }
    Ok(())
}

/// One expiry pass per tick (a pass that left due timers behind is followed at once, after
/// the core's other tasks had a turn).
async fn timer_loop<H: Handler>(core: Rc<CoreCtx<H>>) {
    let tick = core.shared.config.timer_tick;
    let mut due = Vec::new();
    let mut more = false;
    loop {
        if more {
            yield_now().await;
        } else {
            monoio::time::sleep(tick).await;
        }
        more = core.timer_pass(&mut due);
    }
}

/// Most connections taken from a listener's backlog per wake-up, after the one the runtime's
/// accept returned.
const ACCEPTS_PER_WAKE: usize = 64;

async fn accept_loop<H: Handler>(core: Rc<CoreCtx<H>>, listener: TcpListener, role: ListenerRole) {
    loop {
        let accepted = std::cell::Cell::new(None);
        either(core.shutdown.wait(), async {
            accepted.set(Some(listener.accept().await))
        })
        .await;
        let Some(first) = accepted.take() else {
            return;
        };
        if let Err(error) = first.map(|(stream, peer)| start_handshake(&core, stream, peer, role)) {
            accept_failed(&core, error).await;
            continue;
        }
        // Connections that came meanwhile are taken now, not one trip through the ring each
        // (under a heavy data path those trips are far apart).
        for _ in 0..ACCEPTS_PER_WAKE {
            let waiting = accept_nonblocking(listener.as_raw_fd())
                .and_then(|w| w.map(|(s, peer)| TcpStream::from_std(s).map(|s| (s, peer))).transpose());
            match waiting {
                Ok(None) => break,
                Ok(Some((stream, peer))) => start_handshake(&core, stream, peer, role),
                Err(error) => {
                    accept_failed(&core, error).await;
                    break;
                }
            }
        }
    }
}

fn start_handshake<H: Handler>(
    core: &Rc<CoreCtx<H>>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    role: ListenerRole,
) {
    core.counters().inc(Counter::Accepted);
    monoio::spawn(serve(core.clone(), stream, peer, role));
}

/// Counts and logs a failed accept (typically EMFILE/ENFILE) and backs off briefly instead of
/// spinning.
async fn accept_failed<H>(core: &CoreCtx<H>, error: std::io::Error) {
    let counter = Counter::for_accept_error(&error);
    core.counters().inc(counter);
    let errno = counter.name_and_label().1.map_or("other", |(_, errno)| errno);
    tracing::warn!(event = "accept_error", core = core.index, errno, %error, "accept failed; retrying in 10 ms");
    monoio::time::sleep(Duration::from_millis(10)).await;
}
