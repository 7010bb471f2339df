//! A LISAFS backend answered elsewhere: another thread, another runtime
//! (the napi binding uses it to let JavaScript implement a filesystem).
//!
//! [`RemoteConnection`], [`RemoteControl`], [`RemoteOpen`] and
//! [`RemoteBound`] implement the server core's backend traits by turning
//! every call into a [`Call`] `(call id, op, handle, args)` for ONE
//! [`Dispatcher`]. The server thread then blocks on a per-call slot (a
//! one-shot channel) until someone settles the call with
//! [`Bridge::complete`] or [`Bridge::fail`]. Only the server thread
//! blocks, and with it the core's lock for the operation's concurrency
//! guarantee stays held, as the backend traits require.
//!
//! # Reference model
//!
//! - **Handles**: the other side keeps a table `handle id -> object`; the
//!   Rust impls hold the id. Dropping one (the client closed the FD, the
//!   connection ended, a walk failed half-way) queues a fire-and-forget
//!   *release*. A reply naming a handle nobody waits for any more is
//!   released too, and a host FD in it is closed.
//! - **Outbox**: releases, rename notices ([`ControlFdImpl::renamed`]) and
//!   audit events (the bridge is a [`lisafs_audit::EventSink`]) are
//!   batched; the first release or notice after a drain asks the
//!   dispatcher once ([`Dispatcher::notify`]) to call [`Bridge::drain`].
//!   Audit events are not urgent: they wait up to [`EVENT_DELAY`] for
//!   company (or until [`EVENT_BATCH`] pile up), so an observed server
//!   with one request in flight wakes the other side about every few
//!   milliseconds rather than once per operation.
//! - **Every call ends**: a call settles with its reply, its errno, or EIO
//!   when the dispatcher refuses it, drops it undelivered, the reply is
//!   malformed, the timeout passes, or the bridge is aborted. An aborted
//!   bridge fails every later call at once.
//! - **Concurrency**: each operation runs under the guarantee the server
//!   core gives the backend op it implements (see `lisafs_server::backend`);
//!   the bridge adds only short internal locks (the pending-call table, the
//!   outbox, the dispatcher slot), never held while waiting.
//!
//! This crate only marshals: no protocol rule lives here (the core enforces
//! them), and defaults for what a backend lacks belong to the other side.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use lisafs_audit::{Event, EventSink};
use lisafs_server::{
    BoundSocketFdImpl, ConnectionImpl, ControlFdImpl, Errno, FsResult, NewControl, NewOpen,
    OpenFdImpl, SetStatResult,
};
use lisafs_wire::{self as w, Gid, Mid, SetStatReq, StringArray, Uid};

/// Events kept while nobody drained them; later ones are counted and
/// dropped.
pub const EVENT_CAP: usize = 1 << 16;
/// How long audit events may wait in the outbox before the dispatcher is
/// asked to drain them. Waking another thread costs tens of µs on small
/// VMs, more than most operations, so observing must not do it per event.
pub const EVENT_DELAY: Duration = Duration::from_millis(5);
/// Queued events that make a drain worth asking for at once.
pub const EVENT_BATCH: usize = 512;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where calls go. Implementations only queue: they are called on server
/// threads (and, for `notify`, wherever an FD is dropped) and must not
/// wait for the call to be settled.
pub trait Dispatcher: Send + Sync + 'static {
    /// Queues `call`. Returns false if it cannot be queued (the other side
    /// is closing); the call then fails with EIO. Dropping the call without
    /// [`Call::deliver`]ing it fails it with EIO too.
    fn call(&self, call: Call) -> bool;

    /// Asks the other side to call [`Bridge::drain`] soon. Returns false if
    /// it cannot; the next outbox item asks again.
    fn notify(&self) -> bool;
}

/// Arguments of one call; which fields are set depends on the operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub name: Option<Vec<u8>>,
    pub new_name: Option<Vec<u8>>,
    pub target: Option<Vec<u8>>,
    pub data: Option<Vec<u8>>,
    pub path: Option<Vec<Vec<u8>>>,
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
    pub offset: Option<u64>,
    pub length: Option<u64>,
    pub size: Option<u64>,
    pub seek0: Option<bool>,
    pub set_stat: Option<SetStatReq>,
}

/// Forgets a pending call, failing its waiter with EIO.
trait Forget: Send + Sync {
    fn forget(&self, id: u32);
}

/// One backend call on its way to the other side. Until it is delivered,
/// dropping it fails the waiting server thread with EIO.
pub struct Call {
    id: u32,
    op: &'static str,
    handle: u32,
    args: Option<Box<Args>>,
    pending: Option<Weak<dyn Forget>>,
}

impl Call {
    /// The id to settle the call with.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The operation (`"walk"`, `"open"`, `"write"`...).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The handle it operates on (0 for `mount`).
    pub fn handle(&self) -> u32 {
        self.handle
    }

    pub fn args(&self) -> Option<&Args> {
        self.args.as_deref()
    }

    /// Takes the call apart once it reaches whoever settles it: from here
    /// on only a reply, a failure, the timeout or an abort ends it.
    pub fn deliver(mut self) -> (u32, &'static str, u32, Option<Box<Args>>) {
        self.pending = None;
        (self.id, self.op, self.handle, self.args.take())
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take().and_then(|w| w.upgrade()) {
            p.forget(self.id);
        }
    }
}

/// An owned directory entry of a reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dirent {
    pub ino: u64,
    pub off: u64,
    pub ty: u8,
    pub dev_minor: u32,
    pub dev_major: u32,
    pub name: Vec<u8>,
}

/// A conversion result: the message names what is wrong with a reply.
pub type Conv<T> = Result<T, String>;

/// What a call produced, as the other side represents it. The bridge reads
/// only what the operation needs, so a field it does not need may be
/// malformed; `None` means absent. Handles and host FDs named here pass to
/// the server. Every method is called on the thread that called
/// [`Bridge::complete`], at most once per reply, while no bridge lock is
/// held.
pub trait Reply {
    /// A new control FD's handle (or the open FD's, for `open`).
    fn handle(&self) -> Option<u32>;
    /// The open FD's handle of `openCreate`.
    fn open(&self) -> Option<u32>;
    /// The bound socket's handle of `bindAt`.
    fn socket(&self) -> Option<u32>;
    /// A host FD whose ownership passes to the server (`connect`,
    /// `bindAt`, `accept`); any value is checked before it is adopted.
    fn fd(&self) -> Option<RawFd>;
    /// The new file's stat (walk, create...) or the file's (stat, fstat).
    fn stat(&self) -> Option<Conv<w::Statx>>;
    /// WalkStat's stats, one per component walked.
    fn stats(&self) -> Option<Conv<Vec<w::Statx>>>;
    fn stat_fs(&self) -> Option<Conv<w::StatFs>>;
    /// Bytes read, the link target, an xattr value, or accept's peer
    /// address.
    fn data(&self) -> Option<Vec<u8>>;
    /// Bytes written (a JavaScript number: checked to be a whole,
    /// non-negative value).
    fn count(&self) -> Option<f64>;
    fn dirents(&self) -> Option<Conv<Vec<Dirent>>>;
    /// ListXattr's names.
    fn names(&self) -> Option<Vec<Vec<u8>>>;
    /// SetStat: the mask bits that were not applied (absent: 0)...
    fn failure_mask(&self) -> Option<u32>;
    /// ...and why (absent or 0: no error).
    fn failure_errno(&self) -> Option<u32>;
}

/// A [`Reply`] in plain Rust values.
#[derive(Clone, Debug, Default)]
pub struct PlainReply {
    pub handle: Option<u32>,
    pub open: Option<u32>,
    pub socket: Option<u32>,
    pub fd: Option<RawFd>,
    pub stat: Option<w::Statx>,
    pub stats: Option<Vec<w::Statx>>,
    pub stat_fs: Option<w::StatFs>,
    pub data: Option<Vec<u8>>,
    /// Passed on as an `f64` (exact up to 2^53, far above any write).
    pub count: Option<u64>,
    pub dirents: Option<Vec<Dirent>>,
    pub names: Option<Vec<Vec<u8>>>,
    pub failure_mask: Option<u32>,
    pub failure_errno: Option<u32>,
}

impl Reply for PlainReply {
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
        self.stat.map(Ok)
    }
    fn stats(&self) -> Option<Conv<Vec<w::Statx>>> {
        self.stats.clone().map(Ok)
    }
    fn stat_fs(&self) -> Option<Conv<w::StatFs>> {
        self.stat_fs.map(Ok)
    }
    fn data(&self) -> Option<Vec<u8>> {
        self.data.clone()
    }
    fn count(&self) -> Option<f64> {
        self.count.map(|n| n as f64)
    }
    fn dirents(&self) -> Option<Conv<Vec<Dirent>>> {
        self.dirents.clone().map(Ok)
    }
    fn names(&self) -> Option<Vec<Vec<u8>>> {
        self.names.clone()
    }
    fn failure_mask(&self) -> Option<u32> {
        self.failure_mask
    }
    fn failure_errno(&self) -> Option<u32> {
        self.failure_errno
    }
}

/// Everything queued since the last drain.
#[derive(Debug, Default)]
pub struct Drained {
    /// Handles the server no longer holds.
    pub releases: Vec<u32>,
    /// Handles whose file (or an ancestor) was renamed.
    pub renamed: Vec<u32>,
    /// Audit events, oldest first.
    pub events: Vec<Event>,
    /// Events dropped because the queue was full.
    pub dropped_events: u64,
}

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

enum Outcome<D: Dispatcher> {
    Unit,
    Control(Handle<D>, w::Statx),
    ControlOpen(Handle<D>, w::Statx, Handle<D>),
    Open(Handle<D>),
    Stat(w::Statx),
    Stats(Vec<w::Statx>),
    StatFs(w::StatFs),
    Data(Vec<u8>),
    Count(u64),
    Dirents(Vec<Dirent>),
    Names(Vec<Vec<u8>>),
    SetStat(SetStatResult),
    Fd(OwnedFd),
    ControlBound(Handle<D>, w::Statx, Handle<D>, OwnedFd),
    Accepted(OwnedFd, Vec<u8>),
}

struct Pending<D: Dispatcher> {
    kind: Kind,
    tx: SyncSender<FsResult<Outcome<D>>>,
}

struct PendingMap<D: Dispatcher>(Mutex<HashMap<u32, Pending<D>>>);

impl<D: Dispatcher> Forget for PendingMap<D> {
    fn forget(&self, id: u32) {
        // Dropping the sender wakes the waiter with an error: EIO.
        drop(lock(&self.0).remove(&id));
    }
}

#[derive(Default)]
struct Outbox {
    releases: Vec<u32>,
    renamed: Vec<u32>,
    events: Vec<Event>,
    dropped: u64,
    /// A notice is queued and not yet answered by `drain()`.
    scheduled: bool,
    /// The flusher was told to ask for a drain after [`EVENT_DELAY`].
    deferred: bool,
}

/// The shared state of one remote backend: the dispatcher, the calls in
/// flight and the outbox.
pub struct Bridge<D: Dispatcher> {
    dispatcher: RwLock<Option<D>>,
    pending: Arc<PendingMap<D>>,
    next_call: AtomicU32,
    aborted: AtomicBool,
    outbox: Mutex<Outbox>,
    dropped_total: AtomicU64,
    timeout: Option<Duration>,
    /// Wakes the flusher thread (started with the first deferred event);
    /// dropping the bridge drops it, which ends the thread.
    flusher: Mutex<Option<SyncSender<()>>>,
    me: Weak<Self>,
}

impl<D: Dispatcher> Bridge<D> {
    /// A bridge to `dispatcher`. With a `timeout`, a call not settled that
    /// long after it was queued fails with EIO.
    pub fn new(dispatcher: D, timeout: Option<Duration>) -> Arc<Self> {
        Arc::new_cyclic(|me| Bridge {
            dispatcher: RwLock::new(Some(dispatcher)),
            pending: Arc::new(PendingMap(Mutex::new(HashMap::new()))),
            next_call: AtomicU32::new(1),
            aborted: AtomicBool::new(false),
            outbox: Mutex::new(Outbox::default()),
            dropped_total: AtomicU64::new(0),
            timeout,
            flusher: Mutex::new(None),
            me: me.clone(),
        })
    }

    /// The backend to serve: a [`ConnectionImpl`] whose every operation is
    /// a call through this bridge. A `max_message_size` below 4096 (or
    /// none) means the protocol's default.
    pub fn connection(self: &Arc<Self>, max_message_size: Option<u32>) -> RemoteConnection<D> {
        RemoteConnection {
            bridge: Arc::clone(self),
            max_message_size: max_message_size
                .filter(|&m| m >= 4096)
                .unwrap_or(w::DEFAULT_MAX_MESSAGE_SIZE),
        }
    }

    /// Runs `f` on the dispatcher unless the bridge was aborted (which
    /// drops it).
    pub fn with_dispatcher<R>(&self, f: impl FnOnce(&mut D) -> R) -> Option<R> {
        self.dispatcher
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .map(f)
    }

    /// Calls the dispatcher and blocks this (server) thread until the call
    /// is settled, the bridge is aborted, or the timeout passes.
    fn call(
        &self,
        op: &'static str,
        handle: u32,
        args: Option<Args>,
        kind: Kind,
    ) -> FsResult<Outcome<D>> {
        if self.aborted.load(Ordering::Acquire) {
            return Err(Errno::EIO);
        }
        let (tx, rx) = sync_channel(1);
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending.0).insert(id, Pending { kind, tx });
        // An abort between the check above and the insert drained the map
        // without this call: see it now rather than wait forever.
        if self.aborted.load(Ordering::Acquire) {
            lock(&self.pending.0).remove(&id);
            return Err(Errno::EIO);
        }
        let forget: Arc<dyn Forget> = self.pending.clone();
        let call = Call {
            id,
            op,
            handle,
            args: args.map(Box::new),
            pending: Some(Arc::downgrade(&forget)),
        };
        let queued = match &*self.dispatcher.read().unwrap_or_else(|e| e.into_inner()) {
            Some(d) => d.call(call),
            None => false,
        };
        if !queued {
            lock(&self.pending.0).remove(&id);
            return Err(Errno::EIO);
        }
        let got = match self.timeout {
            None => rx.recv().ok(),
            Some(t) => rx.recv_timeout(t).ok(),
        };
        match got {
            Some(r) => r,
            None => {
                lock(&self.pending.0).remove(&id);
                // Settled just as the wait timed out: take it, so handles
                // and FDs in it are owned (and released) by this side.
                rx.try_recv().unwrap_or(Err(Errno::EIO))
            }
        }
    }

    /// Fails every call in flight with EIO and every later call at once;
    /// drops the dispatcher. Idempotent.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        let drained: Vec<Pending<D>> = lock(&self.pending.0).drain().map(|(_, p)| p).collect();
        // Dropping a sender wakes its receiver with an error: EIO.
        drop(drained);
        let d = self
            .dispatcher
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(d);
    }

    /// Runs `f` (a service's close, which waits for requests in flight);
    /// if it has not returned after `grace`, aborts the bridge so that calls
    /// nobody settles cannot hang it. Aborts the bridge in the end either
    /// way.
    pub fn close_within(&self, grace: Duration, f: impl FnOnce()) {
        let done = (Mutex::new(false), Condvar::new());
        std::thread::scope(|scope| {
            let watchdog = std::thread::Builder::new()
                .name("lisafs-close-grace".into())
                .spawn_scoped(scope, || {
                    let (m, cv) = &done;
                    let g = cv
                        .wait_timeout_while(lock(m), grace, |d| !*d)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                    if !*g {
                        drop(g);
                        self.abort();
                    }
                });
            // Without a watchdog, the final abort below still runs.
            drop(watchdog);
            f();
            *lock(&done.0) = true;
            done.1.notify_all();
        });
        self.abort();
    }

    /// Settles call `call_id` with `reply`. `Ok(false)` if the call is no
    /// longer waiting (timed out, or the bridge was aborted); handles and
    /// FDs in `reply` are released either way. `Err` (after failing the
    /// call with EIO) if `reply` lacks what the operation needs.
    pub fn complete(self: &Arc<Self>, call_id: u32, reply: &impl Reply) -> Result<bool, String> {
        let Some(p) = lock(&self.pending.0).remove(&call_id) else {
            // Nobody waits: adopt what it carries, so that it is released.
            for id in [reply.handle(), reply.open(), reply.socket()]
                .into_iter()
                .flatten()
            {
                self.release(id);
            }
            if let Some(fd) = reply.fd().filter(|&fd| fd >= 0) {
                // SAFETY: the other side hands this descriptor over (the
                // `Reply::fd` contract).
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            return Ok(false);
        };
        match convert(p.kind, reply, self) {
            Ok(outcome) => Ok(p.tx.send(Ok(outcome)).is_ok()),
            Err(msg) => {
                let _ = p.tx.send(Err(Errno::EIO));
                Err(msg)
            }
        }
    }

    /// Fails call `call_id` with `errno` (0 or out of range: EIO). False if
    /// the call is no longer waiting.
    pub fn fail(&self, call_id: u32, errno: u32) -> bool {
        let errno = if errno == 0 || errno > 4095 {
            Errno::EIO
        } else {
            Errno(errno)
        };
        match lock(&self.pending.0).remove(&call_id) {
            Some(p) => p.tx.send(Err(errno)).is_ok(),
            None => false,
        }
    }

    /// Takes everything queued since the last drain.
    pub fn drain(&self) -> Drained {
        let o = {
            let mut o = lock(&self.outbox);
            o.scheduled = false;
            std::mem::take(&mut *o)
        };
        self.dropped_total.fetch_add(o.dropped, Ordering::Relaxed);
        Drained {
            releases: o.releases,
            renamed: o.renamed,
            events: o.events,
            dropped_events: o.dropped,
        }
    }

    /// Calls waiting to be settled.
    pub fn pending_calls(&self) -> usize {
        lock(&self.pending.0).len()
    }

    /// Events dropped (over all drains) because nobody drained them in
    /// time.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Adds to the outbox and makes sure a notice is queued.
    fn post(&self, f: impl FnOnce(&mut Outbox)) {
        let schedule = {
            let mut o = lock(&self.outbox);
            f(&mut o);
            !std::mem::replace(&mut o.scheduled, true)
        };
        if schedule {
            self.send_notice();
        }
    }

    /// Asks the dispatcher for a drain; the caller set `scheduled`.
    fn send_notice(&self) {
        let sent = match &*self.dispatcher.read().unwrap_or_else(|e| e.into_inner()) {
            Some(d) => d.notify(),
            None => false,
        };
        if !sent {
            lock(&self.outbox).scheduled = false;
        }
    }

    /// Has the flusher ask for a drain after [`EVENT_DELAY`], starting it
    /// on first use. If no thread can be started, asks at once.
    fn defer_notice(&self) {
        let mut slot = lock(&self.flusher);
        if let Some(tx) = slot.as_ref() {
            // Full means a wake-up is already queued, which serves as well;
            // the thread outlives every `&self`, so it is still listening.
            let _ = tx.try_send(());
            return;
        }
        let (tx, rx) = sync_channel::<()>(1);
        let me = self.me.clone();
        let started = std::thread::Builder::new()
            .name("lisafs-events".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    std::thread::sleep(EVENT_DELAY);
                    let Some(bridge) = me.upgrade() else { return };
                    bridge.flush_deferred();
                }
            });
        match started {
            Ok(_) => {
                let _ = tx.try_send(());
                *slot = Some(tx);
            }
            Err(_) => {
                drop(slot);
                self.flush_deferred();
            }
        }
    }

    /// Ends a deferral: asks for a drain if events are still waiting.
    fn flush_deferred(&self) {
        let schedule = {
            let mut o = lock(&self.outbox);
            o.deferred = false;
            !o.events.is_empty() && !std::mem::replace(&mut o.scheduled, true)
        };
        if schedule {
            self.send_notice();
        }
    }

    fn release(&self, id: u32) {
        self.post(|o| o.releases.push(id));
    }

    fn call_control(&self, op: &'static str, h: u32, args: Option<Args>) -> FsResult<NewControl> {
        match self.call(op, h, args, Kind::Control)? {
            Outcome::Control(handle, stat) => Ok(NewControl {
                imp: Box::new(RemoteControl { h: handle }),
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

/// Audit events travel in the outbox: recording one costs the server
/// thread a lock and a push, never a round trip.
impl<D: Dispatcher> EventSink for Bridge<D> {
    fn record(&self, event: Event) {
        enum Then {
            Nothing,
            Notify,
            Defer,
        }
        let then = {
            let mut o = lock(&self.outbox);
            if o.events.len() < EVENT_CAP {
                o.events.push(event);
            } else {
                o.dropped += 1;
            }
            if o.scheduled {
                // A drain is already on its way and will take this too.
                Then::Nothing
            } else if o.events.len() >= EVENT_BATCH {
                o.scheduled = true;
                Then::Notify
            } else if !std::mem::replace(&mut o.deferred, true) {
                Then::Defer
            } else {
                Then::Nothing
            }
        };
        match then {
            Then::Nothing => {}
            Then::Notify => self.send_notice(),
            Then::Defer => self.defer_notice(),
        }
    }
}

/// A remote handle owned by the server: dropping it releases the remote
/// object.
struct Handle<D: Dispatcher> {
    id: u32,
    bridge: Arc<Bridge<D>>,
}

impl<D: Dispatcher> Drop for Handle<D> {
    fn drop(&mut self) {
        self.bridge.release(self.id);
    }
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

/// Converts a reply into what the waiting server thread expects. Handles
/// and FDs are adopted first, so that a malformed reply still releases
/// them.
fn convert<D: Dispatcher>(kind: Kind, r: &impl Reply, bridge: &Arc<Bridge<D>>) -> Conv<Outcome<D>> {
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
    let handle = if wants_handle {
        adopt(r.handle())
    } else {
        None
    };
    let open = if matches!(kind, Kind::ControlOpen) {
        adopt(r.open())
    } else {
        None
    };
    let socket = if matches!(kind, Kind::ControlBound) {
        adopt(r.socket())
    } else {
        None
    };
    let fd = match r.fd() {
        Some(fd) if wants_fd => {
            if fd < 0 {
                return Err("fd must be a non-negative file descriptor".into());
            }
            // SAFETY: the other side hands this descriptor over (the
            // `Reply::fd` contract); from here on the server is its only
            // owner.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        _ => None,
    };
    let stat = || -> Conv<w::Statx> { need(r.stat(), "stat", kind)? };
    Ok(match kind {
        Kind::Unit => Outcome::Unit,
        Kind::Control => {
            let s = stat()?;
            Outcome::Control(need(handle, "handle", kind)?, s)
        }
        Kind::ControlOpen => {
            let s = stat()?;
            Outcome::ControlOpen(need(handle, "handle", kind)?, s, need(open, "open", kind)?)
        }
        Kind::Open => Outcome::Open(need(handle, "handle", kind)?),
        Kind::Stat => Outcome::Stat(stat()?),
        Kind::Stats => Outcome::Stats(need(r.stats(), "stats", kind)??),
        Kind::StatFs => Outcome::StatFs(need(r.stat_fs(), "statFs", kind)??),
        Kind::Data => Outcome::Data(need(r.data(), "data", kind)?),
        Kind::Count => {
            let n = need(r.count(), "count", kind)?;
            if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0) {
                return Err("count must be a non-negative integer".into());
            }
            Outcome::Count(n as u64)
        }
        Kind::Dirents => Outcome::Dirents(need(r.dirents(), "dirents", kind)??),
        Kind::Names => Outcome::Names(need(r.names(), "names", kind)?),
        Kind::SetStat => Outcome::SetStat(SetStatResult {
            failure_mask: r.failure_mask().unwrap_or(0),
            failure_errno: r.failure_errno().filter(|&e| e != 0).map(Errno),
        }),
        Kind::Fd => Outcome::Fd(need(fd, "fd", kind)?),
        Kind::ControlBound => {
            let s = stat()?;
            Outcome::ControlBound(
                need(handle, "handle", kind)?,
                s,
                need(socket, "socket", kind)?,
                need(fd, "fd", kind)?,
            )
        }
        Kind::Accepted => Outcome::Accepted(need(fd, "fd", kind)?, r.data().unwrap_or_default()),
    })
}

/// The mount of a remote backend (made by [`Bridge::connection`]).
pub struct RemoteConnection<D: Dispatcher> {
    bridge: Arc<Bridge<D>>,
    max_message_size: u32,
}

impl<D: Dispatcher> ConnectionImpl for RemoteConnection<D> {
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)> {
        Ok((self.bridge.call_control("mount", 0, None)?, None))
    }

    /// Every standard message: the other side answers ENOSYS for what it
    /// lacks.
    fn supported_messages(&self) -> &[Mid] {
        Mid::REQUESTS
    }

    fn max_message_size(&self) -> u32 {
        self.max_message_size
    }
}

/// A control FD of a remote backend: the id of its remote object.
pub struct RemoteControl<D: Dispatcher> {
    h: Handle<D>,
}

/// An open FD of a remote backend.
pub struct RemoteOpen<D: Dispatcher> {
    h: Handle<D>,
}

/// A bound socket of a remote backend.
pub struct RemoteBound<D: Dispatcher> {
    h: Handle<D>,
}

fn remote_control<D: Dispatcher>(imp: &dyn ControlFdImpl) -> FsResult<&RemoteControl<D>> {
    (imp as &dyn Any)
        .downcast_ref::<RemoteControl<D>>()
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

impl<D: Dispatcher> RemoteControl<D> {
    fn b(&self) -> &Bridge<D> {
        &self.h.bridge
    }
    fn id(&self) -> u32 {
        self.h.id
    }
}

impl<D: Dispatcher> ControlFdImpl for RemoteControl<D> {
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
                imp: Box::new(RemoteOpen { h }),
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
                    imp: Box::new(RemoteControl { h }),
                    stat,
                },
                NewOpen {
                    imp: Box::new(RemoteOpen { h: o }),
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
        let dir = remote_control::<D>(dir)?;
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
                    imp: Box::new(RemoteControl { h }),
                    stat,
                },
                Box::new(RemoteBound { h: s }),
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
        let new_dir = remote_control::<D>(new_dir)?;
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

impl<D: Dispatcher> OpenFdImpl for RemoteOpen<D> {
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

impl<D: Dispatcher> BoundSocketFdImpl for RemoteBound<D> {
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
