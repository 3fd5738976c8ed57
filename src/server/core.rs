//! Per-core state and the per-core main task: accept loops that spawn connection tasks.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpListener;

use super::conn::serve;
use super::conn_state::Connections;
use super::Shared;
use crate::handler::Handler;
use crate::metrics::{CoreCounters, Counter};

/// Size of the per-core read buffer every connection on the core reads into.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// Everything one core owns: its connections, its handler, its scratch buffer.
pub(crate) struct CoreCtx<H> {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub conns: Connections,
    pub handler: RefCell<H>,
    scratch: RefCell<Box<[u8]>>,
}

impl<H> CoreCtx<H> {
    pub fn new(index: usize, shared: Arc<Shared>, handler: H) -> CoreCtx<H> {
        CoreCtx {
            index,
            shared,
            conns: Connections::new(index),
            handler: RefCell::new(handler),
            scratch: RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice()),
        }
    }

    /// This core's counters.
    pub fn counters(&self) -> &CoreCounters {
        self.shared.registry.core(self.index)
    }

    /// Lends the scratch buffer to a synchronous read (never held across an await).
    pub fn with_scratch<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(&mut self.scratch.borrow_mut())
    }
}

/// Runs one core: an accept loop per listener, each accepted socket on its own task.
pub(crate) async fn run_core<H: Handler>(core: Rc<CoreCtx<H>>, listeners: Vec<TcpListener>) {
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| monoio::spawn(accept_loop(core.clone(), listener)))
        .collect();
    for handle in loops {
        handle.await;
    }
}

async fn accept_loop<H: Handler>(core: Rc<CoreCtx<H>>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                core.counters().inc(Counter::Accepted);
                monoio::spawn(serve(core.clone(), stream, peer));
            }
            Err(error) => {
                // Typically EMFILE/ENFILE: back off briefly instead of spinning.
                core.counters().inc(Counter::AcceptErrors);
                tracing::warn!(event = "accept_error", core = core.index, %error, "accept failed; retrying in 10 ms");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
