//! One monoio runtime per core, pinned, on io_uring or (as a fallback) epoll.

use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::Arc;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use super::core::CoreCtx;
use super::listener::ListenerRole;
use super::run::{run_core, IoDriver};
use super::shared::Shared;
use super::ServerError;
use crate::config::IoMode;
use crate::handler::Handler;

/// io_uring submission queue entries per core.
const URING_ENTRIES: u32 = 4096;

/// The io_uring setup flags: cooperative task running, so the kernel never interrupts a busy
/// core (an IPI per completion, very costly in VMs) just to post completions; they are posted
/// at the core's next syscall or wait instead. Kernels before 5.19 reject the flag, and the
/// ring is then set up without it.
fn uring_builder(cooperative: bool) -> io_uring_monoio::Builder {
    let mut builder = io_uring_monoio::IoUring::builder();
    if cooperative {
        builder.setup_coop_taskrun().setup_taskrun_flag();
    }
    builder
}

/// Builds a monoio io_uring runtime (with its timer) as ringcast's cores use it: 4096 entries,
/// cooperative task running where the kernel supports it. The bundled load generator uses it
/// too, so both ends of a benchmark run on identically configured rings.
pub fn build_uring_runtime() -> std::io::Result<monoio::Runtime<monoio::time::TimeDriver<IoUringDriver>>> {
    let build = |cooperative| {
        RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .uring_builder(uring_builder(cooperative))
            .enable_timer()
            .build()
    };
    build(true).or_else(|_| build(false))
}

/// Resolves the `io` setting once for the whole process, probing (where asked) that monoio's
/// io_uring runtime builds and that the kernel has what the io_uring data path needs. The
/// fallback is announced in one log line, not once per core.
pub fn choose_driver(mode: IoMode) -> Result<IoDriver, ServerError> {
    if mode == IoMode::Epoll {
        return Ok(IoDriver::Epoll);
    }
    // On a thread of its own: the probe's rings and sockets leave nothing behind on the
    // caller's thread (an embedding application's thread could otherwise see stray EINTRs).
    let probed = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                build_uring_runtime()
                    .map_err(|e| format!("cannot build an io_uring runtime: {e}"))
                    .and_then(|_| super::uring::probe())
            })
            .join()
            .unwrap_or_else(|_| Err("the io_uring probe panicked".to_owned()))
    });
    match probed {
        Ok(()) => Ok(IoDriver::IoUring),
        Err(error) if mode == IoMode::Auto => {
            tracing::warn!(event = "io_fallback", %error, "io_uring is unavailable; falling back to the epoll driver");
            Ok(IoDriver::Epoll)
        }
        Err(error) => Err(ServerError::IoUringUnavailable(error)),
    }
}

/// The body of a core thread: pin, build the runtime, build the handler, serve forever.
pub fn run_core_thread<H: Handler>(
    index: usize,
    cpu: usize,
    driver: IoDriver,
    shared: Arc<Shared>,
    listeners: Vec<(StdListener, ListenerRole)>,
    make_handler: impl FnOnce() -> H,
) -> Result<(), ServerError> {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        tracing::warn!(
            event = "pin_failed",
            core = index,
            cpu,
            "could not pin the core thread to its CPU"
        );
    }
    let core = Rc::new(CoreCtx::new(index, shared, make_handler()));
    let serve = async move {
        let mut bound = Vec::with_capacity(listeners.len());
        for (listener, role) in listeners {
            let listener = monoio::net::TcpListener::from_std(listener)
                .map_err(|source| ServerError::Runtime { core: index, source })?;
            bound.push((listener, role));
        }
        run_core(core, driver, bound)
            .await
            .map_err(|source| ServerError::Runtime { core: index, source })
    };
    let runtime_error = |source| ServerError::Runtime { core: index, source };
    match driver {
        IoDriver::IoUring => build_uring_runtime().map_err(runtime_error)?.block_on(serve),
        IoDriver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .map_err(runtime_error)?
            .block_on(serve),
    }
}
