//! The publish payload: `--size` bytes of text that begin with the publish's intended send
//! time, nanoseconds since the UNIX epoch ([`super::clock`]) as [`STAMP_DIGITS`] zero-padded
//! decimal digits, followed by the run's filler text.

use std::io::Write as _;

/// Digits of the send time: every u64 fits in 20 decimal digits.
pub const STAMP_DIGITS: usize = 20;

/// Writes the payload of a publish intended at `sent_ns` into `out`: the time, then `filler`
/// from byte [`STAMP_DIGITS`] on, so the payload is as long as `filler` (at least
/// [`STAMP_DIGITS`] bytes).
pub fn encode(sent_ns: u64, filler: &[u8], out: &mut Vec<u8>) {
    debug_assert!(filler.len() >= STAMP_DIGITS, "the plan checks --size");
    write!(out, "{sent_ns:020}").expect("writing into a Vec cannot fail");
    out.extend_from_slice(&filler[STAMP_DIGITS..]);
}

/// The intended send time at the start of `data`; `None` when it does not start with one.
pub fn parse(data: &[u8]) -> Option<u64> {
    data.get(..STAMP_DIGITS)?.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_time_round_trips_at_the_front_of_a_payload_of_the_given_size() {
        let filler: Vec<u8> = (0..64).map(|i| b'a' + (i % 26) as u8).collect();
        for sent in [0, 1, 1_733_000_000_123_456_789, u64::MAX] {
            let mut out = Vec::new();
            encode(sent, &filler, &mut out);
            assert_eq!(out.len(), 64);
            assert_eq!(&out[STAMP_DIGITS..], &filler[STAMP_DIGITS..]);
            assert_eq!(parse(&out), Some(sent));
        }
        let mut exact = Vec::new();
        encode(42, &filler[..STAMP_DIGITS], &mut exact);
        assert_eq!(exact, b"00000000000000000042");
    }

    #[test]
    fn refuses_what_is_not_a_send_time() {
        assert_eq!(parse(b"0000000000000000004"), None, "too short");
        assert_eq!(parse(b"0000000000000000004x..."), None);
        assert_eq!(parse(b"-0000000000000000042"), None);
        assert_eq!(parse(b"99999999999999999999"), None, "above u64::MAX");
        assert_eq!(parse(b"18446744073709551615tail"), Some(u64::MAX));
    }
}
