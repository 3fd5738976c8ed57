//! Frame headers and frame encoding (RFC 6455 section 5.2).
//!
//! Decoding is incremental: `decode_header` looks at however many bytes have arrived and
//! either returns a header, asks for more, or names the rule that was broken.

use bytes::{BufMut, Bytes, BytesMut};

use super::mask::apply_mask;

/// The longest possible frame header: 2 bytes, 8 length bytes, 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;
/// Control frames carry at most this many payload bytes (section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame opcode defined by RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Maps the 4-bit wire value; `None` for the reserved values.
    pub fn from_wire(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of a message.
    pub fin: bool,
    /// The three reserved bits, as `0b0RRR`.
    pub rsv: u8,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// A header that breaks section 5.2 regardless of connection state (answered with 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// RSV bits set with no extension negotiated.
    ReservedBits,
    /// A reserved opcode (0x3-0x7, 0xB-0xF).
    UnknownOpcode(u8),
    /// A control frame with more than 125 payload bytes.
    ControlTooLong,
    /// A control frame without FIN.
    ControlFragmented,
    /// A 64-bit length with its most significant bit set.
    LengthTopBit,
    /// A length not written in the minimal number of bytes.
    NonMinimalLength,
}

impl HeaderError {
    /// A short reason for logs and close frames.
    pub fn describe(self) -> &'static str {
        match self {
            HeaderError::ReservedBits => "reserved bits set without an extension",
            HeaderError::UnknownOpcode(_) => "reserved opcode",
            HeaderError::ControlTooLong => "control frame longer than 125 bytes",
            HeaderError::ControlFragmented => "fragmented control frame",
            HeaderError::LengthTopBit => "64-bit length with the top bit set",
            HeaderError::NonMinimalLength => "length not minimally encoded",
        }
    }
}

/// Decodes a frame header from the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or the header and its length in bytes.
pub fn decode_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x07;
    if rsv != 0 {
        return Err(HeaderError::ReservedBits);
    }
    let opcode = OpCode::from_wire(b0 & 0x0f).ok_or(HeaderError::UnknownOpcode(b0 & 0x0f))?;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    if opcode.is_control() {
        if !fin {
            return Err(HeaderError::ControlFragmented);
        }
        if len7 as usize > MAX_CONTROL_PAYLOAD {
            return Err(HeaderError::ControlTooLong);
        }
    }
    let (payload_len, mut pos) = match len7 {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u16::from_be_bytes([bytes[0], bytes[1]]) as u64;
            if len < 126 {
                return Err(HeaderError::NonMinimalLength);
            }
            (len, 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(HeaderError::LengthTopBit);
            }
            if len <= u16::MAX as u64 {
                return Err(HeaderError::NonMinimalLength);
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    let mask = if masked {
        let Some(bytes) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([bytes[0], bytes[1], bytes[2], bytes[3]])
    } else {
        None
    };
    Ok(Some((
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        },
        pos,
    )))
}

/// Writes a frame header for `payload_len` bytes into `dst`.
pub fn encode_header(dst: &mut impl BufMut, fin: bool, opcode: OpCode, payload_len: usize, mask: Option<[u8; 4]>) {
    dst.put_u8(if fin { 0x80 } else { 0 } | opcode.to_wire());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload_len {
        0..=125 => dst.put_u8(mask_bit | payload_len as u8),
        126..=0xffff => {
            dst.put_u8(mask_bit | 126);
            dst.put_u16(payload_len as u16);
        }
        _ => {
            dst.put_u8(mask_bit | 127);
            dst.put_u64(payload_len as u64);
        }
    }
    if let Some(key) = mask {
        dst.put_slice(&key);
    }
}

/// The header length `encode_header` writes for this payload length.
pub fn header_len(payload_len: usize, masked: bool) -> usize {
    let base = match payload_len {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    };
    base + if masked { 4 } else { 0 }
}

/// Appends a whole frame to `dst`; with a mask, the payload is masked as it is copied.
pub fn encode_frame(dst: &mut BytesMut, fin: bool, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) {
    dst.reserve(header_len(payload.len(), mask.is_some()) + payload.len());
    encode_header(dst, fin, opcode, payload.len(), mask);
    let start = dst.len();
    dst.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut dst[start..], key, 0);
    }
}

/// Encodes one unmasked, unfragmented server frame into shareable bytes.
///
/// Encode a broadcast once and clone the `Bytes` into every connection's queue.
pub fn server_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(header_len(payload.len(), false) + payload.len());
    encode_frame(&mut buf, true, opcode, payload, None);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
        decode_header(buf)
    }

    #[test]
    fn round_trips_every_length_class() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let payload = vec![0x5a; len];
                let mut buf = BytesMut::new();
                encode_frame(&mut buf, true, OpCode::Binary, &payload, mask);
                let (header, n) = decode_all(&buf).unwrap().unwrap();
                assert_eq!(n, header_len(len, mask.is_some()));
                assert_eq!(header.payload_len, len as u64);
                assert_eq!(header.mask, mask);
                let mut body = buf[n..].to_vec();
                if let Some(key) = mask {
                    apply_mask(&mut body, key, 0);
                }
                assert_eq!(body, payload);
                // Every strict prefix of the header asks for more bytes.
                for cut in 0..n {
                    assert_eq!(decode_all(&buf[..cut]), Ok(None), "len {len} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn reserved_bits_and_opcodes_are_rejected() {
        assert_eq!(decode_all(&[0x81 | 0x40, 0x80]), Err(HeaderError::ReservedBits));
        assert_eq!(decode_all(&[0x81 | 0x10, 0x80]), Err(HeaderError::ReservedBits));
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(decode_all(&[0x80 | op, 0x80]), Err(HeaderError::UnknownOpcode(op)));
        }
    }

    #[test]
    fn control_frame_rules() {
        assert_eq!(decode_all(&[0x09, 0x80]), Err(HeaderError::ControlFragmented));
        assert_eq!(
            decode_all(&[0x89, 0x80 | 126, 0, 126]),
            Err(HeaderError::ControlTooLong)
        );
        assert!(decode_all(&[0x89, 0x80 | 125, 1, 2, 3, 4]).unwrap().is_some());
    }

    #[test]
    fn length_encoding_rules() {
        let mut top = vec![0x82, 127];
        top.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(decode_all(&top), Err(HeaderError::LengthTopBit));
        assert_eq!(decode_all(&[0x82, 126, 0, 5]), Err(HeaderError::NonMinimalLength));
        let mut long = vec![0x82, 127];
        long.extend_from_slice(&100u64.to_be_bytes());
        assert_eq!(decode_all(&long), Err(HeaderError::NonMinimalLength));
    }

    #[test]
    fn server_frame_is_unmasked_and_final() {
        let frame = server_frame(OpCode::Text, b"hi");
        assert_eq!(&frame[..], &[0x81, 2, b'h', b'i']);
    }
}
