//! The push protocol's JSON (README.md, "Push mode"): server frames and HTTP publish replies are
//! parsed with serde_json into borrowed fields; publish commands and batch bodies are written
//! directly.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;

/// A text frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A publish on a subscribed topic.
    Message {
        /// The topic.
        topic: Cow<'a, str>,
        /// The topic's epoch (16 hex digits on the wire).
        epoch: u64,
        /// Position in the topic within the epoch, from 1.
        seq: u64,
        /// The published payload.
        data: Cow<'a, str>,
    },
    /// Messages of `topic` before `next` in `epoch` will not come.
    Gap {
        /// The topic.
        topic: Cow<'a, str>,
        /// The epoch the notice is about.
        epoch: u64,
        /// The first sequence the subscriber will get.
        next: u64,
    },
    /// A WebSocket publish was sequenced (its `seq` checked, not kept).
    Published {
        /// The command's `ref`.
        reference: Option<u64>,
    },
    /// A command (or the connection) was refused.
    Error {
        /// The error code, e.g. `publish_disabled`.
        code: Cow<'a, str>,
        /// The command's `ref`, when it had one.
        reference: Option<u64>,
    },
    /// A notice the load generator does not act on (`subscribed`, `unsubscribed`, or a type
    /// it does not know).
    Notice,
}

/// A JSON string, borrowed from the frame unless it holds escapes. (serde borrows a bare
/// `Cow<str>` field, but not one inside an `Option`.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'a>, D::Error> {
        struct Strings;
        impl<'de> Visitor<'de> for Strings {
            type Value = Cow<'de, str>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Borrowed(v))
            }

            fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
        }
        deserializer.deserialize_str(Strings).map(Text)
    }
}

/// Every field any frame type has; which are present depends on `type`.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    topic: Option<Text<'a>>,
    #[serde(borrow)]
    epoch: Option<Text<'a>>,
    seq: Option<u64>,
    next: Option<u64>,
    #[serde(rename = "ref")]
    reference: Option<u64>,
    #[serde(borrow)]
    data: Option<Text<'a>>,
    #[serde(borrow)]
    code: Option<Text<'a>>,
}

/// Parses a server text frame; the error is the reason reported in the summary.
pub fn parse(text: &[u8]) -> Result<Frame<'_>, &'static str> {
    const BAD: &str = "bad_envelope";
    let wire: Wire<'_> = serde_json::from_slice(text).map_err(|_| BAD)?;
    let epoch = || wire.epoch.as_ref().and_then(|e| parse_epoch(&e.0)).ok_or(BAD);
    Ok(match &*wire.kind.0 {
        "message" => Frame::Message {
            epoch: epoch()?,
            topic: required(wire.topic)?,
            seq: wire.seq.ok_or(BAD)?,
            data: required(wire.data)?,
        },
        "gap" => Frame::Gap {
            epoch: epoch()?,
            topic: required(wire.topic)?,
            next: wire.next.ok_or(BAD)?,
        },
        "published" => {
            wire.seq.filter(|&seq| seq >= 1).ok_or(BAD)?;
            Frame::Published {
                reference: wire.reference,
            }
        }
        "error" => Frame::Error {
            code: required(wire.code)?,
            reference: wire.reference,
        },
        _ => Frame::Notice,
    })
}

/// A string field the frame type must have.
fn required(field: Option<Text<'_>>) -> Result<Cow<'_, str>, &'static str> {
    field.map(|t| t.0).ok_or("bad_envelope")
}

/// An epoch: up to 16 hex digits.
fn parse_epoch(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// The part of an HTTP publish reply the load generator checks: a sequence (they start at 1).
#[derive(Deserialize)]
struct Ack {
    seq: u64,
}

impl Ack {
    fn valid(&self) -> bool {
        self.seq >= 1
    }
}

/// The reply to a batch publish.
#[derive(Deserialize)]
struct BatchAck {
    results: Vec<Ack>,
}

/// Checks the body of a `200` reply to `POST /publish/{topic}`.
pub fn check_ack(body: &[u8]) -> Result<(), &'static str> {
    match serde_json::from_slice::<Ack>(body) {
        Ok(ack) if ack.valid() => Ok(()),
        _ => Err("publish_bad_reply"),
    }
}

/// Checks the body of a `200` reply to a `POST /publish` batch of `count` messages.
pub fn check_batch_ack(body: &[u8], count: usize) -> Result<(), &'static str> {
    match serde_json::from_slice::<BatchAck>(body) {
        Ok(ack) if ack.results.len() == count && ack.results.iter().all(Ack::valid) => Ok(()),
        _ => Err("publish_bad_reply"),
    }
}

/// Whether `text` can go between JSON quotes as it is. The load generator's topic names and
/// payloads are letters and digits only, so commands are written without an escaping pass.
fn json_safe(text: &[u8]) -> bool {
    text.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Appends the WebSocket command publishing `data` on `topic` with `ref` `reference`.
pub fn publish_command(out: &mut Vec<u8>, topic: &str, data: &[u8], reference: u64) {
    debug_assert!(json_safe(topic.as_bytes()) && json_safe(data));
    out.extend_from_slice(b"{\"op\":\"publish\",\"topic\":\"");
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(b"\",\"data\":\"");
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\",\"ref\":{reference}}}").as_bytes());
}

/// Appends one message to the body of a `POST /publish` batch; `first` opens the body.
pub fn batch_item(out: &mut Vec<u8>, first: bool, topic: &str, data: &[u8]) {
    debug_assert!(json_safe(topic.as_bytes()) && json_safe(data));
    out.extend_from_slice(if first { b"{\"messages\":[" } else { b"," });
    out.extend_from_slice(b"{\"topic\":\"");
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(b"\",\"data\":\"");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\"}");
}

/// Closes the body of a `POST /publish` batch.
pub fn batch_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_server_frame() {
        let message = br#"{"type":"message","topic":"t1","epoch":"5f1c0e2a9b7d4c31","seq":42,"data":"payload text"}"#;
        assert_eq!(
            parse(message),
            Ok(Frame::Message {
                topic: "t1".into(),
                epoch: 0x5f1c_0e2a_9b7d_4c31,
                seq: 42,
                data: "payload text".into()
            })
        );
        let Ok(Frame::Message { data, .. }) = parse(message) else {
            unreachable!()
        };
        assert!(matches!(data, Cow::Borrowed(_)), "plain strings are not copied");
        let Ok(Frame::Message { topic, .. }) = parse(message) else {
            unreachable!()
        };
        assert!(matches!(topic, Cow::Borrowed(_)));
        let escaped = br#"{"type":"message","topic":"t1","epoch":"00000000000000ff","seq":1,"data":"a\"b"}"#;
        assert!(matches!(parse(escaped), Ok(Frame::Message { data, .. }) if data == "a\"b"));
        assert_eq!(
            parse(br#"{"type":"gap","topic":"a","epoch":"0000000000000001","next":57}"#),
            Ok(Frame::Gap {
                topic: "a".into(),
                epoch: 1,
                next: 57
            })
        );
        assert_eq!(
            parse(br#"{"type":"published","topic":"a","epoch":"0000000000000001","seq":43,"ref":7}"#),
            Ok(Frame::Published { reference: Some(7) })
        );
        assert_eq!(
            parse(br#"{"type":"error","code":"bad_topic","message":"no","ref":7}"#),
            Ok(Frame::Error {
                code: "bad_topic".into(),
                reference: Some(7)
            })
        );
        for notice in [
            &br#"{"type":"subscribed","topic":"a","epoch":"0000000000000001","seq":41}"#[..],
            br#"{"type":"unsubscribed","topic":"a"}"#,
            br#"{"type":"from_the_future"}"#,
        ] {
            assert_eq!(parse(notice), Ok(Frame::Notice));
        }
    }

    #[test]
    fn refuses_malformed_frames() {
        for bad in [
            &b"not json"[..],
            br#"{"topic":"a"}"#,
            br#"{"type":"message","topic":"a","epoch":"zz","seq":1,"data":""}"#,
            br#"{"type":"message","topic":"a","epoch":"00000000000000001","seq":1,"data":""}"#,
            br#"{"type":"message","topic":"a","epoch":"01","data":""}"#,
            br#"{"type":"gap","topic":"a","epoch":"01"}"#,
            br#"{"type":"published","ref":1}"#,
            br#"{"type":"published","seq":0,"ref":1}"#,
            br#"{"type":"error"}"#,
        ] {
            assert_eq!(parse(bad), Err("bad_envelope"), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn checks_http_replies() {
        assert_eq!(
            check_ack(br#"{"topic":"a","epoch":"5f1c0e2a9b7d4c31","seq":42}"#),
            Ok(())
        );
        assert_eq!(check_ack(b"{}"), Err("publish_bad_reply"));
        assert_eq!(check_ack(br#"{"seq":0}"#), Err("publish_bad_reply"));
        let batch = br#"{"results":[{"topic":"a","epoch":"1","seq":42},{"topic":"b","epoch":"1","seq":7}]}"#;
        assert_eq!(check_batch_ack(batch, 2), Ok(()));
        assert_eq!(check_batch_ack(batch, 3), Err("publish_bad_reply"));
        assert_eq!(
            check_batch_ack(br#"{"results":[{"topic":"a"}]}"#, 1),
            Err("publish_bad_reply")
        );
    }

    #[test]
    fn commands_are_valid_json() {
        let mut out = Vec::new();
        publish_command(&mut out, "t3", b"0042abc", 9);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"op":"publish","topic":"t3","data":"0042abc","ref":9})
        );
        let mut body = Vec::new();
        batch_item(&mut body, true, "t0", b"x");
        batch_item(&mut body, false, "t1", b"y");
        batch_end(&mut body);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"messages":[{"topic":"t0","data":"x"},{"topic":"t1","data":"y"}]})
        );
    }
}
