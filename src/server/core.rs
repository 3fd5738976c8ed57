//! Per-core state shared by every phase and both data paths: the connections, the handler, the
//! scratch buffer, the timers, the cross-core outbox, and the liveness checks (token expiry
//! among them).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::conn::{Connections, EngineClose, QueueLimits};
use super::http::HttpReplies;
use super::inbox::{Delivery, Inbox, Outbox, Recipients};
use super::latch::Latch;
use super::observer::CoreObserver;
use super::shared::Shared;
use crate::api::{ConnId, ConnMeta};
use crate::handler::{Context, CoreContext, Handler};
use crate::metrics::{CoreCounters, Counter, LatencyMetric};
use crate::proto::close::CloseCode;
use crate::timer::{duration_to_ticks, spread_first_check, ticks_elapsed, TimerWheel};

/// Whose liveness timer an entry of the wheel is: the slab key and the low bits of the
/// generation (half the size of a [`ConnId`], for a smaller timer per idle connection).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimerSlot {
    key: u32,
    generation: u32,
}

impl TimerSlot {
    fn of(id: ConnId) -> TimerSlot {
        TimerSlot {
            key: id.key() as u32,
            generation: id.generation() as u32,
        }
    }
}

/// Most liveness checks (pings, timeouts) one timer pass makes before the core's other work
/// gets a turn; the rest follow in the next pass, without waiting for the next tick.
const CHECKS_PER_PASS: usize = 4096;

/// Size of the per-core read buffer every connection on the core reads into.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// The close code of a connection whose token expired (private use range, RFC 6455 section
/// 7.4.2): the client should get a new token and reconnect.
pub const TOKEN_EXPIRED_CLOSE: CloseCode = CloseCode(4001);

/// Everything one core owns: its connections, its handler, its scratch buffer, its timers.
pub(crate) struct CoreCtx<H> {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub conns: Connections,
    handler: RefCell<H>,
    scratch: RefCell<Box<[u8]>>,
    timers: RefCell<TimerWheel<TimerSlot>>,
    limits: LivenessLimits,
    started: Instant,
    /// The wall clock at `started`, to place tokens' expiry times on the wheel.
    started_unix: SystemTime,
    now_tick: Cell<u64>,
    /// Fired when this core begins its graceful shutdown.
    pub shutdown: Latch,
    /// Fired when, during shutdown, the last connection has gone.
    pub drained: Latch,
    /// Connections upgraded since the driver last looked, with the bytes that came with their
    /// request; the driver starts their open phase.
    opened: RefCell<Vec<(ConnId, Vec<u8>)>>,
    /// Frames this core's handlers sent to other cores this turn.
    pub outbox: Outbox,
    /// HTTP responses the handler has promised for later.
    pub http: HttpReplies,
    /// The core's latency histograms and their publication.
    pub observer: CoreObserver,
    /// The dashboards' stats streams open on this core.
    dashboards: RefCell<Vec<ConnId>>,
}

impl<H> CoreCtx<H> {
    pub fn new(index: usize, shared: Arc<Shared>, handler: H) -> CoreCtx<H> {
        let expected = expected_per_core(&shared);
        CoreCtx {
            index,
            conns: Connections::new(index, queue_limits(&shared.config), expected, shared.registry.clone()),
            handler: RefCell::new(handler),
            scratch: RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice()),
            timers: RefCell::new(TimerWheel::with_capacity(0, expected)),
            limits: LivenessLimits::from_config(&shared.config),
            started: Instant::now(),
            started_unix: SystemTime::now(),
            now_tick: Cell::new(0),
            shutdown: Latch::default(),
            drained: Latch::default(),
            opened: RefCell::new(Vec::new()),
            outbox: Outbox::new(shared.registry.core_count()),
            http: HttpReplies::default(),
            observer: CoreObserver::new(),
            dashboards: RefCell::new(Vec::new()),
            shared,
        }
    }

    /// Hands a freshly upgraded connection (and the bytes that came with its request) to the
    /// core's driver, which starts its open phase on its next turn.
    pub fn opened(&self, id: ConnId, early: Vec<u8>) {
        self.opened.borrow_mut().push((id, early));
        self.conns.wake_driver();
    }

    /// Takes the connections handed over by [`CoreCtx::opened`].
    pub fn take_opened(&self, into: &mut Vec<(ConnId, Vec<u8>)>) {
        std::mem::swap(&mut *self.opened.borrow_mut(), into);
    }

    /// Calls the handler for connection `id`, containing a panic: the panic is counted and
    /// logged, the connection is closed with 1011, and the core goes on serving the others.
    /// Returns `None` if the handler panicked.
    pub fn call_handler<R>(&self, id: ConnId, f: impl FnOnce(&mut H) -> R) -> Option<R> {
        let result = self.catch_panic(f);
        if result.is_none() {
            tracing::error!(event = "handler_panic", conn = %id, core = self.index, "handler panicked; closing its connection with 1011");
            self.conns.with(id, |c| {
                c.close_by_engine(EngineClose::HandlerPanic, CloseCode::INTERNAL_ERROR, "internal error")
            });
        }
        result
    }

    /// Calls the handler for the core as a whole (an HTTP request, a post), containing and
    /// counting a panic. Returns `None` if the handler panicked.
    pub fn call_for_core<R>(&self, f: impl FnOnce(&mut H) -> R) -> Option<R> {
        let result = self.catch_panic(f);
        if result.is_none() {
            tracing::error!(event = "handler_panic", core = self.index, "handler panicked");
        }
        result
    }

    /// Runs the handler, counting a panic.
    fn catch_panic<R>(&self, f: impl FnOnce(&mut H) -> R) -> Option<R> {
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut self.handler.borrow_mut())));
        if result.is_err() {
            self.counters().inc(Counter::HandlerPanics);
        }
        result.ok()
    }

    /// The handler's view of the engine for a callback about connection `id`.
    pub fn context<'a>(&'a self, id: ConnId, meta: &'a ConnMeta) -> Context<'a> {
        Context {
            engine: self.core_context(),
            id,
            meta,
        }
    }

    /// The handler's view of the engine for a callback about the core as a whole.
    pub fn core_context(&self) -> CoreContext<'_> {
        CoreContext {
            conns: &self.conns,
            outbox: &self.outbox,
            http: &self.http,
            observer: &self.observer,
            core: self.index,
        }
    }

    /// Queues every frame that arrived from other cores or threads on its connections, and
    /// hands every post to the handler, in arrival order.
    pub fn deliver(&self, deliveries: &mut Vec<Delivery>)
    where
        H: Handler,
    {
        let counters = self.counters();
        let deliver_one = |id: ConnId, frame: &bytes::Bytes| {
            let counter = match self.conns.send_frame(id, frame.clone()) {
                Ok(()) => Counter::CrossCoreDelivered,
                Err(_) => Counter::CrossCoreUndeliverable,
            };
            counters.inc(counter);
        };
        for delivery in deliveries.drain(..) {
            match delivery {
                Delivery::Frame {
                    to: Recipients::One(id),
                    frame,
                } => deliver_one(id, &frame),
                Delivery::Frame {
                    to: Recipients::Many(ids),
                    frame,
                } => ids.iter().for_each(|&id| deliver_one(id, &frame)),
                Delivery::Post(post) => {
                    self.call_for_core(|h| h.on_post(&mut self.core_context(), &post));
                }
            }
        }
    }

    /// This core's inbox (frames sent to its connections from other cores and threads).
    pub fn inbox(&self) -> &Inbox {
        self.shared
            .inboxes
            .get(self.index)
            .expect("Server::start creates one inbox per core")
    }

    /// This core's counters.
    pub fn counters(&self) -> &CoreCounters {
        self.shared.registry.core(self.index)
    }

    /// Lends the scratch buffer to a synchronous read (never held across an await).
    pub fn with_scratch<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(&mut self.scratch.borrow_mut())
    }

    /// Milliseconds since the core started (for connection lifetimes).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The current timer tick (advanced by the timer pass; cheap to read per message).
    pub fn now_tick(&self) -> u64 {
        self.now_tick.get()
    }

    /// Arms the liveness timer of a newly opened connection, if a heartbeat, an idle timeout
    /// or a token's expiry needs it. The first heartbeat check is spread over the second half
    /// of the interval by the connection's id, so connections opened together (a reconnect
    /// storm) are not checked and pinged together; a token that expires earlier is checked then.
    pub fn arm_liveness(&self, id: ConnId) {
        let heartbeat = self
            .limits
            .first_check()
            .map(|after| self.now_tick() + spread_first_check(after, id.as_u64()));
        let token = self.conns.with(id, |c| self.token_deadline(c)).flatten();
        if let Some(deadline) = heartbeat.into_iter().chain(token).min() {
            let key = self.timers.borrow_mut().arm(deadline, TimerSlot::of(id));
            self.conns.with(id, |c| c.timer = Some(key));
        }
    }

    /// The tick from which the connection's token is no longer honoured (its `exp` plus the
    /// leeway), if it was admitted with one.
    fn token_deadline(&self, conn: &super::conn::ConnState) -> Option<u64> {
        let expires_at = conn.parts.as_ref()?.meta.token()?.expires_at();
        let until = UNIX_EPOCH + Duration::from_secs(expires_at) + self.shared.access.token_leeway();
        let after_start = until.duration_since(self.started_unix).unwrap_or(Duration::ZERO);
        Some(duration_to_ticks(after_start, self.shared.config.timer_tick))
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

    /// One timer pass: notices a process-wide shutdown request, advances the wheel to now and
    /// checks up to [`CHECKS_PER_PASS`] connections whose liveness timer is due (`due` is
    /// scratch space). Returns whether more are due: the caller lets the core's other work run,
    /// then passes again without waiting for the next tick.
    pub fn timer_pass(&self, due: &mut Vec<TimerSlot>) -> bool {
        if self.shared.shutdown_requested() && !self.shutdown.is_fired() {
            self.shutdown.fire();
        }
        let began = Instant::now();
        let more = self.expire(
            ticks_elapsed(began.duration_since(self.started), self.shared.config.timer_tick),
            due,
        );
        // The once-a-second publication counts as part of the pass (so its cost shows here).
        if self.observer.maybe_publish(&self.shared.registry, self.index, began) {
            self.send_stats(&self.dashboards.borrow());
        }
        self.observer.record(LatencyMetric::TimerPassDuration, began.elapsed());
        more
    }

    /// A dashboard's stats stream opened: it gets the current stats at once, then a frame at
    /// every publication.
    pub fn dashboard_opened(&self, id: ConnId) {
        self.dashboards.borrow_mut().push(id);
        self.send_stats(&[id]);
    }

    /// A dashboard's stats stream closed.
    pub fn dashboard_closed(&self, id: ConnId) {
        self.dashboards.borrow_mut().retain(|&d| d != id);
    }

    /// Queues the stats frame to `dashboards` (a dashboard too slow to take it is closed as a
    /// slow consumer, like any connection).
    fn send_stats(&self, dashboards: &[ConnId]) {
        if dashboards.is_empty() {
            return;
        }
        let frame = crate::observe::stats_frame(&self.shared.registry, self.started.elapsed());
        self.conns.send_frame_to_each(dashboards.iter().copied(), &frame);
    }

    /// The timer pass at tick `now` (see [`CoreCtx::timer_pass`]).
    fn expire(&self, now: u64, due: &mut Vec<TimerSlot>) -> bool {
        self.now_tick.set(now);
        let more = self.timers.borrow_mut().advance_into_bounded(now, CHECKS_PER_PASS, due);
        for slot in due.drain(..) {
            if let Some(id) = self.conns.by_slot(slot.key as usize, slot.generation) {
                self.check_liveness(id, now);
            }
        }
        more
    }

    /// A connection's liveness timer fired: close it if its token has expired (4001) or it has
    /// been silent too long, ping it if a ping is due, and re-arm for the next check. Traffic
    /// never touches the timer; it only moves `last_rx_tick`, which is read here.
    fn check_liveness(&self, id: ConnId, now: u64) {
        let LivenessLimits {
            ping_interval: interval,
            idle_limit,
            heartbeat_limit,
            pong_timeout,
        } = self.limits;
        let outcome = self.conns.with(id, |conn| {
            conn.timer = None;
            let token_deadline = self.token_deadline(conn);
            if token_deadline.is_some_and(|deadline| now >= deadline) {
                conn.close(TOKEN_EXPIRED_CLOSE, "token expired");
                return Liveness::TokenExpired;
            }
            let last_rx = conn.last_rx_tick;
            let silent = now.saturating_sub(last_rx);
            if idle_limit.is_some_and(|limit| silent >= limit) {
                conn.close_by_engine(EngineClose::Idle, CloseCode::GOING_AWAY, "idle timeout");
                return Liveness::IdleTimeout;
            }
            // The heartbeat closes only a connection that left a ping unanswered for the pong
            // timeout: after a stall of the core, a silent connection is pinged first.
            let mut unanswered_ping = (conn.first_ping_tick > last_rx).then_some(conn.first_ping_tick);
            let heartbeat_due = |ping: u64| heartbeat_limit.map(|limit| (ping + pong_timeout).max(last_rx + limit));
            if unanswered_ping.and_then(heartbeat_due).is_some_and(|due| now >= due) {
                conn.close_by_engine(EngineClose::Heartbeat, CloseCode::GOING_AWAY, "heartbeat timeout");
                return Liveness::HeartbeatTimeout;
            }
            let mut next = idle_limit
                .map(|limit| last_rx + limit)
                .into_iter()
                .chain(token_deadline)
                .min();
            let mut outcome = Liveness::Alive;
            if let Some(interval) = interval {
                // The first check comes early (spread); it pings after that much silence, and
                // from then on each connection keeps its own phase.
                let due_after = match std::mem::replace(&mut conn.liveness_primed, true) {
                    true => interval,
                    false => spread_first_check(interval, id.as_u64()),
                };
                let next_ping = if silent >= due_after {
                    conn.send_ping();
                    if unanswered_ping.is_none() {
                        conn.first_ping_tick = now;
                        unanswered_ping = Some(now);
                    }
                    outcome = Liveness::Pinged;
                    now + interval
                } else {
                    last_rx + interval
                };
                let heartbeat = unanswered_ping.and_then(heartbeat_due);
                next = [next, Some(next_ping), heartbeat].into_iter().flatten().min();
            }
            if let Some(deadline) = next {
                conn.timer = Some(self.timers.borrow_mut().arm(deadline, TimerSlot::of(id)));
            }
            outcome
        });
        match outcome {
            Some(Liveness::IdleTimeout) => self.counters().inc(Counter::IdleTimeouts),
            Some(Liveness::HeartbeatTimeout) => self.counters().inc(Counter::HeartbeatTimeouts),
            Some(Liveness::Pinged) => self.counters().inc(Counter::PingsSent),
            Some(Liveness::TokenExpired) => self.counters().inc(Counter::TokenExpiredCloses),
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
    /// Silence after which an unanswered connection is closed (ping interval + pong timeout),
    /// at the earliest the pong timeout after its first unanswered ping.
    heartbeat_limit: Option<u64>,
    /// The pong timeout.
    pong_timeout: u64,
}

impl LivenessLimits {
    fn from_config(config: &crate::config::Config) -> LivenessLimits {
        let ticks = |d: Duration| (!d.is_zero()).then(|| duration_to_ticks(d, config.timer_tick));
        let ping_interval = ticks(config.ping_interval);
        let pong_timeout = duration_to_ticks(config.pong_timeout, config.timer_tick);
        LivenessLimits {
            ping_interval,
            idle_limit: ticks(config.idle_timeout),
            heartbeat_limit: ping_interval.map(|i| i + pong_timeout),
            pong_timeout,
        }
    }

    /// Ticks of silence before a connection is first looked at, if anything is enabled.
    fn first_check(&self) -> Option<u64> {
        [self.ping_interval, self.idle_limit].into_iter().flatten().min()
    }
}

/// What a liveness check did.
enum Liveness {
    TokenExpired,
    IdleTimeout,
    HeartbeatTimeout,
    Pinged,
    Alive,
}

/// The configured outbound queue limit and slow-consumer close code.
fn queue_limits(config: &crate::config::Config) -> QueueLimits {
    QueueLimits {
        max_queued_bytes: config.max_queued_bytes,
        close_code: CloseCode(config.slow_consumer_close_code),
    }
}

/// Slab and timer capacity reserved per core: virtual memory only, touched as connections come.
fn expected_per_core(shared: &Shared) -> usize {
    (shared.config.max_connections / shared.registry.core_count().max(1)).min(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::handler::{EchoHandler, Handler};
    use crate::metrics::Registry;
    use crate::proto::session::{Role, Session};
    use crate::server::conn::OpenParts;
    use crate::server::inbox::Inboxes;
    use crate::server::router::Router;

    fn core_with(config: Config) -> CoreCtx<impl Handler> {
        let registry = Registry::new(1);
        let inboxes = Arc::new(Inboxes::new(1).unwrap());
        let shutdown = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let access = crate::access::Access::from_config(&config).unwrap();
        let routers = [Router::default(), Router::default(), Router::default()];
        let shared = Arc::new(Shared::new(config, access, registry, routers, inboxes, shutdown));
        CoreCtx::new(0, shared, EchoHandler)
    }

    fn open(core: &CoreCtx<impl Handler>) -> ConnId {
        open_with(
            core,
            ConnMeta::new("127.0.0.1:1".parse().unwrap(), "/", None, None, Vec::new()),
        )
    }

    fn open_with(core: &CoreCtx<impl Handler>, meta: ConnMeta) -> ConnId {
        let parts = Box::new(OpenParts {
            session: Session::new(Role::Server, 1024),
            meta,
            peer_close: None,
            role: crate::server::conn::ConnRole::Application,
        });
        let id = core.conns.insert(-1, None, core.now_tick(), 0, parts);
        core.arm_liveness(id);
        id
    }

    #[test]
    fn connections_opened_together_are_pinged_spread_out_and_stay_spread() {
        let mut config = Config::embedded();
        config.ping_interval = Duration::from_secs(30);
        config.timer_tick = Duration::from_millis(100);
        let core = core_with(config);
        let interval = 300;
        for _ in 0..2000 {
            open(&core);
        }
        let mut due = Vec::new();
        let mut pings_per_tick = Vec::new();
        for now in 1..=2 * interval {
            let before = core.counters().get(Counter::PingsSent);
            while core.expire(now, &mut due) {}
            pings_per_tick.push(core.counters().get(Counter::PingsSent) - before);
        }
        let (first, second) = pings_per_tick.split_at(interval as usize);
        assert_eq!(first.iter().sum::<u64>(), 2000, "everyone pinged within one interval");
        assert_eq!(second.iter().sum::<u64>(), 2000, "and once in the next");
        let busiest = *first.iter().chain(second).max().unwrap();
        assert!(busiest <= 40, "one pass pinged {busiest} of 2000 (no spread)");
        assert!(
            first.iter().filter(|&&n| n > 0).count() >= 140,
            "pings spread over half an interval"
        );
    }

    #[test]
    fn a_connection_is_closed_with_4001_when_its_token_expires_and_not_before() {
        let mut config = Config::embedded();
        config.ping_interval = Duration::ZERO;
        config.timer_tick = Duration::from_millis(100);
        let core = core_with(config);
        let started = core.started_unix.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let token = crate::access::TokenGrants::new(started + 3, None, None, None);
        let meta = ConnMeta::new("127.0.0.1:1".parse().unwrap(), "/", None, None, Vec::new());
        let id = open_with(&core, meta.with_token(token));
        let plain = open(&core);
        let deadline = core.conns.with(id, |c| core.token_deadline(c)).flatten().unwrap();
        assert!(
            (20..=30).contains(&deadline),
            "exp is 2 to 3 s after the core started: {deadline}"
        );
        let mut due = Vec::new();
        core.expire(deadline - 1, &mut due);
        assert_eq!(core.conns.with(id, |c| c.close_sent()), Some(false), "not before exp");
        core.expire(deadline, &mut due);
        let sent = core.conns.with(id, |c| c.sent_close()).flatten();
        assert_eq!(sent, Some((TOKEN_EXPIRED_CLOSE, "token expired".to_owned())));
        assert_eq!(core.counters().get(Counter::TokenExpiredCloses), 1);
        assert_eq!(
            core.conns.with(plain, |c| c.timer.is_some()),
            Some(false),
            "no timer without a token"
        );
    }

    #[test]
    fn a_silent_connection_is_pinged_then_closed_a_pong_timeout_later_even_after_a_stall() {
        let mut config = Config::embedded();
        config.ping_interval = Duration::from_secs(1);
        config.pong_timeout = Duration::from_secs(2);
        config.timer_tick = Duration::from_millis(100);
        let core = core_with(config.clone());
        let steady = open(&core);
        let mut due = Vec::new();
        let closed = |core: &CoreCtx<_>, id| {
            core.conns
                .with(id, |c: &mut crate::server::conn::ConnState| c.close_sent())
                .unwrap()
        };
        // Tick by tick: the first ping within the first interval, the close once the silence
        // reaches interval + pong timeout (30 ticks), at least 20 ticks after that ping.
        let mut first_ping = None;
        for now in 1..=40 {
            core.expire(now, &mut due);
            if first_ping.is_none() && core.counters().get(Counter::PingsSent) > 0 {
                first_ping = Some(now);
            }
            if closed(&core, steady) {
                assert!(now >= 30 && now >= first_ping.unwrap() + 20, "closed at tick {now}");
                break;
            }
        }
        assert!(closed(&core, steady), "closed for the heartbeat");
        assert_eq!(core.counters().get(Counter::HeartbeatTimeouts), 1);
        // Another core stalls past interval + pong timeout before its connection's first
        // check: the connection is pinged, not closed, and closed only a pong timeout later.
        let core = core_with(config);
        let stalled = open(&core);
        while core.expire(100, &mut due) {}
        assert!(!closed(&core, stalled), "not closed without a ping");
        assert_eq!(core.counters().get(Counter::PingsSent), 1, "pinged");
        core.expire(119, &mut due);
        assert!(!closed(&core, stalled));
        core.expire(120, &mut due);
        assert!(closed(&core, stalled), "closed a pong timeout after the ping");
        assert_eq!(core.counters().get(Counter::HeartbeatTimeouts), 1);
    }

    #[test]
    fn one_timer_pass_is_bounded() {
        let mut config = Config::embedded();
        config.ping_interval = Duration::from_secs(1);
        config.timer_tick = Duration::from_secs(1);
        let core = core_with(config);
        for _ in 0..(CHECKS_PER_PASS + 10) {
            open(&core);
        }
        let mut due = Vec::new();
        assert!(core.expire(1, &mut due), "more than one pass's worth is due");
        assert_eq!(core.counters().get(Counter::PingsSent), CHECKS_PER_PASS as u64);
        assert!(!core.expire(1, &mut due));
        assert_eq!(core.counters().get(Counter::PingsSent), CHECKS_PER_PASS as u64 + 10);
    }
}
