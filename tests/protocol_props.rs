//! Property tests for the sans-io core: read boundaries never change what a session reports,
//! headers round-trip, word masking equals byte masking, and incremental UTF-8 validation
//! agrees with `std::str::from_utf8`.

use bytes::BytesMut;
use proptest::prelude::*;
use ringcast::proto::frame::{decode_header, encode_frame, encode_header, header_len, FrameHeader};
use ringcast::proto::mask::{apply_mask, apply_mask_bytewise};
use ringcast::proto::utf8::Utf8Validator;
use ringcast::proto::{Event, MessageKind, OpCode, Role, Session};

const LIMIT: usize = 1 << 20;

/// An owned copy of an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Message(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

impl From<Event<'_>> for Ev {
    fn from(event: Event<'_>) -> Ev {
        match event {
            Event::Message { kind, payload } => Ev::Message(kind, payload.to_vec()),
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Close(frame) => panic!("the generated streams carry no close frame: {frame:?}"),
        }
    }
}

/// A control frame slipped in after a fragment.
#[derive(Debug, Clone)]
struct Control {
    ping: bool,
    payload: Vec<u8>,
    mask: [u8; 4],
}

/// One generated data message and how the client puts it on the wire.
#[derive(Debug, Clone)]
struct Message {
    kind: MessageKind,
    payload: Vec<u8>,
    /// Sorted cut points inside the payload; `cuts.len() + 1` fragments.
    cuts: Vec<usize>,
    /// One key per fragment.
    masks: Vec<[u8; 4]>,
    /// Optional control frame after each fragment but the last (`cuts.len()` entries).
    controls: Vec<Option<Control>>,
}

impl Message {
    /// Appends the message's frames (and interleaved controls) to `wire`.
    fn encode(&self, wire: &mut BytesMut) {
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(self.cuts.iter().copied())
            .chain(std::iter::once(self.payload.len()))
            .collect();
        let first = match self.kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        for (i, span) in bounds.windows(2).enumerate() {
            let fin = i + 2 == bounds.len();
            let opcode = if i == 0 { first } else { OpCode::Continuation };
            encode_frame(wire, fin, opcode, &self.payload[span[0]..span[1]], Some(self.masks[i]));
            if let Some(Some(control)) = self.controls.get(i) {
                let opcode = if control.ping { OpCode::Ping } else { OpCode::Pong };
                encode_frame(wire, true, opcode, &control.payload, Some(control.mask));
            }
        }
    }

    /// The events a server must report for this message, in order.
    fn expected(&self, out: &mut Vec<Ev>) {
        for control in self.controls.iter().flatten() {
            out.push(if control.ping {
                Ev::Ping(control.payload.clone())
            } else {
                Ev::Pong(control.payload.clone())
            });
        }
        out.push(Ev::Message(self.kind, self.payload.clone()));
    }
}

/// Deterministic filler bytes, so large payloads cost no proptest shrinking trees.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Valid UTF-8 of about `len` bytes mixing 1- to 4-byte code points.
fn filler_text(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: [char; 8] = ['a', 'Z', ' ', 'µ', 'ß', 'κ', '€', '😀'];
    let mut text = String::with_capacity(len + 4);
    for byte in filler(len, seed) {
        if text.len() >= len {
            break;
        }
        text.push(ALPHABET[byte as usize % ALPHABET.len()]);
    }
    text.into_bytes()
}

fn payload_len(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0..=130usize,
        2 => 126..=300usize,
        1 => 0..=max,
    ]
}

fn control() -> impl Strategy<Value = Control> {
    (
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..=125),
        any::<[u8; 4]>(),
    )
        .prop_map(|(ping, payload, mask)| Control { ping, payload, mask })
}

fn message(max_len: usize) -> impl Strategy<Value = Message> {
    (any::<bool>(), payload_len(max_len), any::<u64>(), 0..4usize)
        .prop_flat_map(|(text, len, seed, fragments)| {
            let payload = if text {
                filler_text(len, seed)
            } else {
                filler(len, seed)
            };
            let len = payload.len();
            (
                Just(text),
                Just(payload),
                prop::collection::vec(0..=len, fragments),
                prop::collection::vec(any::<[u8; 4]>(), fragments + 1),
                prop::collection::vec(prop::option::weighted(0.3, control()), fragments),
            )
        })
        .prop_map(|(text, payload, mut cuts, masks, controls)| {
            cuts.sort_unstable();
            Message {
                kind: if text { MessageKind::Text } else { MessageKind::Binary },
                payload,
                cuts,
                masks,
                controls,
            }
        })
}

/// A stream item: a data message, or a control frame between messages.
#[derive(Debug, Clone)]
enum Item {
    Message(Message),
    Control(Control),
}

fn stream(max_len: usize) -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(
        prop_oneof![
            4 => message(max_len).prop_map(Item::Message),
            1 => control().prop_map(Item::Control),
        ],
        1..6,
    )
}

/// The client's bytes for `items` and the events a server must report for them.
fn wire_and_expected(items: &[Item]) -> (Vec<u8>, Vec<Ev>) {
    let mut wire = BytesMut::new();
    let mut expected = Vec::new();
    for item in items {
        match item {
            Item::Message(message) => {
                message.encode(&mut wire);
                message.expected(&mut expected);
            }
            Item::Control(control) => {
                let opcode = if control.ping { OpCode::Ping } else { OpCode::Pong };
                encode_frame(&mut wire, true, opcode, &control.payload, Some(control.mask));
                expected.push(if control.ping {
                    Ev::Ping(control.payload.clone())
                } else {
                    Ev::Pong(control.payload.clone())
                });
            }
        }
    }
    (wire.to_vec(), expected)
}

/// Feeds `wire` to a fresh server session in reads of the given sizes (cycled).
fn feed_in_reads(wire: &[u8], sizes: &[usize]) -> Vec<Ev> {
    let mut session = Session::new(Role::Server, LIMIT);
    let mut events = Vec::new();
    let mut rest = wire;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        let mut buf = read.to_vec();
        session
            .feed(&mut buf, &mut |e| events.push(e.into()))
            .expect("a valid stream");
    }
    assert_eq!(session.retained_bytes(), 0, "idle at the end of the stream");
    events
}

fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![
            3 => 1..=3usize,
            3 => 1..=20usize,
            2 => 1..=5000usize,
        ],
        1..16,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random messages fed at random read boundaries give exactly the events of one whole read.
    #[test]
    fn read_boundaries_do_not_change_the_events(items in stream(70_000), sizes in read_sizes()) {
        let (wire, expected) = wire_and_expected(&items);
        let whole = feed_in_reads(&wire, &[wire.len()]);
        prop_assert_eq!(&whole, &expected);
        let split = feed_in_reads(&wire, &sizes);
        prop_assert_eq!(&split, &whole);
    }

    /// The harshest split: one byte per read (smaller messages, so debug builds stay quick).
    #[test]
    fn one_byte_reads_give_the_same_events(items in stream(2_000)) {
        let (wire, expected) = wire_and_expected(&items);
        prop_assert_eq!(feed_in_reads(&wire, &[1]), expected);
    }
}

fn any_header() -> impl Strategy<Value = (bool, OpCode, usize, Option<[u8; 4]>)> {
    let data = (
        any::<bool>(),
        prop::sample::select(vec![OpCode::Continuation, OpCode::Text, OpCode::Binary]),
        prop_oneof![0..=125usize, 126..=0xffffusize, 0x1_0000..=(i64::MAX as usize)],
    );
    let control = (
        Just(true),
        prop::sample::select(vec![OpCode::Close, OpCode::Ping, OpCode::Pong]),
        0..=125usize,
    );
    (prop_oneof![data, control], any::<Option<[u8; 4]>>()).prop_map(|((fin, op, len), mask)| (fin, op, len, mask))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `decode_header` inverts `encode_header` for every length class, and asks for more bytes
    /// on every strict prefix.
    #[test]
    fn header_round_trips((fin, opcode, len, mask) in any_header()) {
        let mut buf = BytesMut::new();
        encode_header(&mut buf, fin, opcode, len, mask);
        prop_assert_eq!(buf.len(), header_len(len, mask.is_some()));
        let expected = FrameHeader { fin, rsv: 0, opcode, mask, payload_len: len as u64 };
        prop_assert_eq!(decode_header(&buf), Ok(Some((expected, buf.len()))));
        // Trailing payload bytes do not change the result.
        let mut with_payload = buf.to_vec();
        with_payload.extend_from_slice(&[0xaa; 16]);
        prop_assert_eq!(decode_header(&with_payload), Ok(Some((expected, buf.len()))));
        for cut in 0..buf.len() {
            prop_assert_eq!(decode_header(&buf[..cut]), Ok(None));
        }
    }

    /// Word-at-a-time masking equals the byte-at-a-time reference for any data and offset.
    #[test]
    fn word_masking_equals_bytewise(
        data in prop::collection::vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        offset in 0..(1usize << 40),
        split in any::<prop::sample::Index>(),
    ) {
        let mut fast = data.clone();
        apply_mask(&mut fast, key, offset);
        let mut slow = data.clone();
        apply_mask_bytewise(&mut slow, key, offset);
        prop_assert_eq!(&fast, &slow);
        // Masking in two pieces with the running offset equals masking in one.
        let at = split.index(data.len() + 1);
        let mut pieces = data.clone();
        let (head, tail) = pieces.split_at_mut(at);
        apply_mask(head, key, offset);
        apply_mask(tail, key, offset + at);
        prop_assert_eq!(&pieces, &fast);
        // And it is its own inverse.
        apply_mask(&mut fast, key, offset);
        prop_assert_eq!(fast, data);
    }
}

/// Cuts `data` at the given points (taken modulo its length, sorted).
fn chunked<'a>(data: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// The index of the byte that first makes `data` impossible to extend into valid UTF-8.
fn first_impossible_byte(data: &[u8]) -> Option<usize> {
    let err = std::str::from_utf8(data).err()?;
    (err.valid_up_to()..data.len()).find(|&end| {
        std::str::from_utf8(&data[..=end])
            .err()
            .is_some_and(|e| e.error_len().is_some())
    })
}

/// Feeds the chunks; returns the index of the chunk that failed, or `chunks.len()` for `finish`.
fn validate(chunks: &[&[u8]]) -> Result<(), usize> {
    let mut validator = Utf8Validator::default();
    for (i, chunk) in chunks.iter().enumerate() {
        validator.feed(chunk).map_err(|_| i)?;
    }
    validator.finish().map_err(|_| chunks.len())
}

/// Checks the validator against std: same verdict, and the failure lands on the chunk that
/// holds the first impossible byte (or on `finish` for a code point left open).
fn check_validator(data: &[u8], cuts: &[prop::sample::Index]) -> Result<(), TestCaseError> {
    let chunks = chunked(data, cuts);
    let verdict = validate(&chunks);
    prop_assert_eq!(verdict.is_ok(), std::str::from_utf8(data).is_ok());
    if let Err(failed) = verdict {
        let expected = match first_impossible_byte(data) {
            Some(byte) => {
                let mut end = 0;
                chunks
                    .iter()
                    .position(|c| {
                        end += c.len();
                        byte < end
                    })
                    .expect("the byte is in some chunk")
            }
            None => chunks.len(),
        };
        prop_assert_eq!(failed, expected);
    }
    Ok(())
}

/// Valid text with a few bytes overwritten, so errors sit amid real multi-byte sequences.
fn corrupted_text() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<String>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(text, edits)| {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes (mostly invalid) under random chunkings.
    #[test]
    fn utf8_agrees_with_std_on_random_bytes(
        data in prop::collection::vec(any::<u8>(), 0..64),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        check_validator(&data, &cuts)?;
    }

    /// Random valid strings are accepted under any chunking.
    #[test]
    fn utf8_accepts_valid_strings(
        text in any::<String>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let chunks = chunked(text.as_bytes(), &cuts);
        prop_assert_eq!(validate(&chunks), Ok(()));
    }

    /// Valid strings with corrupted bytes, and truncated strings, under random chunkings.
    #[test]
    fn utf8_agrees_with_std_on_corrupted_text(
        data in corrupted_text(),
        keep in any::<prop::sample::Index>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        check_validator(&data, &cuts)?;
        let truncated = &data[..keep.index(data.len() + 1)];
        check_validator(truncated, &cuts)?;
    }
}
