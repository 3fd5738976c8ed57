//! Plain HTTP on the WebSocket port: [`Response`] (what a route or handler answers) and
//! [`HttpReply`] (an answer now, or later from the same core).

/// An HTTP response produced by a route or a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: String,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.into().into_bytes(),
        }
    }

    /// An `application/json` response.
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "application/json".into(),
            body: body.into().into_bytes(),
        }
    }
}

/// Names a response that a handler will give later, on the same core, with
/// [`crate::handler::CoreContext::complete_http`] (for example once a broker has answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpToken(pub(crate) u64);

impl HttpToken {
    /// The token as a number (to carry it through a message to another thread and back).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The token carried as [`HttpToken::as_u64`].
    pub fn from_u64(value: u64) -> HttpToken {
        HttpToken(value)
    }
}

/// A handler's answer to a plain HTTP request.
#[derive(Debug)]
pub enum HttpReply {
    /// Send this response now.
    Ready(Response),
    /// The response comes later through [`crate::handler::CoreContext::complete_http`]; if it
    /// has not come within `http_reply_timeout`, the client gets 504.
    Pending(HttpToken),
}
