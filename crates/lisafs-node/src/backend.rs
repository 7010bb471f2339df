//! `NativeBackendServer`: LISAFS servers whose filesystem is written in
//! JavaScript (or is a host directory), with an optional audit/policy layer.
//!
//! Only napi glue lives here. The marshalling of backend calls (call slots,
//! handles, the outbox) is `lisafs-bridge`; this module implements its
//! `Dispatcher` with ONE JavaScript function held as a napi
//! `ThreadsafeFunction`, and converts calls, replies and drains between
//! JavaScript objects and the bridge's Rust types. The audit and policy
//! layer is `lisafs-audit`; this module compiles a [`NativePolicy`] into
//! its `Policy` and lets the bridge's outbox be its event sink, so events
//! reach JavaScript batched with releases and rename notices.
//!
//! The friendly defaults of a JavaScript backend (a partial stat, a missing
//! method = ENOSYS) live in the TypeScript layer.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lisafs_audit::{AuditConnection, AuditOptions, Policy, Rule};
use lisafs_bridge::{Args, Bridge, Call, Conv, Dirent, Dispatcher, Reply};
use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionImpl, ConnectionOpts, Service};
use lisafs_wire as w;
use napi::bindgen_prelude::{BigInt, Buffer, FnArgs, Function, Object};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use crate::client::SetStatArgs;
use crate::codec::{Dirent64, StatFs, Statx, StatxTimestamp, Timespec};
use crate::error::Fail;
use crate::server::{clamp, ServerStats};

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
// The dispatcher: one JavaScript function
// ---------------------------------------------------------------------------

fn args_to_js(a: Args) -> BackendCallArgs {
    let b = |v: Option<Vec<u8>>| v.map(Buffer::from);
    BackendCallArgs {
        name: b(a.name),
        new_name: b(a.new_name),
        target: b(a.target),
        data: b(a.data),
        path: a.path.map(|p| p.into_iter().map(Buffer::from).collect()),
        dir: a.dir,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
        flags: a.flags,
        minor: a.minor,
        major: a.major,
        count: a.count,
        sock_type: a.sock_type,
        backlog: a.backlog,
        offset: a.offset.map(BigInt::from),
        length: a.length.map(BigInt::from),
        size: a.size.map(BigInt::from),
        seek0: a.seek0,
        set_stat: a.set_stat.map(|r| SetStatArgs {
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

enum Msg {
    Call(Call),
    Drain,
}

type JsArgs = FnArgs<(u32, &'static str, u32, Option<BackendCallArgs>)>;
type Tsfn = ThreadsafeFunction<Msg, (), JsArgs, Status, false>;

/// Queues calls and drain notices for the JavaScript dispatcher.
struct JsDispatcher(Tsfn);

impl Dispatcher for JsDispatcher {
    fn call(&self, call: Call) -> bool {
        self.0
            .call(Msg::Call(call), ThreadsafeFunctionCallMode::NonBlocking)
            == Status::Ok
    }

    fn notify(&self) -> bool {
        self.0
            .call(Msg::Drain, ThreadsafeFunctionCallMode::NonBlocking)
            == Status::Ok
    }
}

// ---------------------------------------------------------------------------
// Conversions of results (on Node's thread)
// ---------------------------------------------------------------------------

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

impl Reply for BackendResult {
    fn handle(&self) -> Option<u32> {
        self.handle
    }
    fn open(&self) -> Option<u32> {
        self.open
    }
    fn socket(&self) -> Option<u32> {
        self.socket
    }
    fn fd(&self) -> Option<RawFd> {
        self.fd
    }
    fn stat(&self) -> Option<Conv<w::Statx>> {
        self.stat.as_ref().map(statx_wire)
    }
    fn stats(&self) -> Option<Conv<Vec<w::Statx>>> {
        self.stats
            .as_ref()
            .map(|l| l.iter().map(statx_wire).collect())
    }
    fn stat_fs(&self) -> Option<Conv<w::StatFs>> {
        self.stat_fs.as_ref().map(statfs_wire)
    }
    fn data(&self) -> Option<Vec<u8>> {
        self.data.as_ref().map(|d| d.to_vec())
    }
    fn count(&self) -> Option<f64> {
        self.count
    }
    fn dirents(&self) -> Option<Conv<Vec<Dirent>>> {
        self.dirents.as_ref().map(|l| {
            l.iter()
                .map(|d| {
                    Ok(Dirent {
                        ino: u64_from("dirent.ino", &d.ino)?,
                        off: u64_from("dirent.off", &d.off)?,
                        ty: u8::try_from(d.ty).map_err(|_| "dirent.type must fit 8 bits")?,
                        dev_minor: d.dev_minor,
                        dev_major: d.dev_major,
                        name: d.name.to_vec(),
                    })
                })
                .collect()
        })
    }
    fn names(&self) -> Option<Vec<Vec<u8>>> {
        self.names
            .as_ref()
            .map(|l| l.iter().map(|n| n.to_vec()).collect())
    }
    fn failure_mask(&self) -> Option<u32> {
        self.failure_mask
    }
    fn failure_errno(&self) -> Option<u32> {
        self.failure_errno
    }
}

fn compile_policy(p: &NativePolicy) -> Policy {
    Policy::new(
        p.rules
            .iter()
            .map(|r| Rule {
                prefix: r.path.as_bytes().to_vec(),
                classes: r.classes,
                allow: r.allow,
            })
            .collect(),
        p.read_only.iter().map(|s| s.as_bytes().to_vec()).collect(),
        p.default_deny,
    )
}

// ---------------------------------------------------------------------------
// The server object
// ---------------------------------------------------------------------------

/// A LISAFS server whose backend is JavaScript (or a host directory) with an
/// optional audit/policy layer. Use `BackendServer` from the TypeScript API.
#[napi]
pub struct NativeBackendServer {
    bridge: Arc<Bridge<JsDispatcher>>,
    service: Arc<Service>,
    audit: Option<Arc<AuditConnection>>,
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
                    Msg::Call(call) => {
                        let (id, op, handle, args) = call.deliver();
                        FnArgs::from((id, op, handle, args.map(|a| args_to_js(*a))))
                    }
                    Msg::Drain => FnArgs::from((0, "drain", 0, None)),
                })
            })?;
        // Only a listening or attached server keeps Node alive.
        #[allow(deprecated)]
        tsfn.unref(&env)?;
        let bridge = Bridge::new(
            JsDispatcher(tsfn),
            options
                .operation_timeout_ms
                .filter(|&ms| ms > 0)
                .map(|ms| Duration::from_millis(u64::from(ms))),
        );
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
            None => Arc::new(bridge.connection(options.max_message_size)),
        };
        let observe = options.observe.unwrap_or(false);
        let policy = options.policy.as_ref().map(compile_policy);
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
            let sink: Option<Arc<dyn lisafs_audit::EventSink>> = if observe {
                Some(Arc::clone(&bridge) as _)
            } else {
                None
            };
            let conn = Arc::new(AuditConnection::new(
                inner,
                AuditOptions {
                    policy,
                    write_quota: quota,
                    donate_fds: options.donate_fds.unwrap_or(true),
                    sink,
                },
            ));
            (Arc::clone(&conn) as _, Some(conn))
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
        self.bridge
            .with_dispatcher(|d| {
                #[allow(deprecated)]
                if on {
                    d.0.refer(env)
                } else {
                    d.0.unref(env)
                }
            })
            .unwrap_or(Ok(()))
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
                bridge.close_within(grace, || service.close());
                deferred.resolve(|_| Ok(()));
            })
            .map_err(|e| napi::Error::from_reason(format!("close: {e}")))?;
        Ok(promise)
    }

    /// Live connections, FDs and nodes.
    #[napi]
    pub fn stats(&self) -> ServerStats {
        self.service.stats().into()
    }

    /// Counters of the bridge and the audit layer.
    #[napi]
    pub fn bridge_stats(&self) -> BackendBridgeStats {
        BackendBridgeStats {
            pending_calls: clamp(self.bridge.pending_calls() as u64),
            dropped_events: self.bridge.dropped_events() as f64,
            bytes_written: self
                .audit
                .as_ref()
                .map_or(0.0, |a| a.bytes_written() as f64),
            channel_requests: self.service.channel_requests() as f64,
        }
    }

    /// Settles call `callId` with `result`. Returns false if the call is no
    /// longer waiting (timed out, or the server closed); handles and FDs in
    /// `result` are released either way. Throws a TypeError (after failing
    /// the call with EIO) if `result` lacks what the operation needs.
    #[napi]
    pub fn complete(&self, env: Env, call_id: u32, result: BackendResult) -> napi::Result<bool> {
        match self.bridge.complete(call_id, &result) {
            Ok(waited) => Ok(waited),
            Err(msg) => {
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
        self.bridge.fail(call_id, errno)
    }

    /// Takes everything queued for JavaScript: released handles, rename
    /// notices and audit events.
    #[napi]
    pub fn drain(&self) -> BackendDrain {
        let o = self.bridge.drain();
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
                    connection: e.connection,
                    path: text(&e.path),
                    new_path: e.new_path.as_deref().map(text),
                    flags: e.flags,
                    errno: e.errno,
                    denied: e.denied,
                    duration_ns: e.duration_ns as f64,
                    bytes: e.bytes.map(|b| b as f64),
                    time: e.time_ms,
                })
                .collect(),
            dropped_events: o.dropped_events as f64,
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
