//! A one-shot, single-threaded event that any number of tasks on one core can await
//! (shutdown started, connections drained).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Fires once; every waiter, past and future, then proceeds.
#[derive(Default)]
pub(crate) struct Latch {
    fired: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Latch {
    /// Fires the latch and wakes every waiter.
    pub fn fire(&self) {
        if !self.fired.replace(true) {
            for waker in self.waiters.take() {
                waker.wake();
            }
        }
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Resolves once the latch has fired.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.fired.get() {
                return Poll::Ready(());
            }
            let mut waiters = self.waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
