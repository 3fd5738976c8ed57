//! A small, fast pseudo-random generator (wyrand) for masking keys and handshake nonces.
//!
//! Seeded from the kernel, so masks are unpredictable to the server as RFC 6455 asks; it is not
//! meant for anything cryptographic.

/// The wyrand generator: one 64-bit word of state, one multiply per output.
#[derive(Debug, Clone)]
pub struct WyRand(u64);

impl WyRand {
    /// A generator with a fixed seed (tests).
    pub fn new(seed: u64) -> WyRand {
        WyRand(seed)
    }

    /// A generator seeded from `getrandom(2)`, falling back to the clock and the thread.
    pub fn from_entropy() -> WyRand {
        let mut seed = [0u8; 8];
        // SAFETY: the pointer and length describe `seed`, which outlives the call.
        let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
        if got == seed.len() as isize {
            return WyRand(u64::from_ne_bytes(seed));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u64;
        WyRand(nanos ^ tid.rotate_left(32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0).wrapping_mul(u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db));
        ((t >> 64) ^ t) as u64
    }

    /// A fresh 4-byte masking key.
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// Fills `dst` with random bytes.
    pub fn fill(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let word = self.next_u64().to_ne_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_differ_and_fill_covers_odd_lengths() {
        let mut rng = WyRand::new(7);
        let masks: Vec<[u8; 4]> = (0..64).map(|_| rng.mask()).collect();
        let distinct: std::collections::HashSet<_> = masks.iter().collect();
        assert!(distinct.len() > 60);
        let mut buf = [0u8; 13];
        rng.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
        assert_ne!(WyRand::from_entropy().next_u64(), WyRand::from_entropy().next_u64());
    }
}
