//! One pinned thread with one monoio runtime running one lane's share of the connections.
//!
//! Phases: `Ramp` (open connections, answer pings) until every core is ready and the
//! coordinator says go; `Load` (send messages; measure inside the window; push: keep receiving
//! for the drain after publishing stopped); `Drain` (stop sending, collect the echoes still in
//! flight, close). A reaper fails connections that overrun their deadline, so every phase
//! ends on its own.

use std::cell::{Cell, RefCell, RefMut};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use monoio::task::JoinHandle;

use crate::conn::{drive, establish, Link, Peer};
use crate::local::Notify;
use crate::plan::{Lane, Pacing, Plan, Scenario};
use crate::push::counts::PushCounts;
use crate::push::subscriber::Subscriber;
use crate::push::ws::WsPublisher;
use crate::rng::WyRand;
use crate::stats::{CoreReport, CoreStats, Live};
use ringcast::config::IoMode;

/// How often the reaper looks for connections past their deadline.
const REAP_EVERY: Duration = Duration::from_millis(50);
/// Pause after a failed churn attempt so a refusing server is not hammered in a tight loop.
const CHURN_BACKOFF: Duration = Duration::from_millis(10);

/// Where a core is in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connections are being opened; nothing is sent.
    Ramp,
    /// Messages flow (push: until the drain after the window is over).
    Load,
    /// The window is over: no new messages, close once the in-flight ones are back.
    Drain,
}

/// When the load started and when its measured window lies; the same for every core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The coordinator's go signal.
    pub go: Instant,
    /// Start of the measured window (after the warmup).
    pub window_start: Instant,
    /// End of the measured window: sending stops.
    pub window_end: Instant,
    /// Connections begin to close (push: after the drain; otherwise the end of the window).
    pub drain_end: Instant,
    /// Connections still running now are failed.
    pub close_by: Instant,
}

impl Timeline {
    /// The timeline of `plan` for a go signal at `go`.
    pub fn new(go: Instant, plan: &Plan) -> Timeline {
        let window_start = go + plan.warmup;
        let window_end = window_start + plan.window;
        let drain_end = window_end + plan.drain();
        Timeline {
            go,
            window_start,
            window_end,
            drain_end,
            close_by: drain_end + plan.timeouts.close + REAP_EVERY,
        }
    }
}

/// Cross-thread rendezvous between the cores of one process and its coordinator.
#[derive(Debug, Default)]
pub struct Rendezvous {
    /// Cores that finished ramping up.
    pub ready: AtomicUsize,
    /// The go signal.
    pub go: OnceLock<Instant>,
}

/// Which monoio driver a core runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring.
    IoUring,
    /// epoll (monoio's legacy driver).
    Legacy,
}

impl Driver {
    /// The driver for `choice`: io_uring when asked for and available, else epoll (said once
    /// on stderr under `auto`).
    pub fn choose(choice: IoMode) -> Result<Driver, String> {
        match (choice, monoio::utils::detect_uring()) {
            (IoMode::Epoll, _) => Ok(Driver::Legacy),
            (_, true) => Ok(Driver::IoUring),
            (IoMode::Uring, false) => Err("--io uring: io_uring is not available on this kernel".into()),
            (IoMode::Auto, false) => {
                say_fallback("io_uring is not available");
                Ok(Driver::Legacy)
            }
        }
    }

    /// Name for the summary.
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Legacy => "epoll",
        }
    }
}

fn say_fallback(why: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| eprintln!("ringcast-loadgen: {why}; using monoio's epoll driver"));
}

/// Builds a runtime for `driver` (falling back to epoll if io_uring fails) and runs `make()`.
fn block_on<F: std::future::Future>(driver: Driver, make: impl FnOnce() -> F) -> std::io::Result<F::Output> {
    if driver == Driver::IoUring {
        match ringcast::server::build_uring_runtime() {
            Ok(mut rt) => return Ok(rt.block_on(make())),
            Err(e) => say_fallback(&format!("io_uring setup failed ({e})")),
        }
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()?;
    Ok(rt.block_on(make()))
}

/// Starts the thread for `lane`; it pins itself, runs the lane and returns its report.
pub fn spawn(
    plan: Arc<Plan>,
    lane: Lane,
    proc: usize,
    driver: Driver,
    rendezvous: Arc<Rendezvous>,
    live: Arc<Live>,
) -> std::io::Result<std::thread::JoinHandle<Result<CoreReport, String>>> {
    std::thread::Builder::new()
        .name(format!("loadgen-core{}", lane.core))
        .spawn(move || {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: lane.core }) {
                eprintln!("ringcast-loadgen: could not pin a thread to core {}", lane.core);
            }
            block_on(driver, || async move {
                let engine = Rc::new(Engine::new(plan, lane, proc, live));
                engine.clone().run(&rendezvous).await;
                engine.report()
            })
            .map_err(|e| format!("core {}: cannot build a runtime: {e}", lane.core))
        })
}

/// The per-core state every connection task of the core shares.
pub struct Engine {
    /// The run.
    pub plan: Arc<Plan>,
    /// This core's share.
    pub lane: Lane,
    /// Read buffer size per connection.
    pub read_capacity: usize,
    /// Initial write buffer size per connection.
    pub write_capacity: usize,
    /// Masks, nonces and per-connection seeds.
    pub rng: RefCell<WyRand>,
    epoch: Instant,
    phase: Cell<Phase>,
    timeline: Cell<Option<Timeline>>,
    window: Cell<(u64, u64)>,
    stats: RefCell<CoreStats>,
    live: Arc<Live>,
    slots: RefCell<Vec<Option<Rc<Link>>>>,
    pending: Cell<usize>,
    ramp_notify: Notify,
    finished: Cell<bool>,
}

impl Engine {
    fn new(plan: Arc<Plan>, lane: Lane, proc: usize, live: Arc<Live>) -> Engine {
        let conns = lane.conn_count(plan.conns_total);
        let mut stats = CoreStats::new(proc, lane.core, conns);
        stats.report.push = plan.push.as_ref().map(|p| PushCounts::new(p.topics));
        let frame = plan.traffic.payload.len() + 14;
        let in_flight = match plan.traffic.pacing {
            Pacing::ClosedLoop(k) => k as usize,
            _ => 1,
        };
        Engine {
            read_capacity: (frame * in_flight).clamp(4096, 64 * 1024),
            write_capacity: (frame * in_flight).clamp(256, 64 * 1024),
            rng: RefCell::new(WyRand::from_entropy()),
            epoch: Instant::now(),
            phase: Cell::new(Phase::Ramp),
            timeline: Cell::new(None),
            window: Cell::new((u64::MAX, u64::MAX)),
            stats: RefCell::new(stats),
            live,
            slots: RefCell::new(vec![None; conns as usize]),
            pending: Cell::new(0),
            ramp_notify: Notify::default(),
            finished: Cell::new(false),
            plan,
            lane,
        }
    }

    /// Nanoseconds since this engine started (the unit of send stamps).
    pub fn now(&self) -> u64 {
        self.stamp(Instant::now())
    }

    /// `at` as a stamp.
    pub fn stamp(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// A stamp as an instant.
    pub fn instant(&self, stamp: u64) -> Instant {
        self.epoch + Duration::from_nanos(stamp)
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// The timeline (only valid once the load started).
    pub fn timeline(&self) -> Timeline {
        self.timeline.get().expect("the load has started")
    }

    async fn run(self: Rc<Self>, rendezvous: &Rendezvous) {
        let reaper = monoio::spawn(reap(self.clone()));
        let mut tasks = if self.plan.scenario.long_lived() {
            self.ramp().await
        } else {
            Vec::new()
        };
        rendezvous.ready.fetch_add(1, Ordering::SeqCst);
        let go = loop {
            if let Some(go) = rendezvous.go.get() {
                break *go;
            }
            monoio::time::sleep(Duration::from_millis(1)).await;
        };
        let timeline = Timeline::new(go, &self.plan);
        self.start(timeline);
        if self.plan.scenario == Scenario::Churn {
            for (slot, global) in self.lane.conns(self.plan.conns_total).enumerate() {
                tasks.push(monoio::spawn(churn_loop(self.clone(), slot, global)));
            }
        }
        if let Pacing::OpenLoop(rate) = self.plan.traffic.pacing {
            tasks.push(monoio::spawn(crate::pacer::run(self.clone(), rate)));
        }
        if self.plan.push.is_some() {
            tasks.extend(crate::push::start(&self));
        }
        monoio::time::sleep_until(monoio::time::Instant::from_std(timeline.drain_end)).await;
        self.drain(timeline.close_by);
        for task in tasks {
            task.await;
        }
        self.finished.set(true);
        reaper.await;
    }

    /// Opens this lane's long-lived connections at the ramp rate, at most `max_pending` at a
    /// time; returns once every attempt succeeded or failed.
    async fn ramp(self: &Rc<Self>) -> Vec<JoinHandle<()>> {
        let plan = &self.plan;
        let rate = plan.ramp_rate / self.lane.total as f64;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (slot, global) in self.lane.conns(plan.conns_total).enumerate() {
            if rate > 0.0 {
                let at = start + Duration::from_secs_f64(slot as f64 / rate);
                monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
            }
            while self.pending.get() >= plan.max_pending {
                self.ramp_notify.notified().await;
            }
            self.pending.set(self.pending.get() + 1);
            tasks.push(monoio::spawn(long_lived(self.clone(), slot, global)));
        }
        while self.pending.get() > 0 {
            self.ramp_notify.notified().await;
        }
        tasks
    }

    fn start(&self, timeline: Timeline) {
        self.timeline.set(Some(timeline));
        self.window
            .set((self.stamp(timeline.window_start), self.stamp(timeline.window_end)));
        self.phase.set(Phase::Load);
        self.wake_all();
    }

    fn drain(&self, close_by: Instant) {
        self.phase.set(Phase::Drain);
        let mut open = 0;
        for link in self.slots.borrow().iter().flatten() {
            open += u64::from(link.accepting());
            link.set_deadline(close_by);
        }
        if self.plan.scenario.long_lived() {
            self.stats.borrow_mut().report.conns_open_at_end = open;
        }
        self.wake_all();
    }

    fn wake_all(&self) {
        for link in self.slots.borrow().iter().flatten() {
            link.wake();
        }
    }

    /// Registers a running connection so phase changes, the pacer and the reaper reach it.
    pub fn attach(&self, slot: usize, link: Rc<Link>) {
        if self.plan.scenario == Scenario::Churn {
            link.set_deadline(Instant::now() + self.plan.timeouts.close);
        }
        self.live.open.fetch_add(1, Ordering::Relaxed);
        self.slots.borrow_mut()[slot] = Some(link);
    }

    /// Unregisters a finished connection.
    pub fn detach(&self, slot: usize) {
        self.live.closed();
        self.slots.borrow_mut()[slot] = None;
    }

    /// The running connection in `slot`, if any.
    pub fn link(&self, slot: usize) -> Option<Rc<Link>> {
        self.slots.borrow()[slot].clone()
    }

    /// What connection number `global` does with its messages.
    fn peer(&self, global: u64) -> Peer {
        match &self.plan.push {
            None => Peer::Echo,
            Some(push) if global < push.subscribers => {
                Peer::Subscriber(RefCell::new(Subscriber::new(push.topic_of(global))))
            }
            Some(_) => Peer::Publisher(RefCell::new(WsPublisher::default())),
        }
    }

    /// The core's push counts (push runs only).
    pub fn push_counts(&self) -> RefMut<'_, PushCounts> {
        RefMut::map(self.stats.borrow_mut(), |s| s.report.push.as_mut().expect("a push run"))
    }

    /// Open loop: gives message `j`, intended for `stamp`, to a live connection. Returns false
    /// when no connection is left to send on.
    pub fn dispatch(&self, j: u64, stamp: u64) -> bool {
        let slots = self.slots.borrow();
        let n = slots.len();
        if n == 0 {
            return false;
        }
        let first = (j % n as u64) as usize;
        for i in 0..n {
            if let Some(link) = &slots[(first + i) % n] {
                if link.accepting() {
                    link.push_due(stamp);
                    return true;
                }
            }
        }
        false
    }

    /// An echo of a message sent at `stamp` arrived.
    pub fn record_message(&self, stamp: u64, bytes: usize) {
        Live::bump(&self.live.messages, 1);
        let (start, end) = self.window.get();
        if (start..end).contains(&stamp) {
            let now = self.now();
            let mut stats = self.stats.borrow_mut();
            stats.report.messages += 1;
            stats.report.bytes += bytes as u64;
            stats.latency.saturating_record(now.saturating_sub(stamp) / 1000);
        }
    }

    /// An upgrade that began at `began` succeeded.
    fn handshake_done(&self, began: Instant) {
        let now = Instant::now();
        let counts = match self.plan.scenario {
            Scenario::Churn => {
                let (start, end) = self.window.get();
                (start..end).contains(&self.stamp(now))
            }
            Scenario::Connect | Scenario::Echo | Scenario::Push => true,
        };
        let mut stats = self.stats.borrow_mut();
        stats.report.conns_established += 1;
        if counts {
            stats.report.handshakes += 1;
            let micros = now.duration_since(began).as_micros() as u64;
            stats.handshake_latency.saturating_record(micros);
        }
    }

    fn connect_failed(&self, reason: String) {
        Live::bump(&self.live.errors, 1);
        *self
            .stats
            .borrow_mut()
            .report
            .connect_failures
            .entry(reason)
            .or_default() += 1;
    }

    /// An established connection failed for `reason` (push: or one of its frames was unusable).
    pub fn error(&self, reason: String) {
        self.error_count(reason, 1);
    }

    /// `count` failures for `reason` (push: publishes that failed).
    pub fn error_count(&self, reason: String, count: u64) {
        Live::bump(&self.live.errors, count);
        *self.stats.borrow_mut().report.errors.entry(reason).or_default() += count;
    }

    fn report(&self) -> CoreReport {
        let lane = &self.lane;
        let conns = lane.conn_count(self.plan.conns_total);
        let empty = CoreStats::new(self.stats.borrow().report.proc, lane.core, conns);
        self.stats.replace(empty).finish()
    }

    fn pending_done(&self) {
        self.pending.set(self.pending.get() - 1);
        self.ramp_notify.notify();
    }
}

async fn long_lived(engine: Rc<Engine>, slot: usize, global: u64) {
    let began = Instant::now();
    let result = establish(&engine, global).await;
    engine.pending_done();
    match result {
        Err(reason) => engine.connect_failed(reason),
        Ok((stream, leftover)) => {
            engine.handshake_done(began);
            let peer = engine.peer(global);
            if let Err(reason) = drive(&engine, slot, peer, stream, leftover).await {
                engine.error(reason);
            }
        }
    }
}

async fn churn_loop(engine: Rc<Engine>, slot: usize, global: u64) {
    let end = engine.timeline().window_end;
    while Instant::now() < end {
        let began = Instant::now();
        match establish(&engine, global).await {
            Err(reason) => {
                engine.connect_failed(reason);
                monoio::time::sleep(CHURN_BACKOFF).await;
            }
            Ok((stream, leftover)) => {
                engine.handshake_done(began);
                match drive(&engine, slot, Peer::Echo, stream, leftover).await {
                    Ok(()) => {
                        let (start, end) = engine.window.get();
                        if (start..end).contains(&engine.now()) {
                            engine.stats.borrow_mut().report.loops_completed += 1;
                        }
                    }
                    Err(reason) => engine.error(reason),
                }
            }
        }
    }
}

async fn reap(engine: Rc<Engine>) {
    while !engine.finished.get() {
        monoio::time::sleep(REAP_EVERY).await;
        let now = Instant::now();
        for link in engine.slots.borrow().iter().flatten() {
            if link.overdue(now) {
                link.kill();
            }
        }
    }
}
