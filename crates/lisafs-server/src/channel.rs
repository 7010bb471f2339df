//! Channels: serving a connection over flipcall shared-memory windows, as
//! gVisor's `channel.go` does, next to the socket.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use lisafs_transport::flipcall::{self, Endpoint, Side, WindowAllocator, PACKET_HEADER_LEN};
use lisafs_wire::{ChannelHeader, ChannelResp, Mid};

use crate::connection::{Connection, Reply};
use crate::errno::{Errno, FsResult};

/// A connection's channels.
#[derive(Default)]
pub(crate) struct Channels {
    /// The shared-memory file, created with the first channel.
    alloc: Option<WindowAllocator>,
    /// Channels ever created: gVisor never lowers this, even when a channel
    /// dies, and neither do we.
    created: usize,
    endpoints: Vec<Arc<Endpoint>>,
    threads: Vec<JoinHandle<()>>,
}

/// gVisor's `maxChannels()`: the number of CPUs, clamped to [2, 4].
fn default_max_channels() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4)
}

/// How long a channel thread spins for the next request before sleeping,
/// while spinning pays off (the spin is adaptive, see
/// [`Endpoint::set_adaptive_spin`]). Long enough to cover gVisor's client
/// coming back after its futex wake-up on a small VM (which spares the
/// server a wake-up from idle, tens of microseconds there; 10 us lost
/// pread_1m over a channel its lead over gVisor); a client that spins
/// itself answers far sooner. About what the old fixed 2,000 iterations
/// took on the benchmark machine.
const SERVER_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

fn eio<E>(_: E) -> Errno {
    Errno::EIO
}

impl Connection {
    /// Handles Channel: allocates a window, starts serving it, and replies
    /// with its place in the shared-memory file and the two FDs the client
    /// needs (`[memfd, fd socket]`).
    pub(crate) fn create_channel(&self, reply: &mut Reply) -> FsResult<()> {
        let me = self.me.upgrade().ok_or(Errno::ENOSYS)?;
        let mut ch = self.channels.lock();
        if self.is_closing() {
            return Err(Errno::ENOSYS);
        }
        let max = match self.opts.max_channels {
            0 => default_max_channels(),
            n => n,
        };
        if ch.created >= max {
            return Err(Errno::ENOMEM);
        }
        if ch.alloc.is_none() {
            ch.alloc = Some(WindowAllocator::new().map_err(Errno::from)?);
        }
        let Some(alloc) = ch.alloc.as_mut() else {
            return Err(Errno::EIO);
        };
        let len = PACKET_HEADER_LEN + ChannelHeader::LEN + self.max_message_size as usize;
        let desc = alloc.allocate(len).map_err(eio)?;
        let mut endpoint = Endpoint::new(alloc.fd(), desc, Side::Server).map_err(eio)?;
        endpoint.set_spin_limit(flipcall::spins_for(SERVER_SPIN));
        endpoint.set_adaptive_spin(true);
        let endpoint = Arc::new(endpoint);
        let (server_sock, client_sock) = flipcall::fd_socket_pair().map_err(Errno::from)?;
        let mem = alloc.fd().try_clone_to_owned().map_err(Errno::from)?;
        // Serve (wait for the handshake) before replying, as gVisor does.
        let ep = Arc::clone(&endpoint);
        let thread = std::thread::Builder::new()
            .name("lisafs-channel".into())
            .spawn(move || serve_channel(&me, &ep, server_sock))
            .map_err(Errno::from)?;
        ch.created += 1;
        ch.endpoints.push(endpoint);
        ch.threads.push(thread);
        drop(ch);
        reply.payload.clear();
        ChannelResp {
            data_offset: desc.offset as i64,
            data_length: desc.length as u64,
        }
        .append_to(&mut reply.payload)
        .map_err(eio)?;
        reply.fds.push(mem);
        reply.fds.push(client_sock);
        Ok(())
    }

    /// Shuts every channel down and waits for its thread.
    pub(crate) fn close_channels(&self) {
        let (endpoints, threads, alloc) = {
            let mut ch = self.channels.lock();
            (
                std::mem::take(&mut ch.endpoints),
                std::mem::take(&mut ch.threads),
                ch.alloc.take(),
            )
        };
        // The client keeps its own mapping; the server's memfd can go now.
        drop(alloc);
        for ep in &endpoints {
            ep.shutdown();
        }
        let me = std::thread::current().id();
        for t in threads {
            // A channel thread may be the one dropping the last reference.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

use lisafs_wire::Wire;

/// One channel's service loop: copy the request out of the window (the
/// client may scribble on it at any time), handle it, send the reply's FDs
/// on the FD socket, write the reply into the window and hand it back.
fn serve_channel(conn: &Arc<Connection>, ep: &Endpoint, fd_sock: OwnedFd) {
    let mut len = match ep.recv_first() {
        Ok(len) => len,
        Err(_) => return,
    };
    let mut req = Vec::new();
    let mut reply = Reply::default();
    loop {
        // gVisor stops serving a channel on a datagram without a header.
        if (len as usize) < ChannelHeader::LEN {
            break;
        }
        ep.read_data(len, &mut req);
        let Some((hdr, payload)) = req.split_first_chunk::<{ ChannelHeader::LEN }>() else {
            break;
        };
        // A request's FD count is ignored: clients never send FDs.
        let hdr = ChannelHeader::from_bytes(hdr);
        conn.shared.counters.channel_request();
        let n = if hdr.mid == Mid::PREAD {
            // The data goes from the host straight into the window.
            let mut in_place = None;
            let n = ep.write_data_in_place(|data| {
                let Some((head, out)) = data.split_first_chunk_mut::<{ ChannelHeader::LEN }>()
                else {
                    return 0;
                };
                in_place = conn.handle_pread_in_place(payload, out, &mut reply);
                let Some(len) = in_place else { return 0 };
                *head = ChannelHeader {
                    mid: Mid::PREAD,
                    num_fds: 0,
                }
                .to_bytes();
                ChannelHeader::LEN + len
            });
            match (n, in_place) {
                (Ok(n), Some(_)) => Ok(n),
                // The error reply is in `reply`.
                (Ok(_), None) => write_reply(ep, fd_sock.as_fd(), &mut reply),
                (Err(e), _) => Err(e),
            }
        } else {
            conn.handle(hdr.mid, payload, &mut reply);
            write_reply(ep, fd_sock.as_fd(), &mut reply)
        };
        let Ok(n) = n else { break };
        len = match ep.send_recv(n) {
            Ok(len) => len,
            Err(_) => break,
        };
    }
}

/// Sends `reply`'s FDs and writes its header and payload into the window;
/// returns the datagram's length.
fn write_reply(
    ep: &Endpoint,
    fd_sock: std::os::fd::BorrowedFd<'_>,
    reply: &mut Reply,
) -> Result<u32, flipcall::FlipcallError> {
    let sent = send_fds(fd_sock, reply);
    let header = ChannelHeader {
        mid: reply.mid,
        num_fds: sent,
    }
    .to_bytes();
    ep.write_data(&[&header, &reply.payload])
}

/// Sends the reply's FDs one per datagram, stopping at the first failure,
/// and closes the server's copies; returns how many went out (none if more
/// than 255, as gVisor).
fn send_fds(sock: std::os::fd::BorrowedFd<'_>, reply: &mut Reply) -> u8 {
    crate::serve::set_nonblocking(&reply.fds);
    let mut sent = 0u8;
    if reply.fds.len() <= usize::from(u8::MAX) {
        for fd in &reply.fds {
            if flipcall::send_fd(sock, fd.as_fd()).is_err() {
                break;
            }
            sent += 1;
        }
    }
    reply.fds.clear();
    sent
}
