//! A one-shot, single-threaded event that any number of tasks on one core can await
//! (shutdown started, connections drained).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// Fires once; every waiter, past and future, then proceeds.
#[derive(Default)]
pub(crate) struct Latch {
    fired: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Latch {
    /// Fires the latch and wakes every waiter.
    pub fn fire(&self) {
        if !self.fired.replace(true) {
            for waker in self.waiters.take().drain() {
                waker.wake();
            }
        }
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Resolves once the latch has fired. Each waiting future holds one waker slot, replaced
    /// on every poll and released when the future is dropped, so repeated polling or
    /// abandoned waits never accumulate.
    pub fn wait(&self) -> LatchWait<'_> {
        LatchWait {
            latch: self,
            slot: None,
        }
    }
}

/// Future returned by [`Latch::wait`].
pub(crate) struct LatchWait<'a> {
    latch: &'a Latch,
    slot: Option<usize>,
}

impl Future for LatchWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.latch.fired.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.latch.waiters.borrow_mut();
        match self.slot {
            Some(slot) => waiters[slot].clone_from(cx.waker()),
            None => {
                let slot = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for LatchWait<'_> {
    fn drop(&mut self) {
        if let (Some(slot), false) = (self.slot, self.latch.fired.get()) {
            self.latch.waiters.borrow_mut().try_remove(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn repeated_polls_and_dropped_waits_hold_no_extra_slots() {
        let latch = Latch::default();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut wait = std::pin::pin!(latch.wait());
            for _ in 0..3 {
                assert!(wait.as_mut().poll(&mut cx).is_pending());
            }
        }
        assert_eq!(latch.waiters.borrow().len(), 0, "dropped waits release their slots");
        let mut kept = Box::pin(latch.wait());
        assert!(kept.as_mut().poll(&mut cx).is_pending());
        assert!(kept.as_mut().poll(&mut cx).is_pending());
        assert_eq!(latch.waiters.borrow().len(), 1);
        latch.fire();
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        assert!(kept.as_mut().poll(&mut cx).is_ready());
        assert!(latch.is_fired());
    }
}
