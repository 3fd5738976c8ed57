//! One client connection: TCP connect, TLS handshake (`wss://`), upgrade, then a reader and a
//! writer task over the split [`Transport`] until the close handshake is done.
//!
//! The reader decodes server frames with ringcast's [`Session`] (role client), hands messages
//! to the connection's [`Peer`] (echo: match them to send timestamps) and queues pongs and
//! close replies. The writer batches everything due (messages, pongs, close) into one masked
//! write. The two share a [`Link`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use monoio::net::TcpStream;
use ringcast::proto::close::close_payload;
use ringcast::proto::frame::encode_frame;
use ringcast::proto::{CloseCode, Event, MessageKind, OpCode, Role, Session};
use socket2::{Domain, Protocol, Socket, Type};

use crate::engine::{Engine, Phase};
use crate::handshake::{check_response, new_key, request, MAX_RESPONSE_HEAD};
use crate::local::Notify;
use crate::plan::Pacing;
use crate::push::subscriber::Subscriber;
use crate::push::ws::WsPublisher;
use crate::rng::WyRand;
use crate::transport::{ReadHalf, Transport, WriteHalf};

/// Names an I/O error the way the summary reports it (`refused`, `reset`, `timeout`, ...).
pub fn io_reason(err: &io::Error) -> String {
    if let Some(tls) = crate::tls::reason_in(err) {
        return tls;
    }
    let name = match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused",
        Some(libc::ECONNRESET) => "reset",
        Some(libc::EPIPE) => "broken_pipe",
        Some(libc::ETIMEDOUT) => "timeout",
        Some(libc::EADDRNOTAVAIL) => "addr_not_available",
        Some(libc::EADDRINUSE) => "addr_in_use",
        Some(libc::EMFILE | libc::ENFILE) => "too_many_open_files",
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => "unreachable",
        Some(code) => return format!("os_error_{code}"),
        None if err.kind() == io::ErrorKind::UnexpectedEof => "eof",
        None => return format!("io_{:?}", err.kind()).to_lowercase(),
    };
    name.to_string()
}

/// Opens a TCP connection to `dst`, bound to `src` first when given.
pub async fn tcp_connect(src: Option<IpAddr>, dst: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(dst),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_nodelay(true)?;
    if let Some(ip) = src {
        // Let connect() pick the port so the 4-tuple, not the local address alone, must be
        // unique: without this each source IP would cap out at one ephemeral range in total.
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, option value and length; failure only loses the optimisation.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&dst.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    // monoio's io_uring driver expects blocking sockets, its epoll driver non-blocking ones.
    let uring = !monoio::utils::is_legacy();
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    stream.writable(false).await?;
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid out-pointers of the right size.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    if uring {
        set_blocking(stream.as_raw_fd())?;
    }
    Ok(stream)
}

fn set_blocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Writes the upgrade request and reads the response; returns the bytes that followed it.
async fn upgrade(stream: &mut Transport, req: Vec<u8>, key: &str, read_capacity: usize) -> Result<Vec<u8>, String> {
    stream.write_all(req).await.map_err(|e| io_reason(&e))?;
    let mut buf = Vec::with_capacity(read_capacity.max(1024));
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(MAX_RESPONSE_HEAD));
        }
        let (res, back) = stream.read_append(buf).await;
        buf = back;
        match res {
            Ok(0) => return Err("eof_in_handshake".into()),
            Ok(_) => {}
            Err(e) => return Err(io_reason(&e)),
        }
        if let Some(head) = check_response(&buf, key).map_err(|e| e.reason())? {
            buf.drain(..head);
            return Ok(buf);
        }
    }
}

/// Connects, makes the TLS handshake (`wss://`) and upgrades connection number `global`; on
/// failure returns the reason. `--handshake-timeout` bounds TLS handshake and upgrade together.
pub async fn establish(engine: &Engine, global: u64) -> Result<(Transport, Vec<u8>), String> {
    let plan = &engine.plan;
    let (src, dst) = plan.targets.pick(global);
    let tcp = match monoio::time::timeout(plan.timeouts.connect, tcp_connect(src, dst)).await {
        Err(_) => return Err("timeout".into()),
        Ok(Err(e)) => return Err(io_reason(&e)),
        Ok(Ok(stream)) => stream,
    };
    let key = new_key(&mut engine.rng.borrow_mut());
    let path = plan.upgrade_path(global);
    let req = request(&path, &plan.url.host_header(dst.port()), &key, &plan.headers);
    let upgraded = async {
        let mut stream = Transport::open(tcp, plan.tls.as_ref()).await?;
        let leftover = upgrade(&mut stream, req, &key, engine.read_capacity).await?;
        Ok((stream, leftover))
    };
    match monoio::time::timeout(plan.timeouts.handshake, upgraded).await {
        Err(_) => Err("handshake_timeout".into()),
        Ok(Err(reason)) => Err(reason),
        Ok(Ok(upgraded)) => Ok(upgraded),
    }
}

/// What a connection does with the messages it receives and what it sends.
pub enum Peer {
    /// Every message is the echo of one this connection sent (connect, echo, churn).
    Echo,
    /// A push subscriber: sends nothing, accounts for what its topic delivers.
    Subscriber(RefCell<Subscriber>),
    /// A push publisher: sends publish commands, matches the replies.
    Publisher(RefCell<WsPublisher>),
}

impl Peer {
    /// Adds what the connection counted to the core's figures once it has ended.
    fn finish(&self, engine: &Engine) {
        match self {
            Peer::Echo => {}
            Peer::Subscriber(subscriber) => subscriber.borrow().finish(engine),
            Peer::Publisher(publisher) => publisher.borrow().finish(engine),
        }
    }
}

/// State shared by the reader and writer of one connection (and the engine's pacer/reaper).
pub struct Link {
    /// What the connection does with messages.
    pub peer: Peer,
    fd: RawFd,
    /// Wakes the writer.
    notify: Notify,
    /// Encoded control frames (pongs) waiting for the writer.
    control: RefCell<BytesMut>,
    /// Closed loop: messages the writer may send now, stamped when written.
    credits: Cell<u32>,
    /// Open loop: intended send times of messages the writer has yet to send.
    due: RefCell<VecDeque<u64>>,
    /// Send stamps of messages awaiting their echo, oldest first.
    in_flight: RefCell<VecDeque<u64>>,
    /// Messages this connection may still send.
    budget: Cell<u64>,
    started: Cell<bool>,
    close_sent: Cell<bool>,
    peer_close: Cell<Option<CloseCode>>,
    reader_done: Cell<bool>,
    killed: Cell<bool>,
    deadline: Cell<Option<Instant>>,
    rng: RefCell<WyRand>,
}

impl Link {
    fn new(peer: Peer, fd: RawFd, budget: Option<u64>, rng: WyRand) -> Link {
        Link {
            peer,
            fd,
            notify: Notify::default(),
            control: RefCell::new(BytesMut::new()),
            credits: Cell::new(0),
            due: RefCell::new(VecDeque::new()),
            in_flight: RefCell::new(VecDeque::new()),
            budget: Cell::new(budget.unwrap_or(u64::MAX)),
            started: Cell::new(false),
            close_sent: Cell::new(false),
            peer_close: Cell::new(None),
            reader_done: Cell::new(false),
            killed: Cell::new(false),
            deadline: Cell::new(None),
            rng: RefCell::new(rng),
        }
    }

    /// Wakes the writer to look at the phase and its queues again.
    pub fn wake(&self) {
        self.notify.notify();
    }

    /// Whether the connection can still take new messages.
    pub fn accepting(&self) -> bool {
        !self.reader_done.get() && !self.close_sent.get() && self.peer_close.get().is_none()
    }

    /// Open loop: queue a message intended for `stamp`.
    pub fn push_due(&self, stamp: u64) {
        self.due.borrow_mut().push_back(stamp);
        self.notify.notify();
    }

    /// Sets a time after which the reaper fails the connection (the earliest one wins).
    pub fn set_deadline(&self, at: Instant) {
        match self.deadline.get() {
            Some(current) if current <= at => {}
            _ => self.deadline.set(Some(at)),
        }
    }

    /// Whether the deadline has passed while the connection is still running.
    pub fn overdue(&self, now: Instant) -> bool {
        !self.reader_done.get() && self.deadline.get().is_some_and(|d| now >= d)
    }

    /// Fails the connection from outside: both pending reads and writes return at once.
    pub fn kill(&self) {
        self.killed.set(true);
        self.shutdown_socket();
    }

    fn shutdown_socket(&self) {
        // SAFETY: the descriptor stays open until `drive` drops both halves of the stream,
        // which happens only after the link is detached from the engine.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }

    /// Why a connection that was cut short ended, given how far the close had got.
    fn cut_short_reason(&self) -> Result<(), String> {
        match (self.peer_close.get(), self.close_sent.get(), self.killed.get()) {
            (Some(_), _, _) => Ok(()),
            (None, true, true) => Err("close_timeout".into()),
            (None, false, true) => Err("response_timeout".into()),
            (None, _, false) => Err("eof".into()),
        }
    }
}

/// Runs an upgraded connection in engine slot `slot` as `peer` to the end of its close
/// handshake.
pub async fn drive(
    engine: &Engine,
    slot: usize,
    peer: Peer,
    stream: Transport,
    leftover: Vec<u8>,
) -> Result<(), String> {
    let seed = engine.rng.borrow_mut().next_u64();
    let link = Rc::new(Link::new(
        peer,
        stream.as_raw_fd(),
        engine.plan.traffic.per_conn,
        WyRand::new(seed),
    ));
    engine.attach(slot, link.clone());
    let (rd, wr) = stream.into_split();
    let (read, (write, wr)) = monoio::join!(read_loop(engine, &link, rd, leftover), write_loop(engine, &link, wr));
    engine.detach(slot);
    link.peer.finish(engine);
    // Keep the write half (and so our FIN) until the reader saw the server close first.
    drop(wr);
    read.and(write)
}

async fn read_loop(engine: &Engine, link: &Link, mut rd: ReadHalf, leftover: Vec<u8>) -> Result<(), String> {
    let mut session = Session::new(Role::Client, engine.plan.max_message_size());
    let mut buf = leftover;
    buf.reserve(engine.read_capacity.saturating_sub(buf.len()));
    let result = loop {
        if !buf.is_empty() {
            let mut failure = None;
            let fed = session.feed(&mut buf, &mut |event| {
                if let Err(reason) = on_event(engine, link, event) {
                    failure.get_or_insert(reason);
                }
            });
            if fed.is_err() {
                break Err("protocol_error".into());
            }
            if let Some(reason) = failure {
                break Err(reason);
            }
        }
        buf.clear();
        let (res, back) = rd.read_append(buf).await;
        buf = back;
        if rd.wants_write() {
            link.wake();
        }
        match res {
            Ok(0) => break link.cut_short_reason(),
            Ok(_) => {}
            Err(_) if link.killed.get() => break link.cut_short_reason(),
            Err(e) => break Err(io_reason(&e)),
        }
    };
    if result.is_err() {
        link.shutdown_socket();
    }
    link.reader_done.set(true);
    link.wake();
    result
}

fn on_event(engine: &Engine, link: &Link, event: Event<'_>) -> Result<(), String> {
    match event {
        Event::Message { kind, payload } => match &link.peer {
            Peer::Echo => return on_echo(engine, link, kind, payload),
            Peer::Subscriber(subscriber) => subscriber.borrow_mut().on_message(engine, kind, payload),
            Peer::Publisher(publisher) => publisher.borrow_mut().on_message(engine, kind, payload),
        },
        Event::Ping(payload) => {
            let mask = link.rng.borrow_mut().mask();
            encode_frame(&mut link.control.borrow_mut(), true, OpCode::Pong, payload, Some(mask));
            link.wake();
        }
        Event::Pong(_) => {}
        Event::Close(frame) => {
            link.peer_close.set(Some(frame.reply_code()));
            if !link.close_sent.get() {
                engine.error("server_close".into());
            }
            link.wake();
        }
    }
    Ok(())
}

/// An echo arrived: match it to the oldest message in flight and record its round trip.
fn on_echo(engine: &Engine, link: &Link, kind: MessageKind, payload: &[u8]) -> Result<(), String> {
    let traffic = &engine.plan.traffic;
    let Some(stamp) = link.in_flight.borrow_mut().pop_front() else {
        return Err("unexpected_message".into());
    };
    if payload != traffic.payload.as_slice() || (kind == MessageKind::Binary) != traffic.binary {
        return Err("echo_mismatch".into());
    }
    engine.record_message(stamp, payload.len());
    let phase = engine.phase();
    if matches!(traffic.pacing, Pacing::ClosedLoop(_)) && phase == Phase::Load && link.budget.get() > 0 {
        link.credits.set(link.credits.get() + 1);
        link.wake();
    } else if link.in_flight.borrow().is_empty() && (phase == Phase::Drain || link.budget.get() == 0) {
        link.wake();
    }
    Ok(())
}

async fn write_loop(engine: &Engine, link: &Link, mut wr: WriteHalf) -> (Result<(), String>, WriteHalf) {
    let mut buf = BytesMut::with_capacity(engine.write_capacity);
    loop {
        if link.reader_done.get() {
            return (Ok(()), wr);
        }
        fill(engine, link, &mut buf);
        if buf.is_empty() && !wr.wants_write() {
            if link.close_sent.get() {
                return (Ok(()), wr);
            }
            link.notify.notified().await;
            continue;
        }
        let (res, back) = wr.write_all(buf).await;
        buf = back;
        buf.clear();
        if let Err(e) = res {
            if link.reader_done.get() || link.killed.get() {
                return (Ok(()), wr);
            }
            link.shutdown_socket();
            return (Err(io_reason(&e)), wr);
        }
    }
}

/// Encodes everything the connection should send now into `buf`.
fn fill(engine: &Engine, link: &Link, buf: &mut BytesMut) {
    {
        let mut control = link.control.borrow_mut();
        if !control.is_empty() {
            buf.extend_from_slice(&control);
            control.clear();
        }
    }
    if link.close_sent.get() {
        return;
    }
    if let Some(code) = link.peer_close.get() {
        send_close(engine, link, buf, code);
        return;
    }
    let phase = engine.phase();
    if phase == Phase::Ramp {
        return;
    }
    let traffic = &engine.plan.traffic;
    if !link.started.replace(true) && phase == Phase::Load {
        if let Pacing::ClosedLoop(k) = traffic.pacing {
            link.credits.set(k);
        }
    }
    if phase == Phase::Load {
        match &link.peer {
            Peer::Echo => fill_echoes(engine, link, buf),
            Peer::Publisher(publisher) => publisher.borrow_mut().fill(engine, buf, &mut link.rng.borrow_mut()),
            Peer::Subscriber(_) => {}
        }
    }
    let done_sending = phase == Phase::Drain || link.budget.get() == 0;
    if done_sending && link.in_flight.borrow().is_empty() {
        send_close(engine, link, buf, CloseCode::NORMAL);
    }
}

/// Encodes the echo messages the connection may send now (closed-loop credits, open-loop due).
fn fill_echoes(engine: &Engine, link: &Link, buf: &mut BytesMut) {
    let traffic = &engine.plan.traffic;
    let opcode = if traffic.binary { OpCode::Binary } else { OpCode::Text };
    let mut in_flight = link.in_flight.borrow_mut();
    let mut rng = link.rng.borrow_mut();
    let mut send = |stamp: u64| {
        let left = link.budget.get();
        if left == 0 {
            return false;
        }
        link.budget.set(left - 1);
        encode_frame(buf, true, opcode, &traffic.payload, Some(rng.mask()));
        in_flight.push_back(stamp);
        true
    };
    let credits = link.credits.replace(0);
    if credits > 0 {
        let now = engine.now();
        for _ in 0..credits {
            if !send(now) {
                break;
            }
        }
    }
    let mut due = link.due.borrow_mut();
    while let Some(&stamp) = due.front() {
        if !send(stamp) {
            break;
        }
        due.pop_front();
    }
}

fn send_close(engine: &Engine, link: &Link, buf: &mut BytesMut, code: CloseCode) {
    let mask = link.rng.borrow_mut().mask();
    encode_frame(buf, true, OpCode::Close, &close_payload(code, ""), Some(mask));
    link.close_sent.set(true);
    link.set_deadline(Instant::now() + engine.plan.timeouts.close);
}
