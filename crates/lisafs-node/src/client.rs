//! `NativeClient`: the Rust LISAFS client behind promises. Each client has
//! one worker thread that performs its blocking round trips; results are
//! converted to JS on Node's thread. Errors reject with
//! `LISAFS_ERRNO:<n>:<detail>`, which the TypeScript layer turns into
//! Node-style errors (it knows the path).
//!
//! When the server grants flipcall channels, the frequent single-message
//! calls (fstat, walk, walkStat, openAt, close, a one-message pread) take a
//! fast path: Node's thread sends the request on an idle channel and polls
//! for the reply for a bounded budget (waking a thread on another core
//! costs tens of µs on small VMs; a reply from a server that is already
//! running takes about a µs). If the reply comes, the method returns the
//! value (or throws) synchronously; if not, the worker thread waits for it
//! and a promise is returned. The poll never sleeps, so a server whose
//! backend runs JS on this very thread only costs the budget: it answers
//! once the event loop runs again. After a run of such misses the budget is
//! skipped, save for an occasional probe.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use lisafs_client::{Call, Client, Dirent, Error as ClientError, Started, SyncBudget};
use lisafs_wire::{self as w, Gid, SetStatReq, Uid};
use napi::bindgen_prelude::{BigInt, Buffer, Either, Object, ToNapiValue};
use napi::{Env, Status};
use napi_derive::napi;

use crate::codec::{
    bufs, fd, fd_of, fds, slices, u16_of, u64_of, Dirent64, Inode, StatFs, Timespec, WalkStatus,
};

type Job = Box<dyn FnOnce() + Send>;
type Resolver<D> = Box<dyn FnOnce(Env) -> napi::Result<D> + Send>;

/// Arguments of {@link NativeClient.setStat}.
#[napi(object)]
pub struct SetStatArgs {
    pub mask: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: BigInt,
    pub atime: Timespec,
    pub mtime: Timespec,
}

/// SetStat's outcome: which requested changes failed, and one errno.
#[napi(object)]
pub struct SetStatResult {
    pub failure_mask: u32,
    pub failure_errno: u32,
}

/// A Walk's outcome: `inodes` holds each inode's wire encoding (152 bytes:
/// the FDID, then the stat), which the TypeScript layer decodes.
#[napi(object)]
pub struct WalkResult {
    pub status: WalkStatus,
    pub inodes: Buffer,
}

/// `items`' wire encodings back to back. Stats cross into JavaScript as
/// bytes because building them through napi, one named property and one
/// BigInt at a time, cost about half of a fast-path `stat` (several µs),
/// while reading them with a DataView in JavaScript is cheap.
fn wire_bytes<'a, T: w::Wire<'a>>(items: &[T]) -> Buffer {
    let mut out = Vec::with_capacity(items.iter().map(w::Wire::encoded_len).sum());
    for item in items {
        // Fixed-size structs without strings or arrays cannot fail to
        // encode into a growable Vec.
        let _ = item.append_to(&mut out);
    }
    out.into()
}

/// An opened file: its FDID and the host FD the server donated, if any
/// (the caller owns it and must close it).
#[napi(object)]
pub struct Opened {
    pub open_fd: BigInt,
    pub host_fd: Option<i32>,
}

/// A created and opened file.
#[napi(object)]
pub struct Created {
    pub child: Inode,
    pub open_fd: BigInt,
    pub host_fd: Option<i32>,
}

/// A bound socket: the socket file's control FD, the bound-socket FDID and
/// the host socket (owned by the caller).
#[napi(object)]
pub struct Bound {
    pub child: Inode,
    pub bound_socket_fd: BigInt,
    pub host_fd: i32,
}

/// An accepted connection (a host socket owned by the caller).
#[napi(object)]
pub struct Accepted {
    pub host_fd: i32,
    pub peer_addr: Buffer,
}

/// Options of {@link NativeClient.connect}.
#[napi(object)]
#[derive(Default)]
pub struct NativeConnectOptions {
    /// Ask the server for flipcall channels (default true); without them,
    /// or if the server grants none, every call goes through the socket and
    /// the worker thread.
    pub channels: Option<bool>,
    /// How long, in microseconds, Node's thread polls a channel for a reply
    /// before handing the wait to the worker thread (default 50, at most
    /// 1000; 0: every call is made by the worker thread).
    pub sync_budget_us: Option<u32>,
}

/// The default poll budget: a reply from a server that is spinning comes in
/// about a µs, one from a server woken from its futex in ~15-30 µs on a
/// busy 2-vCPU VM; slower ones are better waited for off Node's thread.
const DEFAULT_SYNC_BUDGET_US: u32 = 50;
/// A low-level LISAFS client: one method per message, FDIDs as bigint.
/// Use the `Client` class of the TypeScript API instead.
#[napi]
pub struct NativeClient {
    client: Arc<Client>,
    jobs: mpsc::Sender<Job>,
    /// Whether the server granted channels.
    channels: bool,
    /// Poll budget on Node's thread; zero: every call goes to the worker.
    budget: SyncBudget,
}

fn raw(fd: OwnedFd) -> i32 {
    fd.into_raw_fd()
}

fn reject(op: &str, e: &ClientError) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("LISAFS_ERRNO:{}:{op}: {e}", e.errno()),
    )
}

fn spawn_worker() -> napi::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("lisafs-client".into())
        .spawn(move || {
            // Ends when the NativeClient (the only sender) is dropped.
            for job in rx {
                job();
            }
        })
        .map_err(|e| napi::Error::from_reason(format!("cannot start client thread: {e}")))?;
    Ok(tx)
}

/// Runs `call` on a worker, then `to_js` on Node's thread.
fn run_on<'e, T, D>(
    env: &'e Env,
    jobs: &mpsc::Sender<Job>,
    op: &'static str,
    call: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
    to_js: impl FnOnce(T) -> D + Send + 'static,
) -> napi::Result<Object<'e>>
where
    T: Send + 'static,
    D: ToNapiValue + 'static,
{
    let (deferred, promise) = env.create_deferred::<D, Resolver<D>>()?;
    let job: Job = Box::new(move || match call() {
        Ok(v) => deferred.resolve(Box::new(move |_| Ok(to_js(v)))),
        Err(e) => deferred.reject(reject(op, &e)),
    });
    jobs.send(job)
        .map_err(|_| napi::Error::from_reason("client thread is gone"))?;
    Ok(promise)
}

#[napi]
impl NativeClient {
    /// Connects to a server listening on a Unix socket path, or mounts over
    /// an already connected socket FD (ownership passes to the client), and
    /// sends Mount.
    #[napi(ts_return_type = "Promise<NativeClient>")]
    pub fn connect<'e>(
        env: &'e Env,
        target: napi::Either<String, i32>,
        options: Option<NativeConnectOptions>,
    ) -> napi::Result<Object<'e>> {
        let options = options.unwrap_or_default();
        let want_channels = options.channels.unwrap_or(true);
        let budget_us = options
            .sync_budget_us
            .unwrap_or(DEFAULT_SYNC_BUDGET_US)
            .min(1000);
        let jobs = spawn_worker()?;
        let worker = jobs.clone();
        let call = move || {
            let client = match target {
                napi::Either::A(path) => Client::connect_path(path),
                napi::Either::B(fd) => {
                    if fd < 0 {
                        return Err(ClientError::Errno(w::errno::EBADF));
                    }
                    // SAFETY: the caller hands this descriptor over (documented).
                    Client::connect(unsafe { OwnedFd::from_raw_fd(fd) })
                }
            }?;
            // Channels are an optimisation: a server that does not serve
            // Channel (or grants none) is used over the socket alone.
            let channels = want_channels
                && client.supports(w::Mid::CHANNEL)
                && client
                    // The worker sleeps at once when it waits: Node's thread
                    // already spun for the reply, and on a busy machine more
                    // spinning only steals the core the server needs (with
                    // 2,000 spins the handed-off calls took 2-3x longer).
                    .start_channels(0)
                    .is_ok();
            Ok((client, channels))
        };
        run_on(env, &worker, "connect", call, move |(client, channels)| {
            NativeClient {
                client: Arc::new(client),
                jobs,
                channels,
                budget: SyncBudget::new(Duration::from_micros(budget_us.into())),
            }
        })
    }

    /// Whether calls may complete synchronously (channels are in use).
    #[napi]
    pub fn uses_channels(&self) -> bool {
        self.channels
    }

    /// The mount point's control FD and stat.
    #[napi]
    pub fn root(&self) -> Inode {
        self.client.root().into()
    }

    /// The negotiated maximum payload size.
    #[napi]
    pub fn max_message_size(&self) -> u32 {
        self.client.max_message_size()
    }

    /// Whether the server serves message `mid`.
    #[napi]
    pub fn supports(&self, mid: u32) -> bool {
        u16::try_from(mid).is_ok_and(|m| self.client.supports(w::Mid(m)))
    }

    /// Shuts the socket down: calls in flight fail, the server releases
    /// every FDID of this connection.
    #[napi]
    pub fn shutdown(&self) {
        let _ = self.client.shutdown();
    }

    fn run<'e, T, D>(
        &self,
        env: &'e Env,
        op: &'static str,
        call: impl FnOnce(&Client) -> Result<T, ClientError> + Send + 'static,
        to_js: impl FnOnce(T) -> D + Send + 'static,
    ) -> napi::Result<Object<'e>>
    where
        T: Send + 'static,
        D: ToNapiValue + 'static,
    {
        let client = Arc::clone(&self.client);
        run_on(env, &self.jobs, op, move || call(&client), to_js)
    }

    /// The fast path (see the module docs): completes `call` on Node's
    /// thread if its reply comes within the budget (a value, or a thrown
    /// error), else returns a promise the worker thread settles.
    fn fast<'e, T, D>(
        &self,
        env: &'e Env,
        op: &'static str,
        call: Result<Call<T>, ClientError>,
        to_js: impl FnOnce(T) -> D + Send + 'static,
    ) -> napi::Result<Either<D, Object<'e>>>
    where
        T: Send + 'static,
        D: ToNapiValue + 'static,
    {
        let call = call.map_err(|e| reject(op, &e))?;
        let client = Arc::clone(&self.client);
        if !self.channels || self.budget.full().is_zero() {
            return run_on(env, &self.jobs, op, move || client.exec(call), to_js).map(Either::B);
        }
        match self.client.start(call, self.budget.next()) {
            Started::Done(r) => {
                self.budget.hit();
                r.map(|v| Either::A(to_js(v))).map_err(|e| reject(op, &e))
            }
            Started::Pending(p) => {
                self.budget.miss();
                run_on(env, &self.jobs, op, move || p.wait(&client), to_js).map(Either::B)
            }
            // Every channel is busy with a call the worker is finishing:
            // queue behind them, in order.
            Started::NotSent(call) => {
                run_on(env, &self.jobs, op, move || client.exec(call), to_js).map(Either::B)
            }
        }
    }

    /// FStat: the stat's 144 wire bytes (`decodeStatx` in the TypeScript
    /// layer reads them; see [`wire_bytes`]).
    #[napi(ts_return_type = "Buffer | Promise<Buffer>")]
    pub fn fstat<'e>(&self, env: &'e Env, fd: BigInt) -> napi::Result<Either<Buffer, Object<'e>>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        self.fast(env, "fstat", self.client.fstat_call(fd), |s: w::Statx| {
            wire_bytes(&[s])
        })
    }

    /// SetStat.
    #[napi(ts_return_type = "Promise<SetStatResult>")]
    pub fn set_stat<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        args: SetStatArgs,
    ) -> napi::Result<Object<'e>> {
        let req = (|| -> crate::error::Result<SetStatReq> {
            Ok(SetStatReq {
                fd: fd_of("fd", &fd)?,
                mask: args.mask,
                mode: args.mode,
                uid: Uid(args.uid),
                gid: Gid(args.gid),
                size: u64_of("size", &args.size)?,
                atime: args.atime.to_wire()?,
                mtime: args.mtime.to_wire()?,
            })
        })()
        .map_err(|f| f.throw(env))?;
        self.run(
            env,
            "setStat",
            move |c| c.set_stat(&req),
            |(failure_mask, failure_errno)| SetStatResult {
                failure_mask,
                failure_errno,
            },
        )
    }

    /// Walk: the status and the inodes' wire bytes (152 each: FDID, stat).
    #[napi(ts_return_type = "WalkResult | Promise<WalkResult>")]
    pub fn walk<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        names: Vec<Buffer>,
    ) -> napi::Result<Either<WalkResult, Object<'e>>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let names = slices(&names);
        self.fast(
            env,
            "walk",
            self.client.walk_call(dir, &names),
            |(status, inodes): (w::WalkStatus, Vec<w::Inode>)| WalkResult {
                status: status.into(),
                inodes: wire_bytes(&inodes),
            },
        )
    }

    /// WalkStat: the stats' wire bytes, 144 each.
    #[napi(ts_return_type = "Buffer | Promise<Buffer>")]
    pub fn walk_stat<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        names: Vec<Buffer>,
    ) -> napi::Result<Either<Buffer, Object<'e>>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let names = slices(&names);
        self.fast(
            env,
            "walkStat",
            self.client.walk_stat_call(dir, &names),
            |stats: Vec<w::Statx>| wire_bytes(&stats),
        )
    }

    /// OpenAt.
    #[napi(ts_return_type = "Opened | Promise<Opened>")]
    pub fn open_at<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        flags: u32,
    ) -> napi::Result<Either<Opened, Object<'e>>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        self.fast(
            env,
            "openAt",
            self.client.open_at_call(fd, flags),
            |(id, host): (w::FdId, Option<OwnedFd>)| Opened {
                open_fd: crate::codec::fd(id),
                host_fd: host.map(raw),
            },
        )
    }

    /// OpenCreateAt.
    #[napi(ts_return_type = "Promise<Created>")]
    #[allow(clippy::too_many_arguments)]
    pub fn open_create_at<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        name: Buffer,
        mode: u32,
        uid: u32,
        gid: u32,
        flags: u32,
    ) -> napi::Result<Object<'e>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let mode = u16_of("mode", mode).map_err(|f| f.throw(env))?;
        let name = name.to_vec();
        self.run(
            env,
            "openCreateAt",
            move |c| c.open_create_at(dir, &name, mode, Uid(uid), Gid(gid), flags),
            |(child, id, host)| Created {
                child: child.into(),
                open_fd: crate::codec::fd(id),
                host_fd: host.map(raw),
            },
        )
    }

    /// Close.
    #[napi(ts_return_type = "void | Promise<void>")]
    pub fn close<'e>(
        &self,
        env: &'e Env,
        ids: Vec<BigInt>,
    ) -> napi::Result<Either<(), Object<'e>>> {
        let ids = fds(&ids).map_err(|f| f.throw(env))?;
        if ids.len() <= lisafs_client::CLOSE_BATCH_SIZE {
            return self.fast(env, "close", self.client.close_call(&ids), |()| ());
        }
        self.run(env, "close", move |c| c.close(&ids), |()| ())
            .map(Either::B)
    }

    /// FSync.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn fsync<'e>(&self, env: &'e Env, ids: Vec<BigInt>) -> napi::Result<Object<'e>> {
        let ids = fds(&ids).map_err(|f| f.throw(env))?;
        self.run(env, "fsync", move |c| c.fsync(&ids), |()| ())
    }

    /// PWrite (chunked to the message size).
    #[napi(ts_return_type = "Promise<bigint>")]
    pub fn pwrite<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        offset: BigInt,
        data: Buffer,
    ) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        let offset = u64_of("offset", &offset).map_err(|f| f.throw(env))?;
        let data = data.to_vec();
        self.run(
            env,
            "pwrite",
            move |c| c.pwrite(fd, offset, &data),
            BigInt::from,
        )
    }

    /// PRead of up to `count` bytes (chunked); fewer at end of file.
    #[napi(ts_return_type = "Buffer | Promise<Buffer>")]
    pub fn pread<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        offset: BigInt,
        count: u32,
    ) -> napi::Result<Either<Buffer, Object<'e>>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        let offset = u64_of("offset", &offset).map_err(|f| f.throw(env))?;
        if count <= self.client.pread_chunk() {
            return self.fast(
                env,
                "pread",
                self.client.pread_call(fd, offset, count),
                Buffer::from,
            );
        }
        self.run(
            env,
            "pread",
            move |c| {
                let mut buf = vec![0u8; count as usize];
                let n = c.pread(fd, offset, &mut buf)?;
                buf.truncate(n);
                Ok(buf)
            },
            Buffer::from,
        )
        .map(Either::B)
    }

    /// MkdirAt.
    #[napi(ts_return_type = "Promise<Inode>")]
    pub fn mkdir_at<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        name: Buffer,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> napi::Result<Object<'e>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let mode = u16_of("mode", mode).map_err(|f| f.throw(env))?;
        let name = name.to_vec();
        self.run(
            env,
            "mkdirAt",
            move |c| c.mkdir_at(dir, &name, mode, Uid(uid), Gid(gid)),
            Inode::from,
        )
    }

    /// MknodAt.
    #[napi(ts_return_type = "Promise<Inode>")]
    #[allow(clippy::too_many_arguments)]
    pub fn mknod_at<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        name: Buffer,
        mode: u32,
        uid: u32,
        gid: u32,
        minor: u32,
        major: u32,
    ) -> napi::Result<Object<'e>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let mode = u16_of("mode", mode).map_err(|f| f.throw(env))?;
        let name = name.to_vec();
        self.run(
            env,
            "mknodAt",
            move |c| c.mknod_at(dir, &name, mode, Uid(uid), Gid(gid), minor, major),
            Inode::from,
        )
    }

    /// SymlinkAt.
    #[napi(ts_return_type = "Promise<Inode>")]
    pub fn symlink_at<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        name: Buffer,
        target: Buffer,
        uid: u32,
        gid: u32,
    ) -> napi::Result<Object<'e>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let (name, target) = (name.to_vec(), target.to_vec());
        self.run(
            env,
            "symlinkAt",
            move |c| c.symlink_at(dir, &name, &target, Uid(uid), Gid(gid)),
            Inode::from,
        )
    }

    /// LinkAt: hard-link `target` as `dir/name`.
    #[napi(ts_return_type = "Promise<Inode>")]
    pub fn link_at<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        target: BigInt,
        name: Buffer,
    ) -> napi::Result<Object<'e>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let target = fd_of("target", &target).map_err(|f| f.throw(env))?;
        let name = name.to_vec();
        self.run(
            env,
            "linkAt",
            move |c| c.link_at(dir, target, &name),
            Inode::from,
        )
    }

    /// FStatFS.
    #[napi(ts_return_type = "Promise<StatFs>")]
    pub fn fstatfs<'e>(&self, env: &'e Env, fd: BigInt) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        self.run(env, "fstatfs", move |c| c.fstatfs(fd), StatFs::from)
    }

    /// FAllocate.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn fallocate<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        mode: BigInt,
        offset: BigInt,
        length: BigInt,
    ) -> napi::Result<Object<'e>> {
        let args = (|| -> crate::error::Result<_> {
            Ok((
                fd_of("fd", &fd)?,
                u64_of("mode", &mode)?,
                u64_of("offset", &offset)?,
                u64_of("length", &length)?,
            ))
        })()
        .map_err(|f| f.throw(env))?;
        self.run(
            env,
            "fallocate",
            move |c| c.fallocate(args.0, args.1, args.2, args.3),
            |()| (),
        )
    }

    /// ReadLinkAt.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn readlink_at<'e>(&self, env: &'e Env, fd: BigInt) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        self.run(env, "readlinkAt", move |c| c.readlink_at(fd), Buffer::from)
    }

    /// Flush (a no-op when the server does not serve it).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush<'e>(&self, env: &'e Env, fd: BigInt) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        self.run(env, "flush", move |c| c.flush(fd), |()| ())
    }

    /// Connect: a host socket connected to the socket file (caller owns it).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn connect_socket<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        sock_type: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        let creds = (Uid(uid.unwrap_or(u32::MAX)), Gid(gid.unwrap_or(u32::MAX)));
        self.run(
            env,
            "connect",
            move |c| c.connect_socket_with_creds(fd, sock_type, creds.0, creds.1),
            raw,
        )
    }

    /// UnlinkAt.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn unlink_at<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        name: Buffer,
        flags: u32,
    ) -> napi::Result<Object<'e>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let name = name.to_vec();
        self.run(
            env,
            "unlinkAt",
            move |c| c.unlink_at(dir, &name, flags),
            |()| (),
        )
    }

    /// RenameAt, or RenameAt2 when `flags` is non-zero.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn rename_at<'e>(
        &self,
        env: &'e Env,
        old_dir: BigInt,
        old_name: Buffer,
        new_dir: BigInt,
        new_name: Buffer,
        flags: Option<u32>,
    ) -> napi::Result<Object<'e>> {
        let old_dir = fd_of("oldDir", &old_dir).map_err(|f| f.throw(env))?;
        let new_dir = fd_of("newDir", &new_dir).map_err(|f| f.throw(env))?;
        let (old_name, new_name) = (old_name.to_vec(), new_name.to_vec());
        let flags = flags.unwrap_or(0);
        self.run(
            env,
            "renameAt",
            move |c| c.rename_at2(old_dir, &old_name, new_dir, &new_name, flags),
            |()| (),
        )
    }

    /// Getdents64: `|count|` bytes of host records; negative rewinds first.
    #[napi(ts_return_type = "Promise<Array<Dirent64>>")]
    pub fn getdents64<'e>(&self, env: &'e Env, fd: BigInt, count: i32) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        self.run(
            env,
            "getdents64",
            move |c| c.getdents64(fd, count),
            |list: Vec<Dirent>| {
                list.into_iter()
                    .map(|d| Dirent64 {
                        ino: d.ino.into(),
                        dev_minor: d.dev_minor,
                        dev_major: d.dev_major,
                        off: d.off.into(),
                        ty: d.ty.into(),
                        name: d.name.into(),
                    })
                    .collect::<Vec<_>>()
            },
        )
    }

    /// FGetXattr.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn fget_xattr<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        name: Buffer,
        size: u32,
    ) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        let name = name.to_vec();
        self.run(
            env,
            "fgetxattr",
            move |c| c.fget_xattr(fd, &name, size),
            Buffer::from,
        )
    }

    /// FSetXattr.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn fset_xattr<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        name: Buffer,
        value: Buffer,
        flags: u32,
    ) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        let (name, value) = (name.to_vec(), value.to_vec());
        self.run(
            env,
            "fsetxattr",
            move |c| c.fset_xattr(fd, &name, &value, flags),
            |()| (),
        )
    }

    /// FListXattr.
    #[napi(ts_return_type = "Promise<Array<Buffer>>")]
    pub fn flist_xattr<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        size: BigInt,
    ) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        let size = u64_of("size", &size).map_err(|f| f.throw(env))?;
        self.run(
            env,
            "flistxattr",
            move |c| c.flist_xattr(fd, size),
            |names: Vec<Vec<u8>>| bufs(names.iter().map(Vec::as_slice)),
        )
    }

    /// FRemoveXattr.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn fremove_xattr<'e>(
        &self,
        env: &'e Env,
        fd: BigInt,
        name: Buffer,
    ) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        let name = name.to_vec();
        self.run(
            env,
            "fremovexattr",
            move |c| c.fremove_xattr(fd, &name),
            |()| (),
        )
    }

    /// BindAt.
    #[napi(ts_return_type = "Promise<Bound>")]
    #[allow(clippy::too_many_arguments)]
    pub fn bind_at<'e>(
        &self,
        env: &'e Env,
        dir: BigInt,
        name: Buffer,
        sock_type: u32,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> napi::Result<Object<'e>> {
        let dir = fd_of("dir", &dir).map_err(|f| f.throw(env))?;
        let mode = u16_of("mode", mode).map_err(|f| f.throw(env))?;
        let name = name.to_vec();
        self.run(
            env,
            "bindAt",
            move |c| c.bind_at(dir, &name, sock_type, mode, Uid(uid), Gid(gid)),
            |(child, id, sock)| Bound {
                child: child.into(),
                bound_socket_fd: fd(id),
                host_fd: raw(sock),
            },
        )
    }

    /// Listen.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn listen<'e>(&self, env: &'e Env, fd: BigInt, backlog: i32) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        self.run(env, "listen", move |c| c.listen(fd, backlog), |()| ())
    }

    /// Accept (never blocks: EAGAIN when nothing is pending).
    #[napi(ts_return_type = "Promise<Accepted>")]
    pub fn accept<'e>(&self, env: &'e Env, fd: BigInt) -> napi::Result<Object<'e>> {
        let fd = fd_of("fd", &fd).map_err(|f| f.throw(env))?;
        self.run(
            env,
            "accept",
            move |c| c.accept(fd),
            |(sock, peer)| Accepted {
                host_fd: raw(sock),
                peer_addr: peer.into(),
            },
        )
    }
}
