//! Serving a connection over the socket communicator.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use lisafs_transport::{RecvError, SockCommunicator};
use lisafs_wire::{Message, Mid, PReadReq, PReadResp};

use crate::connection::{Connection, Reply};

/// How a connection's serving loop ended.
#[derive(Debug)]
pub enum ServeEnd {
    /// The client closed the socket (or it was shut down) between requests.
    Closed,
    /// The client closed the socket in the middle of a request.
    Truncated,
    /// The socket failed.
    Io(std::io::Error),
}

/// Serves requests from `comm` until the client goes away, one at a time on
/// the calling thread, then closes the connection (releasing every FD it
/// still has registered). Handler errors become Error replies; only a
/// transport failure ends the loop.
pub fn serve_socket(conn: &Connection, mut comm: SockCommunicator) -> ServeEnd {
    comm.set_max_payload(conn.max_message_size());
    let mut reply = Reply::default();
    // PRead responses are built here, in place: its bytes stay initialized
    // from one read to the next, so a read is not preceded by zeroing
    // `count` bytes of the reply buffer.
    let mut pread_buf = Vec::new();
    let end = loop {
        match comm.recv(0) {
            Ok(frame) if frame.mid == Mid::PREAD => {
                if let Some(n) = pread_in_place(conn, frame.payload, &mut pread_buf, &mut reply) {
                    if let Err(e) = comm.send(Mid::PREAD, &pread_buf[..n], &[]) {
                        break ServeEnd::Io(e);
                    }
                    continue;
                }
            }
            Ok(frame) => conn.handle(frame.mid, frame.payload, &mut reply),
            Err(RecvError::TooLarge { .. }) => conn.reply_too_large(&mut reply),
            Err(RecvError::Closed) => break ServeEnd::Closed,
            Err(RecvError::Truncated) => break ServeEnd::Truncated,
            Err(RecvError::Io(e)) => break ServeEnd::Io(e),
            Err(_) => break ServeEnd::Truncated,
        }
        let sent = send_reply(&mut comm, &mut reply);
        if let Err(e) = sent {
            break ServeEnd::Io(e);
        }
    };
    conn.close();
    end
}

/// Handles PRead into `buf`, grown (zero-filled) only past its largest
/// size so far; returns the response's length, or `None` when the response
/// is in `reply` (an error, or a request too malformed to size).
fn pread_in_place(
    conn: &Connection,
    payload: &[u8],
    buf: &mut Vec<u8>,
    reply: &mut Reply,
) -> Option<usize> {
    let need = match PReadReq::decode_payload(payload) {
        Ok(req) => PReadResp::HEADER_LEN + req.count as usize,
        Err(_) => usize::MAX,
    };
    if need > conn.max_message_size() as usize {
        // Decode failure or ENOBUFS: the ordinary path answers.
        conn.handle(Mid::PREAD, payload, reply);
        return None;
    }
    if buf.len() < need {
        buf.resize(need, 0);
    }
    conn.handle_pread_in_place(payload, &mut buf[..need], reply)
}

/// Sends `reply`, then closes the server's copies of its donated FDs.
pub(crate) fn send_reply(comm: &mut SockCommunicator, reply: &mut Reply) -> std::io::Result<()> {
    set_nonblocking(&reply.fds);
    let result = match reply.fds.as_slice() {
        [] => comm.send(reply.mid, &reply.payload, &[]),
        [a] => comm.send(reply.mid, &reply.payload, &[a.as_fd()]),
        many => {
            let fds: Vec<BorrowedFd<'_>> = many.iter().map(AsFd::as_fd).collect();
            comm.send(reply.mid, &reply.payload, &fds)
        }
    };
    reply.fds.clear();
    result
}

/// gVisor donates every FD non-blocking (the Sentry polls them); failure is
/// ignored, as for `O_PATH` descriptors.
pub(crate) fn set_nonblocking(fds: &[OwnedFd]) {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    for fd in fds {
        // Backends often open non-blocking already: skip the second syscall.
        if let Ok(flags) = fcntl_getfl(fd) {
            if !flags.contains(OFlags::NONBLOCK) {
                let _ = fcntl_setfl(fd, flags | OFlags::NONBLOCK);
            }
        }
    }
}
