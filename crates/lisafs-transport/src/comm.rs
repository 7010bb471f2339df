//! [`SockCommunicator`] and its frames.

use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Weak};

use lisafs_wire::{Mid, SockHeader, DEFAULT_MAX_MESSAGE_SIZE};
use rustix::net::{shutdown, Shutdown};

use crate::error::RecvError;
use crate::sys;
use crate::HEADER_LEN;

/// Oversized payloads are skipped through a scratch buffer of this size when
/// the receive buffer is smaller, so skipping allocates nothing.
const DISCARD_CHUNK: usize = 16 * 1024;

/// A received frame. Its payload borrows the communicator's receive buffer,
/// so it must be dropped before the next receive.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The MID from the header.
    pub mid: Mid,
    /// Exactly the header's `payload_len` bytes.
    pub payload: &'a [u8],
    /// Descriptors that came with the frame, in the order they were sent: at
    /// most the `want_fds` passed to [`SockCommunicator::recv`], possibly
    /// fewer. Empty (and unallocated) when none arrived.
    pub fds: Vec<OwnedFd>,
}

/// One end of a LISAFS socket connection: frames out, frames in.
///
/// Owns the socket and one receive buffer that grows on demand to the
/// largest payload received so far, never beyond [`max_payload`]. Sending
/// needs no buffer of its own.
///
/// Send and receive take `&mut self` so that two threads cannot interleave
/// partial frames; to wake a thread blocked in [`recv`] from elsewhere, use
/// a [`ShutdownHandle`].
///
/// [`max_payload`]: SockCommunicator::max_payload
/// [`recv`]: SockCommunicator::recv
pub struct SockCommunicator {
    // Shared only with `ShutdownHandle`s, which hold it weakly: dropping the
    // communicator closes the socket even while handles exist.
    fd: Arc<OwnedFd>,
    buf: Vec<u8>,
    max_payload: u32,
}

impl SockCommunicator {
    /// Wraps a connected `SOCK_STREAM` Unix socket. The payload limit starts
    /// at [`DEFAULT_MAX_MESSAGE_SIZE`], what gVisor's server enforces; a
    /// client should lower it to
    /// [`PRE_MOUNT_MAX_MESSAGE_SIZE`](lisafs_wire::PRE_MOUNT_MAX_MESSAGE_SIZE)
    /// until Mount tells it the server's limit, as gVisor's client does.
    pub fn new(fd: OwnedFd) -> Self {
        Self::with_max_payload(fd, DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// Like [`new`](Self::new), with payload limit `max_payload`.
    pub fn with_max_payload(fd: OwnedFd, max_payload: u32) -> Self {
        Self {
            fd: Arc::new(fd),
            buf: Vec::new(),
            max_payload,
        }
    }

    /// The largest payload [`send`](Self::send) accepts and
    /// [`recv`](Self::recv) returns.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Changes the payload limit for both directions. Lowering it also
    /// shrinks the receive buffer to the new limit.
    pub fn set_max_payload(&mut self, max_payload: u32) {
        self.max_payload = max_payload;
        let max = usize::try_from(max_payload).unwrap_or(usize::MAX);
        if self.buf.len() > max {
            self.buf.truncate(max);
            self.buf.shrink_to(max);
        }
    }

    /// Bytes currently allocated for the receive buffer; never more than
    /// [`max_payload`](Self::max_payload) (useful for checking that hostile
    /// headers cannot inflate it).
    pub fn recv_buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Receives one frame, accepting up to `want_fds` descriptors with it
    /// (capped at [`MAX_FDS`](crate::MAX_FDS)); see the
    /// [crate docs](crate#file-descriptors) for the rules. Pass 0 unless the
    /// frame is a response that may carry FDs.
    ///
    /// On [`RecvError::TooLarge`] the oversized payload has been consumed and
    /// the next call reads the next frame; every other error leaves the
    /// stream at an unknown position, so the connection should be dropped.
    pub fn recv(&mut self, want_fds: usize) -> Result<Frame<'_>, RecvError> {
        let fd = self.fd.as_fd();
        let mut fds = Vec::new();
        let mut header = [0u8; HEADER_LEN];
        let first = sys::recv_first(fd, &mut header, want_fds, &mut fds)?;
        if first == 0 {
            return Err(RecvError::Closed);
        }
        if sys::recv_exact(fd, &mut header[first..])? < HEADER_LEN - first {
            return Err(RecvError::Truncated);
        }
        let header = SockHeader::from_bytes(&header);
        let len = header.payload_len;

        if len > self.max_payload {
            // The caller answers EIO without looking at the frame, so its
            // FDs are closed here rather than handed out.
            drop(fds);
            self.discard(len)?;
            return Err(RecvError::TooLarge {
                mid: header.mid,
                len,
            });
        }
        let len = usize::try_from(len).map_err(|_| RecvError::TooLarge {
            mid: header.mid,
            len,
        })?;
        self.reserve(len);
        let payload = &mut self.buf[..len];
        if sys::recv_exact(self.fd.as_fd(), payload)? < len {
            return Err(RecvError::Truncated);
        }
        Ok(Frame {
            mid: header.mid,
            payload: &self.buf[..len],
            fds,
        })
    }

    /// Sends one frame: the header and `payload` go out in one `sendmsg`
    /// (two I/O vectors, the payload is not copied), continued on short
    /// writes. `fds` travel with the first `sendmsg`, in order; the caller
    /// keeps its copies and may close them once this returns.
    ///
    /// Fails with `InvalidInput`, sending nothing, if the payload exceeds
    /// [`max_payload`](Self::max_payload) or `fds` exceed
    /// [`MAX_FDS`](crate::MAX_FDS). A write error (`EPIPE` once the peer
    /// is gone) may come after part of the frame went out; the connection
    /// is then unusable.
    pub fn send(&mut self, mid: Mid, payload: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let header = self.header(mid, payload.len())?;
        let mut iov = [IoSlice::new(&header), IoSlice::new(payload)];
        sys::send_all(self.fd.as_fd(), &mut iov, fds)
    }

    /// Sends a frame laid out in place: `frame[..HEADER_LEN]` is scratch that
    /// this method overwrites with the header, and `frame[HEADER_LEN..]` is
    /// the payload. For a server that encodes responses straight into a
    /// reusable buffer:
    ///
    /// ```
    /// # use lisafs_transport::{begin_frame, socket_pair, SockCommunicator};
    /// # use lisafs_wire::{Message, Mid, FdId, CloseReq, FdArray};
    /// # let (a, b) = socket_pair()?;
    /// # let (mut server, mut client) = (SockCommunicator::new(a), SockCommunicator::new(b));
    /// let mut out = Vec::new();
    /// begin_frame(&mut out);
    /// let ids = [FdId(7)];
    /// CloseReq { fds: FdArray::from_items(&ids) }.encode_to_vec(&mut out)?;
    /// server.send_frame(Mid::CLOSE, &mut out, &[])?;
    /// # assert_eq!(client.recv(0)?.payload, &out[8..]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Otherwise as [`send`](Self::send); a `frame` shorter than the header
    /// is `InvalidInput`.
    pub fn send_frame(
        &mut self,
        mid: Mid,
        frame: &mut [u8],
        fds: &[BorrowedFd<'_>],
    ) -> io::Result<()> {
        let Some(payload_len) = frame.len().checked_sub(HEADER_LEN) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame is shorter than its header",
            ));
        };
        let header = self.header(mid, payload_len)?;
        frame[..HEADER_LEN].copy_from_slice(&header);
        sys::send_all(self.fd.as_fd(), &mut [IoSlice::new(frame)], fds)
    }

    /// Shuts the socket down in both directions: a [`recv`](Self::recv)
    /// blocked in another thread (reached through a [`ShutdownHandle`])
    /// returns, and the peer sees end of file.
    pub fn shutdown(&self) -> io::Result<()> {
        Ok(shutdown(&*self.fd, Shutdown::Both)?)
    }

    /// A handle another thread can use to shut this socket down.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            fd: Arc::downgrade(&self.fd),
        }
    }

    fn header(&self, mid: Mid, payload_len: usize) -> io::Result<[u8; HEADER_LEN]> {
        match u32::try_from(payload_len) {
            Ok(len) if len <= self.max_payload => Ok(SockHeader {
                payload_len: len,
                mid,
            }
            .to_bytes()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "payload of {payload_len} bytes exceeds the limit of {}",
                    self.max_payload
                ),
            )),
        }
    }

    /// Makes `buf` at least `len` bytes long (`len <= max_payload`). Grows
    /// geometrically to avoid a reallocation per slightly larger payload, but
    /// with exact reservations so the capacity stays within the limit.
    fn reserve(&mut self, len: usize) {
        let have = self.buf.len();
        if have >= len {
            return;
        }
        let max = usize::try_from(self.max_payload).unwrap_or(usize::MAX);
        let target = have.saturating_mul(2).min(max).max(len);
        self.buf.reserve_exact(target - have);
        self.buf.resize(target, 0);
    }

    /// Reads and drops `len` payload bytes.
    fn discard(&mut self, len: u32) -> Result<(), RecvError> {
        let mut stack = [0u8; DISCARD_CHUNK];
        let scratch: &mut [u8] = if self.buf.len() > DISCARD_CHUNK {
            &mut self.buf
        } else {
            &mut stack
        };
        let mut left = u64::from(len);
        while left > 0 {
            let n = usize::try_from(left).map_or(scratch.len(), |l| l.min(scratch.len()));
            if sys::recv_exact(self.fd.as_fd(), &mut scratch[..n])? < n {
                return Err(RecvError::Truncated);
            }
            left -= n as u64;
        }
        Ok(())
    }
}

impl AsFd for SockCommunicator {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for SockCommunicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockCommunicator")
            .field("fd", &self.fd)
            .field("max_payload", &self.max_payload)
            .field("recv_buffer", &self.buf.len())
            .finish()
    }
}

/// Shuts a [`SockCommunicator`]'s socket down from another thread.
///
/// Holds no reference that keeps the socket open: once the communicator is
/// dropped, [`shutdown`](Self::shutdown) does nothing, and it can never act
/// on an unrelated socket that reused the descriptor number.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    fd: Weak<OwnedFd>,
}

impl ShutdownHandle {
    /// Shuts the socket down in both directions (`SHUT_RDWR`), waking any
    /// thread blocked on it; a no-op if the communicator is gone.
    pub fn shutdown(&self) -> io::Result<()> {
        match self.fd.upgrade() {
            Some(fd) => Ok(shutdown(&*fd, Shutdown::Both)?),
            None => Ok(()),
        }
    }
}

/// Starts a frame for [`SockCommunicator::send_frame`]: clears `buf` and
/// reserves the header's bytes, so the payload can be appended after them.
pub fn begin_frame(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0; HEADER_LEN]);
}
