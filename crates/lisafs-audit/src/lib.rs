//! An audit and policy layer for any LISAFS backend.
//!
//! [`AuditConnection`] wraps any [`ConnectionImpl`] (a host directory, a
//! JavaScript backend through `lisafs-bridge`, anything else). It tracks
//! each FD's server-side path, checks a declarative [`Policy`] before the
//! inner backend runs, charges PWrite to an optional quota, and hands one
//! [`Event`] per operation to an [`EventSink`].
//!
//! # Reference model
//!
//! - **Paths** are best effort: the root is `/`, every walk or create joins
//!   the name to its directory's path, and a rename rewrites the paths of
//!   every FD at or below the renamed file (and, for `RENAME_EXCHANGE`,
//!   below the other one). Paths are bytes; nothing requires UTF-8.
//! - **Prefixes match whole components**: a rule on `/a` covers `/a` and
//!   `/a/x`, never `/ab`. `/` covers everything.
//! - **Policy order** for one operation of class `c` on path `p`, first
//!   match wins:
//!   1. a *mutating* operation under a read-only subtree fails with EROFS;
//!   2. the rule with the longest prefix covering `p` whose class bits
//!      include `c` decides (at equal length, deny wins): deny = EACCES;
//!   3. otherwise `default_deny` decides (EACCES) or the operation runs.
//! - **Subtree guard**: unlink and rename also refuse to remove or move a
//!   path that *contains* a read-only subtree (EROFS) or a deny rule's
//!   prefix (EACCES), so a protected subtree cannot be moved out from under
//!   its rule.
//! - **Quota**: PWrite reserves its full length before the backend runs and
//!   refunds what was not written; a write that would pass the quota fails
//!   with EDQUOT and the backend never sees it. Host FDs of writable opens
//!   are not donated while a quota is set (a donated FD would bypass it).
//! - **Refusals never reach the backend**: a denied operation is recorded
//!   with `denied: true` and its errno, and the inner backend does not run.
//! - **Concurrency**: each wrapped operation runs under exactly the
//!   guarantee the server core gives the inner one (the core's node locks
//!   are taken before the wrapper is called, and the wrapper calls the
//!   inner backend on the same thread, once). The wrapper adds only short
//!   internal locks: a per-path cell, the quota counter (lock-free), and the
//!   last-rename note, which is written by `rename_at` and read by
//!   `renamed` under the core's exclusive rename lock.
//! - **Events** are handed to the sink on the server thread after the
//!   operation (or its refusal); a sink must not block for long.

use std::any::Any;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lisafs_server::{
    BoundSocketFdImpl, ConnectionImpl, ControlFdImpl, Errno, FsResult, NewControl, NewOpen,
    OpenFdImpl, SetStatResult,
};
use lisafs_wire::{self as w, Gid, Mid, SetStatReq, StringArray, Uid};

const O_ACCMODE: u32 = 3;
const O_TRUNC: u32 = 0o1000;
const RENAME_EXCHANGE: u32 = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Operation classes of the policy; the discriminant is the class's bit in
/// [`Rule::classes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Read = 1,
    Write = 2,
    Create = 4,
    Delete = 8,
    Xattr = 16,
    Socket = 32,
}

impl Class {
    /// The class's name as events report it (`"read"`, `"write"`...).
    pub fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Create => "create",
            Class::Delete => "delete",
            Class::Xattr => "xattr",
            Class::Socket => "socket",
        }
    }

    /// The class's bit in [`Rule::classes`].
    pub fn bit(self) -> u32 {
        self as u32
    }
}

/// One allow/deny rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// A normalized absolute path (`/`, `/a/b`: no trailing slash, no `.`
    /// or `..`, no doubled slashes); the rule covers it and everything
    /// below it.
    pub prefix: Vec<u8>,
    /// The [`Class`] bits the rule applies to.
    pub classes: u32,
    pub allow: bool,
}

/// A compiled policy (see the crate documentation for its semantics).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Longest prefix first; at equal length, deny first.
    rules: Vec<Rule>,
    read_only: Vec<Vec<u8>>,
    default_deny: bool,
}

/// Whether `path` is `prefix` or below it (component-wise).
pub fn under(path: &[u8], prefix: &[u8]) -> bool {
    prefix == b"/"
        || (path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/'))
}

impl Policy {
    /// Compiles `rules` (in any order), the read-only subtrees (normalized
    /// paths, as rule prefixes) and the fallback for paths no rule covers.
    pub fn new(mut rules: Vec<Rule>, read_only: Vec<Vec<u8>>, default_deny: bool) -> Self {
        rules.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.allow.cmp(&b.allow))
        });
        Policy {
            rules,
            read_only,
            default_deny,
        }
    }

    /// May an operation of `class` (which changes something if `mutating`)
    /// run on `path`? EROFS or EACCES if not.
    pub fn check(&self, class: Class, mutating: bool, path: &[u8]) -> FsResult<()> {
        if mutating && self.read_only.iter().any(|p| under(path, p)) {
            return Err(Errno::EROFS);
        }
        for r in &self.rules {
            if r.classes & class.bit() != 0 && under(path, &r.prefix) {
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
    pub fn guard_subtree(&self, path: &[u8]) -> FsResult<()> {
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

/// One audited operation.
#[derive(Clone, Debug)]
pub struct Event {
    /// The backend operation (`"walk"`, `"open"`, `"write"`...).
    pub op: &'static str,
    pub class: Class,
    /// The connection (numbered per Mount, from 1).
    pub connection: u32,
    /// The server-side path operated on (best effort).
    pub path: Arc<[u8]>,
    /// The second path of `renameAt` (destination) and `link` (new name).
    pub new_path: Option<Arc<[u8]>>,
    /// Operation-specific flags (open flags, create mode, unlink, rename and
    /// xattr flags, the SetStat mask, the fallocate mode).
    pub flags: u32,
    /// 0 on success, else the errno answered.
    pub errno: u32,
    /// Whether the policy refused the operation (the backend never ran).
    pub denied: bool,
    /// Time spent in the backend.
    pub duration_ns: u64,
    /// Bytes read or written, for `read` and `write`.
    pub bytes: Option<u64>,
    /// When the operation ended, in milliseconds since the epoch.
    pub time_ms: f64,
}

/// Where events go. Called on server threads, possibly concurrently, once
/// per operation after it ran (or was refused); it must not block for long
/// (batch, do not round-trip).
pub trait EventSink: Send + Sync + 'static {
    fn record(&self, event: Event);
}

/// How to audit a backend.
#[derive(Default)]
pub struct AuditOptions {
    /// Refuse operations it does not allow; `None` allows everything.
    pub policy: Option<Policy>,
    /// Fail PWrite with EDQUOT once this many bytes were written in total
    /// (over every connection).
    pub write_quota: Option<u64>,
    /// Pass on host FDs the inner backend donates (the mount FD, opened
    /// files). Writable opens are never donated while a quota is set.
    pub donate_fds: bool,
    /// Receives one event per operation; `None` records nothing.
    pub sink: Option<Arc<dyn EventSink>>,
}

type PathCell = Arc<Mutex<Arc<[u8]>>>;

/// A rename just applied: old path, new path, whether it was an exchange.
type RenameNote = (Arc<[u8]>, Arc<[u8]>, bool);

struct AuditShared {
    sink: Option<Arc<dyn EventSink>>,
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

impl<'a> Ev<'a> {
    /// An event on one path (no rename target).
    fn at(op: &'static str, class: Class, conn: u32, path: &'a Arc<[u8]>, flags: u32) -> Self {
        Ev {
            op,
            class,
            conn,
            path,
            new_path: None,
            flags,
        }
    }
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
        let Some(sink) = &self.sink else {
            return;
        };
        sink.record(Event {
            op: ev.op,
            class: ev.class,
            connection: ev.conn,
            path: Arc::clone(ev.path),
            new_path: ev.new_path.map(Arc::clone),
            flags: ev.flags,
            errno,
            denied,
            duration_ns: u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            bytes,
            time_ms: now_ms(),
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
        if self.sink.is_none() {
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
pub struct AuditConnection {
    inner: Arc<dyn ConnectionImpl>,
    s: Arc<AuditShared>,
}

impl AuditConnection {
    /// Wraps `inner`. Every connection mounted through the wrapper shares
    /// the policy, the quota and the sink.
    pub fn new(inner: Arc<dyn ConnectionImpl>, opts: AuditOptions) -> Self {
        let quota = opts.write_quota;
        AuditConnection {
            inner,
            s: Arc::new(AuditShared {
                sink: opts.sink,
                policy: opts.policy,
                quota,
                written: AtomicU64::new(0),
                donate: opts.donate_fds,
                // PWrite is the only write path the quota sees.
                donate_writable: opts.donate_fds && quota.is_none(),
                next_conn: AtomicU32::new(1),
                last_rename: Mutex::new(None),
            }),
        }
    }

    /// Bytes written through PWrite (and charged to the quota, if any).
    pub fn bytes_written(&self) -> u64 {
        self.s.written.load(Ordering::Relaxed)
    }
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
        let ev = Ev::at("mount", Class::Read, conn, &root, 0);
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
        Ev::at(op, class, self.conn, path, flags)
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
        Ev::at(op, class, self.conn, path, flags)
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
        let ev = Ev::at("listen", Class::Socket, self.conn, &p, 0);
        self.s
            .run(ev, allowed, || self.inner.listen(backlog), |_| None)
    }

    fn accept(&self) -> FsResult<(OwnedFd, Vec<u8>)> {
        let p = Arc::clone(&lock(&self.path));
        let allowed = self.s.check(Class::Socket, false, &p);
        let ev = Ev::at("accept", Class::Socket, self.conn, &p, 0);
        self.s.run(ev, allowed, || self.inner.accept(), |_| None)
    }
}
