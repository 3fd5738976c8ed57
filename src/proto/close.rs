//! Close codes and close-frame payloads (RFC 6455 sections 5.5.1 and 7.4).

use std::fmt;

/// A WebSocket close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no code was present; never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection dropped without a close frame; never sent on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy was violated (for example a slow consumer).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message or frame was larger than the configured limit.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (temporary overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether a peer may put this code in a close frame (section 7.4 plus the IANA registry):
    /// 1000-1003, 1007-1014, and the application ranges 3000-4999.
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A parsed close frame payload: an optional code and a UTF-8 reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The code, or `None` when the payload was empty.
    pub code: Option<CloseCode>,
    /// The reason text (empty when none was given).
    pub reason: &'a str,
}

/// Why a close payload was rejected; all of these are answered with 1002.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadClosePayload {
    /// A one-byte payload cannot hold a code.
    OneByte,
    /// The code is reserved, unassigned, or may not be sent on the wire.
    InvalidCode(u16),
    /// The reason is not valid UTF-8.
    ReasonNotUtf8,
}

impl BadClosePayload {
    /// A short reason for logs and for the close frame we answer with.
    pub fn describe(self) -> &'static str {
        match self {
            BadClosePayload::OneByte => "close payload of one byte",
            BadClosePayload::InvalidCode(_) => "invalid close code",
            BadClosePayload::ReasonNotUtf8 => "close reason is not UTF-8",
        }
    }
}

impl<'a> CloseFrame<'a> {
    /// Parses an (already unmasked) close frame payload.
    pub fn parse(payload: &'a [u8]) -> Result<CloseFrame<'a>, BadClosePayload> {
        match payload {
            [] => Ok(CloseFrame { code: None, reason: "" }),
            [_] => Err(BadClosePayload::OneByte),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_allowed_on_wire() {
                    return Err(BadClosePayload::InvalidCode(code.0));
                }
                let reason = std::str::from_utf8(reason).map_err(|_| BadClosePayload::ReasonNotUtf8)?;
                Ok(CloseFrame {
                    code: Some(code),
                    reason,
                })
            }
        }
    }

    /// The code to echo when answering this close: the peer's code, or 1000 when it sent none.
    pub fn reply_code(&self) -> CloseCode {
        self.code.unwrap_or(CloseCode::NORMAL)
    }
}

/// Builds a close payload: the code in network order, then the reason cut to fit the 125-byte
/// control-frame limit on a character boundary.
pub fn close_payload(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.0.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_payload_has_no_code_and_is_answered_with_1000() {
        let frame = CloseFrame::parse(b"").unwrap();
        assert_eq!(frame.code, None);
        assert_eq!(frame.reply_code(), CloseCode::NORMAL);
    }

    #[test]
    fn one_byte_payload_is_rejected() {
        assert_eq!(CloseFrame::parse(&[3]), Err(BadClosePayload::OneByte));
    }

    #[test]
    fn valid_and_invalid_codes() {
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
        ] {
            let payload = code.to_be_bytes();
            assert_eq!(CloseFrame::parse(&payload).unwrap().reply_code(), CloseCode(code));
        }
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert_eq!(
                CloseFrame::parse(&code.to_be_bytes()),
                Err(BadClosePayload::InvalidCode(code))
            );
        }
    }

    #[test]
    fn reason_must_be_utf8() {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80");
        assert_eq!(CloseFrame::parse(&payload), Err(BadClosePayload::ReasonNotUtf8));
        let mut ok = 1001u16.to_be_bytes().to_vec();
        ok.extend_from_slice("bye κόσμε".as_bytes());
        assert_eq!(CloseFrame::parse(&ok).unwrap().reason, "bye κόσμε");
    }

    #[test]
    fn close_payload_truncates_on_char_boundary() {
        let long = "é".repeat(100);
        let payload = close_payload(CloseCode::GOING_AWAY, &long);
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(&payload[..2], &1001u16.to_be_bytes());
    }
}
