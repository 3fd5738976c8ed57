//! Seeded, deterministic input mutations for the stable runner: the same seed and corpus give
//! the same inputs on every machine.

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` above 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes that sit on the edges of the formats: length classes, masks, opcodes, separators.
const INTERESTING_BYTES: [u8; 16] = [
    0x00, 0x01, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x88, 0xff, b'\r', b'\n', b':', b',', b'"', 0xc0, 0xed,
];

/// Length-field values worth trying: the 7/16/64-bit boundaries and the top bit.
const INTERESTING_LENGTHS: [u64; 10] = [0, 1, 125, 126, 127, 0xffff, 0x1_0000, 1 << 31, 1 << 63, u64::MAX];

/// One to four stacked mutations of `input` (bit flips, interesting bytes, length-field
/// tweaks, inserted, deleted and duplicated ranges, splices with `donors`, truncations); the
/// result is at most `max_len` bytes.
pub fn mutate(rng: &mut Rng, input: &[u8], donors: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        mutate_once(rng, &mut data, donors);
    }
    data.truncate(max_len);
    data
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, donors: &[Vec<u8>]) {
    if data.is_empty() {
        data.push(INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]);
        return;
    }
    let at = rng.below(data.len());
    match rng.below(8) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())],
        2 => {
            let value = INTERESTING_LENGTHS[rng.below(INTERESTING_LENGTHS.len())];
            let width = [1, 2, 8][rng.below(3)];
            let bytes = value.to_be_bytes();
            for (i, byte) in bytes[8 - width..].iter().enumerate() {
                if let Some(slot) = data.get_mut(at + i) {
                    *slot = *byte;
                }
            }
        }
        3 => {
            let count = 1 + rng.below(8);
            let fresh: Vec<u8> = (0..count).map(|_| rng.next_u64() as u8).collect();
            data.splice(at..at, fresh);
        }
        4 => {
            let end = (at + 1 + rng.below(16)).min(data.len());
            data.drain(at..end);
        }
        5 => {
            let end = (at + 1 + rng.below(32)).min(data.len());
            let copy = data[at..end].to_vec();
            let to = rng.below(data.len() + 1);
            data.splice(to..to, copy);
        }
        6 if !donors.is_empty() => {
            let donor = &donors[rng.below(donors.len())];
            if !donor.is_empty() {
                let from = rng.below(donor.len());
                let end = (from + 1 + rng.below(64)).min(donor.len());
                data.truncate(at);
                data.extend_from_slice(&donor[from..end]);
            }
        }
        _ => data.truncate(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs_and_lengths_stay_bounded() {
        let donors = vec![b"GET / HTTP/1.1\r\n\r\n".to_vec(), vec![0x81, 0x85, 1, 2, 3, 4, 5]];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|i| mutate(&mut rng, &donors[i % 2], &donors, 24))
                .collect::<Vec<_>>()
        };
        let first = run(7);
        assert_eq!(first, run(7));
        assert_ne!(first, run(8));
        assert!(first.iter().all(|input| input.len() <= 24));
        assert!(first.iter().any(|input| input != &donors[0] && input != &donors[1]));
    }
}
