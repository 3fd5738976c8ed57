//! [`ConnId`]: a connection's identity across the whole process.

use std::fmt;

/// A connection's identity: its core, its slab key there, and a per-core generation so that a
/// reused slot is never mistaken for the connection that held it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    core: u16,
    key: u32,
    generation: u64,
}

impl ConnId {
    /// The id of the connection in slot `key` of core `core`, the `generation`-th opened there.
    pub(crate) fn new(core: u16, key: u32, generation: u64) -> ConnId {
        ConnId { core, key, generation }
    }

    /// The core the connection lives on.
    pub fn core(self) -> usize {
        self.core as usize
    }

    /// The slab key within its core.
    pub fn key(self) -> usize {
        self.key as usize
    }

    /// The per-core generation that tells reused slots apart.
    pub fn generation(self) -> u64 {
        self.generation
    }

    /// A process-wide unique number: core in the top 16 bits, generation below.
    pub fn as_u64(self) -> u64 {
        ((self.core as u64) << 48) | (self.generation & ((1 << 48) - 1))
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u64())
    }
}
