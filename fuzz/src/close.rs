//! Target `close`: the close-frame payload parser and the payload builder.

use ringcast::proto::close::{close_payload, BadClosePayload};
use ringcast::proto::{CloseCode, CloseFrame};

/// Whether a peer may send `code`, by tungstenite's independent table, plus 1014 (Bad
/// Gateway), which the IANA registry assigned after tungstenite's table was written and which
/// ringcast accepts.
pub fn wire_code_allowed(code: u16) -> bool {
    code == 1014 || tungstenite::protocol::frame::coding::CloseCode::from(code).is_allowed()
}

/// Parses `data` as a close payload.
///
/// Checks: it is accepted exactly when it is empty, or holds a code that
/// [`wire_code_allowed`] allows followed by a reason that `std::str::from_utf8` accepts, with
/// the right error otherwise; the reply code is the peer's (1000 for none); rebuilding the
/// payload with `close_payload` gives at most 125 bytes that parse back to the same code and
/// a prefix of the reason cut on a character boundary.
pub fn run(data: &[u8]) {
    let parsed = CloseFrame::parse(data);
    let expected = match data {
        [] => Ok((None, "")),
        [_] => Err(BadClosePayload::OneByte),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            match (wire_code_allowed(code), std::str::from_utf8(reason)) {
                (false, _) => Err(BadClosePayload::InvalidCode(code)),
                (true, Err(_)) => Err(BadClosePayload::ReasonNotUtf8),
                (true, Ok(reason)) => Ok((Some(CloseCode(code)), reason)),
            }
        }
    };
    assert_eq!(parsed.map(|frame| (frame.code, frame.reason)), expected);
    let Ok(frame) = parsed else {
        assert!(!parsed.unwrap_err().describe().is_empty());
        return;
    };
    let reply = frame.reply_code();
    assert_eq!(reply, frame.code.unwrap_or(CloseCode::NORMAL));
    let rebuilt = close_payload(reply, frame.reason);
    assert!(rebuilt.len() <= 125);
    let again = CloseFrame::parse(&rebuilt).expect("a payload we build parses");
    assert_eq!(again.code, Some(reply));
    assert!(frame.reason.starts_with(again.reason));
    assert!(again.reason.len() == frame.reason.len() || again.reason.len() > 123 - 4);
}
