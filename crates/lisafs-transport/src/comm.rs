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

/// The receive buffer starts this large (or at the payload limit if that
/// is smaller): a frame that fits arrives with its header in one `recvmsg`.
const READ_AHEAD: usize = 64 * 1024;

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
    /// Payloads are received here. When a receive takes no FDs, the header
    /// and the start of the payload come in one `recvmsg` with the rest of
    /// the buffer as read-ahead; bytes beyond the frame (a peer that
    /// pipelines) stay in `buf[start..end]` for the next receive.
    buf: Vec<u8>,
    start: usize,
    end: usize,
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
            start: 0,
            end: 0,
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
            // Keep the bytes already received but not yet returned.
            self.compact();
            let keep = max.max(self.end);
            self.buf.truncate(keep);
            self.buf.shrink_to(keep);
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
        let mut fds = Vec::new();
        let mut header = [0u8; HEADER_LEN];
        self.recv_header(&mut header, want_fds, &mut fds)?;
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
        if self.end - self.start < len {
            // Make room for the whole payload after what was read ahead.
            if self.buf.len() - self.start < len {
                self.compact();
                self.reserve(len);
            }
            let (from, to) = (self.end, self.start + len);
            if sys::recv_exact(self.fd.as_fd(), &mut self.buf[from..to])? < to - from {
                return Err(RecvError::Truncated);
            }
            self.end = to;
        }
        let at = self.start;
        self.start += len;
        Ok(Frame {
            mid: header.mid,
            payload: &self.buf[at..at + len],
            fds,
        })
    }

    /// Fills `header` from the bytes read ahead or from the socket. With
    /// nothing read ahead and no FDs wanted, one `recvmsg` takes the header
    /// and as much of the payload as has arrived. When FDs are wanted the
    /// header is read alone, as before: descriptors then always come with
    /// this frame's first bytes, never with a following frame's.
    fn recv_header(
        &mut self,
        header: &mut [u8; HEADER_LEN],
        want_fds: usize,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<(), RecvError> {
        let fd = self.fd.as_fd();
        let got;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if want_fds == 0 && self.buf.is_empty() {
                let max = usize::try_from(self.max_payload).unwrap_or(usize::MAX);
                let size = READ_AHEAD.min(max);
                // Exact: growth from empty rounds small sizes up (to 8),
                // past a limit as small as the payload limit may be.
                self.buf.reserve_exact(size);
                self.buf.resize(size, 0);
            }
            let ahead: &mut [u8] = if want_fds == 0 {
                &mut self.buf
            } else {
                &mut []
            };
            let n = sys::recv_first(fd, header, ahead, want_fds, fds)?;
            if n == 0 {
                return Err(RecvError::Closed);
            }
            got = n.min(HEADER_LEN);
            self.end = n - got;
        } else {
            // A peer that pipelines: the next header was read ahead
            // (without FDs, which the kernel then dropped).
            let n = (self.end - self.start).min(HEADER_LEN);
            header[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            got = n;
        }
        if got < HEADER_LEN && sys::recv_exact(fd, &mut header[got..])? < HEADER_LEN - got {
            return Err(RecvError::Truncated);
        }
        Ok(())
    }

    /// Moves the bytes read ahead to the front of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
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

    /// Reads and drops `len` payload bytes, starting with those read ahead.
    fn discard(&mut self, len: u32) -> Result<(), RecvError> {
        let buffered = (self.end - self.start).min(usize::try_from(len).unwrap_or(usize::MAX));
        self.start += buffered;
        let len = len - buffered as u32;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else {
            // The whole oversized payload was read ahead; what follows it
            // stays buffered.
            return Ok(());
        }
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
