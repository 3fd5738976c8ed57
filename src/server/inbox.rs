//! Cross-core delivery: pre-encoded frames sent to connections that live on another core, and
//! application [`Post`]s for another core's handler, from another core's handlers or from any
//! thread outside the cores (an HTTP publish handler, a broker subscriber).
//!
//! Every core has one [`Inbox`]. A core collects what its handlers send to other cores in its
//! [`Outbox`] during a loop turn and hands each destination the whole batch at the end of the
//! turn: one short lock and one wake-up per destination per turn, not per message. A wake-up is
//! sent only when the destination has not been woken since it last drained (one atomic swap per
//! batch), through `MSG_RING` when both cores run the io_uring data path, else through the
//! destination's eventfd. Batches from one source are appended in order and drained in order,
//! so frames from one source to one connection arrive in the order they were sent.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::api::{ConnId, Post, PostError, SendError};

/// Who a delivery is for: connections of one core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipients {
    /// One connection.
    One(ConnId),
    /// Several connections of the same core (one fan-out batch).
    Many(Arc<[ConnId]>),
}

/// What travels through an inbox to one core.
#[derive(Clone)]
pub(crate) enum Delivery {
    /// One pre-encoded frame for connections of the core.
    Frame { to: Recipients, frame: Bytes },
    /// An application item for the core's handler ([`crate::handler::Handler::on_post`]).
    Post(Post),
}

/// One core's inbox: deliveries from any thread, taken in batches by the core's driver.
pub(crate) struct Inbox {
    queue: Mutex<Vec<Delivery>>,
    /// Set by the first producer after a drain; cleared by the consumer before it drains.
    notified: AtomicBool,
    /// Wakes the core from any thread (external producers; and core producers when the
    /// destination runs the epoll data path).
    eventfd: OwnedFd,
    /// The destination's raw io_uring descriptor while its io_uring data path runs (-1
    /// otherwise): other cores wake it with `MSG_RING` from their own rings.
    ring_fd: AtomicI32,
}

/// How a producer must wake the destination core after handing it a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WakeBy {
    /// It was already woken since its last drain: nothing to do.
    Nothing,
    /// Post a `MSG_RING` completion on this io_uring descriptor.
    MsgRing(RawFd),
    /// Write the destination's eventfd (done already by [`Inbox::push`] when asked to).
    EventFd,
}

impl Inbox {
    fn new() -> io::Result<Inbox> {
        // SAFETY: plain syscall; the returned descriptor is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Inbox {
            queue: Mutex::new(Vec::new()),
            notified: AtomicBool::new(false),
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            eventfd: unsafe { OwnedFd::from_raw_fd(fd) },
            ring_fd: AtomicI32::new(-1),
        })
    }

    /// Appends `batch` (emptying it) and says how the destination must be woken. A producer
    /// that can post `MSG_RING` (`can_msg_ring`) gets [`WakeBy::MsgRing`] when the destination
    /// runs on io_uring; otherwise the eventfd is written here.
    pub fn push(&self, batch: &mut Vec<Delivery>, can_msg_ring: bool) -> WakeBy {
        if batch.is_empty() {
            return WakeBy::Nothing;
        }
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).append(batch);
        if self.notified.swap(true, Ordering::AcqRel) {
            return WakeBy::Nothing;
        }
        let ring = self.ring_fd.load(Ordering::Acquire);
        if can_msg_ring && ring >= 0 {
            return WakeBy::MsgRing(ring);
        }
        self.signal();
        WakeBy::EventFd
    }

    /// Takes everything queued. The notified flag is cleared first, so a batch pushed while
    /// (or after) this drains either is taken here or wakes the core again.
    pub fn take(&self, into: &mut Vec<Delivery>) {
        self.notified.store(false, Ordering::Release);
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if into.is_empty() {
            std::mem::swap(&mut *queue, into);
        } else {
            into.append(&mut queue);
        }
    }

    /// The eventfd a driver waits on (readable when woken from outside io_uring).
    pub fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Resets the eventfd after a wake-up through it.
    pub fn clear_eventfd(&self) {
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into `count`; non-blocking, so an unsignalled eventfd just fails.
        unsafe { libc::read(self.eventfd(), (&mut count as *mut u64).cast(), 8) };
    }

    /// Announces (or, with -1, withdraws) the core's raw io_uring descriptor for `MSG_RING`.
    pub fn set_ring_fd(&self, fd: RawFd) {
        self.ring_fd.store(fd, Ordering::Release);
    }

    /// Wakes the core through its eventfd.
    pub fn signal(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from `one`; an eventfd at its maximum just fails (still readable).
        unsafe { libc::write(self.eventfd(), (&one as *const u64).cast(), 8) };
    }
}

/// The inboxes of every core, shared by the cores and by [`DeliveryHandle`]s.
pub(crate) struct Inboxes(Box<[Inbox]>);

impl Inboxes {
    /// One inbox per core.
    pub fn new(cores: usize) -> io::Result<Inboxes> {
        (0..cores)
            .map(|_| Inbox::new())
            .collect::<io::Result<Vec<_>>>()
            .map(|v| Inboxes(v.into()))
    }

    /// Core `core`'s inbox.
    pub fn get(&self, core: usize) -> Option<&Inbox> {
        self.0.get(core)
    }

    /// How many cores have an inbox.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// What one core's handlers sent to other cores during the current loop turn, per destination.
pub(crate) struct Outbox {
    per_core: RefCell<Vec<Vec<Delivery>>>,
}

impl Outbox {
    /// An empty outbox for a server of `cores` cores.
    pub fn new(cores: usize) -> Outbox {
        Outbox {
            per_core: RefCell::new((0..cores).map(|_| Vec::new()).collect()),
        }
    }

    /// Hands every pending batch to its destination; `wake(core, ring_fd)` is called for each
    /// destination that wants a `MSG_RING` (drivers without a ring pass `can_msg_ring = false`).
    pub fn flush(&self, inboxes: &Inboxes, can_msg_ring: bool, mut wake: impl FnMut(usize, RawFd)) {
        let mut per_core = self.per_core.borrow_mut();
        for (core, batch) in per_core.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            if let Some(inbox) = inboxes.get(core) {
                if let WakeBy::MsgRing(fd) = inbox.push(batch, can_msg_ring) {
                    wake(core, fd);
                }
            }
        }
    }

    /// Queues `frame` for connection `id` on another core (delivered after this turn).
    pub fn send(&self, id: ConnId, frame: Bytes) -> Result<(), SendError> {
        let mut per_core = self.per_core.borrow_mut();
        let batch = per_core.get_mut(id.core()).ok_or(SendError::NoSuchCore(id))?;
        batch.push(Delivery::Frame {
            to: Recipients::One(id),
            frame,
        });
        Ok(())
    }

    /// Queues `post` for the handler of `core` (handed over after this turn).
    pub fn post(&self, core: usize, post: Post) -> Result<(), PostError> {
        let mut per_core = self.per_core.borrow_mut();
        let batch = per_core.get_mut(core).ok_or(PostError::NoSuchCore(core))?;
        batch.push(Delivery::Post(post));
        Ok(())
    }
}

/// Sends pre-encoded frames to connections on any core, from any thread (`Send + Clone`).
///
/// Each call takes one short lock on the destination core's inbox and wakes that core at most
/// once until it drains; a fan-out to many connections of one core is one call
/// ([`DeliveryHandle::send_many`]). Delivery is asynchronous: `Ok` means queued for the core;
/// a connection that has closed meanwhile, or whose queue is over `max_queued_bytes`, drops
/// the frame and is counted in `ringcast_cross_core_undeliverable_total`.
#[derive(Clone)]
pub struct DeliveryHandle {
    inboxes: Arc<Inboxes>,
}

impl DeliveryHandle {
    pub(crate) fn new(inboxes: Arc<Inboxes>) -> DeliveryHandle {
        DeliveryHandle { inboxes }
    }

    /// Queues `frame` (see [`crate::proto::frame::server_frame`]) for connection `id`.
    pub fn send(&self, id: ConnId, frame: Bytes) -> Result<(), SendError> {
        self.deliver(id.core(), Recipients::One(id), frame, id)
    }

    /// Queues one `frame` for every connection in `ids`, all of which live on `core`.
    pub fn send_many(&self, core: usize, ids: Arc<[ConnId]>, frame: Bytes) -> Result<(), SendError> {
        let Some(&first) = ids.first() else {
            return Ok(());
        };
        if let Some(&stray) = ids.iter().find(|id| id.core() != core) {
            return Err(SendError::NoSuchCore(stray));
        }
        self.deliver(core, Recipients::Many(ids), frame, first)
    }

    /// Hands `post` to the handler of `core` ([`crate::handler::Handler::on_post`] runs on
    /// that core's thread). Posts from one thread to one core arrive in the order posted, and in
    /// order with the frames sent from that thread.
    pub fn post(&self, core: usize, post: Post) -> Result<(), PostError> {
        let inbox = self.inboxes.get(core).ok_or(PostError::NoSuchCore(core))?;
        inbox.push(&mut vec![Delivery::Post(post)], false);
        Ok(())
    }

    /// How many cores the server runs (posts go to cores `0..cores()`).
    pub fn cores(&self) -> usize {
        self.inboxes.len()
    }

    fn deliver(&self, core: usize, to: Recipients, frame: Bytes, named: ConnId) -> Result<(), SendError> {
        let inbox = self.inboxes.get(core).ok_or(SendError::NoSuchCore(named))?;
        inbox.push(&mut vec![Delivery::Frame { to, frame }], false);
        Ok(())
    }
}

impl std::fmt::Debug for DeliveryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryHandle")
            .field("cores", &self.inboxes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(n: u8) -> Delivery {
        Delivery::Frame {
            to: Recipients::One(ConnId::new(1, 0, 1)),
            frame: Bytes::from(vec![n]),
        }
    }

    fn first_byte(delivery: &Delivery) -> u8 {
        match delivery {
            Delivery::Frame { frame, .. } => frame[0],
            Delivery::Post(post) => *post.downcast_ref::<u8>().unwrap(),
        }
    }

    #[test]
    fn one_wake_per_drain_and_batches_stay_in_order() {
        let inboxes = Inboxes::new(2).unwrap();
        let inbox = inboxes.get(1).unwrap();
        assert_eq!(inbox.push(&mut vec![delivery(1), delivery(2)], false), WakeBy::EventFd);
        assert_eq!(
            inbox.push(&mut vec![delivery(3)], false),
            WakeBy::Nothing,
            "already woken"
        );
        let mut taken = Vec::new();
        inbox.take(&mut taken);
        let order: Vec<u8> = taken.iter().map(first_byte).collect();
        assert_eq!(order, [1, 2, 3]);
        inbox.clear_eventfd();
        inbox.set_ring_fd(42);
        assert_eq!(
            inbox.push(&mut vec![delivery(4)], true),
            WakeBy::MsgRing(42),
            "woken again after a drain"
        );
        assert_eq!(inbox.push(&mut vec![delivery(5)], false), WakeBy::Nothing);
    }

    #[test]
    fn an_outbox_hands_each_destination_its_batch() {
        let inboxes = Inboxes::new(2).unwrap();
        let outbox = Outbox::new(2);
        outbox.send(ConnId::new(1, 0, 1), Bytes::from_static(b"a")).unwrap();
        outbox.send(ConnId::new(1, 3, 9), Bytes::from_static(b"b")).unwrap();
        let far = ConnId::new(2, 0, 1);
        assert_eq!(outbox.send(far, Bytes::new()), Err(SendError::NoSuchCore(far)));
        outbox.post(1, Arc::new(3u8)).unwrap();
        assert_eq!(outbox.post(2, Arc::new(0u8)), Err(PostError::NoSuchCore(2)));
        outbox.flush(&inboxes, false, |_, _| unreachable!("no ring announced"));
        let mut taken = Vec::new();
        inboxes.get(1).unwrap().take(&mut taken);
        let order: Vec<u8> = taken.iter().map(first_byte).collect();
        assert_eq!(order, b"ab\x03", "frames and posts in the order sent");
        outbox.flush(&inboxes, false, |_, _| unreachable!("nothing left to hand over"));
        inboxes.get(1).unwrap().take(&mut taken);
        assert_eq!(taken.len(), 3, "the outbox was emptied by the first flush");
        inboxes.get(0).unwrap().take(&mut taken);
        assert_eq!(taken.len(), 3, "nothing for core 0");
    }

    #[test]
    fn a_handle_refuses_unknown_cores_and_mixed_batches() {
        let handle = DeliveryHandle::new(Arc::new(Inboxes::new(1).unwrap()));
        let far = ConnId::new(5, 0, 1);
        assert_eq!(handle.send(far, Bytes::new()), Err(SendError::NoSuchCore(far)));
        let mixed: Arc<[ConnId]> = vec![ConnId::new(0, 0, 1), far].into();
        assert_eq!(
            handle.send_many(0, mixed, Bytes::new()),
            Err(SendError::NoSuchCore(far))
        );
        assert!(handle.send(ConnId::new(0, 1, 2), Bytes::new()).is_ok());
        assert_eq!(handle.post(1, Arc::new(0u8)), Err(PostError::NoSuchCore(1)));
        assert!(handle.post(0, Arc::new(0u8)).is_ok());
    }
}
