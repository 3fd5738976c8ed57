//! [`ConnId`]: a connection's identity across the whole process.

use std::fmt;
use std::str::FromStr;

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

/// Shown as `core:slot:generation` (e.g. `1:28:3`), the same in logs, the API and the
/// dashboard; [`ConnId`]'s `FromStr` reads it back.
impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.core, self.key, self.generation)
    }
}

/// Why a string is not a connection id in the `core:slot:generation` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseConnIdError(String);

impl fmt::Display for ParseConnIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a connection id (core:slot:generation): {:?}", self.0)
    }
}

impl std::error::Error for ParseConnIdError {}

impl FromStr for ConnId {
    type Err = ParseConnIdError;

    fn from_str(text: &str) -> Result<ConnId, ParseConnIdError> {
        let error = || ParseConnIdError(text.to_owned());
        let mut parts = text.split(':');
        let (Some(core), Some(key), Some(generation), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(error());
        };
        Ok(ConnId {
            core: core.parse().map_err(|_| error())?,
            key: key.parse().map_err(|_| error())?,
            generation: generation.parse().map_err(|_| error())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_core_slot_generation_and_parses_back() {
        let id = ConnId::new(1, 28, 3);
        assert_eq!(id.to_string(), "1:28:3");
        assert_eq!("1:28:3".parse::<ConnId>(), Ok(id));
        for bad in ["", "1:28", "1:28:3:4", "a:1:2", "1:-1:2", "70000:1:1"] {
            assert!(bad.parse::<ConnId>().is_err(), "{bad:?}");
        }
    }
}
