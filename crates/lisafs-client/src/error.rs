//! [`Error`]: what every client call can fail with.

use std::{fmt, io};

use lisafs_wire::errno::{EINVAL, EIO};
use lisafs_wire::{DecodeError, EncodeError};

/// The result of a client call.
pub type Result<T> = std::result::Result<T, Error>;

/// Why a client call failed.
#[derive(Debug)]
pub enum Error {
    /// The server answered with an Error reply carrying this Linux errno, or
    /// the client refused the request locally with the errno gVisor's client
    /// would give (EOPNOTSUPP for an unsupported message, EINVAL for a name
    /// that does not fit its wire field, ...).
    Errno(u32),
    /// The server broke the protocol: a reply with the wrong MID, a payload
    /// that does not decode or is over the negotiated size, a reply that
    /// contradicts its request. The connection may still be usable, but the
    /// server should not be trusted.
    Protocol(String),
    /// The socket failed or was closed; the connection is unusable.
    Io(io::Error),
}

impl Error {
    /// The errno a caller (for example JavaScript code) should see: the
    /// server's errno; for a socket failure the OS errno when there is one
    /// (ENOENT or ECONNREFUSED for an unreachable server, EPIPE...); EIO for
    /// protocol violations and end of file, as gVisor's client reports them.
    pub fn errno(&self) -> u32 {
        match self {
            Error::Errno(n) => *n,
            Error::Protocol(_) => EIO,
            // Telling "no server at that path" from "server broke" matters
            // more to a JS caller than gVisor's blanket EIO.
            Error::Io(e) => e
                .raw_os_error()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0)
                .unwrap_or(EIO),
        }
    }

    pub(crate) fn protocol(msg: impl Into<String>) -> Self {
        Error::Protocol(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The C library's description already names every errno, so no
            // table of our own is needed.
            Error::Errno(n) => match i32::try_from(*n) {
                Ok(raw) => write!(f, "{}", io::Error::from_raw_os_error(raw)),
                Err(_) => write!(f, "errno {n}"),
            },
            Error::Protocol(msg) => write!(f, "LISAFS protocol error: {msg}"),
            Error::Io(e) => write!(f, "LISAFS transport error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Protocol(format!("malformed reply: {e}"))
    }
}

impl From<EncodeError> for Error {
    /// Every encode failure of a request is a caller's value that does not
    /// fit its wire field (a name over 65,535 bytes, too many items, data
    /// over 4 GiB): EINVAL, without sending anything.
    fn from(_: EncodeError) -> Self {
        Error::Errno(EINVAL)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Errno(n) => match i32::try_from(n) {
                Ok(raw) => io::Error::from_raw_os_error(raw),
                Err(_) => io::Error::other(format!("errno {n}")),
            },
            Error::Protocol(msg) => io::Error::new(io::ErrorKind::InvalidData, msg),
            Error::Io(e) => e,
        }
    }
}
