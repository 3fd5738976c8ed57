//! The receiving half of a WebSocket connection as a sans-io state machine.
//!
//! Feed it whatever bytes arrived; it decodes frames, enforces every rule of RFC 6455 section 5
//! that depends on connection state (masking direction, fragmentation, size limit, UTF-8, close
//! payloads) and reports complete messages and control frames as [`Event`]s.
//!
//! It consumes all input it is given and keeps only what an unfinished frame needs: at most 13
//! header bytes inline, and the payload of an unfinished message. A frame that arrives whole is
//! unmasked in place and handed out as a slice of the caller's buffer, with no copy.

use super::close::{CloseCode, CloseFrame};
use super::frame::{decode_header, FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Which end of the connection this session is; it decides which frames must be masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We are the server: every frame we receive must be masked.
    Server,
    /// We are the client: no frame we receive may be masked.
    Client,
}

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text (already validated).
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// Something the peer sent, decoded and validated.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete data message (all fragments joined).
    Message {
        /// Text or binary.
        kind: MessageKind,
        /// The unmasked payload; valid UTF-8 when `kind` is `Text`.
        payload: &'a [u8],
    },
    /// A ping; answer it with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (solicited or not).
    Pong(&'a [u8]),
    /// A valid close frame; the session ignores all input after it.
    Close(CloseFrame<'a>),
}

/// A rule the peer broke: fail the connection with this close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError {
    /// The close code to send (1002, 1007 or 1009).
    pub code: CloseCode,
    /// A short, static reason for the close frame and the logs.
    pub reason: &'static str,
}

impl ProtocolError {
    fn protocol(reason: &'static str) -> Self {
        ProtocolError {
            code: CloseCode::PROTOCOL_ERROR,
            reason,
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl std::error::Error for ProtocolError {}

/// A frame whose header was decoded but whose payload has not all arrived.
#[derive(Debug, Clone, Copy)]
struct PartialFrame {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    received: usize,
}

/// A data message that spans frames or reads.
#[derive(Debug)]
struct PartialMessage {
    kind: MessageKind,
    data: Vec<u8>,
    utf8: Utf8Validator,
}

/// What a session holds only while a frame or message is unfinished. It is boxed so that an
/// idle session is a few words: the box exists only between reads that split a frame.
#[derive(Debug, Default)]
struct Unfinished {
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    frame: Option<PartialFrame>,
    message: Option<PartialMessage>,
    control: Vec<u8>,
}

impl Unfinished {
    fn is_empty(&self) -> bool {
        self.header_len == 0 && self.frame.is_none() && self.message.is_none()
    }
}

/// Receiving state of one WebSocket connection.
#[derive(Debug)]
pub struct Session {
    role: Role,
    close_received: bool,
    max_message_size: u64,
    unfinished: Option<Box<Unfinished>>,
}

impl Session {
    /// A session for `role` that rejects messages above `max_message_size` bytes with 1009.
    pub fn new(role: Role, max_message_size: usize) -> Session {
        Session {
            role,
            close_received: false,
            max_message_size: max_message_size as u64,
            unfinished: None,
        }
    }

    /// Whether a close frame has been received (all later input is ignored).
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Heap bytes this session holds for unfinished frames and messages (0 when idle).
    pub fn retained_bytes(&self) -> usize {
        self.unfinished.as_ref().map_or(0, |u| {
            std::mem::size_of::<Unfinished>()
                + u.message.as_ref().map_or(0, |m| m.data.capacity())
                + u.control.capacity()
        })
    }

    /// The unfinished-frame state, created on first need.
    fn unfinished(&mut self) -> &mut Unfinished {
        self.unfinished.get_or_insert_with(Box::default)
    }

    fn message_in_progress(&self) -> Option<&PartialMessage> {
        self.unfinished.as_ref().and_then(|u| u.message.as_ref())
    }

    fn frame_in_progress(&self) -> bool {
        self.unfinished.as_ref().is_some_and(|u| u.frame.is_some())
    }

    /// Frees the unfinished-frame box once nothing is pending.
    fn release_if_idle(&mut self) {
        if self.unfinished.as_ref().is_some_and(|u| u.is_empty()) {
            self.unfinished = None;
        }
    }

    /// Decodes `input` (unmasking it in place), calling `on_event` for each complete message
    /// and control frame. On error the connection must be failed with the returned code.
    pub fn feed(&mut self, input: &mut [u8], on_event: &mut impl FnMut(Event<'_>)) -> Result<(), ProtocolError> {
        let result = self.decode_all(input, on_event);
        self.release_if_idle();
        result
    }

    fn decode_all(&mut self, input: &mut [u8], on_event: &mut impl FnMut(Event<'_>)) -> Result<(), ProtocolError> {
        let mut pos = 0;
        while pos < input.len() && !self.close_received {
            if !self.frame_in_progress() {
                let Some((header, used)) = self.take_header(&input[pos..])? else {
                    return Ok(());
                };
                pos += used;
                self.check_frame(&header)?;
                let len = header.payload_len as usize;
                let whole_here = header.payload_len <= (input.len() - pos) as u64;
                if whole_here && (header.opcode.is_control() || (header.fin && self.message_in_progress().is_none())) {
                    let payload = &mut input[pos..pos + len];
                    pos += len;
                    if let Some(key) = header.mask {
                        apply_mask(payload, key, 0);
                    }
                    self.complete_frame(header.opcode, payload, on_event)?;
                    continue;
                }
                self.begin_partial(&header);
            }
            pos += self.continue_partial(&mut input[pos..], on_event)?;
        }
        Ok(())
    }

    /// Returns a decoded header and how many bytes of `input` it used, or stashes a partial one.
    fn take_header(&mut self, input: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let bad_header = |e: super::frame::HeaderError| ProtocolError::protocol(e.describe());
        let had = self.unfinished.as_ref().map_or(0, |u| u.header_len as usize);
        if had == 0 {
            return match decode_header(input).map_err(bad_header)? {
                Some(found) => Ok(Some(found)),
                None => {
                    let unfinished = self.unfinished();
                    unfinished.header[..input.len()].copy_from_slice(input);
                    unfinished.header_len = input.len() as u8;
                    Ok(None)
                }
            };
        }
        let unfinished = self.unfinished();
        let take = input.len().min(MAX_HEADER_LEN - had);
        unfinished.header[had..had + take].copy_from_slice(&input[..take]);
        match decode_header(&unfinished.header[..had + take]).map_err(bad_header)? {
            Some((header, len)) => {
                unfinished.header_len = 0;
                Ok(Some((header, len - had)))
            }
            None => {
                unfinished.header_len = (had + take) as u8;
                Ok(None)
            }
        }
    }

    /// The rules that depend on role and on the message in progress.
    fn check_frame(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::protocol("client frame not masked")),
            (Role::Client, true) => return Err(ProtocolError::protocol("server frame masked")),
            _ => {}
        }
        let buffered = match (header.opcode, self.message_in_progress()) {
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::protocol("continuation without a message to continue"))
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::protocol("new message before the fragmented one ended"))
            }
            (OpCode::Continuation, Some(message)) => message.data.len() as u64,
            _ => 0,
        };
        if !header.opcode.is_control() && buffered + header.payload_len > self.max_message_size {
            return Err(ProtocolError {
                code: CloseCode::TOO_BIG,
                reason: "message larger than the size limit",
            });
        }
        Ok(())
    }

    fn begin_partial(&mut self, header: &FrameHeader) {
        let kind = match header.opcode {
            OpCode::Text => Some(MessageKind::Text),
            OpCode::Binary => Some(MessageKind::Binary),
            _ => None,
        };
        let unfinished = self.unfinished();
        if let Some(kind) = kind {
            unfinished.message = Some(PartialMessage {
                kind,
                data: Vec::new(),
                utf8: Utf8Validator::default(),
            });
        }
        unfinished.frame = Some(PartialFrame {
            opcode: header.opcode,
            fin: header.fin,
            mask: header.mask,
            remaining: header.payload_len,
            received: 0,
        });
    }

    /// Moves payload bytes of the unfinished frame out of `input`; returns how many it took.
    fn continue_partial(
        &mut self,
        input: &mut [u8],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<usize, ProtocolError> {
        let unfinished = self.unfinished.as_mut().expect("a partial frame is in progress");
        let frame = unfinished.frame.as_mut().expect("a partial frame is in progress");
        let take = (frame.remaining.min(input.len() as u64)) as usize;
        let chunk = &mut input[..take];
        if let Some(key) = frame.mask {
            apply_mask(chunk, key, frame.received);
        }
        frame.received += take;
        frame.remaining -= take as u64;
        let frame = *frame;
        if frame.opcode.is_control() {
            unfinished.control.extend_from_slice(chunk);
        } else {
            let message = unfinished.message.as_mut().expect("data frames belong to a message");
            if message.kind == MessageKind::Text {
                message.utf8.feed(chunk).map_err(|_| invalid_utf8())?;
            }
            message.data.extend_from_slice(chunk);
        }
        if frame.remaining > 0 {
            return Ok(take);
        }
        unfinished.frame = None;
        if frame.opcode.is_control() {
            let payload = std::mem::take(&mut unfinished.control);
            self.complete_frame(frame.opcode, &payload, on_event)?;
        } else if frame.fin {
            let mut message = unfinished.message.take().expect("data frames belong to a message");
            if message.kind == MessageKind::Text {
                message.utf8.finish().map_err(|_| invalid_utf8())?;
            }
            on_event(Event::Message {
                kind: message.kind,
                payload: &message.data,
            });
        }
        Ok(take)
    }

    /// Handles a frame whose whole (unmasked) payload is at hand: a control frame, or a data
    /// frame that is a complete message by itself.
    fn complete_frame(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Ping => on_event(Event::Ping(payload)),
            OpCode::Pong => on_event(Event::Pong(payload)),
            OpCode::Close => {
                let frame = CloseFrame::parse(payload).map_err(|e| ProtocolError::protocol(e.describe()))?;
                self.close_received = true;
                on_event(Event::Close(frame));
            }
            OpCode::Text => {
                std::str::from_utf8(payload).map_err(|_| invalid_utf8())?;
                on_event(Event::Message {
                    kind: MessageKind::Text,
                    payload,
                });
            }
            OpCode::Binary => on_event(Event::Message {
                kind: MessageKind::Binary,
                payload,
            }),
            OpCode::Continuation => {
                unreachable!("continuations never complete a message on the fast path")
            }
        }
        Ok(())
    }
}

fn invalid_utf8() -> ProtocolError {
    ProtocolError {
        code: CloseCode::INVALID_PAYLOAD,
        reason: "text is not valid UTF-8",
    }
}
