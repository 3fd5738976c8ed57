//! Per-core state and the per-core tasks: accept loops, the timer pass, and shutdown.

use std::cell::{Cell, OnceCell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;

use super::conn_state::{ConnId, Connections, EngineClose};
use super::latch::Latch;
use super::poller::Poller;
use super::reactor::run_reactor;
use super::upgrade::serve;
use super::Shared;
use crate::handler::Handler;
use crate::metrics::{CoreCounters, Counter};
use crate::proto::close::CloseCode;
use crate::timer::{duration_to_ticks, ticks_elapsed, TimerWheel};

/// Size of the per-core read buffer every connection on the core reads into.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// Everything one core owns: its connections, its handler, its scratch buffer, its timers.
pub(crate) struct CoreCtx<H> {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub conns: Connections,
    pub handler: RefCell<H>,
    scratch: RefCell<Box<[u8]>>,
    timers: RefCell<TimerWheel<ConnId>>,
    limits: LivenessLimits,
    started: Instant,
    now_tick: Cell<u64>,
    /// Fired when this core begins its graceful shutdown.
    pub shutdown: Latch,
    /// Fired when, during shutdown, the last connection has gone.
    drained: Latch,
    /// The readiness set of open connections (created inside the runtime, by `run_core`).
    poller: OnceCell<Poller>,
}

impl<H> CoreCtx<H> {
    pub fn new(index: usize, shared: Arc<Shared>, handler: H) -> CoreCtx<H> {
        let expected = expected_per_core(&shared);
        CoreCtx {
            index,
            conns: Connections::new(index, shared.config.max_queued_bytes, expected),
            handler: RefCell::new(handler),
            scratch: RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice()),
            timers: RefCell::new(TimerWheel::with_capacity(0, expected)),
            limits: LivenessLimits::from_config(&shared.config),
            started: Instant::now(),
            now_tick: Cell::new(0),
            shutdown: Latch::default(),
            drained: Latch::default(),
            poller: OnceCell::new(),
            shared,
        }
    }

    /// The readiness set of this core's open connections.
    pub fn poller(&self) -> &Poller {
        self.poller
            .get()
            .expect("run_core creates the poller before any connection opens")
    }

    /// This core's counters.
    pub fn counters(&self) -> &CoreCounters {
        self.shared.registry.core(self.index)
    }

    /// Lends the scratch buffer to a synchronous read (never held across an await).
    pub fn with_scratch<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(&mut self.scratch.borrow_mut())
    }

    /// The current timer tick (advanced by the timer pass; cheap to read per message).
    pub fn now_tick(&self) -> u64 {
        self.now_tick.get()
    }

    /// Arms the heartbeat/idle timer of a newly opened connection, if any is configured.
    pub fn arm_liveness(&self, id: ConnId) {
        if let Some(after) = self.limits.first_check() {
            let key = self.timers.borrow_mut().arm(self.now_tick() + after, id);
            self.conns.with(id, |c| c.timer = Some(key));
        }
    }

    /// Removes a closed connection: cancels its timer and frees its slab slot.
    pub fn forget(&self, id: ConnId) {
        if let Some(key) = self.conns.remove(id).and_then(|c| c.timer) {
            self.timers.borrow_mut().cancel(key);
        }
        self.counters().set_open_connections(self.conns.len());
        if self.shutdown.is_fired() && self.conns.is_empty() {
            self.drained.fire();
        }
    }

    /// A connection's liveness timer fired: close it if it has been silent too long, ping it if
    /// a ping is due, and re-arm for the next check. Traffic never touches the timer; it only
    /// moves `last_rx_tick`, which is read here.
    fn check_liveness(&self, id: ConnId, now: u64) {
        let LivenessLimits {
            ping_interval: interval,
            idle_limit,
            heartbeat_limit,
        } = self.limits;
        let outcome = self.conns.with(id, |conn| {
            conn.timer = None;
            let last_rx = conn.last_rx_tick;
            let silent = now.saturating_sub(last_rx);
            if idle_limit.is_some_and(|limit| silent >= limit) {
                conn.close_by_engine(EngineClose::Idle, CloseCode::GOING_AWAY, "idle timeout");
                return Liveness::IdleTimeout;
            }
            if heartbeat_limit.is_some_and(|limit| silent >= limit) {
                conn.close_by_engine(EngineClose::Heartbeat, CloseCode::GOING_AWAY, "heartbeat timeout");
                return Liveness::HeartbeatTimeout;
            }
            let mut next = [idle_limit, heartbeat_limit]
                .into_iter()
                .flatten()
                .map(|limit| last_rx + limit)
                .min();
            let mut outcome = Liveness::Alive;
            if let Some(interval) = interval {
                let next_ping = if silent >= interval {
                    conn.send_ping();
                    outcome = Liveness::Pinged;
                    now + interval
                } else {
                    last_rx + interval
                };
                next = next.map(|n| n.min(next_ping));
            }
            if let Some(deadline) = next {
                conn.timer = Some(self.timers.borrow_mut().arm(deadline, id));
            }
            outcome
        });
        match outcome {
            Some(Liveness::IdleTimeout) => self.counters().inc(Counter::IdleTimeouts),
            Some(Liveness::HeartbeatTimeout) => self.counters().inc(Counter::HeartbeatTimeouts),
            Some(Liveness::Pinged) => self.counters().inc(Counter::PingsSent),
            Some(Liveness::Alive) | None => {}
        }
    }
}

/// The liveness settings in timer ticks, derived once per core: `None` where disabled.
#[derive(Debug, Clone, Copy)]
struct LivenessLimits {
    /// Silence after which a ping is sent.
    ping_interval: Option<u64>,
    /// Silence after which the connection is closed as idle.
    idle_limit: Option<u64>,
    /// Silence after which an unanswered connection is closed (ping interval + pong timeout).
    heartbeat_limit: Option<u64>,
}

impl LivenessLimits {
    fn from_config(config: &crate::config::Config) -> LivenessLimits {
        let ticks = |d: Duration| (!d.is_zero()).then(|| duration_to_ticks(d, config.timer_tick));
        let ping_interval = ticks(config.ping_interval);
        LivenessLimits {
            ping_interval,
            idle_limit: ticks(config.idle_timeout),
            heartbeat_limit: ping_interval.map(|i| i + duration_to_ticks(config.pong_timeout, config.timer_tick)),
        }
    }

    /// Ticks of silence before a connection is first looked at, if anything is enabled.
    fn first_check(&self) -> Option<u64> {
        [self.ping_interval, self.idle_limit].into_iter().flatten().min()
    }
}

/// What a liveness check did.
enum Liveness {
    IdleTimeout,
    HeartbeatTimeout,
    Pinged,
    Alive,
}

/// Slab and timer capacity reserved per core: virtual memory only, touched as connections come.
fn expected_per_core(shared: &Shared) -> usize {
    (shared.config.max_connections / shared.registry.core_count().max(1)).min(1 << 20)
}

/// Runs one core until shutdown: accept loops, the timer pass, then the drain.
pub(crate) async fn run_core<H: Handler>(core: Rc<CoreCtx<H>>, listeners: Vec<TcpListener>) -> std::io::Result<()> {
    if core.poller.set(Poller::new()?).is_err() {
        unreachable!("run_core runs once per core");
    }
    let _reactor = monoio::spawn(run_reactor(core.clone()));
    let _timer_pass = monoio::spawn(timer_loop(core.clone()));
    let accepts: Vec<_> = listeners
        .into_iter()
        .map(|l| monoio::spawn(accept_loop(core.clone(), l)))
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
    }
    Ok(())
}

/// One expiry pass per tick; also where a process-wide shutdown request is noticed.
async fn timer_loop<H: Handler>(core: Rc<CoreCtx<H>>) {
    let tick = core.shared.config.timer_tick;
    let mut due = Vec::new();
    loop {
        monoio::time::sleep(tick).await;
        if core.shared.shutdown_requested() && !core.shutdown.is_fired() {
            core.shutdown.fire();
        }
        let now = ticks_elapsed(core.started.elapsed(), tick);
        core.now_tick.set(now);
        core.timers.borrow_mut().advance_into(now, &mut due);
        for id in due.drain(..) {
            core.check_liveness(id, now);
        }
    }
}

async fn accept_loop<H: Handler>(core: Rc<CoreCtx<H>>, listener: TcpListener) {
    let mut stop = pin!(core.shutdown.wait());
    loop {
        let mut accept = pin!(listener.accept());
        let accepted = poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            accept.as_mut().poll(cx).map(Some)
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => {
                core.counters().inc(Counter::Accepted);
                monoio::spawn(serve(core.clone(), stream, peer));
            }
            Some(Err(error)) => {
                // Typically EMFILE/ENFILE: back off briefly instead of spinning.
                core.counters().inc(Counter::AcceptErrors);
                tracing::warn!(event = "accept_error", core = core.index, %error, "accept failed; retrying in 10 ms");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
