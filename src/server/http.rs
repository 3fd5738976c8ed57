//! Plain HTTP requests a handler answers: reading the request body, and the per-core table of
//! responses promised for later ([`HttpReply::Pending`](crate::api::HttpReply)).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use crate::api::{HttpToken, Response};
use crate::proto::handshake::{HttpError, Request};

/// How a request's body is delimited, from its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Exactly(usize),
}

/// Reads the body length a plain request declares, refusing what this server does not take:
/// a chunked body (411) or one over `max_body` (413).
pub(crate) fn body_length(request: &Request, max_body: usize) -> Result<BodyLength, HttpError> {
    if request.header("transfer-encoding").is_some() {
        return Err(HttpError::new(
            411,
            "chunked request bodies are not supported; send Content-Length",
        ));
    }
    let Some(value) = request.header("content-length") else {
        return Ok(BodyLength::Empty);
    };
    let length: usize = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| HttpError::new(400, "invalid Content-Length"))?;
    if length > max_body {
        return Err(HttpError::new(413, "request body too large (max_http_body)"));
    }
    Ok(match length {
        0 => BodyLength::Empty,
        n => BodyLength::Exactly(n),
    })
}

/// One promised response: filled by the handler, awaited by the request's task.
#[derive(Default)]
struct Promised {
    response: Option<Response>,
    waiter: Option<Waker>,
}

/// The responses this core's handler has promised and not yet given.
#[derive(Default)]
pub(crate) struct HttpReplies {
    next: Cell<u64>,
    promised: RefCell<HashMap<u64, Promised>>,
}

impl HttpReplies {
    /// Registers a response to come.
    pub fn defer(&self) -> HttpToken {
        let token = self.next.get();
        self.next.set(token + 1);
        self.promised.borrow_mut().insert(token, Promised::default());
        HttpToken(token)
    }

    /// Gives the response promised with `token`; false if nobody waits for it any more.
    pub fn complete(&self, token: HttpToken, response: Response) -> bool {
        let mut promised = self.promised.borrow_mut();
        let Some(entry) = promised.get_mut(&token.0) else {
            return false;
        };
        entry.response = Some(response);
        if let Some(waiter) = entry.waiter.take() {
            waiter.wake();
        }
        true
    }

    /// Waits for the response promised with `token`.
    pub async fn wait(&self, token: HttpToken) -> Option<Response> {
        poll_fn(|cx| {
            let mut promised = self.promised.borrow_mut();
            let Some(entry) = promised.get_mut(&token.0) else {
                return Poll::Ready(None);
            };
            if let Some(response) = entry.response.take() {
                promised.remove(&token.0);
                return Poll::Ready(Some(response));
            }
            entry.waiter = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Forgets a promise whose request gave up (timed out).
    pub fn abandon(&self, token: HttpToken) {
        self.promised.borrow_mut().remove(&token.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::test_request as head;

    #[test]
    fn body_lengths_are_read_and_refused_as_documented() {
        let post = |extra: &str| head(&format!("POST /publish/a HTTP/1.1\r\nHost: x\r\n{extra}\r\n"));
        assert_eq!(body_length(&post(""), 10), Ok(BodyLength::Empty));
        assert_eq!(
            body_length(&post("Content-Length: 4\r\n"), 10),
            Ok(BodyLength::Exactly(4))
        );
        assert_eq!(
            body_length(&post("Content-Length: 11\r\n"), 10).unwrap_err().status,
            413
        );
        assert_eq!(body_length(&post("Content-Length: x\r\n"), 10).unwrap_err().status, 400);
        assert_eq!(
            body_length(&post("Transfer-Encoding: chunked\r\n"), 10)
                .unwrap_err()
                .status,
            411
        );
    }

    #[test]
    fn a_promised_response_is_given_once_and_abandoned_ones_are_refused() {
        let replies = HttpReplies::default();
        let token = replies.defer();
        assert!(replies.complete(token, Response::text(200, "ok")));
        let response = monoio_free_block_on(replies.wait(token));
        assert_eq!(response.map(|r| r.status), Some(200));
        let gone = replies.defer();
        replies.abandon(gone);
        assert!(!replies.complete(gone, Response::text(200, "late")));
    }

    /// Polls a future that is ready without waiting (no runtime needed).
    fn monoio_free_block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the future was not ready"),
        }
    }
}
