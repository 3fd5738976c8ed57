//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! RFC 6455 section 8.1 asks an endpoint to fail a text message as soon as its bytes stop being
//! valid UTF-8, even when the message is fragmented or its frame is split across reads. This
//! validator keeps at most three bytes of an unfinished code point between calls.

/// The bytes fed so far are not a prefix of any valid UTF-8 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a byte stream chunk by chunk; `finish` checks that no code point was left open.
#[derive(Debug, Default, Clone, Copy)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// Feeds the next chunk. Fails as soon as the stream can no longer be valid.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        while self.pending_len > 0 {
            let Some((&byte, rest)) = input.split_first() else {
                return Ok(());
            };
            input = rest;
            self.pending[self.pending_len as usize] = byte;
            self.pending_len += 1;
            match std::str::from_utf8(&self.pending[..self.pending_len as usize]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {}
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &input[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the stream: an unfinished code point at the end makes it invalid. Resets the validator.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let open = self.pending_len != 0;
        self.pending_len = 0;
        if open {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_in_chunks(data: &[u8], chunk: usize) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        for piece in data.chunks(chunk.max(1)) {
            v.feed(piece)?;
        }
        v.finish()
    }

    #[test]
    fn agrees_with_std_for_every_chunk_size() {
        let samples: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            b"\xf0\x90\x80\x80",
            b"\xf4\x8f\xbf\xbf",
            b"\xf4\x90\x80\x80",
            b"\xed\xa0\x80",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xff",
            b"abc\xe2\x82",
        ];
        for sample in samples {
            let expected = std::str::from_utf8(sample).is_ok();
            for chunk in 1..=sample.len().max(1) {
                assert_eq!(
                    validate_in_chunks(sample, chunk).is_ok(),
                    expected,
                    "{sample:?} chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn fails_on_the_first_impossible_byte_before_the_message_ends() {
        let mut v = Utf8Validator::default();
        v.feed("κόσμε".as_bytes()).unwrap();
        // 0xF4 0x90 can never start a valid code point (above U+10FFFF): fail right there.
        assert_eq!(v.feed(b"\xf4"), Ok(()));
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
    }

    #[test]
    fn an_open_code_point_at_the_end_is_invalid() {
        let mut v = Utf8Validator::default();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
        // finish resets
        assert_eq!(v.finish(), Ok(()));
    }
}
