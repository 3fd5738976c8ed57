//! Small scheduling helpers for the per-core driver tasks.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

/// Lets the runtime run its other ready tasks once.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Waits until either future is ready (both are polled every time, so both keep their
/// wake-up registered); what they return is not needed.
pub(crate) async fn either<A: Future, B: Future>(a: A, b: B) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        let woke = a.as_mut().poll(cx).is_ready() | b.as_mut().poll(cx).is_ready();
        if woke {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}
