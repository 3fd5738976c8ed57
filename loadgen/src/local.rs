//! A single-threaded wake-up flag for two tasks on one monoio runtime.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes one waiting task; notifications made while nobody waits are remembered (coalesced).
#[derive(Default)]
pub struct Notify {
    pending: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Notify {
    /// Marks the flag and wakes the waiter, if any.
    pub fn notify(&self) {
        self.pending.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Resolves once `notify` has been called since the last time this resolved.
    pub fn notified(&self) -> Notified<'_> {
        Notified(self)
    }
}

/// The future returned by [`Notify::notified`].
pub struct Notified<'a>(&'a Notify);

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let notify = self.0;
        if notify.pending.replace(false) {
            return Poll::Ready(());
        }
        let waker = match notify.waker.take() {
            Some(old) if old.will_wake(cx.waker()) => old,
            _ => cx.waker().clone(),
        };
        notify.waker.set(Some(waker));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn wakes_a_waiting_task_and_remembers_early_notifications() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let notify = Rc::new(Notify::default());
            notify.notify();
            notify.notified().await;
            let waiter = {
                let notify = notify.clone();
                monoio::spawn(async move {
                    notify.notified().await;
                    7
                })
            };
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            notify.notify();
            assert_eq!(waiter.await, 7);
        });
    }
}
