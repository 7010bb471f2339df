//! The two error types of the codec. Neither carries payload bytes: a hostile
//! peer's data never ends up in a log line through them.

use core::fmt;

/// Why a buffer could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ended before `what` was complete.
    Truncated {
        /// The field or structure being decoded.
        what: &'static str,
        /// Bytes the field needs (for arrays: a lower bound).
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// Bytes were left after a complete message where the caller asked for an
    /// exact decode. (gVisor's decoders ignore trailing bytes; see
    /// [`crate::Message::decode`].)
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// A field holds a value the protocol does not define.
    InvalidValue {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// No message with this ID exists in the given direction.
    UnknownMid(u16),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated {
                what,
                needed,
                remaining,
            } => write!(
                f,
                "truncated {what}: needs {needed} bytes, {remaining} remain"
            ),
            Self::TrailingBytes { extra } => {
                write!(f, "{extra} trailing bytes after a complete message")
            }
            Self::InvalidValue { what, value } => write!(f, "invalid {what}: {value}"),
            Self::UnknownMid(mid) => write!(f, "unknown message id {mid}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The destination is shorter than the encoded message.
    BufferTooSmall {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes the destination has.
        available: usize,
    },
    /// A SizedString longer than 65,535 bytes. gVisor's Go encoder would
    /// silently wrap its length; we refuse instead.
    StringTooLong {
        /// Length of the string.
        len: usize,
    },
    /// An array with more than 65,535 elements (its count is a u16).
    TooManyItems {
        /// Number of elements.
        count: usize,
    },
    /// A length that does not fit its wire field (e.g. PWrite data over 4 GiB).
    LengthOverflow {
        /// The field.
        what: &'static str,
        /// The length.
        len: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "destination too small: needs {needed} bytes, has {available}"
            ),
            Self::StringTooLong { len } => {
                write!(f, "string of {len} bytes exceeds the 65535-byte limit")
            }
            Self::TooManyItems { count } => {
                write!(f, "array of {count} items exceeds the 65535-item limit")
            }
            Self::LengthOverflow { what, len } => {
                write!(f, "{what} length {len} does not fit its wire field")
            }
        }
    }
}

impl std::error::Error for EncodeError {}
