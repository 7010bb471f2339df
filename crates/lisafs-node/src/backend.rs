//! `NativeBackendServer`: LISAFS servers whose filesystem is written in
//! JavaScript, and an audit/policy layer for any backend (JavaScript or a
//! host directory).
//!
//! # JavaScript backends
//!
//! [`JsConnection`], [`JsControl`], [`JsOpen`] and [`JsBound`] implement the
//! server core's backend traits by forwarding every call to ONE JavaScript
//! dispatcher function, held as a napi `ThreadsafeFunction`. A server thread
//! queues `(callId, op, handle, args)` and then blocks on a per-call slot
//! (a one-shot channel) until JavaScript answers with
//! [`NativeBackendServer::complete`] or [`NativeBackendServer::fail`]. Node's
//! event loop never blocks: the server thread does, and with it the core's
//! lock for the operation's concurrency guarantee stays held, as the backend
//! traits require.
//!
//! JavaScript keeps a table `handle id -> object`; the Rust impls hold the
//! id. Dropping one (the client closed the FD, the connection ended, a
//! walk failed half-way) queues a fire-and-forget *release* for JavaScript.
//! Releases, rename notices and audit events travel through one outbox that
//! JavaScript empties with [`NativeBackendServer::drain`] when told to.
//!
//! This module only marshals: no protocol rule lives here (the core enforces
//! them), and the friendly defaults (a partial stat, a missing method =
//! ENOSYS) live in the TypeScript layer.
//!
//! # Audit and policy
//!
//! [`AuditConnection`] wraps any `ConnectionImpl` (a host directory or a JS
//! backend). It tracks each FD's server-side path (best effort: paths are
//! rebuilt from walk names and updated on renames), checks a declarative
//! policy (allow/deny by path prefix and operation class, read-only
//! subtrees, a quota on bytes written by PWrite) before the inner backend
//! runs, and records one event per operation. Events are batched in the
//! outbox, so observing costs the server thread a lock and a push, never a
//! round trip to JavaScript. Without an observer and a policy the wrapper is
//! not installed at all.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{
    BoundSocketFdImpl, ConnectionImpl, ConnectionOpts, ControlFdImpl, Errno, FsResult, NewControl,
    NewOpen, OpenFdImpl, Service, SetStatResult,
};
use lisafs_wire::{self as w, Gid, Mid, SetStatReq, StringArray, Uid};
use napi::bindgen_prelude::{BigInt, Buffer, FnArgs, Function, Object};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use crate::client::SetStatArgs;
use crate::codec::{Dirent64, StatFs, Statx, StatxTimestamp, Timespec};
use crate::error::Fail;
use crate::server::ServerStats;

const O_ACCMODE: u32 = 3;
const O_TRUNC: u32 = 0o1000;
const RENAME_EXCHANGE: u32 = 2;
/// Events kept while JavaScript has not drained them; later ones are
/// counted and dropped.
const EVENT_CAP: usize = 1 << 16;

/// Every standard message: a JS backend answers ENOSYS for what it lacks.
const JS_SUPPORTED: [Mid; 33] = [
    Mid::MOUNT,
    Mid::CHANNEL,
    Mid::FSTAT,
    Mid::SET_STAT,
    Mid::WALK,
    Mid::WALK_STAT,
    Mid::OPEN_AT,
    Mid::OPEN_CREATE_AT,
    Mid::CLOSE,
    Mid::FSYNC,
    Mid::PWRITE,
    Mid::PREAD,
    Mid::MKDIR_AT,
    Mid::MKNOD_AT,
    Mid::SYMLINK_AT,
    Mid::LINK_AT,
    Mid::FSTAT_FS,
    Mid::FALLOCATE,
    Mid::READ_LINK_AT,
    Mid::FLUSH,
    Mid::CONNECT,
    Mid::UNLINK_AT,
    Mid::RENAME_AT,
    Mid::GETDENTS64,
    Mid::FGET_XATTR,
    Mid::FSET_XATTR,
    Mid::FLIST_XATTR,
    Mid::FREMOVE_XATTR,
    Mid::BIND_AT,
    Mid::LISTEN,
    Mid::ACCEPT,
    Mid::CONNECT_WITH_CREDS,
    Mid::RENAME_AT2,
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// JS-facing objects
// ---------------------------------------------------------------------------

/// Arguments of one backend call; which fields are set depends on the
/// operation (see `src/backend.ts`, which is the only intended consumer).
#[napi(object)]
pub struct BackendCallArgs {
    pub name: Option<Buffer>,
    pub new_name: Option<Buffer>,
    pub target: Option<Buffer>,
    pub data: Option<Buffer>,
    pub path: Option<Vec<Buffer>>,
    /// The handle of a second control FD (LinkAt's directory, RenameAt's
    /// new directory).
    pub dir: Option<u32>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub flags: Option<u32>,
    pub minor: Option<u32>,
    pub major: Option<u32>,
    pub count: Option<u32>,
    pub sock_type: Option<u32>,
    pub backlog: Option<i32>,
    pub offset: Option<BigInt>,
    pub length: Option<BigInt>,
    pub size: Option<BigInt>,
    pub seek0: Option<bool>,
    pub set_stat: Option<SetStatArgs>,
}

/// What a backend call produced; which fields are read depends on the
/// operation. Handles and host FDs named here pass to the server.
#[napi(object)]
pub struct BackendResult {
    /// A new control FD's handle (or the open FD's, for `open`).
    pub handle: Option<u32>,
    pub stat: Option<Statx>,
    /// The open FD's handle of `openCreate`.
    pub open: Option<u32>,
    /// The bound socket's handle of `bindAt`.
    pub socket: Option<u32>,
    /// A host FD whose ownership passes to the server (`connect`, `bindAt`,
    /// `accept`).
    pub fd: Option<i32>,
    pub stats: Option<Vec<Statx>>,
    pub data: Option<Buffer>,
    /// Bytes written.
    pub count: Option<f64>,
    pub stat_fs: Option<StatFs>,
    pub dirents: Option<Vec<Dirent64>>,
    pub names: Option<Vec<Buffer>>,
    pub failure_mask: Option<u32>,
    pub failure_errno: Option<u32>,
}

/// One audited operation.
#[napi(object)]
pub struct OperationEvent {
    /// The backend operation (`'walk'`, `'open'`, `'write'`...).
    pub op: String,
    /// Its class: `read`, `write`, `create`, `delete`, `xattr` or `socket`.
    pub class: String,
    /// The connection (numbered per Mount, from 1).
    pub connection: u32,
    /// The server-side path operated on (best effort).
    pub path: String,
    /// The second path of `renameAt` (destination) and `link` (new name).
    pub new_path: Option<String>,
    /// Operation-specific flags (open flags, create mode, unlink, rename and
    /// xattr flags, the SetStat mask, the fallocate mode).
    pub flags: u32,
    /// 0 on success, else the errno answered.
    pub errno: u32,
    /// Whether the policy refused the operation (the backend never ran).
    pub denied: bool,
    /// Time spent in the backend, in nanoseconds.
    pub duration_ns: f64,
    /// Bytes read or written, for `read` and `write`.
    pub bytes: Option<f64>,
    /// When the operation ended, in milliseconds since the epoch.
    pub time: f64,
}

/// Everything queued for JavaScript since the last drain.
#[napi(object)]
pub struct BackendDrain {
    /// Handles the server no longer holds.
    pub releases: Vec<u32>,
    /// Handles whose file (or an ancestor) was renamed.
    pub renamed: Vec<u32>,
    /// Audit events, oldest first.
    pub events: Vec<OperationEvent>,
    /// Events dropped because the queue was full.
    pub dropped_events: f64,
}

/// A host directory to serve (instead of a JavaScript backend).
#[napi(object)]
pub struct NativeHostRoot {
    pub root: String,
    pub host_uds: Option<bool>,
    pub host_fifo: Option<bool>,
}

/// One allow/deny rule; `path` is normalized (`/`, `/a/b`).
#[napi(object)]
pub struct NativePolicyRule {
    pub path: String,
    /// Bits: read 1, write 2, create 4, delete 8, xattr 16, socket 32.
    pub classes: u32,
    pub allow: bool,
}

/// A compiled policy.
#[napi(object)]
pub struct NativePolicy {
    pub rules: Vec<NativePolicyRule>,
    pub read_only: Vec<String>,
    pub default_deny: bool,
    pub write_quota: Option<f64>,
}

/// Options of a {@link NativeBackendServer}.
#[napi(object)]
pub struct NativeBackendOptions {
    /// Serve this host directory; without it, the dispatcher is the backend.
    pub host: Option<NativeHostRoot>,
    pub readonly: Option<bool>,
    pub max_message_size: Option<u32>,
    pub max_fds: Option<u32>,
    /// Fail a JS call with EIO when it has not settled after this long.
    pub operation_timeout_ms: Option<u32>,
    /// Record an event per operation.
    pub observe: Option<bool>,
    pub policy: Option<NativePolicy>,
    /// Donate host FDs (host backend). Default true, except writable opens
    /// when a write quota is set.
    pub donate_fds: Option<bool>,
}

/// Counters of the JS bridge and the audit layer.
#[napi(object)]
pub struct BackendBridgeStats {
    /// Calls waiting for JavaScript to settle them.
    pub pending_calls: u32,
    /// Events dropped because JavaScript did not drain them in time.
    pub dropped_events: f64,
    /// Bytes written through PWrite and charged to the quota.
    pub bytes_written: f64,
    /// Requests served over flipcall channels since the server started.
    pub channel_requests: f64,
}

// ---------------------------------------------------------------------------
// The bridge: calls into JavaScript and their slots
// ---------------------------------------------------------------------------

/// Arguments as owned Rust data (turned into JS values on Node's thread).
#[derive(Default)]
struct Args {
    name: Option<Vec<u8>>,
    new_name: Option<Vec<u8>>,
    target: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
    path: Option<Vec<Vec<u8>>>,
    dir: Option<u32>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    flags: Option<u32>,
    minor: Option<u32>,
    major: Option<u32>,
    count: Option<u32>,
    sock_type: Option<u32>,
    backlog: Option<i32>,
    offset: Option<u64>,
    length: Option<u64>,
    size: Option<u64>,
    seek0: Option<bool>,
    set_stat: Option<SetStatReq>,
}

impl Args {
    fn into_js(self) -> BackendCallArgs {
        let b = |v: Option<Vec<u8>>| v.map(Buffer::from);
        BackendCallArgs {
            name: b(self.name),
            new_name: b(self.new_name),
            target: b(self.target),
            data: b(self.data),
            path: self.path.map(|p| p.into_iter().map(Buffer::from).collect()),
            dir: self.dir,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            flags: self.flags,
            minor: self.minor,
            major: self.major,
            count: self.count,
            sock_type: self.sock_type,
            backlog: self.backlog,
            offset: self.offset.map(BigInt::from),
            length: self.length.map(BigInt::from),
            size: self.size.map(BigInt::from),
            seek0: self.seek0,
            set_stat: self.set_stat.map(|r| SetStatArgs {
                mask: r.mask,
                mode: r.mode,
                uid: r.uid.0,
                gid: r.gid.0,
                size: BigInt::from(r.size),
                atime: Timespec::from(r.atime),
                mtime: Timespec::from(r.mtime),
            }),
        }
    }
}

enum Msg {
    Call {
        id: u32,
        op: &'static str,
        handle: u32,
        args: Option<Box<Args>>,
    },
    Drain,
}

type JsArgs = FnArgs<(u32, &'static str, u32, Option<BackendCallArgs>)>;
type Tsfn = ThreadsafeFunction<Msg, (), JsArgs, Status, false>;

/// The result shape a call expects.
#[derive(Clone, Copy)]
enum Kind {
    Unit,
    Control,
    ControlOpen,
    Open,
    Stat,
    Stats,
    StatFs,
    Data,
    Count,
    Dirents,
    Names,
    SetStat,
    Fd,
    ControlBound,
    Accepted,
}

struct OwnedDirent {
    ino: u64,
    off: u64,
    ty: u8,
    dev_minor: u32,
    dev_major: u32,
    name: Vec<u8>,
}

enum Outcome {
    Unit,
    Control(Handle, w::Statx),
    ControlOpen(Handle, w::Statx, Handle),
    Open(Handle),
    Stat(w::Statx),
    Stats(Vec<w::Statx>),
    StatFs(w::StatFs),
    Data(Vec<u8>),
    Count(u64),
    Dirents(Vec<OwnedDirent>),
    Names(Vec<Vec<u8>>),
    SetStat(SetStatResult),
    Fd(OwnedFd),
    ControlBound(Handle, w::Statx, Handle, OwnedFd),
    Accepted(OwnedFd, Vec<u8>),
}

struct Pending {
    kind: Kind,
    tx: SyncSender<FsResult<Outcome>>,
}

/// One audit event as recorded on a server thread.
struct EventRec {
    op: &'static str,
    class: Class,
    conn: u32,
    path: Arc<[u8]>,
    new_path: Option<Arc<[u8]>>,
    flags: u32,
    errno: u32,
    denied: bool,
    duration_ns: u64,
    bytes: Option<u64>,
    time: f64,
}

#[derive(Default)]
struct Outbox {
    releases: Vec<u32>,
    renamed: Vec<u32>,
    events: Vec<EventRec>,
    dropped: u64,
    /// A Drain message is queued and not yet answered by `drain()`.
    scheduled: bool,
}

struct Bridge {
    tsfn: RwLock<Option<Tsfn>>,
    pending: Mutex<HashMap<u32, Pending>>,
    next_call: AtomicU32,
    aborted: AtomicBool,
    outbox: Mutex<Outbox>,
    dropped_total: AtomicU64,
    timeout: Option<Duration>,
}

impl Bridge {
    /// Calls the dispatcher and blocks this (server) thread until JavaScript
    /// settles the call, the bridge is aborted, or the timeout passes.
    fn call(
        &self,
        op: &'static str,
        handle: u32,
        args: Option<Args>,
        kind: Kind,
    ) -> FsResult<Outcome> {
        if self.aborted.load(Ordering::Acquire) {
            return Err(Errno::EIO);
        }
        let (tx, rx) = sync_channel(1);
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).insert(id, Pending { kind, tx });
        // An abort between the check above and the insert drained the map
        // without this call: see it now rather than wait forever.
        if self.aborted.load(Ordering::Acquire) {
            lock(&self.pending).remove(&id);
            return Err(Errno::EIO);
        }
        let status = match &*self.tsfn.read().unwrap_or_else(|e| e.into_inner()) {
            Some(f) => f.call(
                Msg::Call {
                    id,
                    op,
                    handle,
                    args: args.map(Box::new),
                },
                ThreadsafeFunctionCallMode::NonBlocking,
            ),
            None => Status::Closing,
        };
        if status != Status::Ok {
            lock(&self.pending).remove(&id);
            return Err(Errno::EIO);
        }
        let got = match self.timeout {
            None => rx.recv().ok(),
            Some(t) => rx.recv_timeout(t).ok(),
        };
        match got {
            Some(r) => r,
            None => {
                lock(&self.pending).remove(&id);
                // Settled just as the wait timed out: take it, so handles
                // and FDs in it are owned (and released) by this side.
                rx.try_recv().unwrap_or(Err(Errno::EIO))
            }
        }
    }

    /// Fails every call in flight with EIO and every later call at once;
    /// releases the dispatcher (it no longer keeps Node alive). Idempotent.
    fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        let drained: Vec<Pending> = lock(&self.pending).drain().map(|(_, p)| p).collect();
        // Dropping a sender wakes its receiver with an error: EIO.
        drop(drained);
        let tsfn = self.tsfn.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(tsfn);
    }

    /// Adds to the outbox and makes sure a Drain message is queued.
    fn post(&self, f: impl FnOnce(&mut Outbox)) {
        let schedule = {
            let mut o = lock(&self.outbox);
            f(&mut o);
            !std::mem::replace(&mut o.scheduled, true)
        };
        if schedule {
            let status = match &*self.tsfn.read().unwrap_or_else(|e| e.into_inner()) {
                Some(f) => f.call(Msg::Drain, ThreadsafeFunctionCallMode::NonBlocking),
                None => Status::Closing,
            };
            if status != Status::Ok {
                lock(&self.outbox).scheduled = false;
            }
        }
    }

    fn release(&self, id: u32) {
        self.post(|o| o.releases.push(id));
    }

    fn call_control(&self, op: &'static str, h: u32, args: Option<Args>) -> FsResult<NewControl> {
        match self.call(op, h, args, Kind::Control)? {
            Outcome::Control(handle, stat) => Ok(NewControl {
                imp: Box::new(JsControl { h: handle }),
                stat,
            }),
            _ => Err(Errno::EIO),
        }
    }

    fn call_unit(&self, op: &'static str, h: u32, args: Option<Args>) -> FsResult<()> {
        self.call(op, h, args, Kind::Unit).map(|_| ())
    }

    fn call_stat(&self, op: &'static str, h: u32) -> FsResult<w::Statx> {
        match self.call(op, h, None, Kind::Stat)? {
            Outcome::Stat(s) => Ok(s),
            _ => Err(Errno::EIO),
        }
    }

    fn call_data(&self, op: &'static str, h: u32, args: Option<Args>) -> FsResult<Vec<u8>> {
        match self.call(op, h, args, Kind::Data)? {
            Outcome::Data(d) => Ok(d),
            _ => Err(Errno::EIO),
        }
    }

    fn call_fd(&self, op: &'static str, h: u32, args: Option<Args>) -> FsResult<OwnedFd> {
        match self.call(op, h, args, Kind::Fd)? {
            Outcome::Fd(fd) => Ok(fd),
            _ => Err(Errno::EIO),
        }
    }
}

/// A JS handle owned by the server: dropping it releases the JS object.
struct Handle {
    id: u32,
    bridge: Arc<Bridge>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.bridge.release(self.id);
    }
}

// ---------------------------------------------------------------------------
// Conversions of results (on Node's thread)
// ---------------------------------------------------------------------------

type Conv<T> = std::result::Result<T, String>;

fn u64_from(what: &str, b: &BigInt) -> Conv<u64> {
    if b.words.is_empty() {
        return Ok(0);
    }
    match b.get_u64() {
        (false, v, true) => Ok(v),
        _ => Err(format!("{what} must be an unsigned 64-bit bigint")),
    }
}

fn i64_from(what: &str, b: &BigInt) -> Conv<i64> {
    if b.words.is_empty() {
        return Ok(0);
    }
    match b.get_i64() {
        (v, true) => Ok(v),
        (i64::MIN, _) if b.words.len() == 1 => Ok(i64::MIN),
        _ => Err(format!("{what} must be a signed 64-bit bigint")),
    }
}

fn ts_wire(what: &str, t: &StatxTimestamp) -> Conv<w::StatxTimestamp> {
    Ok(w::StatxTimestamp {
        sec: i64_from(what, &t.sec)?,
        nsec: t.nsec,
    })
}

fn statx_wire(s: &Statx) -> Conv<w::Statx> {
    Ok(w::Statx {
        mask: s.mask,
        blksize: s.blksize,
        attributes: u64_from("stat.attributes", &s.attributes)?,
        nlink: s.nlink,
        uid: s.uid,
        gid: s.gid,
        mode: u16::try_from(s.mode).map_err(|_| "stat.mode must fit 16 bits".to_owned())?,
        pad_mode: w::Pad16,
        ino: u64_from("stat.ino", &s.ino)?,
        size: u64_from("stat.size", &s.size)?,
        blocks: u64_from("stat.blocks", &s.blocks)?,
        attributes_mask: u64_from("stat.attributesMask", &s.attributes_mask)?,
        atime: ts_wire("stat.atime.sec", &s.atime)?,
        btime: ts_wire("stat.btime.sec", &s.btime)?,
        ctime: ts_wire("stat.ctime.sec", &s.ctime)?,
        mtime: ts_wire("stat.mtime.sec", &s.mtime)?,
        rdev_major: s.rdev_major,
        rdev_minor: s.rdev_minor,
        dev_major: s.dev_major,
        dev_minor: s.dev_minor,
    })
}

fn statfs_wire(s: &StatFs) -> Conv<w::StatFs> {
    Ok(w::StatFs {
        fs_type: u64_from("statFs.fsType", &s.fs_type)?,
        block_size: i64_from("statFs.blockSize", &s.block_size)?,
        blocks: u64_from("statFs.blocks", &s.blocks)?,
        blocks_free: u64_from("statFs.blocksFree", &s.blocks_free)?,
        blocks_available: u64_from("statFs.blocksAvailable", &s.blocks_available)?,
        files: u64_from("statFs.files", &s.files)?,
        files_free: u64_from("statFs.filesFree", &s.files_free)?,
        name_length: u64_from("statFs.nameLength", &s.name_length)?,
    })
}

fn need<T>(v: Option<T>, what: &str, op: Kind) -> Conv<T> {
    v.ok_or_else(|| format!("the result lacks `{what}` ({})", kind_name(op)))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Unit => "nothing expected",
        Kind::Control => "expected { handle, stat }",
        Kind::ControlOpen => "expected { handle, stat, open }",
        Kind::Open => "expected { handle }",
        Kind::Stat => "expected { stat }",
        Kind::Stats => "expected { stats }",
        Kind::StatFs => "expected { statFs }",
        Kind::Data => "expected { data }",
        Kind::Count => "expected { count }",
        Kind::Dirents => "expected { dirents }",
        Kind::Names => "expected { names }",
        Kind::SetStat => "expected { failureMask, failureErrno }",
        Kind::Fd => "expected { fd }",
        Kind::ControlBound => "expected { handle, stat, socket, fd }",
        Kind::Accepted => "expected { fd, data }",
    }
}

/// Converts a JS result into what the waiting server thread expects.
/// Handles and FDs are adopted first, so that a malformed result still
/// releases them.
fn convert(kind: Kind, r: BackendResult, bridge: &Arc<Bridge>) -> Conv<Outcome> {
    let adopt = |id: Option<u32>| {
        id.map(|id| Handle {
            id,
            bridge: Arc::clone(bridge),
        })
    };
    let wants_fd = matches!(kind, Kind::Fd | Kind::ControlBound | Kind::Accepted);
    let wants_handle = matches!(
        kind,
        Kind::Control | Kind::ControlOpen | Kind::Open | Kind::ControlBound
    );
    let handle = if wants_handle { adopt(r.handle) } else { None };
    let open = if matches!(kind, Kind::ControlOpen) {
        adopt(r.open)
    } else {
        None
    };
    let socket = if matches!(kind, Kind::ControlBound) {
        adopt(r.socket)
    } else {
        None
    };
    let fd = match r.fd {
        Some(fd) if wants_fd => {
            if fd < 0 {
                return Err("fd must be a non-negative file descriptor".into());
            }
            // SAFETY: the backend hands this descriptor over (documented in
            // backend.ts); from here on the server is its only owner.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        _ => None,
    };
    let stat =
        |s: &Option<Statx>| -> Conv<w::Statx> { statx_wire(need(s.as_ref(), "stat", kind)?) };
    Ok(match kind {
        Kind::Unit => Outcome::Unit,
        Kind::Control => {
            let s = stat(&r.stat)?;
            Outcome::Control(need(handle, "handle", kind)?, s)
        }
        Kind::ControlOpen => {
            let s = stat(&r.stat)?;
            Outcome::ControlOpen(need(handle, "handle", kind)?, s, need(open, "open", kind)?)
        }
        Kind::Open => Outcome::Open(need(handle, "handle", kind)?),
        Kind::Stat => Outcome::Stat(stat(&r.stat)?),
        Kind::Stats => Outcome::Stats(
            need(r.stats.as_ref(), "stats", kind)?
                .iter()
                .map(statx_wire)
                .collect::<Conv<Vec<_>>>()?,
        ),
        Kind::StatFs => Outcome::StatFs(statfs_wire(need(r.stat_fs.as_ref(), "statFs", kind)?)?),
        Kind::Data => Outcome::Data(need(r.data.as_ref(), "data", kind)?.to_vec()),
        Kind::Count => {
            let n = need(r.count, "count", kind)?;
            if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0) {
                return Err("count must be a non-negative integer".into());
            }
            Outcome::Count(n as u64)
        }
        Kind::Dirents => Outcome::Dirents(
            need(r.dirents.as_ref(), "dirents", kind)?
                .iter()
                .map(|d| {
                    Ok(OwnedDirent {
                        ino: u64_from("dirent.ino", &d.ino)?,
                        off: u64_from("dirent.off", &d.off)?,
                        ty: u8::try_from(d.ty).map_err(|_| "dirent.type must fit 8 bits")?,
                        dev_minor: d.dev_minor,
                        dev_major: d.dev_major,
                        name: d.name.to_vec(),
                    })
                })
                .collect::<Conv<Vec<_>>>()?,
        ),
        Kind::Names => Outcome::Names(
            need(r.names.as_ref(), "names", kind)?
                .iter()
                .map(|n| n.to_vec())
                .collect(),
        ),
        Kind::SetStat => Outcome::SetStat(SetStatResult {
            failure_mask: r.failure_mask.unwrap_or(0),
            failure_errno: r.failure_errno.filter(|&e| e != 0).map(Errno),
        }),
        Kind::Fd => Outcome::Fd(need(fd, "fd", kind)?),
        Kind::ControlBound => {
            let s = stat(&r.stat)?;
            Outcome::ControlBound(
                need(handle, "handle", kind)?,
                s,
                need(socket, "socket", kind)?,
                need(fd, "fd", kind)?,
            )
        }
        Kind::Accepted => Outcome::Accepted(
            need(fd, "fd", kind)?,
            r.data.as_ref().map(|d| d.to_vec()).unwrap_or_default(),
        ),
    })
}

// ---------------------------------------------------------------------------
// The JS backend
// ---------------------------------------------------------------------------

/// The mount of a JavaScript backend.
struct JsConnection {
    bridge: Arc<Bridge>,
    max_message_size: u32,
}

impl ConnectionImpl for JsConnection {
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)> {
        Ok((self.bridge.call_control("mount", 0, None)?, None))
    }

    fn supported_messages(&self) -> &[Mid] {
        &JS_SUPPORTED
    }

    fn max_message_size(&self) -> u32 {
        self.max_message_size
    }
}

/// A control FD of a JavaScript backend: the id of its JS object.
struct JsControl {
    h: Handle,
}

/// An open FD of a JavaScript backend.
struct JsOpen {
    h: Handle,
}

/// A bound socket of a JavaScript backend.
struct JsBound {
    h: Handle,
}

fn js_control(imp: &dyn ControlFdImpl) -> FsResult<&JsControl> {
    (imp as &dyn Any)
        .downcast_ref::<JsControl>()
        .ok_or(Errno::EXDEV)
}

fn named(name: &[u8]) -> Args {
    Args {
        name: Some(name.to_vec()),
        ..Args::default()
    }
}

fn create_args(name: &[u8], mode: u16, uid: Uid, gid: Gid) -> Args {
    Args {
        name: Some(name.to_vec()),
        mode: Some(u32::from(mode)),
        uid: Some(uid.0),
        gid: Some(gid.0),
        ..Args::default()
    }
}

impl JsControl {
    fn b(&self) -> &Bridge {
        &self.h.bridge
    }
    fn id(&self) -> u32 {
        self.h.id
    }
}

impl ControlFdImpl for JsControl {
    fn stat(&self) -> FsResult<w::Statx> {
        self.b().call_stat("stat", self.id())
    }

    fn set_stat(&self, req: &SetStatReq) -> SetStatResult {
        let args = Args {
            set_stat: Some(*req),
            ..Args::default()
        };
        match self
            .b()
            .call("setStat", self.id(), Some(args), Kind::SetStat)
        {
            Ok(Outcome::SetStat(r)) => r,
            Ok(_) => SetStatResult {
                failure_mask: req.mask,
                failure_errno: Some(Errno::EIO),
            },
            Err(e) => SetStatResult {
                failure_mask: req.mask,
                failure_errno: Some(e),
            },
        }
    }

    fn walk(&self, name: &[u8]) -> FsResult<NewControl> {
        self.b().call_control("walk", self.id(), Some(named(name)))
    }

    fn walk_stat(&self, path: StringArray<'_>, record: &mut dyn FnMut(w::Statx)) -> FsResult<()> {
        let args = Args {
            path: Some(path.iter().map(<[u8]>::to_vec).collect()),
            ..Args::default()
        };
        match self
            .b()
            .call("walkStat", self.id(), Some(args), Kind::Stats)?
        {
            Outcome::Stats(list) => {
                list.into_iter().for_each(record);
                Ok(())
            }
            _ => Err(Errno::EIO),
        }
    }

    fn open(&self, flags: u32) -> FsResult<NewOpen> {
        let args = Args {
            flags: Some(flags),
            ..Args::default()
        };
        match self.b().call("open", self.id(), Some(args), Kind::Open)? {
            Outcome::Open(h) => Ok(NewOpen {
                imp: Box::new(JsOpen { h }),
                donate: None,
            }),
            _ => Err(Errno::EIO),
        }
    }

    fn open_create(
        &self,
        mode: u16,
        uid: Uid,
        gid: Gid,
        name: &[u8],
        flags: u32,
    ) -> FsResult<(NewControl, NewOpen)> {
        let args = Args {
            flags: Some(flags),
            ..create_args(name, mode, uid, gid)
        };
        match self
            .b()
            .call("openCreate", self.id(), Some(args), Kind::ControlOpen)?
        {
            Outcome::ControlOpen(h, stat, o) => Ok((
                NewControl {
                    imp: Box::new(JsControl { h }),
                    stat,
                },
                NewOpen {
                    imp: Box::new(JsOpen { h: o }),
                    donate: None,
                },
            )),
            _ => Err(Errno::EIO),
        }
    }

    fn mkdir(&self, mode: u16, uid: Uid, gid: Gid, name: &[u8]) -> FsResult<NewControl> {
        self.b()
            .call_control("mkdir", self.id(), Some(create_args(name, mode, uid, gid)))
    }

    fn mknod(
        &self,
        mode: u16,
        uid: Uid,
        gid: Gid,
        name: &[u8],
        minor: u32,
        major: u32,
    ) -> FsResult<NewControl> {
        let args = Args {
            minor: Some(minor),
            major: Some(major),
            ..create_args(name, mode, uid, gid)
        };
        self.b().call_control("mknod", self.id(), Some(args))
    }

    fn symlink(&self, name: &[u8], target: &[u8], uid: Uid, gid: Gid) -> FsResult<NewControl> {
        let args = Args {
            name: Some(name.to_vec()),
            target: Some(target.to_vec()),
            uid: Some(uid.0),
            gid: Some(gid.0),
            ..Args::default()
        };
        self.b().call_control("symlink", self.id(), Some(args))
    }

    fn link(&self, dir: &dyn ControlFdImpl, name: &[u8]) -> FsResult<NewControl> {
        let dir = js_control(dir)?;
        let args = Args {
            dir: Some(dir.id()),
            ..named(name)
        };
        self.b().call_control("link", self.id(), Some(args))
    }

    fn stat_fs(&self) -> FsResult<w::StatFs> {
        match self.b().call("statFs", self.id(), None, Kind::StatFs)? {
            Outcome::StatFs(s) => Ok(s),
            _ => Err(Errno::EIO),
        }
    }

    fn readlink(&self, out: &mut Vec<u8>) -> FsResult<()> {
        out.extend(self.b().call_data("readlink", self.id(), None)?);
        Ok(())
    }

    fn connect(&self, sock_type: u32) -> FsResult<OwnedFd> {
        let args = Args {
            sock_type: Some(sock_type),
            ..Args::default()
        };
        self.b().call_fd("connect", self.id(), Some(args))
    }

    fn connect_with_creds(&self, sock_type: u32, uid: Uid, gid: Gid) -> FsResult<OwnedFd> {
        let args = Args {
            sock_type: Some(sock_type),
            uid: Some(uid.0),
            gid: Some(gid.0),
            ..Args::default()
        };
        self.b().call_fd("connect", self.id(), Some(args))
    }

    fn bind_at(
        &self,
        name: &[u8],
        sock_type: u32,
        mode: u16,
        uid: Uid,
        gid: Gid,
    ) -> FsResult<(NewControl, Box<dyn BoundSocketFdImpl>, OwnedFd)> {
        let args = Args {
            sock_type: Some(sock_type),
            ..create_args(name, mode, uid, gid)
        };
        match self
            .b()
            .call("bindAt", self.id(), Some(args), Kind::ControlBound)?
        {
            Outcome::ControlBound(h, stat, s, fd) => Ok((
                NewControl {
                    imp: Box::new(JsControl { h }),
                    stat,
                },
                Box::new(JsBound { h: s }),
                fd,
            )),
            _ => Err(Errno::EIO),
        }
    }

    fn unlink(&self, name: &[u8], flags: u32) -> FsResult<()> {
        let args = Args {
            flags: Some(flags),
            ..named(name)
        };
        self.b().call_unit("unlink", self.id(), Some(args))
    }

    fn rename_at(
        &self,
        old_name: &[u8],
        new_dir: &dyn ControlFdImpl,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        let new_dir = js_control(new_dir)?;
        let args = Args {
            new_name: Some(new_name.to_vec()),
            dir: Some(new_dir.id()),
            flags: Some(flags),
            ..named(old_name)
        };
        self.b().call_unit("renameAt", self.id(), Some(args))
    }

    fn renamed(&self) {
        let id = self.id();
        self.b().post(|o| o.renamed.push(id));
    }

    fn get_xattr(&self, name: &[u8], size: u32, out: &mut Vec<u8>) -> FsResult<()> {
        let args = Args {
            count: Some(size),
            ..named(name)
        };
        out.extend(self.b().call_data("getXattr", self.id(), Some(args))?);
        Ok(())
    }

    fn set_xattr(&self, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        let args = Args {
            data: Some(value.to_vec()),
            flags: Some(flags),
            ..named(name)
        };
        self.b().call_unit("setXattr", self.id(), Some(args))
    }

    fn list_xattr(&self, size: u64, out: &mut Vec<Vec<u8>>) -> FsResult<()> {
        let args = Args {
            size: Some(size),
            ..Args::default()
        };
        match self
            .b()
            .call("listXattr", self.id(), Some(args), Kind::Names)?
        {
            Outcome::Names(n) => {
                out.extend(n);
                Ok(())
            }
            _ => Err(Errno::EIO),
        }
    }

    fn remove_xattr(&self, name: &[u8]) -> FsResult<()> {
        self.b()
            .call_unit("removeXattr", self.id(), Some(named(name)))
    }
}

impl OpenFdImpl for JsOpen {
    fn stat(&self) -> FsResult<w::Statx> {
        self.h.bridge.call_stat("fstat", self.h.id)
    }

    fn sync(&self) -> FsResult<()> {
        self.h.bridge.call_unit("sync", self.h.id, None)
    }

    fn write(&self, buf: &[u8], off: u64) -> FsResult<u64> {
        let args = Args {
            data: Some(buf.to_vec()),
            offset: Some(off),
            ..Args::default()
        };
        match self
            .h
            .bridge
            .call("write", self.h.id, Some(args), Kind::Count)?
        {
            Outcome::Count(n) => Ok(n.min(buf.len() as u64)),
            _ => Err(Errno::EIO),
        }
    }

    fn read(&self, buf: &mut [u8], off: u64) -> FsResult<usize> {
        let args = Args {
            count: Some(u32::try_from(buf.len()).unwrap_or(u32::MAX)),
            offset: Some(off),
            ..Args::default()
        };
        let data = self.h.bridge.call_data("read", self.h.id, Some(args))?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }

    fn allocate(&self, mode: u64, off: u64, len: u64) -> FsResult<()> {
        let args = Args {
            size: Some(mode),
            offset: Some(off),
            length: Some(len),
            ..Args::default()
        };
        self.h.bridge.call_unit("allocate", self.h.id, Some(args))
    }

    fn flush(&self) -> FsResult<()> {
        self.h.bridge.call_unit("flush", self.h.id, None)
    }

    fn getdent64(
        &self,
        count: u32,
        seek0: bool,
        record: &mut dyn FnMut(w::Dirent64<'_>),
    ) -> FsResult<()> {
        let args = Args {
            count: Some(count),
            seek0: Some(seek0),
            ..Args::default()
        };
        match self
            .h
            .bridge
            .call("getdents", self.h.id, Some(args), Kind::Dirents)?
        {
            Outcome::Dirents(list) => {
                for d in &list {
                    record(w::Dirent64 {
                        ino: d.ino,
                        dev_minor: d.dev_minor,
                        dev_major: d.dev_major,
                        off: d.off,
                        ty: d.ty,
                        name: &d.name,
                    });
                }
                Ok(())
            }
            _ => Err(Errno::EIO),
        }
    }

    fn renamed(&self) {
        let id = self.h.id;
        self.h.bridge.post(|o| o.renamed.push(id));
    }
}

impl BoundSocketFdImpl for JsBound {
    fn listen(&self, backlog: i32) -> FsResult<()> {
        let args = Args {
            backlog: Some(backlog),
            ..Args::default()
        };
        self.h.bridge.call_unit("listen", self.h.id, Some(args))
    }

    fn accept(&self) -> FsResult<(OwnedFd, Vec<u8>)> {
        match self
            .h
            .bridge
            .call("accept", self.h.id, None, Kind::Accepted)?
        {
            Outcome::Accepted(fd, peer) => Ok((fd, peer)),
            _ => Err(Errno::EIO),
        }
    }
}

// ---------------------------------------------------------------------------
// Audit and policy
// ---------------------------------------------------------------------------

/// Operation classes of the policy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Read = 1,
    Write = 2,
    Create = 4,
    Delete = 8,
    Xattr = 16,
    Socket = 32,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Create => "create",
            Class::Delete => "delete",
            Class::Xattr => "xattr",
            Class::Socket => "socket",
        }
    }
}

struct Rule {
    prefix: Vec<u8>,
    classes: u32,
    allow: bool,
}

struct Policy {
    /// Longest prefix first; at equal length, deny first.
    rules: Vec<Rule>,
    read_only: Vec<Vec<u8>>,
    default_deny: bool,
}

/// Whether `path` is `prefix` or below it (component-wise).
fn under(path: &[u8], prefix: &[u8]) -> bool {
    prefix == b"/"
        || (path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/'))
}

impl Policy {
    fn compile(p: &NativePolicy) -> Self {
        let mut rules: Vec<Rule> = p
            .rules
            .iter()
            .map(|r| Rule {
                prefix: r.path.as_bytes().to_vec(),
                classes: r.classes,
                allow: r.allow,
            })
            .collect();
        rules.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.allow.cmp(&b.allow))
        });
        Policy {
            rules,
            read_only: p.read_only.iter().map(|s| s.as_bytes().to_vec()).collect(),
            default_deny: p.default_deny,
        }
    }

    /// May an operation of `class` run on `path`?
    fn check(&self, class: Class, mutating: bool, path: &[u8]) -> FsResult<()> {
        if mutating && self.read_only.iter().any(|p| under(path, p)) {
            return Err(Errno::EROFS);
        }
        for r in &self.rules {
            if r.classes & class as u32 != 0 && under(path, &r.prefix) {
                return if r.allow { Ok(()) } else { Err(Errno::EACCES) };
            }
        }
        if self.default_deny {
            Err(Errno::EACCES)
        } else {
            Ok(())
        }
    }

    /// Renaming or removing `path` must not move a protected subtree (a
    /// read-only one or one a deny rule names) out from under its rule.
    fn guard_subtree(&self, path: &[u8]) -> FsResult<()> {
        if self.read_only.iter().any(|p| under(p, path)) {
            return Err(Errno::EROFS);
        }
        if self
            .rules
            .iter()
            .any(|r| !r.allow && under(&r.prefix, path))
        {
            return Err(Errno::EACCES);
        }
        Ok(())
    }
}

fn join(dir: &[u8], name: &[u8]) -> Arc<[u8]> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if dir != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p.into()
}

/// `path` with its `from` prefix replaced by `to`, if it is under `from`.
fn rebase(path: &[u8], from: &[u8], to: &[u8]) -> Option<Arc<[u8]>> {
    if !under(path, from) || from == b"/" {
        return None;
    }
    let mut p = to.to_vec();
    p.extend_from_slice(&path[from.len()..]);
    Some(p.into())
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

type PathCell = Arc<Mutex<Arc<[u8]>>>;

/// A rename just applied: old path, new path, whether it was an exchange.
type RenameNote = (Arc<[u8]>, Arc<[u8]>, bool);

struct AuditShared {
    bridge: Arc<Bridge>,
    observe: bool,
    policy: Option<Policy>,
    quota: Option<u64>,
    /// Bytes charged to the quota (PWrite); counted even without a quota.
    written: AtomicU64,
    donate: bool,
    donate_writable: bool,
    next_conn: AtomicU32,
    /// The rename being applied, for `renamed()` (set and read under the
    /// core's exclusive rename lock).
    last_rename: Mutex<Option<RenameNote>>,
}

/// What an event says besides its outcome.
struct Ev<'a> {
    op: &'static str,
    class: Class,
    conn: u32,
    path: &'a Arc<[u8]>,
    new_path: Option<&'a Arc<[u8]>>,
    flags: u32,
}

impl AuditShared {
    fn check(&self, class: Class, mutating: bool, path: &[u8]) -> FsResult<()> {
        match &self.policy {
            Some(p) => p.check(class, mutating, path),
            None => Ok(()),
        }
    }

    fn guard_subtree(&self, path: &[u8]) -> FsResult<()> {
        match &self.policy {
            Some(p) => p.guard_subtree(path),
            None => Ok(()),
        }
    }

    fn emit(&self, ev: &Ev<'_>, errno: u32, denied: bool, took: Duration, bytes: Option<u64>) {
        if !self.observe {
            return;
        }
        let rec = EventRec {
            op: ev.op,
            class: ev.class,
            conn: ev.conn,
            path: Arc::clone(ev.path),
            new_path: ev.new_path.map(Arc::clone),
            flags: ev.flags,
            errno,
            denied,
            duration_ns: u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            bytes,
            time: now_ms(),
        };
        self.bridge.post(|o| {
            if o.events.len() < EVENT_CAP {
                o.events.push(rec);
            } else {
                o.dropped += 1;
            }
        });
    }

    /// Runs `f` unless `allowed` is an error, and records the event.
    fn run<T>(
        &self,
        ev: Ev<'_>,
        allowed: FsResult<()>,
        f: impl FnOnce() -> FsResult<T>,
        bytes: impl FnOnce(&T) -> Option<u64>,
    ) -> FsResult<T> {
        if let Err(e) = allowed {
            self.emit(&ev, e.0, true, Duration::ZERO, None);
            return Err(e);
        }
        if !self.observe {
            return f();
        }
        let start = Instant::now();
        let r = f();
        let took = start.elapsed();
        match &r {
            Ok(v) => self.emit(&ev, 0, false, took, bytes(v)),
            Err(e) => self.emit(&ev, e.0, false, took, None),
        }
        r
    }

    /// Charges `n` bytes to the quota, or fails with EDQUOT.
    fn reserve(&self, n: u64) -> FsResult<()> {
        let Some(limit) = self.quota else {
            self.written.fetch_add(n, Ordering::Relaxed);
            return Ok(());
        };
        let mut cur = self.written.load(Ordering::Relaxed);
        loop {
            let next = cur
                .checked_add(n)
                .filter(|&v| v <= limit)
                .ok_or(Errno::EDQUOT)?;
            match self
                .written
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(v) => cur = v,
            }
        }
    }

    fn refund(&self, n: u64) {
        self.written.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Wraps any backend with path tracking, a policy and an observer.
struct AuditConnection {
    inner: Arc<dyn ConnectionImpl>,
    s: Arc<AuditShared>,
}

struct AuditControl {
    inner: Box<dyn ControlFdImpl>,
    path: PathCell,
    conn: u32,
    s: Arc<AuditShared>,
}

struct AuditOpen {
    inner: Box<dyn OpenFdImpl>,
    /// Shared with the control FD it was opened from (which updates it on
    /// renames).
    path: PathCell,
    conn: u32,
    s: Arc<AuditShared>,
}

struct AuditBound {
    inner: Box<dyn BoundSocketFdImpl>,
    path: PathCell,
    conn: u32,
    s: Arc<AuditShared>,
}

fn audit_control(imp: &dyn ControlFdImpl) -> FsResult<&AuditControl> {
    (imp as &dyn Any)
        .downcast_ref::<AuditControl>()
        .ok_or(Errno::EXDEV)
}

fn mutating_open(flags: u32) -> bool {
    flags & O_ACCMODE != 0 || flags & O_TRUNC != 0
}

impl ConnectionImpl for AuditConnection {
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)> {
        let conn = self.s.next_conn.fetch_add(1, Ordering::Relaxed);
        let root: Arc<[u8]> = Arc::from(&b"/"[..]);
        let ev = Ev {
            op: "mount",
            class: Class::Read,
            conn,
            path: &root,
            new_path: None,
            flags: 0,
        };
        let (nc, donate) = self.s.run(ev, Ok(()), || self.inner.mount(), |_| None)?;
        let nc = NewControl {
            imp: Box::new(AuditControl {
                inner: nc.imp,
                path: Arc::new(Mutex::new(root)),
                conn,
                s: Arc::clone(&self.s),
            }),
            stat: nc.stat,
        };
        Ok((nc, donate.filter(|_| self.s.donate)))
    }

    fn supported_messages(&self) -> &[Mid] {
        self.inner.supported_messages()
    }

    fn max_message_size(&self) -> u32 {
        self.inner.max_message_size()
    }
}

impl AuditControl {
    fn path(&self) -> Arc<[u8]> {
        Arc::clone(&lock(&self.path))
    }

    fn ev<'a>(&self, op: &'static str, class: Class, path: &'a Arc<[u8]>, flags: u32) -> Ev<'a> {
        Ev {
            op,
            class,
            conn: self.conn,
            path,
            new_path: None,
            flags,
        }
    }

    fn child(&self, nc: NewControl, path: Arc<[u8]>) -> (NewControl, PathCell) {
        let cell: PathCell = Arc::new(Mutex::new(path));
        (
            NewControl {
                imp: Box::new(AuditControl {
                    inner: nc.imp,
                    path: Arc::clone(&cell),
                    conn: self.conn,
                    s: Arc::clone(&self.s),
                }),
                stat: nc.stat,
            },
            cell,
        )
    }

    fn open_fd(&self, no: NewOpen, path: PathCell, flags: u32) -> NewOpen {
        let writable = flags & O_ACCMODE != 0;
        let keep = self.s.donate && (!writable || self.s.donate_writable);
        NewOpen {
            imp: Box::new(AuditOpen {
                inner: no.imp,
                path,
                conn: self.conn,
                s: Arc::clone(&self.s),
            }),
            donate: no.donate.filter(|_| keep),
        }
    }

    /// A create-like operation of `name` in this directory.
    fn create(
        &self,
        op: &'static str,
        class: Class,
        name: &[u8],
        flags: u32,
        f: impl FnOnce() -> FsResult<NewControl>,
    ) -> FsResult<NewControl> {
        let path = join(&self.path(), name);
        let allowed = self.s.check(class, true, &path);
        let nc = self
            .s
            .run(self.ev(op, class, &path, flags), allowed, f, |_| None)?;
        Ok(self.child(nc, path).0)
    }
}

impl ControlFdImpl for AuditControl {
    fn stat(&self) -> FsResult<w::Statx> {
        let p = self.path();
        let allowed = self.s.check(Class::Read, false, &p);
        self.s.run(
            self.ev("stat", Class::Read, &p, 0),
            allowed,
            || self.inner.stat(),
            |_| None,
        )
    }

    fn set_stat(&self, req: &SetStatReq) -> SetStatResult {
        let p = self.path();
        let ev = self.ev("setStat", Class::Write, &p, req.mask);
        if let Err(e) = self.s.check(Class::Write, true, &p) {
            self.s.emit(&ev, e.0, true, Duration::ZERO, None);
            return SetStatResult {
                failure_mask: req.mask,
                failure_errno: Some(e),
            };
        }
        let start = Instant::now();
        let r = self.inner.set_stat(req);
        let errno = r.failure_errno.map_or(0, |e| e.0);
        self.s.emit(&ev, errno, false, start.elapsed(), None);
        r
    }

    fn walk(&self, name: &[u8]) -> FsResult<NewControl> {
        let path = join(&self.path(), name);
        let allowed = self.s.check(Class::Read, false, &path);
        let nc = self.s.run(
            self.ev("walk", Class::Read, &path, 0),
            allowed,
            || self.inner.walk(name),
            |_| None,
        )?;
        Ok(self.child(nc, path).0)
    }

    fn walk_stat(&self, path: StringArray<'_>, record: &mut dyn FnMut(w::Statx)) -> FsResult<()> {
        let p = self.path();
        let mut allowed = self.s.check(Class::Read, false, &p);
        if allowed.is_ok() && self.s.policy.is_some() {
            // Every component named must be readable (the walk may stop
            // earlier; refusing then is conservative, never permissive).
            let mut cur = Arc::clone(&p);
            for name in path.iter().filter(|n| !n.is_empty()) {
                cur = join(&cur, name);
                if let Err(e) = self.s.check(Class::Read, false, &cur) {
                    allowed = Err(e);
                    break;
                }
            }
        }
        self.s.run(
            self.ev("walkStat", Class::Read, &p, 0),
            allowed,
            || self.inner.walk_stat(path, record),
            |_| None,
        )
    }

    fn open(&self, flags: u32) -> FsResult<NewOpen> {
        let p = self.path();
        let mutating = mutating_open(flags);
        let class = if mutating { Class::Write } else { Class::Read };
        let allowed = self.s.check(class, mutating, &p);
        let no = self.s.run(
            self.ev("open", class, &p, flags),
            allowed,
            || self.inner.open(flags),
            |_| None,
        )?;
        Ok(self.open_fd(no, Arc::clone(&self.path), flags))
    }

    fn open_create(
        &self,
        mode: u16,
        uid: Uid,
        gid: Gid,
        name: &[u8],
        flags: u32,
    ) -> FsResult<(NewControl, NewOpen)> {
        let path = join(&self.path(), name);
        let allowed = self.s.check(Class::Create, true, &path);
        let (nc, no) = self.s.run(
            self.ev("openCreate", Class::Create, &path, flags),
            allowed,
            || self.inner.open_create(mode, uid, gid, name, flags),
            |_| None,
        )?;
        let (nc, cell) = self.child(nc, path);
        Ok((nc, self.open_fd(no, cell, flags)))
    }

    fn mkdir(&self, mode: u16, uid: Uid, gid: Gid, name: &[u8]) -> FsResult<NewControl> {
        self.create("mkdir", Class::Create, name, u32::from(mode), || {
            self.inner.mkdir(mode, uid, gid, name)
        })
    }

    fn mknod(
        &self,
        mode: u16,
        uid: Uid,
        gid: Gid,
        name: &[u8],
        minor: u32,
        major: u32,
    ) -> FsResult<NewControl> {
        self.create("mknod", Class::Create, name, u32::from(mode), || {
            self.inner.mknod(mode, uid, gid, name, minor, major)
        })
    }

    fn symlink(&self, name: &[u8], target: &[u8], uid: Uid, gid: Gid) -> FsResult<NewControl> {
        self.create("symlink", Class::Create, name, 0, || {
            self.inner.symlink(name, target, uid, gid)
        })
    }

    fn link(&self, dir: &dyn ControlFdImpl, name: &[u8]) -> FsResult<NewControl> {
        let dir = audit_control(dir)?;
        let p = self.path();
        let new_path = join(&dir.path(), name);
        // A new name for this file is a way to write it: it must be
        // writable here, and creatable there.
        let allowed = self
            .s
            .check(Class::Create, true, &new_path)
            .and_then(|()| self.s.check(Class::Write, true, &p));
        let ev = Ev {
            new_path: Some(&new_path),
            ..self.ev("link", Class::Create, &p, 0)
        };
        let nc = self
            .s
            .run(ev, allowed, || self.inner.link(&*dir.inner, name), |_| None)?;
        Ok(dir.child(nc, new_path).0)
    }

    fn stat_fs(&self) -> FsResult<w::StatFs> {
        let p = self.path();
        let allowed = self.s.check(Class::Read, false, &p);
        self.s.run(
            self.ev("statFs", Class::Read, &p, 0),
            allowed,
            || self.inner.stat_fs(),
            |_| None,
        )
    }

    fn readlink(&self, out: &mut Vec<u8>) -> FsResult<()> {
        let p = self.path();
        let allowed = self.s.check(Class::Read, false, &p);
        self.s.run(
            self.ev("readlink", Class::Read, &p, 0),
            allowed,
            || self.inner.readlink(out),
            |_| None,
        )
    }

    fn connect(&self, sock_type: u32) -> FsResult<OwnedFd> {
        let p = self.path();
        let allowed = self.s.check(Class::Socket, false, &p);
        self.s.run(
            self.ev("connect", Class::Socket, &p, sock_type),
            allowed,
            || self.inner.connect(sock_type),
            |_| None,
        )
    }

    fn connect_with_creds(&self, sock_type: u32, uid: Uid, gid: Gid) -> FsResult<OwnedFd> {
        let p = self.path();
        let allowed = self.s.check(Class::Socket, false, &p);
        self.s.run(
            self.ev("connect", Class::Socket, &p, sock_type),
            allowed,
            || self.inner.connect_with_creds(sock_type, uid, gid),
            |_| None,
        )
    }

    fn bind_at(
        &self,
        name: &[u8],
        sock_type: u32,
        mode: u16,
        uid: Uid,
        gid: Gid,
    ) -> FsResult<(NewControl, Box<dyn BoundSocketFdImpl>, OwnedFd)> {
        let path = join(&self.path(), name);
        let allowed = self.s.check(Class::Socket, true, &path);
        let (nc, bound, fd) = self.s.run(
            self.ev("bindAt", Class::Socket, &path, sock_type),
            allowed,
            || self.inner.bind_at(name, sock_type, mode, uid, gid),
            |_| None,
        )?;
        let (nc, cell) = self.child(nc, path);
        let bound: Box<dyn BoundSocketFdImpl> = Box::new(AuditBound {
            inner: bound,
            path: cell,
            conn: self.conn,
            s: Arc::clone(&self.s),
        });
        Ok((nc, bound, fd))
    }

    fn unlink(&self, name: &[u8], flags: u32) -> FsResult<()> {
        let path = join(&self.path(), name);
        let allowed = self
            .s
            .check(Class::Delete, true, &path)
            .and_then(|()| self.s.guard_subtree(&path));
        self.s.run(
            self.ev("unlink", Class::Delete, &path, flags),
            allowed,
            || self.inner.unlink(name, flags),
            |_| None,
        )
    }

    fn rename_at(
        &self,
        old_name: &[u8],
        new_dir: &dyn ControlFdImpl,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        let new_dir = audit_control(new_dir)?;
        let old = join(&self.path(), old_name);
        let new = join(&new_dir.path(), new_name);
        let exchange = flags & RENAME_EXCHANGE != 0;
        let s = &self.s;
        let allowed = s
            .check(Class::Delete, true, &old)
            .and_then(|()| s.check(Class::Create, true, &new))
            .and_then(|()| {
                if exchange {
                    s.check(Class::Create, true, &old)
                        .and_then(|()| s.check(Class::Delete, true, &new))
                } else {
                    Ok(())
                }
            })
            .and_then(|()| s.guard_subtree(&old))
            .and_then(|()| s.guard_subtree(&new));
        let ev = Ev {
            new_path: Some(&new),
            ..self.ev("renameAt", Class::Delete, &old, flags)
        };
        s.run(
            ev,
            allowed,
            || {
                self.inner
                    .rename_at(old_name, &*new_dir.inner, new_name, flags)
            },
            |_| None,
        )?;
        *lock(&s.last_rename) = Some((Arc::clone(&old), Arc::clone(&new), exchange));
        Ok(())
    }

    fn renamed(&self) {
        if let Some((old, new, exchange)) = &*lock(&self.s.last_rename) {
            let mut p = lock(&self.path);
            let moved = rebase(&p, old, new).or_else(|| {
                if *exchange {
                    rebase(&p, new, old)
                } else {
                    None
                }
            });
            if let Some(np) = moved {
                *p = np;
            }
        }
        self.inner.renamed();
    }

    fn get_xattr(&self, name: &[u8], size: u32, out: &mut Vec<u8>) -> FsResult<()> {
        let p = self.path();
        let allowed = self.s.check(Class::Xattr, false, &p);
        self.s.run(
            self.ev("getXattr", Class::Xattr, &p, 0),
            allowed,
            || self.inner.get_xattr(name, size, out),
            |_| None,
        )
    }

    fn set_xattr(&self, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        let p = self.path();
        let allowed = self.s.check(Class::Xattr, true, &p);
        self.s.run(
            self.ev("setXattr", Class::Xattr, &p, flags),
            allowed,
            || self.inner.set_xattr(name, value, flags),
            |_| None,
        )
    }

    fn list_xattr(&self, size: u64, out: &mut Vec<Vec<u8>>) -> FsResult<()> {
        let p = self.path();
        let allowed = self.s.check(Class::Xattr, false, &p);
        self.s.run(
            self.ev("listXattr", Class::Xattr, &p, 0),
            allowed,
            || self.inner.list_xattr(size, out),
            |_| None,
        )
    }

    fn remove_xattr(&self, name: &[u8]) -> FsResult<()> {
        let p = self.path();
        let allowed = self.s.check(Class::Xattr, true, &p);
        self.s.run(
            self.ev("removeXattr", Class::Xattr, &p, 0),
            allowed,
            || self.inner.remove_xattr(name),
            |_| None,
        )
    }
}

impl AuditOpen {
    fn path(&self) -> Arc<[u8]> {
        Arc::clone(&lock(&self.path))
    }

    fn ev<'a>(&self, op: &'static str, class: Class, path: &'a Arc<[u8]>, flags: u32) -> Ev<'a> {
        Ev {
            op,
            class,
            conn: self.conn,
            path,
            new_path: None,
            flags,
        }
    }

    fn read_op<T>(&self, op: &'static str, f: impl FnOnce() -> FsResult<T>) -> FsResult<T> {
        let p = self.path();
        let allowed = self.s.check(Class::Read, false, &p);
        self.s
            .run(self.ev(op, Class::Read, &p, 0), allowed, f, |_| None)
    }
}

impl OpenFdImpl for AuditOpen {
    fn stat(&self) -> FsResult<w::Statx> {
        self.read_op("fstat", || self.inner.stat())
    }

    fn sync(&self) -> FsResult<()> {
        self.read_op("sync", || self.inner.sync())
    }

    fn write(&self, buf: &[u8], off: u64) -> FsResult<u64> {
        let p = self.path();
        let len = buf.len() as u64;
        let allowed = self
            .s
            .check(Class::Write, true, &p)
            .and_then(|()| self.s.reserve(len));
        let charged = allowed.is_ok();
        let r = self.s.run(
            self.ev("write", Class::Write, &p, 0),
            allowed,
            || self.inner.write(buf, off),
            |&n| Some(n),
        );
        if charged {
            self.s.refund(len - r.as_ref().map_or(0, |&n| n.min(len)));
        }
        r
    }

    fn read(&self, buf: &mut [u8], off: u64) -> FsResult<usize> {
        let p = self.path();
        let allowed = self.s.check(Class::Read, false, &p);
        self.s.run(
            self.ev("read", Class::Read, &p, 0),
            allowed,
            || self.inner.read(buf, off),
            |&n| Some(n as u64),
        )
    }

    fn allocate(&self, mode: u64, off: u64, len: u64) -> FsResult<()> {
        let p = self.path();
        let allowed = self.s.check(Class::Write, true, &p);
        self.s.run(
            self.ev(
                "allocate",
                Class::Write,
                &p,
                u32::try_from(mode).unwrap_or(u32::MAX),
            ),
            allowed,
            || self.inner.allocate(mode, off, len),
            |_| None,
        )
    }

    fn flush(&self) -> FsResult<()> {
        self.read_op("flush", || self.inner.flush())
    }

    fn getdent64(
        &self,
        count: u32,
        seek0: bool,
        record: &mut dyn FnMut(w::Dirent64<'_>),
    ) -> FsResult<()> {
        self.read_op("getdents", || self.inner.getdent64(count, seek0, record))
    }

    fn renamed(&self) {
        // The path cell is the control FD's, which the core notifies too.
        self.inner.renamed();
    }
}

impl BoundSocketFdImpl for AuditBound {
    fn listen(&self, backlog: i32) -> FsResult<()> {
        let p = Arc::clone(&lock(&self.path));
        let allowed = self.s.check(Class::Socket, false, &p);
        let ev = Ev {
            op: "listen",
            class: Class::Socket,
            conn: self.conn,
            path: &p,
            new_path: None,
            flags: 0,
        };
        self.s
            .run(ev, allowed, || self.inner.listen(backlog), |_| None)
    }

    fn accept(&self) -> FsResult<(OwnedFd, Vec<u8>)> {
        let p = Arc::clone(&lock(&self.path));
        let allowed = self.s.check(Class::Socket, false, &p);
        let ev = Ev {
            op: "accept",
            class: Class::Socket,
            conn: self.conn,
            path: &p,
            new_path: None,
            flags: 0,
        };
        self.s.run(ev, allowed, || self.inner.accept(), |_| None)
    }
}

// ---------------------------------------------------------------------------
// The server object
// ---------------------------------------------------------------------------

/// A LISAFS server whose backend is JavaScript (or a host directory) with an
/// optional audit/policy layer. Use `BackendServer` from the TypeScript API.
#[napi]
pub struct NativeBackendServer {
    bridge: Arc<Bridge>,
    service: Arc<Service>,
    audit: Option<Arc<AuditShared>>,
}

fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[napi]
impl NativeBackendServer {
    /// Creates the server. `dispatch(callId, op, handle, args)` is called on
    /// Node's thread for every backend call; it must settle each call with
    /// {@link NativeBackendServer.complete} or {@link NativeBackendServer.fail},
    /// and answer `op === 'drain'` with {@link NativeBackendServer.drain}. It
    /// must never throw.
    #[napi(
        constructor,
        ts_args_type = "options: NativeBackendOptions, dispatch: (callId: number, op: string, handle: number, args: BackendCallArgs | undefined) => void"
    )]
    pub fn new(
        env: Env,
        options: NativeBackendOptions,
        dispatch: Function<'_, JsArgs, ()>,
    ) -> napi::Result<Self> {
        let mut tsfn: Tsfn = dispatch
            .build_threadsafe_function::<Msg>()
            .build_callback(|ctx| {
                Ok(match ctx.value {
                    Msg::Call {
                        id,
                        op,
                        handle,
                        args,
                    } => FnArgs::from((id, op, handle, args.map(|a| a.into_js()))),
                    Msg::Drain => FnArgs::from((0, "drain", 0, None)),
                })
            })?;
        // Only a listening or attached server keeps Node alive.
        #[allow(deprecated)]
        tsfn.unref(&env)?;
        let bridge = Arc::new(Bridge {
            tsfn: RwLock::new(Some(tsfn)),
            pending: Mutex::new(HashMap::new()),
            next_call: AtomicU32::new(1),
            aborted: AtomicBool::new(false),
            outbox: Mutex::new(Outbox::default()),
            dropped_total: AtomicU64::new(0),
            timeout: options
                .operation_timeout_ms
                .filter(|&ms| ms > 0)
                .map(|ms| Duration::from_millis(u64::from(ms))),
        });
        let inner: Arc<dyn ConnectionImpl> = match &options.host {
            Some(h) => {
                let opts = HostOptions {
                    host_uds_connect: h.host_uds.unwrap_or(false),
                    host_uds_create: h.host_uds.unwrap_or(false),
                    host_fifo_open: h.host_fifo.unwrap_or(false),
                    ..HostOptions::default()
                };
                Arc::new(
                    HostFs::new(&h.root, opts)
                        .map_err(|e| Fail::io(&format!("serve {}", h.root), &e).throw(&env))?,
                )
            }
            None => Arc::new(JsConnection {
                bridge: Arc::clone(&bridge),
                max_message_size: options
                    .max_message_size
                    .filter(|&m| m >= 4096)
                    .unwrap_or(w::DEFAULT_MAX_MESSAGE_SIZE),
            }),
        };
        let observe = options.observe.unwrap_or(false);
        let policy = options.policy.as_ref().map(Policy::compile);
        let quota = options
            .policy
            .as_ref()
            .and_then(|p| p.write_quota)
            .map(|q| {
                if q.is_finite() && q > 0.0 {
                    q as u64
                } else {
                    0
                }
            });
        let (imp, audit): (Arc<dyn ConnectionImpl>, _) = if observe || policy.is_some() {
            let donate = options.donate_fds.unwrap_or(true);
            let shared = Arc::new(AuditShared {
                bridge: Arc::clone(&bridge),
                observe,
                policy,
                quota,
                written: AtomicU64::new(0),
                donate,
                // PWrite is the only write path the quota sees.
                donate_writable: donate && quota.is_none(),
                next_conn: AtomicU32::new(1),
                last_rename: Mutex::new(None),
            });
            let conn = AuditConnection {
                inner,
                s: Arc::clone(&shared),
            };
            (Arc::new(conn), Some(shared))
        } else {
            (inner, None)
        };
        let conn_opts = ConnectionOpts {
            max_fds: options.max_fds.map_or(0, |n| n as usize),
            ..ConnectionOpts::host(options.readonly.unwrap_or(false))
        };
        // A worker's teardown must not leave server threads waiting forever.
        let hook = Arc::clone(&bridge);
        env.add_env_cleanup_hook(hook, |b| b.abort())?;
        Ok(NativeBackendServer {
            bridge,
            service: Arc::new(Service::new(imp, conn_opts)),
            audit,
        })
    }

    fn set_ref(&self, env: &Env, on: bool) -> napi::Result<()> {
        let mut guard = self.bridge.tsfn.write().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = guard.as_mut() {
            #[allow(deprecated)]
            if on {
                f.refer(env)?;
            } else {
                f.unref(env)?;
            }
        }
        Ok(())
    }

    /// Listens on the Unix socket `socketPath` (which must not exist). From
    /// now on the server keeps Node alive until closed (see `unref`).
    #[napi]
    pub fn listen(&self, env: Env, socket_path: String) -> napi::Result<()> {
        self.service
            .listen(Path::new(&socket_path))
            .map_err(|e| Fail::io(&format!("listen {socket_path}"), &e).throw(&env))?;
        self.set_ref(&env, true)
    }

    /// Serves a connected stream socket; the server owns `fd` from now on.
    #[napi]
    pub fn attach(&self, env: Env, fd: i32) -> napi::Result<()> {
        if fd < 0 {
            return Err(Fail::range("fd must be a non-negative file descriptor").throw(&env));
        }
        // SAFETY: the caller hands this descriptor over (documented).
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        self.service
            .attach(sock)
            .map_err(|e| Fail::io("attach", &e).throw(&env))?;
        self.set_ref(&env, true)
    }

    /// Lets Node exit while the server is open.
    #[napi]
    pub fn unref(&self, env: Env) -> napi::Result<()> {
        self.set_ref(&env, false)
    }

    /// Keeps Node alive while the server is open (undoes `unref`).
    #[napi(js_name = "ref")]
    pub fn refer(&self, env: Env) -> napi::Result<()> {
        self.set_ref(&env, true)
    }

    /// Stops accepting, disconnects every client and waits for requests in
    /// flight. Calls still unsettled `graceMs` later (default 2000) fail with
    /// EIO, so a backend that never settles cannot hang the close. Then the
    /// dispatcher is released: the server no longer keeps Node alive.
    /// Idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'e>(&self, env: &'e Env, grace_ms: Option<u32>) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred::<(), _>()?;
        let service = Arc::clone(&self.service);
        let bridge = Arc::clone(&self.bridge);
        let grace = Duration::from_millis(u64::from(grace_ms.unwrap_or(2000)));
        std::thread::Builder::new()
            .name("lisafs-close".into())
            .spawn(move || {
                let done = Arc::new((Mutex::new(false), Condvar::new()));
                let watchdog = {
                    let done = Arc::clone(&done);
                    let bridge = Arc::clone(&bridge);
                    std::thread::Builder::new()
                        .name("lisafs-close-grace".into())
                        .spawn(move || {
                            let (m, cv) = &*done;
                            let g = cv
                                .wait_timeout_while(lock(m), grace, |d| !*d)
                                .map(|(g, _)| g)
                                .unwrap_or_else(|e| e.into_inner().0);
                            if !*g {
                                drop(g);
                                bridge.abort();
                            }
                        })
                        .ok()
                };
                service.close();
                *lock(&done.0) = true;
                done.1.notify_all();
                if let Some(t) = watchdog {
                    let _ = t.join();
                } else {
                    bridge.abort();
                }
                bridge.abort();
                deferred.resolve(|_| Ok(()));
            })
            .map_err(|e| napi::Error::from_reason(format!("close: {e}")))?;
        Ok(promise)
    }

    /// Live connections, FDs and nodes.
    #[napi]
    pub fn stats(&self) -> ServerStats {
        let s = self.service.stats();
        ServerStats {
            connections: clamp(s.connections),
            control_fds: clamp(s.control_fds),
            open_fds: clamp(s.open_fds),
            bound_socket_fds: clamp(s.bound_socket_fds),
            nodes: clamp(s.nodes),
        }
    }

    /// Counters of the bridge and the audit layer.
    #[napi]
    pub fn bridge_stats(&self) -> BackendBridgeStats {
        BackendBridgeStats {
            pending_calls: clamp(lock(&self.bridge.pending).len() as u64),
            dropped_events: self.bridge.dropped_total.load(Ordering::Relaxed) as f64,
            bytes_written: self
                .audit
                .as_ref()
                .map_or(0.0, |a| a.written.load(Ordering::Relaxed) as f64),
            channel_requests: self.service.channel_requests() as f64,
        }
    }

    /// Settles call `callId` with `result`. Returns false if the call is no
    /// longer waiting (timed out, or the server closed); handles and FDs in
    /// `result` are released either way. Throws a TypeError (after failing
    /// the call with EIO) if `result` lacks what the operation needs.
    #[napi]
    pub fn complete(&self, env: Env, call_id: u32, result: BackendResult) -> napi::Result<bool> {
        let Some(p) = lock(&self.bridge.pending).remove(&call_id) else {
            // Nobody waits: adopt what it carries, so that it is released.
            for id in [result.handle, result.open, result.socket]
                .into_iter()
                .flatten()
            {
                self.bridge.release(id);
            }
            if let Some(fd) = result.fd.filter(|&fd| fd >= 0) {
                // SAFETY: the backend handed this descriptor over.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            return Ok(false);
        };
        match convert(p.kind, result, &self.bridge) {
            Ok(outcome) => Ok(p.tx.send(Ok(outcome)).is_ok()),
            Err(msg) => {
                let _ = p.tx.send(Err(Errno::EIO));
                let err = env.throw_type_error(&msg, Some("ERR_LISAFS_BACKEND_RESULT"));
                Err(match err {
                    Ok(()) => napi::Error::from_status(Status::PendingException),
                    Err(e) => e,
                })
            }
        }
    }

    /// Fails call `callId` with `errno` (0 or out of range: EIO). `message`
    /// is for diagnostics only: the protocol carries only the errno.
    #[napi]
    pub fn fail(&self, call_id: u32, errno: u32, message: Option<String>) -> bool {
        let _ = message;
        let errno = if errno == 0 || errno > 4095 {
            Errno::EIO
        } else {
            Errno(errno)
        };
        match lock(&self.bridge.pending).remove(&call_id) {
            Some(p) => p.tx.send(Err(errno)).is_ok(),
            None => false,
        }
    }

    /// Takes everything queued for JavaScript: released handles, rename
    /// notices and audit events.
    #[napi]
    pub fn drain(&self) -> BackendDrain {
        let o = {
            let mut o = lock(&self.bridge.outbox);
            o.scheduled = false;
            std::mem::take(&mut *o)
        };
        self.bridge
            .dropped_total
            .fetch_add(o.dropped, Ordering::Relaxed);
        let text = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        BackendDrain {
            releases: o.releases,
            renamed: o.renamed,
            events: o
                .events
                .into_iter()
                .map(|e| OperationEvent {
                    op: e.op.to_owned(),
                    class: e.class.name().to_owned(),
                    connection: e.conn,
                    path: text(&e.path),
                    new_path: e.new_path.as_deref().map(text),
                    flags: e.flags,
                    errno: e.errno,
                    denied: e.denied,
                    duration_ns: e.duration_ns as f64,
                    bytes: e.bytes.map(|b| b as f64),
                    time: e.time,
                })
                .collect(),
            dropped_events: o.dropped as f64,
        }
    }
}

impl Drop for NativeBackendServer {
    fn drop(&mut self) {
        // Wake any server thread still waiting for JavaScript before the
        // service (whose drop joins them) goes.
        self.bridge.abort();
    }
}
