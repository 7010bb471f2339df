//! The receive error.

use std::{fmt, io};

use lisafs_wire::Mid;

/// Why [`SockCommunicator::recv`](crate::SockCommunicator::recv) returned no
/// frame.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// The peer closed the connection (or the socket was shut down) between
    /// frames. The normal end of a connection.
    Closed,
    /// The connection ended inside a frame: the peer sent part of a header or
    /// less payload than its header announced.
    Truncated,
    /// The header announced a payload larger than the communicator's limit.
    /// The payload has been consumed, so the connection is still in sync:
    /// gVisor's server answers this with `EIO` and keeps serving.
    TooLarge {
        /// The MID from the header.
        mid: Mid,
        /// The payload length from the header.
        len: u32,
    },
    /// The socket failed.
    Io(io::Error),
}

impl RecvError {
    /// Whether the connection is still usable: only [`RecvError::TooLarge`]
    /// leaves the stream at a frame boundary.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed by peer"),
            Self::Truncated => f.write_str("connection closed in the middle of a frame"),
            Self::TooLarge { mid, len } => write!(
                f,
                "frame for MID {} announces a {len}-byte payload, over the limit",
                mid.0
            ),
            Self::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for RecvError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<RecvError> for io::Error {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Io(e) => e,
            RecvError::Closed | RecvError::Truncated => {
                io::Error::new(io::ErrorKind::UnexpectedEof, e)
            }
            RecvError::TooLarge { .. } => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}
