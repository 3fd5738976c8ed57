//! Target `frames`: the server-side frame decoder ([`Session`]) with its incremental UTF-8
//! validation, against a plain whole-buffer model of RFC 6455 section 5 written here.

use ringcast::proto::{Event, MessageKind, Role, Session};

use crate::close::wire_code_allowed;

/// The message size limit the target runs with (small, so the 1009 paths are reachable).
pub const MAX_MESSAGE: usize = 1024;

/// Bytes a session may keep between reads: the unfinished message (its buffer grows by
/// doubling, so up to twice the limit), an unfinished control payload (likewise up to twice
/// 125 bytes), and the fixed part of the unfinished-frame box.
pub const MAX_RETAINED: usize = 2 * MAX_MESSAGE + 2 * 125 + 512;

/// Something decoded, owned so that runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decoded {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<Event<'_>> for Decoded {
    fn from(event: Event<'_>) -> Decoded {
        match event {
            Event::Message {
                kind: MessageKind::Text,
                payload,
            } => Decoded::Text(payload.to_vec()),
            Event::Message {
                kind: MessageKind::Binary,
                payload,
            } => Decoded::Binary(payload.to_vec()),
            Event::Ping(payload) => Decoded::Ping(payload.to_vec()),
            Event::Pong(payload) => Decoded::Pong(payload.to_vec()),
            Event::Close(frame) => Decoded::Close(frame.code.map(|c| c.0), frame.reason.to_owned()),
        }
    }
}

/// What decoding a byte stream gave: the events, then the close code it failed with (if it
/// did), and whether it ended between frames with no message open.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Decoded>,
    failed: Option<u16>,
    idle: bool,
}

/// Decodes `data[1..]` as client frames three ways: in one read, in reads whose sizes follow
/// from `data[0]`, and one byte per read.
///
/// Checks: all three report the same events and the same failure as [`model`]; text events
/// are valid UTF-8 by `std::str::from_utf8`; failures are 1002, 1007 or 1009; a session keeps
/// at most [`MAX_RETAINED`] bytes after any read and none once the stream ends between
/// messages.
pub fn run(data: &[u8]) {
    let Some((&split, wire)) = data.split_first() else {
        return;
    };
    let expected = model(wire);
    let whole = decode_in_reads(wire, std::iter::once(wire.len()));
    assert_eq!(whole, expected, "one read");
    let mut sizes = ReadSizes::new(split);
    let pieces = decode_in_reads(wire, std::iter::from_fn(|| Some(sizes.next_size())));
    assert_eq!(pieces, expected, "reads sized by {split:#04x}");
    let bytes = decode_in_reads(wire, std::iter::repeat(1));
    assert_eq!(bytes, expected, "one byte per read");
}

/// Read sizes from one byte: the low 7 bits seed them, the top bit picks short (1-16 bytes)
/// or long (1-256 bytes) reads.
struct ReadSizes {
    state: u8,
    max: usize,
}

impl ReadSizes {
    fn new(split: u8) -> ReadSizes {
        ReadSizes {
            state: split | 1,
            max: if split & 0x80 == 0 { 16 } else { 256 },
        }
    }

    fn next_size(&mut self) -> usize {
        // An 8-bit xorshift never reaches 0 from an odd start.
        self.state ^= self.state << 3;
        self.state ^= self.state >> 5;
        self.state ^= self.state << 1;
        1 + self.state as usize % self.max
    }
}

fn decode_in_reads(wire: &[u8], sizes: impl Iterator<Item = usize>) -> Outcome {
    let mut session = Session::new(Role::Server, MAX_MESSAGE);
    let mut events = Vec::new();
    let mut failed = None;
    let mut rest = wire;
    for size in sizes {
        if rest.is_empty() {
            break;
        }
        let (read, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        let mut buffer = read.to_vec();
        let result = session.feed(&mut buffer, &mut |event| events.push(Decoded::from(event)));
        assert!(
            session.retained_bytes() <= MAX_RETAINED,
            "{} bytes kept",
            session.retained_bytes()
        );
        if let Err(error) = result {
            assert!(matches!(error.code.0, 1002 | 1007 | 1009), "{error}");
            failed = Some(error.code.0);
            break;
        }
    }
    for event in &events {
        if let Decoded::Text(text) = event {
            assert!(std::str::from_utf8(text).is_ok(), "text event with invalid UTF-8");
        }
    }
    let idle = failed.is_none() && session.retained_bytes() == 0;
    Outcome { events, failed, idle }
}

/// A frame header read by the model.
struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: [u8; 4],
    size: usize,
}

/// Reads one header at the start of `wire`: `Ok(None)` when it is not all there yet.
/// The checks run in the order the engine documents: reserved bits, opcode, control-frame
/// rules (which need only the first two bytes), minimal length, mask.
fn model_header(wire: &[u8]) -> Result<Option<Header>, u16> {
    let [b0, b1, ..] = *wire else { return Ok(None) };
    let opcode = b0 & 0x0f;
    let control = opcode >= 8;
    if b0 & 0x70 != 0 || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
        return Err(1002);
    }
    let fin = b0 & 0x80 != 0;
    if control && (!fin || b1 & 0x7f > 125) {
        return Err(1002);
    }
    let (len, mut size) = match b1 & 0x7f {
        126 => match wire.get(2..4) {
            None => return Ok(None),
            Some(bytes) => (u64::from(bytes[0]) << 8 | u64::from(bytes[1]), 4),
        },
        127 => match wire.get(2..10) {
            None => return Ok(None),
            Some(bytes) => (bytes.iter().fold(0u64, |n, &b| n << 8 | u64::from(b)), 10),
        },
        n => (u64::from(n), 2),
    };
    if (size == 4 && len < 126) || (size == 10 && (len >> 63 == 1 || len < 0x1_0000)) {
        return Err(1002);
    }
    let mut mask = [0; 4];
    if b1 & 0x80 != 0 {
        let Some(key) = wire.get(size..size + 4) else {
            return Ok(None);
        };
        mask.copy_from_slice(key);
        size += 4;
    } else {
        return Err(1002);
    }
    Ok(Some(Header {
        fin,
        opcode,
        len,
        mask,
        size,
    }))
}

/// The model decoder: the whole stream at once, frame by frame, with plain rules.
fn model(wire: &[u8]) -> Outcome {
    let mut events = Vec::new();
    // The open message: (is text, bytes so far).
    let mut message: Option<(bool, Vec<u8>)> = None;
    let mut pos = 0;
    let fail = |events, code| Outcome {
        events,
        failed: Some(code),
        idle: false,
    };
    loop {
        let header = match model_header(&wire[pos..]) {
            Err(code) => return fail(events, code),
            Ok(None) => break,
            Ok(Some(header)) => header,
        };
        let body_start = pos + header.size;
        match (header.opcode, &message) {
            (0, None) | (1 | 2, Some(_)) => return fail(events, 1002),
            _ => {}
        }
        let so_far = message.as_ref().map_or(0, |(_, bytes)| bytes.len() as u64);
        if header.opcode < 8 && so_far + header.len > MAX_MESSAGE as u64 {
            return fail(events, 1009);
        }
        let available = (wire.len() - body_start).min(header.len as usize);
        let payload: Vec<u8> = wire[body_start..body_start + available]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ header.mask[i % 4])
            .collect();
        let complete = available as u64 == header.len;
        if header.opcode < 8 {
            let (is_text, bytes) = message.get_or_insert_with(|| (header.opcode == 1, Vec::new()));
            bytes.extend_from_slice(&payload);
            let is_text = *is_text;
            let broken = std::str::from_utf8(bytes).err().filter(|e| e.error_len().is_some());
            if is_text && broken.is_some() {
                return fail(events, 1007);
            }
            if !complete {
                return Outcome {
                    events,
                    failed: None,
                    idle: false,
                };
            }
            if header.fin {
                let (_, bytes) = message.take().expect("the message just extended");
                if is_text && std::str::from_utf8(&bytes).is_err() {
                    return fail(events, 1007);
                }
                events.push(if is_text {
                    Decoded::Text(bytes)
                } else {
                    Decoded::Binary(bytes)
                });
            }
        } else {
            if !complete {
                return Outcome {
                    events,
                    failed: None,
                    idle: false,
                };
            }
            match header.opcode {
                9 => events.push(Decoded::Ping(payload)),
                10 => events.push(Decoded::Pong(payload)),
                _ => {
                    let close = match payload.as_slice() {
                        [] => Decoded::Close(None, String::new()),
                        [_] => return fail(events, 1002),
                        [hi, lo, reason @ ..] => {
                            let code = u16::from_be_bytes([*hi, *lo]);
                            match (wire_code_allowed(code), std::str::from_utf8(reason)) {
                                (true, Ok(reason)) => Decoded::Close(Some(code), reason.to_owned()),
                                _ => return fail(events, 1002),
                            }
                        }
                    };
                    events.push(close);
                    // Everything after a close is ignored.
                    return Outcome {
                        events,
                        failed: None,
                        idle: message.is_none(),
                    };
                }
            }
        }
        pos = body_start + available;
    }
    let idle = pos == wire.len() && message.is_none();
    Outcome {
        events,
        failed: None,
        idle,
    }
}
