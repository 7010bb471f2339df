//! LISAFS transport A: the socket communicator.
//!
//! Every LISAFS connection starts on a connected `AF_UNIX` `SOCK_STREAM`
//! socket. Mount and Channel always travel on it, and a client without
//! channels (or with all of them busy) sends every request there.
//! [`SockCommunicator`] frames messages on such a socket and passes file
//! descriptors alongside them; it does not decode payloads (that is
//! `lisafs-wire`'s job).
//!
//! # Framing
//!
//! A frame is an 8-byte [`SockHeader`] — `payload_len: u32`, `mid: u16`,
//! two bytes of zero padding, little-endian — followed by exactly
//! `payload_len` payload bytes. Requests and responses use the same framing;
//! a response carries the request's MID, or [`Mid::ERROR`].
//!
//! * Sending writes header and payload with `sendmsg` (`MSG_NOSIGNAL`),
//!   looping on short writes, so a frame is never interleaved with another
//!   frame from the same communicator.
//! * Receiving reads exactly 8 header bytes, then exactly `payload_len`
//!   bytes, looping on short reads and `EINTR`. End of file before the first
//!   header byte is [`RecvError::Closed`]; end of file anywhere later is
//!   [`RecvError::Truncated`].
//! * A header announcing more than [`SockCommunicator::max_payload`] bytes is
//!   answered with [`RecvError::TooLarge`] after its payload has been read
//!   and thrown away in bounded chunks, so the stream stays in sync and the
//!   caller can reply with `EIO` and go on. The receive buffer never grows
//!   past the limit, whatever a header claims.
//!
//! # File descriptors
//!
//! Descriptors travel as one `SCM_RIGHTS` control message attached to the
//! first `sendmsg` of a frame, so they arrive with its first bytes.
//!
//! * The receiver says how many it expects (`want_fds`). Only the first
//!   `recvmsg` that returns data of a frame gets a control buffer, sized with
//!   `CMSG_SPACE(4 * want_fds)` as gVisor sizes it; descriptors that do not
//!   fit are discarded by the kernel and any extra that do fit (the space
//!   rounds up to an even count) are closed before [`recv`] returns.
//! * With `want_fds == 0` there is no control buffer at all, so descriptors a
//!   hostile peer attaches are never installed in this process. A server
//!   should always receive requests this way: no LISAFS request carries FDs.
//! * Received descriptors are installed with `MSG_CMSG_CLOEXEC`, and are
//!   returned as [`OwnedFd`]s, so dropping a [`Frame`] closes them.
//! * Fewer descriptors than asked for is not an error here: the protocol
//!   lets a server omit an FD (for example OpenAt may answer without a host
//!   FD), so [`Frame::fds`] simply holds what arrived.
//!
//! # Threads
//!
//! I/O is blocking; the intended use is one thread per connection. The
//! socket may also be non-blocking: the communicator then waits with `poll`.
//! [`ShutdownHandle`] lets another thread wake a blocked [`recv`] by shutting
//! the socket down.
//!
//! ```
//! use lisafs_transport::{socket_pair, SockCommunicator};
//! use lisafs_wire::Mid;
//!
//! let (a, b) = socket_pair()?;
//! let (mut client, mut server) = (SockCommunicator::new(a), SockCommunicator::new(b));
//! client.send(Mid::FSTAT, &[1, 0, 0, 0, 0, 0, 0, 0], &[])?;
//! let req = server.recv(0)?;
//! assert_eq!((req.mid, req.payload), (Mid::FSTAT, &[1u8, 0, 0, 0, 0, 0, 0, 0][..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`recv`]: SockCommunicator::recv

// Unsafe code is confined to the shared-memory module.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod comm;
mod error;
pub mod flipcall;
mod sys;

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

pub use comm::{begin_frame, Frame, ShutdownHandle, SockCommunicator};
pub use error::RecvError;
pub use lisafs_wire::{Mid, SockHeader};

/// Bytes of [`SockHeader`] in front of every payload.
pub const HEADER_LEN: usize = SockHeader::LEN;

/// The most descriptors one frame can carry (Linux's `SCM_MAX_FD`).
pub const MAX_FDS: usize = sys::SCM_MAX_FD;

/// Creates a connected `AF_UNIX` `SOCK_STREAM` pair with `SOCK_CLOEXEC`, the
/// kind of socket runsc hands to a gofer for each mount.
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}
