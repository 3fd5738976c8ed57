//! Topic names: what a subscriber and a publisher may name, checked once where names enter
//! (the upgrade query, a command, a publish path).

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 128;

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("topic name is empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`].
    #[error("topic name is {0} bytes; the limit is 128")]
    TooLong(usize),
    /// The name holds a character outside `A-Z a-z 0-9 _ - . ~ /`.
    #[error("topic name {name:?} has {found:?} at byte {at}; allowed: A-Z a-z 0-9 _ - . ~ /")]
    BadCharacter {
        /// The name as given.
        name: String,
        /// The first character not allowed.
        found: char,
        /// Its byte offset.
        at: usize,
    },
}

/// Checks a topic name: 1 to [`MAX_TOPIC_LEN`] bytes of `A-Z a-z 0-9 _ - . ~ /`.
pub fn validate_topic(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(name.len()));
    }
    match name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~' | '/')))
    {
        Some((at, found)) => Err(TopicError::BadCharacter {
            name: name.to_owned(),
            found,
            at,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_for_length_and_characters() {
        assert_eq!(validate_topic("news/eu-1.live~x_y"), Ok(()));
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert_eq!(validate_topic(&"a".repeat(129)), Err(TopicError::TooLong(129)));
        assert!(validate_topic(&"a".repeat(128)).is_ok());
        for bad in ["a:b", "a,b", "a b", "é", "a\n"] {
            assert!(
                matches!(validate_topic(bad), Err(TopicError::BadCharacter { .. })),
                "{bad:?}"
            );
        }
    }
}
