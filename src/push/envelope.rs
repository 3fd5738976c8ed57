//! What subscribers receive, encoded once per publish: the message envelope (text as JSON,
//! binary with a small header) and the notices (subscribed, gap, errors, ...). The wire format
//! is documented in the README ("Push mode").

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::proto::frame::{server_frame, OpCode};

/// A topic's history line: it changes whenever history is lost, and sequence numbers are
/// only comparable within one epoch. Printed as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for Epoch {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Epoch, Self::Err> {
        u64::from_str_radix(text, 16).map(Epoch)
    }
}

/// A published payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Text (valid UTF-8), delivered in the JSON envelope.
    Text(String),
    /// Bytes, delivered in the binary envelope.
    Binary(Vec<u8>),
}

impl Payload {
    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(bytes) => bytes,
        }
    }
}

/// The version byte that starts a binary envelope.
pub const BINARY_ENVELOPE_VERSION: u8 = 1;

/// The frame every subscriber of `topic` gets for message `seq` of `epoch`.
pub fn message_frame(topic: &str, epoch: Epoch, seq: u64, payload: &Payload) -> Bytes {
    match payload {
        Payload::Text(data) => {
            let json = serde_json::json!({
                "type": "message", "topic": topic, "epoch": epoch.to_string(), "seq": seq, "data": data,
            });
            server_frame(OpCode::Text, json.to_string().as_bytes())
        }
        Payload::Binary(data) => {
            let mut body = BytesMut::with_capacity(18 + topic.len() + data.len());
            body.put_u8(BINARY_ENVELOPE_VERSION);
            body.put_u8(topic.len() as u8);
            body.put_slice(topic.as_bytes());
            body.put_u64(epoch.0);
            body.put_u64(seq);
            body.put_slice(data);
            server_frame(OpCode::Binary, &body)
        }
    }
}

/// A notice from the server to one client (never a published message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Notice {
    /// Subscribed to `topic`, whose last message is `seq` of `epoch`.
    Subscribed {
        /// The topic.
        topic: String,
        /// Its epoch now.
        #[serde(serialize_with = "as_hex")]
        epoch: Epoch,
        /// Its last sequence number now (0: nothing published in this epoch yet).
        seq: u64,
        /// The command's `ref`, if it had one.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<serde_json::Value>,
    },
    /// No longer subscribed to `topic`.
    Unsubscribed {
        /// The topic.
        topic: String,
        /// The command's `ref`, if it had one.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<serde_json::Value>,
    },
    /// Messages of `topic` before `next` (in `epoch`) will not come: refetch state.
    Gap {
        /// The topic.
        topic: String,
        /// The epoch `next` belongs to.
        #[serde(serialize_with = "as_hex")]
        epoch: Epoch,
        /// The first sequence number the client will get.
        next: u64,
    },
    /// A WebSocket publish was sequenced.
    Published {
        /// The topic.
        topic: String,
        /// Its epoch.
        #[serde(serialize_with = "as_hex")]
        epoch: Epoch,
        /// The message's sequence number.
        seq: u64,
        /// The command's `ref`, if it had one.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<serde_json::Value>,
    },
    /// A command failed; the connection stays open.
    Error {
        /// A stable machine-readable code (see the protocol).
        code: &'static str,
        /// What went wrong, for people.
        message: String,
        /// The topic concerned, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// The command's `ref`, if it had one.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<serde_json::Value>,
    },
}

fn as_hex<S: serde::Serializer>(epoch: &Epoch, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(epoch)
}

impl Notice {
    /// The notice as a text frame.
    pub fn to_frame(&self) -> Bytes {
        let json = serde_json::to_vec(self).expect("notices always serialize");
        server_frame(OpCode::Text, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::decode_header;

    fn payload_of(frame: &[u8]) -> &[u8] {
        let (_, header_len) = decode_header(frame).unwrap().unwrap();
        &frame[header_len..]
    }

    #[test]
    fn text_messages_are_json_with_hex_epochs() {
        let frame = message_frame("a", Epoch(0xabc), 7, &Payload::Text("hi \"x\"".into()));
        let json: serde_json::Value = serde_json::from_slice(payload_of(&frame)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type":"message","topic":"a","epoch":"0000000000000abc","seq":7,"data":"hi \"x\""})
        );
        assert_eq!("0000000000000abc".parse::<Epoch>(), Ok(Epoch(0xabc)));
    }

    #[test]
    fn binary_messages_carry_a_fixed_header() {
        let frame = message_frame("tp", Epoch(1), 2, &Payload::Binary(vec![9, 8]));
        assert_eq!(frame[0], 0x82, "a final binary frame");
        let body = payload_of(&frame);
        assert_eq!(body[..4], [1, 2, b't', b'p']);
        assert_eq!(body[4..12], 1u64.to_be_bytes());
        assert_eq!(body[12..20], 2u64.to_be_bytes());
        assert_eq!(body[20..], [9, 8]);
    }

    #[test]
    fn notices_serialize_as_documented() {
        let gap = Notice::Gap {
            topic: "a".into(),
            epoch: Epoch(5),
            next: 9,
        };
        let json: serde_json::Value = serde_json::from_slice(payload_of(&gap.to_frame())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type":"gap","topic":"a","epoch":"0000000000000005","next":9})
        );
        let error = Notice::Error {
            code: "bad_json",
            message: "x".into(),
            topic: None,
            reference: Some(3.into()),
        };
        let json: serde_json::Value = serde_json::from_slice(payload_of(&error.to_frame())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type":"error","code":"bad_json","message":"x","ref":3})
        );
    }
}
