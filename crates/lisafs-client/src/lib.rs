//! A blocking LISAFS client over the socket communicator.
//!
//! [`Client`] speaks to a LISAFS server (a gVisor gofer, or this project's
//! `lisafs-server`) on a connected `AF_UNIX` stream socket. It mounts on
//! connect, then offers one typed method per protocol message. Methods take
//! `&self` and may be called from many threads: requests are serialized on
//! the socket, one round trip at a time, as gVisor's client does when it has
//! no channels.
//!
//! The client follows gVisor's client-side rules:
//!
//! * a message the server did not advertise in its Mount reply fails locally
//!   with EOPNOTSUPP, without being sent — except Flush, which is then a
//!   successful no-op, RenameAt2 with flags, which is EINVAL, and
//!   ConnectWithCreds, which falls back to Connect;
//! * PRead and PWrite are split into chunks that fit the negotiated maximum
//!   message size, and stop at the first short transfer;
//! * Close sends at most 100 FDIDs per request.
//!
//! After [`Client::start_channels`], requests travel over flipcall
//! channels when one is idle. For callers that must not block (an event
//! loop), the split-phase API sends a prepared [`Call`] (built by the
//! `*_call` methods) with [`Client::start`], polls for its reply for a
//! bounded time on the calling thread, and hands back a [`Pending`] call
//! to finish with [`Pending::wait`] on another thread if the reply is late.
//!
//! The server is not trusted: every reply is decoded with bounds checks, and
//! a reply that is malformed, too large, carries the wrong MID or
//! contradicts its request (more bytes read than asked, more inodes than
//! components) is an [`Error::Protocol`], never a panic.
//!
//! Names and other strings are sent as given; the server validates them. A
//! string longer than a SizedString can hold (65,535 bytes) fails locally
//! with EINVAL, as does any other value that cannot be encoded.
//!
//! ```no_run
//! use lisafs_client::Client;
//!
//! let client = Client::connect_path("/run/lisafs.sock")?;
//! let root = client.root().control_fd;
//! let (_, inodes) = client.walk(root, &[b"etc", b"hostname"])?;
//! let file = inodes.last().expect("walked").control_fd;
//! let (fd, _donated) = client.open_at(file, 0)?;
//! let mut buf = vec![0; 256];
//! let n = client.pread(fd, 0, &mut buf)?;
//! println!("{}", String::from_utf8_lossy(&buf[..n]));
//! let mut ids: Vec<_> = inodes.iter().map(|i| i.control_fd).collect();
//! ids.push(fd);
//! client.close(&ids)?;
//! # Ok::<(), lisafs_client::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod budget;
mod error;

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use lisafs_transport::flipcall::{self, Endpoint, Side, WindowDesc};
use lisafs_transport::{RecvError, ShutdownHandle, SockCommunicator};
use lisafs_wire::errno::{EBADF, EINVAL, EIO, EOPNOTSUPP};
use lisafs_wire::{
    AcceptReq, AcceptResp, BindAtReq, BindAtResp, ChannelHeader, ChannelReq, ChannelResp, CloseReq,
    ConnectReq, ConnectWithCredsReq, CreateCommon, ErrorResp, FAllocateReq, FGetXattrReq,
    FGetXattrResp, FListXattrReq, FListXattrResp, FRemoveXattrReq, FSetXattrReq, FStatFsReq,
    FdArray, FlushReq, FsyncReq, Getdents64Req, Getdents64Resp, LinkAtReq, LinkAtResp, ListenReq,
    Message, MidList, MkdirAtReq, MkdirAtResp, MknodAtReq, MknodAtResp, MountReq, MountResp,
    OpenAtReq, OpenAtResp, OpenCreateAtReq, OpenCreateAtResp, PReadReq, PReadResp, PWriteReq,
    PWriteResp, ReadLinkAtReq, ReadLinkAtResp, RenameAt2Req, RenameAtReq, SetStatResp, StatReq,
    StringArray, SymlinkAtReq, SymlinkAtResp, UnlinkAtReq, WalkReq, WalkResp, WalkStatReq,
    WalkStatResp, PRE_MOUNT_MAX_MESSAGE_SIZE,
};

pub use budget::SyncBudget;
pub use error::{Error, Result};
pub use lisafs_wire::{
    errno, statx_mask, FdId, Gid, Inode, Mid, SetStatReq, StatFs, Statx, StatxTimestamp, Timespec,
    Uid, WalkStatus, UTIME_NOW, UTIME_OMIT,
};

/// Most FDIDs one Close request carries (gVisor's client batches the same).
pub const CLOSE_BATCH_SIZE: usize = 100;

/// The smallest `max_message_size` a server may announce. Below this it
/// could not even send its own fixed-size OpenCreateAt and BindAt replies,
/// and the PRead/PWrite chunk sizes would shrink towards zero.
pub const MIN_MAX_MESSAGE_SIZE: u32 = 160;

/// One directory entry returned by [`Client::getdents64`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    /// Inode number.
    pub ino: u64,
    /// Minor number of the device holding the entry.
    pub dev_minor: u32,
    /// Major number of the device holding the entry.
    pub dev_major: u32,
    /// Opaque directory cookie (the host's `d_off`).
    pub off: u64,
    /// A `DT_*` file type.
    pub ty: u8,
    /// The entry's name (bytes, not necessarily UTF-8).
    pub name: Vec<u8>,
}

/// What a successful Channel request hands over: the packet window and the
/// two donated FDs a flipcall endpoint is built from. This client does not
/// speak flipcall itself yet.
#[derive(Debug)]
pub struct ChannelGrant {
    /// Page-aligned start of the packet window in `mem_fd`.
    pub data_offset: i64,
    /// Length of the packet window.
    pub data_length: u64,
    /// The shared-memory file holding the window.
    pub mem_fd: OwnedFd,
    /// The socket FDs for this channel travel on.
    pub fd_socket: OwnedFd,
}

/// A mounted LISAFS connection. See the [crate docs](crate).
///
/// Every method is one or more round trips on the socket; FDIDs returned
/// (in [`Inode`]s, open FDs, bound-socket FDs) belong to the caller, who
/// releases them with [`close`](Client::close). Dropping the client closes
/// the socket, and the server then releases every FDID still open.
#[derive(Debug)]
pub struct Client {
    conn: Mutex<Conn>,
    shutdown: ShutdownHandle,
    max_message_size: u32,
    supported: MidSet,
    root: Inode,
    mount_fd: Mutex<Option<OwnedFd>>,
    /// Flipcall channels, once [`Client::start_channels`] made them.
    channels: OnceLock<Channels>,
}

/// The client's channels: those idle, ready for a request, and every
/// endpoint ever made (to shut down those a caller holds, e.g. a
/// [`Pending`] call waiting on another thread).
#[derive(Debug)]
struct Channels {
    idle: Mutex<Vec<Channel>>,
    all: Vec<Arc<Endpoint>>,
}

/// A request encoded ahead of time and the decoder of its reply: the unit
/// of the split-phase API ([`Client::start`], [`Client::exec`]). Built by
/// the `*_call` methods; a `Call` owns everything it needs, so it can move
/// to another thread.
pub struct Call<R> {
    mid: Mid,
    payload: Vec<u8>,
    decode: Decoder<R>,
}

type Decoder<R> = Box<dyn FnOnce(&Client, &[u8], Vec<OwnedFd>) -> Result<R> + Send>;

impl<R> std::fmt::Debug for Call<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("mid", &self.mid)
            .field("len", &self.payload.len())
            .finish()
    }
}

impl<R> Call<R> {
    fn new<'q, Q: Message<'q>>(
        req: &Q,
        decode: impl FnOnce(&Client, &[u8], Vec<OwnedFd>) -> Result<R> + Send + 'static,
    ) -> Result<Call<R>> {
        let mut payload = Vec::new();
        req.encode_to_vec(&mut payload)?;
        Ok(Call {
            mid: Q::MID,
            payload,
            decode: Box::new(decode),
        })
    }

    /// The message this call sends.
    pub fn mid(&self) -> Mid {
        self.mid
    }
}

/// What [`Client::start`] did with a [`Call`].
#[derive(Debug)]
pub enum Started<R> {
    /// The reply came within the budget (or the call failed at once).
    Done(Result<R>),
    /// Sent on a channel; the reply has not come yet. Finish it with
    /// [`Pending::wait`], on any thread.
    Pending(Pending<R>),
    /// No channel was idle (or there are none): nothing was sent. Run it
    /// with [`Client::exec`], which may block.
    NotSent(Call<R>),
}

/// A call sent on a channel whose reply is still to come. It holds the
/// channel until [`wait`](Pending::wait) returns. Dropping it without
/// waiting shuts that channel down (its reply can no longer be matched),
/// leaving the client one channel fewer.
#[derive(Debug)]
pub struct Pending<R> {
    ch: Channel,
    call: Call<R>,
}

impl<R> Pending<R> {
    /// Blocks until the reply arrives and decodes it; the channel goes back
    /// to `client`, which must be the client that started the call.
    pub fn wait(self, client: &Client) -> Result<R> {
        let Pending { mut ch, call } = self;
        let got = ch.ep.recv().map_err(|e| Error::protocol(e.to_string()));
        let result = match got {
            Ok(len) => ch.finish(len, call.mid, |p, fds| (call.decode)(client, p, fds)),
            Err(e) => {
                ch.dead = true;
                Err(e)
            }
        };
        client.put_back(ch);
        result
    }
}

impl Client {
    /// Mounts over `sock`, a connected `AF_UNIX` `SOCK_STREAM` socket, and
    /// takes ownership of it.
    ///
    /// Until the Mount reply arrives the payload limit is gVisor's
    /// pre-mount 1 MiB; afterwards it is the server's `max_message_size`.
    /// A Mount reply with an empty MID list or a `max_message_size` under
    /// [`MIN_MAX_MESSAGE_SIZE`] is a protocol error.
    pub fn connect(sock: OwnedFd) -> Result<Client> {
        let comm = SockCommunicator::with_max_payload(sock, PRE_MOUNT_MAX_MESSAGE_SIZE);
        let shutdown = comm.shutdown_handle();
        let mut conn = Conn {
            comm,
            out: Vec::new(),
            broken: false,
        };
        let (root, max_message_size, supported, mount_fd) =
            conn.round_trip(&MountReq, |payload, fds| {
                let resp = MountResp::decode_payload(payload)?;
                let supported = MidSet::new(resp.supported_mids);
                Ok((
                    resp.root,
                    resp.max_message_size,
                    supported,
                    fds.into_iter().next(),
                ))
            })?;
        if supported.is_empty() {
            return Err(Error::protocol("Mount reply lists no supported messages"));
        }
        if max_message_size < MIN_MAX_MESSAGE_SIZE {
            return Err(Error::protocol(format!(
                "Mount reply announces a max_message_size of {max_message_size} bytes"
            )));
        }
        conn.comm.set_max_payload(max_message_size);
        Ok(Client {
            conn: Mutex::new(conn),
            shutdown,
            max_message_size,
            supported,
            root,
            mount_fd: Mutex::new(mount_fd),
            channels: OnceLock::new(),
        })
    }

    /// Connects to the Unix socket at `path` and mounts over it.
    pub fn connect_path(path: impl AsRef<Path>) -> Result<Client> {
        let stream = UnixStream::connect(path).map_err(Error::Io)?;
        Client::connect(OwnedFd::from(stream))
    }

    /// The mount point: its control FD (owned by the caller like any other)
    /// and its stat, from the Mount reply.
    pub fn root(&self) -> Inode {
        self.root
    }

    /// The host FD of the mount point the server donated with its Mount
    /// reply, if any; later calls return `None`.
    pub fn take_mount_fd(&self) -> Option<OwnedFd> {
        lock_ignoring_poison(&self.mount_fd).take()
    }

    /// The largest payload either side may send, from the Mount reply.
    pub fn max_message_size(&self) -> u32 {
        self.max_message_size
    }

    /// Whether the server advertised `mid` in its Mount reply.
    pub fn supports(&self, mid: Mid) -> bool {
        self.supported.contains(mid)
    }

    /// Shuts the socket and every channel down: calls blocked on the
    /// server return with an error, and so does every later call. The
    /// server sees the connection end and releases its FDIDs.
    pub fn shutdown(&self) -> Result<()> {
        if let Some(channels) = self.channels.get() {
            for ep in &channels.all {
                ep.shutdown();
            }
        }
        self.shutdown.shutdown().map_err(Error::Io)
    }

    /// Split-phase call, for a caller that must not block for long (an
    /// event-loop thread): sends `call` on an idle channel and polls for the
    /// reply for at most `budget` (without sleeping in the kernel). Returns
    /// the result if it came, a [`Pending`] call to finish elsewhere if
    /// not, or the call unsent if no channel was idle. A budget of zero
    /// still sends: the reply is then always left [`Pending`] unless
    /// already there.
    pub fn start<R>(&self, call: Call<R>, budget: Duration) -> Started<R> {
        if !self.supports(call.mid) {
            return Started::Done(Err(Error::Errno(EOPNOTSUPP)));
        }
        let Some(mut ch) = self.take_channel() else {
            return Started::NotSent(call);
        };
        if let Err(e) = ch.send(call.mid, &call.payload) {
            self.put_back(ch);
            return Started::Done(Err(e));
        }
        match ch.ep.try_recv(budget) {
            Ok(Some(len)) => {
                let r = ch.finish(len, call.mid, |p, fds| (call.decode)(self, p, fds));
                self.put_back(ch);
                Started::Done(r)
            }
            Ok(None) => Started::Pending(Pending { ch, call }),
            Err(e) => {
                ch.dead = true;
                self.put_back(ch);
                Started::Done(Err(Error::protocol(e.to_string())))
            }
        }
    }

    /// Runs `call` to completion on this thread (an idle channel, else the
    /// socket), blocking as every other method does.
    pub fn exec<R>(&self, call: Call<R>) -> Result<R> {
        if !self.supports(call.mid) {
            return Err(Error::Errno(EOPNOTSUPP));
        }
        let Call {
            mid,
            payload,
            decode,
        } = call;
        let decode = |p: &[u8], fds| decode(self, p, fds);
        if let Some(mut ch) = self.take_channel() {
            let r = ch
                .send(mid, &payload)
                .and_then(|()| ch.recv())
                .and_then(|len| ch.finish(len, mid, decode));
            self.put_back(ch);
            return r;
        }
        // The reply is copied out so that the decoder runs without the
        // socket's lock: it may make calls of its own (a Walk's protocol
        // violation closes the FDIDs it was handed).
        let (reply, fds) = self
            .lock_conn()
            .round_trip_raw(mid, &payload, |p, fds| Ok((p.to_vec(), fds)))?;
        decode(&reply, fds)
    }

    /// An idle channel, taken out of the pool.
    fn take_channel(&self) -> Option<Channel> {
        let channels = self.channels.get()?;
        lock_ignoring_poison(&channels.idle).pop()
    }

    /// Returns a channel to the pool, or drops it (shutting it down) if a
    /// failure made it unusable.
    fn put_back(&self, ch: Channel) {
        if ch.dead {
            return;
        }
        if let Some(channels) = self.channels.get() {
            lock_ignoring_poison(&channels.idle).push(ch);
        }
    }

    /// FStat: the stat of a control or open FD.
    pub fn fstat(&self, fd: FdId) -> Result<Statx> {
        self.exec(self.fstat_call(fd)?)
    }

    /// [`fstat`](Self::fstat) as a [`Call`].
    pub fn fstat_call(&self, fd: FdId) -> Result<Call<Statx>> {
        Call::new(&StatReq { fd }, |_, p, _| Ok(Statx::decode_payload(p)?))
    }

    /// SetStat: applies the attributes selected by `req.mask` to a control
    /// FD. Returns `(failure_mask, failure_errno)`: the `STATX_*` bits that
    /// could not be applied and the errno of (one of) those failures; a
    /// partial failure is not an error of the call.
    pub fn set_stat(&self, req: &SetStatReq) -> Result<(u32, u32)> {
        self.call(req, |p, _| {
            let resp = SetStatResp::decode_payload(p)?;
            Ok((resp.failure_mask, resp.failure_errno))
        })
    }

    /// Walk: walks `names` one component at a time from the directory
    /// `dir`, returning an [`Inode`] (a new control FD) per component
    /// walked. Walking stops early, without error, at a missing component
    /// ([`WalkStatus::ComponentDoesNotExist`]) or at a symlink with
    /// components after it ([`WalkStatus::ComponentSymlink`]).
    ///
    /// A reply whose inode count contradicts its status is a protocol
    /// error; the control FDs it carried are closed first.
    pub fn walk(&self, dir: FdId, names: &[&[u8]]) -> Result<(WalkStatus, Vec<Inode>)> {
        self.exec(self.walk_call(dir, names)?)
    }

    /// [`walk`](Self::walk) as a [`Call`].
    pub fn walk_call(&self, dir: FdId, names: &[&[u8]]) -> Result<Call<(WalkStatus, Vec<Inode>)>> {
        let req = WalkReq {
            dir_fd: dir,
            path: StringArray::from_items(names),
        };
        let asked = names.len();
        Call::new(&req, move |client, p, _| {
            let resp = WalkResp::decode_payload(p)?;
            let (status, inodes) = (resp.status, resp.inodes.iter().collect::<Vec<Inode>>());
            let consistent = match status {
                WalkStatus::Success => inodes.len() == asked,
                _ => inodes.len() < asked,
            };
            if !consistent {
                client.close_after_violation(inodes.iter().map(|i| i.control_fd));
                return Err(Error::protocol(format!(
                    "Walk of {asked} components returned {} inodes with status {status:?}",
                    inodes.len()
                )));
            }
            Ok((status, inodes))
        })
    }

    /// WalkStat: the stats of the components of `names` walked from `dir`,
    /// without creating FDs; stops silently at a missing component or after
    /// a symlink. A first component of `b""` stats `dir` itself first.
    pub fn walk_stat(&self, dir: FdId, names: &[&[u8]]) -> Result<Vec<Statx>> {
        self.exec(self.walk_stat_call(dir, names)?)
    }

    /// [`walk_stat`](Self::walk_stat) as a [`Call`].
    pub fn walk_stat_call(&self, dir: FdId, names: &[&[u8]]) -> Result<Call<Vec<Statx>>> {
        let req = WalkStatReq {
            dir_fd: dir,
            path: StringArray::from_items(names),
        };
        let asked = names.len();
        Call::new(&req, move |_, p, _| {
            let resp = WalkStatResp::decode_payload(p)?;
            if resp.stats.len() > asked {
                return Err(Error::protocol(format!(
                    "WalkStat of {asked} components returned {} stats",
                    resp.stats.len()
                )));
            }
            Ok(resp.stats.iter().collect())
        })
    }

    /// OpenAt: opens the file of control FD `fd`. Only `O_ACCMODE` and
    /// `O_TRUNC` of `flags` are honoured by the server. Returns the new
    /// open FD and the host FD the server may have donated for direct I/O.
    pub fn open_at(&self, fd: FdId, flags: u32) -> Result<(FdId, Option<OwnedFd>)> {
        self.exec(self.open_at_call(fd, flags)?)
    }

    /// [`open_at`](Self::open_at) as a [`Call`].
    pub fn open_at_call(&self, fd: FdId, flags: u32) -> Result<Call<(FdId, Option<OwnedFd>)>> {
        Call::new(&OpenAtReq { fd, flags }, |_, p, fds| {
            let resp = OpenAtResp::decode_payload(p)?;
            Ok((resp.open_fd, fds.into_iter().next()))
        })
    }

    /// OpenCreateAt: creates the regular file `name` in `dir` exclusively
    /// with permission bits `mode` (owner `uid`/`gid`, or
    /// [`Uid::NONE`]/[`Gid::NONE`] to leave the server's default) and opens
    /// it with `flags`. Returns its control FD and stat, the open FD, and
    /// the host FD the server may have donated.
    pub fn open_create_at(
        &self,
        dir: FdId,
        name: &[u8],
        mode: u16,
        uid: Uid,
        gid: Gid,
        flags: u32,
    ) -> Result<(Inode, FdId, Option<OwnedFd>)> {
        let req = OpenCreateAtReq {
            common: CreateCommon {
                dir_fd: dir,
                uid,
                gid,
                mode,
            },
            flags,
            name,
        };
        self.call(&req, |p, fds| {
            let resp = OpenCreateAtResp::decode_payload(p)?;
            Ok((resp.child, resp.new_fd, fds.into_iter().next()))
        })
    }

    /// Close: releases FDIDs of any kind, in requests of at most
    /// [`CLOSE_BATCH_SIZE`]. The server ignores unknown FDIDs. Every batch
    /// is attempted; the first failure is returned.
    pub fn close(&self, fds: &[FdId]) -> Result<()> {
        let mut first_err = None;
        for batch in fds.chunks(CLOSE_BATCH_SIZE) {
            if let Err(e) = self.close_call(batch).and_then(|c| self.exec(c)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// One Close request as a [`Call`]: at most [`CLOSE_BATCH_SIZE`]
    /// FDIDs (EINVAL otherwise).
    pub fn close_call(&self, fds: &[FdId]) -> Result<Call<()>> {
        if fds.len() > CLOSE_BATCH_SIZE {
            return Err(Error::Errno(EINVAL));
        }
        let req = CloseReq {
            fds: FdArray::from_items(fds),
        };
        Call::new(&req, |_, _, _| Ok(()))
    }

    /// FSync: syncs open FDs. No FDs means no request. FDIDs are sent in as
    /// few requests as the message size allows; every one is attempted and
    /// the first failure is returned.
    pub fn fsync(&self, fds: &[FdId]) -> Result<()> {
        // A u16 count then 8 bytes per FDID.
        let per_request = ((self.max_message_size as usize - 2) / 8).min(usize::from(u16::MAX));
        let mut first_err = None;
        for batch in fds.chunks(per_request) {
            let req = FsyncReq {
                fds: FdArray::from_items(batch),
            };
            if let Err(e) = self.call(&req, |_, _| Ok(())) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// PWrite: writes `data` at `offset` of open FD `fd`, in chunks of
    /// `max_message_size − 20` bytes, and returns the bytes written. Stops
    /// at the first short write. An errno after some data was written is
    /// reported as the short count (the next call will see the error); a
    /// protocol or transport failure is always an error.
    pub fn pwrite(&self, fd: FdId, offset: u64, data: &[u8]) -> Result<u64> {
        let chunk = (self.max_message_size as usize).saturating_sub(PWriteReq::HEADER_LEN);
        let mut done: u64 = 0;
        for piece in data.chunks(chunk.max(1)) {
            let req = PWriteReq {
                offset: offset.wrapping_add(done),
                fd,
                data: piece,
            };
            let written = self.call(&req, |p, _| {
                let count = PWriteResp::decode_payload(p)?.count;
                if count > piece.len() as u64 {
                    return Err(Error::protocol(format!(
                        "PWrite of {} bytes reports {count} written",
                        piece.len()
                    )));
                }
                Ok(count)
            });
            match written {
                Ok(n) => {
                    done += n;
                    if n < piece.len() as u64 {
                        break;
                    }
                }
                Err(Error::Errno(_)) if done > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// PRead: reads into `buf` from `offset` of open FD `fd`, in chunks of
    /// `max_message_size − 8` bytes, and returns the bytes read; fewer than
    /// `buf.len()` only at end of file (or after a short read). An errno
    /// after some data was read is reported as the short count; a reply
    /// with more data than asked for is a protocol error.
    pub fn pread(&self, fd: FdId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let chunk = (self.max_message_size as usize).saturating_sub(PReadResp::HEADER_LEN);
        let mut done = 0usize;
        for piece in buf.chunks_mut(chunk.max(1)) {
            let want = piece.len();
            let req = PReadReq {
                offset: offset.wrapping_add(done as u64),
                fd,
                // A chunk is under max_message_size, itself a u32.
                count: u32::try_from(want).unwrap_or(u32::MAX),
            };
            let got = self.call(&req, |p, _| {
                let data = PReadResp::decode_payload(p)?.data;
                let dst = piece.get_mut(..data.len()).ok_or_else(|| {
                    Error::protocol(format!(
                        "PRead of {want} bytes returned {} bytes",
                        data.len()
                    ))
                })?;
                dst.copy_from_slice(data);
                Ok(data.len())
            });
            match got {
                Ok(n) => {
                    done += n;
                    if n < want {
                        break;
                    }
                }
                Err(Error::Errno(_)) if done > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// The most bytes one PRead message returns (what [`pread_call`]
    /// accepts); [`pread`](Self::pread) splits larger reads.
    ///
    /// [`pread_call`]: Self::pread_call
    pub fn pread_chunk(&self) -> u32 {
        self.max_message_size
            .saturating_sub(PReadResp::HEADER_LEN as u32)
            .max(1)
    }

    /// One PRead message of up to `count` bytes as a [`Call`] (EINVAL above
    /// [`pread_chunk`](Self::pread_chunk)); fewer bytes come back at end of
    /// file.
    pub fn pread_call(&self, fd: FdId, offset: u64, count: u32) -> Result<Call<Vec<u8>>> {
        if count > self.pread_chunk() {
            return Err(Error::Errno(EINVAL));
        }
        Call::new(&PReadReq { offset, fd, count }, move |_, p, _| {
            let data = PReadResp::decode_payload(p)?.data;
            if data.len() > count as usize {
                return Err(Error::protocol(format!(
                    "PRead of {count} bytes returned {} bytes",
                    data.len()
                )));
            }
            Ok(data.to_vec())
        })
    }

    /// MkdirAt: creates the directory `name` in `dir` with permission bits
    /// `mode` and returns its control FD and stat.
    pub fn mkdir_at(&self, dir: FdId, name: &[u8], mode: u16, uid: Uid, gid: Gid) -> Result<Inode> {
        let req = MkdirAtReq {
            common: CreateCommon {
                dir_fd: dir,
                uid,
                gid,
                mode,
            },
            name,
        };
        self.call(&req, |p, _| Ok(MkdirAtResp::decode_payload(p)?.child_dir))
    }

    /// MknodAt: creates the node `name` in `dir`; `mode` carries the file
    /// type bits as well as the permissions, `minor`/`major` the device
    /// number.
    #[allow(clippy::too_many_arguments)]
    pub fn mknod_at(
        &self,
        dir: FdId,
        name: &[u8],
        mode: u16,
        uid: Uid,
        gid: Gid,
        minor: u32,
        major: u32,
    ) -> Result<Inode> {
        let req = MknodAtReq {
            common: CreateCommon {
                dir_fd: dir,
                uid,
                gid,
                mode,
            },
            minor,
            major,
            name,
        };
        self.call(&req, |p, _| Ok(MknodAtResp::decode_payload(p)?.child))
    }

    /// SymlinkAt: creates the symlink `name` in `dir` pointing at `target`
    /// (arbitrary bytes, never interpreted).
    pub fn symlink_at(
        &self,
        dir: FdId,
        name: &[u8],
        target: &[u8],
        uid: Uid,
        gid: Gid,
    ) -> Result<Inode> {
        let req = SymlinkAtReq {
            dir_fd: dir,
            uid,
            gid,
            name,
            target,
        };
        self.call(&req, |p, _| Ok(SymlinkAtResp::decode_payload(p)?.symlink))
    }

    /// LinkAt: hard-links the non-directory of control FD `target` as
    /// `dir/name`; returns a control FD on the new link.
    pub fn link_at(&self, dir: FdId, target: FdId, name: &[u8]) -> Result<Inode> {
        let req = LinkAtReq {
            dir_fd: dir,
            target,
            name,
        };
        self.call(&req, |p, _| Ok(LinkAtResp::decode_payload(p)?.link))
    }

    /// FStatFS: statistics of the filesystem holding control FD `fd`.
    pub fn fstatfs(&self, fd: FdId) -> Result<StatFs> {
        self.call(&FStatFsReq { fd }, |p, _| Ok(StatFs::decode_payload(p)?))
    }

    /// FAllocate: `fallocate(2)` on a writable open FD.
    pub fn fallocate(&self, fd: FdId, mode: u64, offset: u64, length: u64) -> Result<()> {
        let req = FAllocateReq {
            fd,
            mode,
            offset,
            length,
        };
        self.call(&req, |_, _| Ok(()))
    }

    /// ReadLinkAt: the target of the symlink of control FD `fd`.
    pub fn readlink_at(&self, fd: FdId) -> Result<Vec<u8>> {
        self.call(&ReadLinkAtReq { fd }, |p, _| {
            Ok(ReadLinkAtResp::decode_payload(p)?.target.to_vec())
        })
    }

    /// Flush: close-time flush of open FD `fd`. A successful no-op, without
    /// a request, when the server does not advertise Flush (gVisor's host
    /// server does not: there it would do nothing anyway).
    pub fn flush(&self, fd: FdId) -> Result<()> {
        if !self.supports(Mid::FLUSH) {
            return Ok(());
        }
        self.call(&FlushReq { fd }, |_, _| Ok(()))
    }

    /// Connect (the message; [`Client::connect`] makes a client): connects
    /// a new host socket of `sock_type` (`SOCK_STREAM` 1,
    /// `SOCK_DGRAM` 2, `SOCK_SEQPACKET` 5) to the socket file of control FD
    /// `fd` and returns it. A success reply without the socket is EBADF.
    pub fn connect_socket(&self, fd: FdId, sock_type: u32) -> Result<OwnedFd> {
        self.call(&ConnectReq { fd, sock_type }, |_, fds| first_fd(fds))
    }

    /// ConnectWithCreds: like [`connect_socket`](Self::connect_socket), performed by the
    /// server as `uid`/`gid`. Sends a plain Connect instead when the server
    /// does not advertise ConnectWithCreds or either id is the `NONE`
    /// sentinel, as gVisor's client does.
    pub fn connect_socket_with_creds(
        &self,
        fd: FdId,
        sock_type: u32,
        uid: Uid,
        gid: Gid,
    ) -> Result<OwnedFd> {
        if !uid.is_some() || !gid.is_some() || !self.supports(Mid::CONNECT_WITH_CREDS) {
            return self.connect_socket(fd, sock_type);
        }
        let req = ConnectWithCredsReq {
            connect: ConnectReq { fd, sock_type },
            uid,
            gid,
        };
        self.call(&req, |_, fds| first_fd(fds))
    }

    /// UnlinkAt: removes `name` from `dir`; `flags` are `unlinkat(2)` flags
    /// (`AT_REMOVEDIR` 0x200 for a directory).
    pub fn unlink_at(&self, dir: FdId, name: &[u8], flags: u32) -> Result<()> {
        let req = UnlinkAtReq {
            dir_fd: dir,
            flags,
            name,
        };
        self.call(&req, |_, _| Ok(()))
    }

    /// RenameAt: renames `old_dir/old_name` to `new_dir/new_name`.
    pub fn rename_at(
        &self,
        old_dir: FdId,
        old_name: &[u8],
        new_dir: FdId,
        new_name: &[u8],
    ) -> Result<()> {
        let req = RenameAtReq {
            old_dir,
            new_dir,
            old_name,
            new_name,
        };
        self.call(&req, |_, _| Ok(()))
    }

    /// RenameAt2: [`rename_at`](Self::rename_at) with `renameat2(2)` flags
    /// (`RENAME_NOREPLACE` 1, `RENAME_EXCHANGE` 2, `RENAME_WHITEOUT` 4).
    /// Flags 0 send a plain RenameAt; non-zero flags on a server that does
    /// not advertise RenameAt2 fail locally with EINVAL, as in gVisor.
    pub fn rename_at2(
        &self,
        old_dir: FdId,
        old_name: &[u8],
        new_dir: FdId,
        new_name: &[u8],
        flags: u32,
    ) -> Result<()> {
        if flags == 0 {
            return self.rename_at(old_dir, old_name, new_dir, new_name);
        }
        if !self.supports(Mid::RENAME_AT2) {
            return Err(Error::Errno(EINVAL));
        }
        let req = RenameAt2Req {
            rename: RenameAtReq {
                old_dir,
                new_dir,
                old_name,
                new_name,
            },
            flags,
        };
        self.call(&req, |_, _| Ok(()))
    }

    /// Getdents64: reads entries from the directory open FD `fd`, at most
    /// `|count|` bytes worth of host records; a negative `count` rewinds the
    /// directory first. An empty result means end of directory. `.` and
    /// `..` are not reported by the host server.
    pub fn getdents64(&self, fd: FdId, count: i32) -> Result<Vec<Dirent>> {
        let req = Getdents64Req { dir_fd: fd, count };
        self.call(&req, |p, _| {
            let resp = Getdents64Resp::decode_payload(p)?;
            Ok(resp
                .dirents
                .iter()
                .map(|d| Dirent {
                    ino: d.ino,
                    dev_minor: d.dev_minor,
                    dev_major: d.dev_major,
                    off: d.off,
                    ty: d.ty,
                    name: d.name.to_vec(),
                })
                .collect())
        })
    }

    /// FGetXattr: the value of extended attribute `name` of control FD
    /// `fd`. `size` is the caller's buffer size (ERANGE from the server when
    /// the value is larger); 0 asks for the whole value. A value longer
    /// than a non-zero `size` is a protocol error.
    pub fn fget_xattr(&self, fd: FdId, name: &[u8], size: u32) -> Result<Vec<u8>> {
        let req = FGetXattrReq {
            fd,
            buf_size: size,
            name,
        };
        self.call(&req, |p, _| {
            let value = FGetXattrResp::decode_payload(p)?.value;
            if size != 0 && value.len() > size as usize {
                return Err(Error::protocol(format!(
                    "FGetXattr with a {size}-byte buffer returned {} bytes",
                    value.len()
                )));
            }
            Ok(value.to_vec())
        })
    }

    /// FSetXattr: sets extended attribute `name` of control FD `fd`;
    /// `flags` are `XATTR_CREATE` 1 or `XATTR_REPLACE` 2.
    pub fn fset_xattr(&self, fd: FdId, name: &[u8], value: &[u8], flags: u32) -> Result<()> {
        let req = FSetXattrReq {
            fd,
            flags,
            name,
            value,
        };
        self.call(&req, |_, _| Ok(()))
    }

    /// FListXattr: the names of the extended attributes of control FD
    /// `fd`. `size` is the caller's buffer size hint (0: all).
    pub fn flist_xattr(&self, fd: FdId, size: u64) -> Result<Vec<Vec<u8>>> {
        self.call(&FListXattrReq { fd, size }, |p, _| {
            let resp = FListXattrResp::decode_payload(p)?;
            Ok(resp.xattrs.iter().map(<[u8]>::to_vec).collect())
        })
    }

    /// FRemoveXattr: removes extended attribute `name` of control FD `fd`.
    pub fn fremove_xattr(&self, fd: FdId, name: &[u8]) -> Result<()> {
        self.call(&FRemoveXattrReq { fd, name }, |_, _| Ok(()))
    }

    /// BindAt: creates a host socket of `sock_type` bound at `dir/name`
    /// (socket file permission bits `mode`). Returns the socket file's
    /// control FD and stat, the bound-socket FD (for
    /// [`listen`](Self::listen) and [`accept`](Self::accept)), and the
    /// donated host socket, which becomes readable when a connection is
    /// pending. A success reply without the socket closes both FDIDs and
    /// fails with EBADF.
    pub fn bind_at(
        &self,
        dir: FdId,
        name: &[u8],
        sock_type: u32,
        mode: u16,
        uid: Uid,
        gid: Gid,
    ) -> Result<(Inode, FdId, OwnedFd)> {
        let req = BindAtReq {
            common: CreateCommon {
                dir_fd: dir,
                uid,
                gid,
                mode,
            },
            sock_type,
            name,
        };
        let (resp, sock) = self.call(&req, |p, fds| {
            Ok((BindAtResp::decode_payload(p)?, fds.into_iter().next()))
        })?;
        match sock {
            Some(sock) => Ok((resp.child, resp.bound_socket_fd, sock)),
            None => {
                let ids = [resp.child.control_fd, resp.bound_socket_fd];
                self.close_after_violation(ids.into_iter().filter(|id| *id != FdId::INVALID));
                Err(Error::Errno(EBADF))
            }
        }
    }

    /// Listen: `listen(2)` on bound-socket FD `fd`.
    pub fn listen(&self, fd: FdId, backlog: i32) -> Result<()> {
        self.call(&ListenReq { fd, backlog }, |_, _| Ok(()))
    }

    /// Accept: accepts one pending connection on bound-socket FD `fd`
    /// without blocking (EAGAIN when none is pending). Returns the
    /// connected socket and the peer address (the host server always
    /// reports it empty). A success reply without the socket is EBADF.
    pub fn accept(&self, fd: FdId) -> Result<(OwnedFd, Vec<u8>)> {
        self.call(&AcceptReq { fd }, |p, fds| {
            let peer = AcceptResp::decode_payload(p)?.peer_addr.to_vec();
            Ok((first_fd(fds)?, peer))
        })
    }

    /// Channel: asks the server for a flipcall channel. This client cannot
    /// use one yet; the call exists so the server's answer (this project's
    /// server refuses with ENOMEM, which gVisor's client takes as "no
    /// channels") can be observed. A success reply without both FDs is a
    /// protocol error.
    pub fn channel(&self) -> Result<ChannelGrant> {
        self.call(&ChannelReq, |p, fds| {
            let resp = ChannelResp::decode_payload(p)?;
            let got = fds.len();
            let mut fds = fds.into_iter();
            match (fds.next(), fds.next()) {
                (Some(mem_fd), Some(fd_socket)) => Ok(ChannelGrant {
                    data_offset: resp.data_offset,
                    data_length: resp.data_length,
                    mem_fd,
                    fd_socket,
                }),
                _ => Err(Error::protocol(format!(
                    "Channel reply carries {got} FDs, 2 expected"
                ))),
            }
        })
    }

    /// One round trip for a message the server must have advertised.
    fn call<'q, Q, R>(
        &self,
        req: &Q,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<R>,
    ) -> Result<R>
    where
        Q: Message<'q>,
    {
        if !self.supports(Q::MID) {
            return Err(Error::Errno(EOPNOTSUPP));
        }
        // An idle channel if there is one, as gVisor's client does; the
        // socket otherwise.
        if let Some(mut ch) = self.take_channel() {
            let r = ch.round_trip(req, decode);
            self.put_back(ch);
            return r;
        }
        self.lock_conn().round_trip(req, decode)
    }

    /// Creates flipcall channels, as gVisor's `StartChannels`: up to the
    /// CPU count clamped to [2, 4], stopping at the server's limit (ENOMEM).
    /// Afterwards requests prefer an idle channel, which avoids the socket
    /// and, with `spin_limit` > 0, the futex sleep of a busy round trip.
    /// Returns how many channels are in use; fails only if none could be
    /// made. Can be called once.
    pub fn start_channels(&self, spin_limit: u32) -> Result<usize> {
        let want = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 4);
        let mut made = Vec::new();
        let mut first_err = None;
        for _ in 0..want {
            match self
                .channel()
                .and_then(|grant| Channel::new(grant, spin_limit))
            {
                Ok(ch) => made.push(ch),
                Err(e) => {
                    first_err.get_or_insert(e);
                    break;
                }
            }
        }
        if made.is_empty() {
            return Err(first_err.unwrap_or(Error::Errno(EIO)));
        }
        let n = made.len();
        let all = made.iter().map(|ch| Arc::clone(&ch.ep)).collect();
        self.channels
            .set(Channels {
                idle: Mutex::new(made),
                all,
            })
            .map_err(|_| Error::Errno(EINVAL))?;
        Ok(n)
    }

    fn lock_conn(&self) -> MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|poisoned| {
            // A panic during a round trip may have left half a frame on the
            // socket: nothing said on it afterwards could be trusted.
            let mut conn = poisoned.into_inner();
            conn.fail();
            conn
        })
    }

    /// Releases FDIDs a misbehaving server handed over, so that a rejected
    /// reply leaks nothing on a server that is merely buggy. Best effort:
    /// the caller is already failing with a more useful error.
    fn close_after_violation(&self, ids: impl Iterator<Item = FdId>) {
        let ids: Vec<FdId> = ids.collect();
        let _ = self.close(&ids);
    }
}

/// The socket and what is needed to use it; only ever touched under the
/// client's lock, so one request and its reply are never interleaved with
/// another's.
#[derive(Debug)]
struct Conn {
    comm: SockCommunicator,
    /// Reused for every request's payload.
    out: Vec<u8>,
    /// Set once the stream position is unknown; later calls fail at once.
    broken: bool,
}

impl Conn {
    fn round_trip<'q, Q, R>(
        &mut self,
        req: &Q,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<R>,
    ) -> Result<R>
    where
        Q: Message<'q>,
    {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let r = match req.encode_to_vec(&mut out) {
            Ok(()) => self.round_trip_raw(Q::MID, &out, decode),
            Err(e) => Err(e.into()),
        };
        self.out = out;
        r
    }

    /// A round trip with an encoded request payload.
    fn round_trip_raw<R>(
        &mut self,
        mid: Mid,
        payload: &[u8],
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<R>,
    ) -> Result<R> {
        if self.broken {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "the LISAFS connection has failed",
            )));
        }
        if payload.len() > self.comm.max_payload() as usize {
            // gVisor's client refuses an oversized request the same way.
            return Err(Error::Errno(EIO));
        }
        if let Err(e) = self.comm.send(mid, payload, &[]) {
            self.fail();
            return Err(Error::Io(e));
        }
        let frame = match self.comm.recv(reply_fds(mid)) {
            Ok(frame) => frame,
            // The transport skipped the payload: still in step.
            Err(RecvError::TooLarge { mid: got, len }) => {
                return Err(Error::protocol(format!(
                    "reply for MID {} ({}) has a {len}-byte payload, over the limit",
                    mid.0, got.0
                )))
            }
            Err(e) => {
                self.fail();
                return Err(Error::Io(e.into()));
            }
        };
        if frame.mid == Mid::ERROR {
            // Any FDs that came along are closed with the frame.
            let errno = ErrorResp::decode_payload(frame.payload)?.errno;
            if errno == 0 {
                return Err(Error::protocol("Error reply with errno 0"));
            }
            return Err(Error::Errno(errno));
        }
        if frame.mid != mid {
            return Err(Error::protocol(format!(
                "sent MID {} ({}), got a reply with MID {}",
                mid.0,
                mid.name().unwrap_or("?"),
                frame.mid.0
            )));
        }
        decode(frame.payload, frame.fds)
    }

    fn fail(&mut self) {
        self.broken = true;
        // Wakes nobody (we hold the lock) but tells the server at once.
        let _ = self.comm.shutdown();
    }
}

/// A flipcall channel: a mapped packet window and the socket its FDs
/// travel on. Out of the pool it belongs to one caller, one request at a
/// time.
#[derive(Debug)]
struct Channel {
    ep: Arc<Endpoint>,
    fd_socket: OwnedFd,
    out: Vec<u8>,
    reply: Vec<u8>,
    /// Set after any flipcall failure: the channel is never used again.
    dead: bool,
}

impl Channel {
    fn new(grant: ChannelGrant, spin_limit: u32) -> Result<Channel> {
        let offset = u64::try_from(grant.data_offset)
            .map_err(|_| Error::protocol("negative channel window offset"))?;
        let length = usize::try_from(grant.data_length)
            .map_err(|_| Error::protocol("channel window too large"))?;
        let mut ep = Endpoint::new(
            std::os::fd::AsFd::as_fd(&grant.mem_fd),
            WindowDesc { offset, length },
            Side::Client,
        )
        .map_err(|e| Error::protocol(format!("channel window: {e}")))?;
        ep.set_spin_limit(spin_limit);
        // The mapping keeps the memory; the memfd itself is not needed.
        drop(grant.mem_fd);
        ep.connect()
            .map_err(|e| Error::protocol(format!("channel handshake: {e}")))?;
        Ok(Channel {
            ep: Arc::new(ep),
            fd_socket: grant.fd_socket,
            out: Vec::new(),
            reply: Vec::new(),
            dead: false,
        })
    }

    fn round_trip<'q, Q, R>(
        &mut self,
        req: &Q,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<R>,
    ) -> Result<R>
    where
        Q: Message<'q>,
    {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let r = match req.encode_to_vec(&mut out) {
            Ok(()) => self
                .send(Q::MID, &out)
                .and_then(|()| self.recv())
                .and_then(|len| self.finish(len, Q::MID, decode)),
            Err(e) => Err(e.into()),
        };
        self.out = out;
        r
    }

    /// Writes a request into the window and hands it to the server.
    fn send(&mut self, mid: Mid, payload: &[u8]) -> Result<()> {
        let header = ChannelHeader { mid, num_fds: 0 }.to_bytes();
        // Too large for the window: refused like an oversized socket
        // request, and the window was not handed over.
        let n = self
            .ep
            .write_data(&[&header, payload])
            .map_err(|_| Error::Errno(EIO))?;
        self.ep.send(n).map_err(|e| {
            self.dead = true;
            Error::protocol(e.to_string())
        })
    }

    /// Blocks until the server hands the window back; its datagram length.
    fn recv(&mut self) -> Result<u32> {
        self.ep.recv().map_err(|e| {
            self.dead = true;
            Error::protocol(e.to_string())
        })
    }

    /// Reads and decodes the reply of `len` bytes to a request of `mid`.
    fn finish<R>(
        &mut self,
        len: u32,
        mid: Mid,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<R>,
    ) -> Result<R> {
        // Copy the reply out once: the server could rewrite the window.
        self.ep.read_data(len, &mut self.reply);
        let Some((hdr, payload)) = self.reply.split_first_chunk::<{ ChannelHeader::LEN }>() else {
            self.dead = true;
            return Err(Error::protocol("channel reply shorter than its header"));
        };
        let hdr = ChannelHeader::from_bytes(hdr);
        let mut fds = Vec::new();
        // Drain every FD the server says it sent (keeping the FD socket in
        // step); only those the message may carry are kept.
        for _ in 0..hdr.num_fds {
            match flipcall::recv_fd(std::os::fd::AsFd::as_fd(&self.fd_socket)) {
                Ok(fd) => fds.push(fd),
                Err(_) => break,
            }
        }
        if hdr.mid == Mid::ERROR {
            let errno = ErrorResp::decode_payload(payload)?.errno;
            if errno == 0 {
                return Err(Error::protocol("Error reply with errno 0"));
            }
            return Err(Error::Errno(errno));
        }
        if hdr.mid != mid {
            return Err(Error::protocol(format!(
                "sent MID {}, got a channel reply with MID {}",
                mid.0, hdr.mid.0
            )));
        }
        fds.truncate(reply_fds(mid));
        decode(payload, fds)
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // Lets the server's channel thread go now rather than at disconnect.
        self.ep.shutdown();
    }
}

/// How many FDs a successful reply to `mid` may carry.
fn reply_fds(mid: Mid) -> usize {
    match mid {
        Mid::CHANNEL => 2,
        Mid::MOUNT
        | Mid::OPEN_AT
        | Mid::OPEN_CREATE_AT
        | Mid::CONNECT
        | Mid::CONNECT_WITH_CREDS
        | Mid::BIND_AT
        | Mid::ACCEPT => 1,
        _ => 0,
    }
}

fn first_fd(fds: Vec<OwnedFd>) -> Result<OwnedFd> {
    fds.into_iter().next().ok_or(Error::Errno(EBADF))
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The MIDs a server advertised: a bitmap sized by the largest one.
#[derive(Debug)]
struct MidSet {
    bits: Box<[u64]>,
}

impl MidSet {
    fn new(mids: MidList<'_>) -> Self {
        let words = mids
            .iter()
            .map(|m| usize::from(m.0) / 64 + 1)
            .max()
            .unwrap_or(0);
        let mut bits = vec![0u64; words].into_boxed_slice();
        for m in mids.iter() {
            if let Some(w) = bits.get_mut(usize::from(m.0) / 64) {
                *w |= 1 << (m.0 % 64);
            }
        }
        MidSet { bits }
    }

    fn contains(&self, mid: Mid) -> bool {
        self.bits
            .get(usize::from(mid.0) / 64)
            .is_some_and(|w| w & (1 << (mid.0 % 64)) != 0)
    }

    fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }
}
