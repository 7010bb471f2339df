//! Eight connections hammering one shared tree (walks, creates, writes,
//! renames across subtrees and RENAME_EXCHANGE, unlinks, getdents) for a
//! bounded time, watched by a deadlock watchdog; then consistency checks
//! from outside and a full release. Also: a backend that panics.

mod support;

use std::any::Any;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use lisafs_client::{Client, Error, FdId, Gid, Uid, WalkStatus};
use lisafs_server::{
    BoundSocketFdImpl, ConnectionImpl, ConnectionOpts, ControlFdImpl, FsResult, NewControl,
    NewOpen, Service, SetStatResult, Stats,
};
use lisafs_wire::{Mid, SetStatReq, StatFs, Statx, StringArray};
use support::*;

const WORKERS: usize = 8;
const RUN_FOR: Duration = Duration::from_secs(5);
const MAX_RUN: Duration = Duration::from_secs(15);
const MIN_OPS: u64 = 8_000;
const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Walking this name makes the backend panic.
const PANIC_NAME: &[u8] = b"__panic__";
const PANIC_MARKER: &str = "deliberate backend panic";

// ---------------------------------------------------------------------------
// A backend whose walk panics on one name

struct PanicFs(lisafs_host::HostFs);

struct PanicControl(Box<dyn ControlFdImpl>);

fn wrap(nc: NewControl) -> NewControl {
    NewControl {
        imp: Box::new(PanicControl(nc.imp)),
        stat: nc.stat,
    }
}

/// The backend's own FD behind a wrapped one.
fn inner(fd: &dyn ControlFdImpl) -> &dyn ControlFdImpl {
    let any: &dyn Any = fd;
    match any.downcast_ref::<PanicControl>() {
        Some(p) => &*p.0,
        None => fd,
    }
}

impl ConnectionImpl for PanicFs {
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)> {
        self.0.mount().map(|(nc, fd)| (wrap(nc), fd))
    }
    fn supported_messages(&self) -> &[Mid] {
        self.0.supported_messages()
    }
}

impl ControlFdImpl for PanicControl {
    fn stat(&self) -> FsResult<Statx> {
        self.0.stat()
    }
    fn set_stat(&self, req: &SetStatReq) -> SetStatResult {
        self.0.set_stat(req)
    }
    fn walk(&self, name: &[u8]) -> FsResult<NewControl> {
        if name == PANIC_NAME {
            panic!("{PANIC_MARKER}");
        }
        self.0.walk(name).map(wrap)
    }
    fn walk_stat(&self, path: StringArray<'_>, record: &mut dyn FnMut(Statx)) -> FsResult<()> {
        self.0.walk_stat(path, record)
    }
    fn open(&self, flags: u32) -> FsResult<NewOpen> {
        self.0.open(flags)
    }
    fn open_create(
        &self,
        mode: u16,
        uid: lisafs_wire::Uid,
        gid: lisafs_wire::Gid,
        name: &[u8],
        flags: u32,
    ) -> FsResult<(NewControl, NewOpen)> {
        self.0
            .open_create(mode, uid, gid, name, flags)
            .map(|(nc, no)| (wrap(nc), no))
    }
    fn mkdir(
        &self,
        mode: u16,
        uid: lisafs_wire::Uid,
        gid: lisafs_wire::Gid,
        name: &[u8],
    ) -> FsResult<NewControl> {
        self.0.mkdir(mode, uid, gid, name).map(wrap)
    }
    fn mknod(
        &self,
        mode: u16,
        uid: lisafs_wire::Uid,
        gid: lisafs_wire::Gid,
        name: &[u8],
        minor: u32,
        major: u32,
    ) -> FsResult<NewControl> {
        self.0.mknod(mode, uid, gid, name, minor, major).map(wrap)
    }
    fn symlink(
        &self,
        name: &[u8],
        target: &[u8],
        uid: lisafs_wire::Uid,
        gid: lisafs_wire::Gid,
    ) -> FsResult<NewControl> {
        self.0.symlink(name, target, uid, gid).map(wrap)
    }
    fn link(&self, dir: &dyn ControlFdImpl, name: &[u8]) -> FsResult<NewControl> {
        self.0.link(inner(dir), name).map(wrap)
    }
    fn stat_fs(&self) -> FsResult<StatFs> {
        self.0.stat_fs()
    }
    fn readlink(&self, out: &mut Vec<u8>) -> FsResult<()> {
        self.0.readlink(out)
    }
    fn connect(&self, sock_type: u32) -> FsResult<OwnedFd> {
        self.0.connect(sock_type)
    }
    fn connect_with_creds(
        &self,
        sock_type: u32,
        uid: lisafs_wire::Uid,
        gid: lisafs_wire::Gid,
    ) -> FsResult<OwnedFd> {
        self.0.connect_with_creds(sock_type, uid, gid)
    }
    fn bind_at(
        &self,
        name: &[u8],
        sock_type: u32,
        mode: u16,
        uid: lisafs_wire::Uid,
        gid: lisafs_wire::Gid,
    ) -> FsResult<(NewControl, Box<dyn BoundSocketFdImpl>, OwnedFd)> {
        self.0
            .bind_at(name, sock_type, mode, uid, gid)
            .map(|(nc, b, fd)| (wrap(nc), b, fd))
    }
    fn unlink(&self, name: &[u8], flags: u32) -> FsResult<()> {
        self.0.unlink(name, flags)
    }
    fn rename_at(
        &self,
        old_name: &[u8],
        new_dir: &dyn ControlFdImpl,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        self.0.rename_at(old_name, inner(new_dir), new_name, flags)
    }
    fn renamed(&self) {
        self.0.renamed()
    }
    fn get_xattr(&self, name: &[u8], size: u32, out: &mut Vec<u8>) -> FsResult<()> {
        self.0.get_xattr(name, size, out)
    }
    fn set_xattr(&self, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        self.0.set_xattr(name, value, flags)
    }
    fn list_xattr(&self, size: u64, out: &mut Vec<Vec<u8>>) -> FsResult<()> {
        self.0.list_xattr(size, out)
    }
    fn remove_xattr(&self, name: &[u8]) -> FsResult<()> {
        self.0.remove_xattr(name)
    }
}

fn panic_service(scratch: &Scratch) -> Service {
    Service::new(
        Arc::new(PanicFs(scratch.host_fs())),
        ConnectionOpts::host(false),
    )
}

fn connect(service: &Service) -> Client {
    let (c, s) = lisafs_transport::socket_pair().expect("socketpair");
    service.attach(s).expect("attach");
    Client::connect(c).expect("mount")
}

fn errno_of(e: &Error) -> Option<u32> {
    match e {
        Error::Errno(n) => Some(*n),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The panicking backend on its own

#[test]
fn backend_panic_is_eremoteio_logged_and_the_connection_carries_on() {
    record_panics();
    let scratch = Scratch::new("panic");
    std::fs::create_dir_all(scratch.path("dir/sub")).unwrap();
    std::fs::write(scratch.path("probe"), b"p").unwrap();
    let service = panic_service(&scratch);
    let c = connect(&service);
    let other = connect(&service);
    let root = c.root().control_fd;
    let logged_before = panics_with(PANIC_MARKER).len();
    let stats_before = service.stats();

    let r = c.walk(root, &[PANIC_NAME]);
    assert!(
        matches!(&r, Err(Error::Errno(EREMOTEIO))),
        "a panicking walk must be answered EREMOTEIO, got {r:?}"
    );
    // The panic went through the panic hook (which prints it).
    let logged = panics_with(PANIC_MARKER);
    assert!(
        logged.len() > logged_before,
        "the backend panic was not logged"
    );
    let (thread, _) = logged.last().unwrap();
    assert!(
        thread.starts_with("lisafs-conn"),
        "panic logged from thread {thread:?}"
    );

    // Same connection, next request.
    let (s, inodes) = c.walk(root, &[b"probe"]).expect("walk after the panic");
    assert_eq!((s, inodes.len()), (WalkStatus::Success, 1));
    c.close(&[inodes[0].control_fd]).unwrap();
    // Other connections never noticed.
    let (s, inodes) = other
        .walk(other.root().control_fd, &[b"probe"])
        .expect("walk on another connection");
    assert_eq!((s, inodes.len()), (WalkStatus::Success, 1));
    other.close(&[inodes[0].control_fd]).unwrap();
    assert_eq!(
        service.stats(),
        stats_before,
        "a panic before any FD was made leaves nothing behind"
    );

    // Many panics in a row do not wear anything out.
    for _ in 0..10 {
        assert!(matches!(
            c.walk(root, &[PANIC_NAME]),
            Err(Error::Errno(EREMOTEIO))
        ));
    }
    let (_, inodes) = c.walk(root, &[b"probe"]).expect("still serving");
    c.close(&[inodes[0].control_fd]).unwrap();
    assert_eq!(service.stats(), stats_before, "after 10 panics");

    // A panic in the middle of a walk: the FDs walked so far must not stay
    // registered (an Error reply has no lasting side effect), and they are
    // FDIDs the client never learnt, so it could not close them itself.
    let mut failures = Vec::new();
    let r = c.walk(root, &[b"dir", b"sub", PANIC_NAME]);
    if !matches!(&r, Err(Error::Errno(EREMOTEIO))) {
        failures.push(format!("walk dir/sub/{PANIC_MARKER}: got {r:?}"));
    }
    let after = service.stats();
    if after != stats_before {
        failures.push(format!(
            "a Walk whose backend panicked after two components left FDs or nodes \
             registered (invariant 6): {after:?}, want {stats_before:?}"
        ));
    }
    c.walk(root, &[b"probe"]).expect("still serving");
    drop(c);
    drop(other);
    if !wait_until(Duration::from_secs(10), || {
        service.stats() == Stats::default()
    }) {
        failures.push(format!("stats after disconnecting: {:?}", service.stats()));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// The stress run

const DIRS: [&str; 6] = ["a", "b", "c", "d", "x", "y"];
const FILES: [&str; 6] = ["f0", "f1", "f2", "f3", "f4", "f5"];
const ALLOWED: [u32; 7] = [ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, EINVAL, EBUSY];
const EBUSY: u32 = 16;

#[derive(Default)]
struct Tally {
    ops: BTreeMap<&'static str, (u64, u64)>,
    errnos: BTreeMap<String, u64>,
    failures: Vec<String>,
}

impl Tally {
    fn count(&mut self, op: &'static str, ok: bool) {
        let e = self.ops.entry(op).or_default();
        if ok {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
}

struct Shared {
    progress: AtomicU64,
    stop: AtomicBool,
    current: Vec<Mutex<String>>,
}

struct Worker<'a> {
    id: usize,
    c: Client,
    root: FdId,
    rng: Rng,
    /// Directory control FDs kept across operations; their nodes get renamed
    /// and deleted under them by the others.
    held: Vec<FdId>,
    tally: Tally,
    shared: &'a Shared,
    panics_left: u32,
}

impl Worker<'_> {
    fn set_current(&self, what: String) {
        *self.shared.current[self.id].lock().unwrap() = what;
    }

    /// Records an operation's result; errnos outside the expected set and
    /// every non-errno failure are failures.
    fn result<T>(&mut self, op: &'static str, what: &str, r: &Result<T, Error>) {
        match r {
            Ok(_) => self.tally.count(op, true),
            Err(e) => {
                self.tally.count(op, false);
                match errno_of(e) {
                    Some(n) if ALLOWED.contains(&n) => {
                        *self.tally.errnos.entry(ename(n)).or_default() += 1;
                    }
                    _ => {
                        if self.tally.failures.len() < 20 {
                            self.tally
                                .failures
                                .push(format!("worker {}: {what}: {e}", self.id));
                        }
                    }
                }
            }
        }
        self.shared.progress.fetch_add(1, Ordering::Relaxed);
    }

    fn name(&mut self) -> &'static str {
        if self.rng.chance(50) {
            DIRS[self.rng.index(DIRS.len())]
        } else {
            FILES[self.rng.index(FILES.len())]
        }
    }

    /// A directory to work in: the root, a held directory, or one walked
    /// to now (returned in `temp` for closing).
    fn dir(&mut self, temp: &mut Vec<FdId>) -> FdId {
        match self.rng.below(3) {
            0 => self.root,
            1 if !self.held.is_empty() => self.held[self.rng.index(self.held.len())],
            _ => {
                let depth = 1 + self.rng.index(2);
                let names: Vec<&[u8]> = (0..depth)
                    .map(|_| DIRS[self.rng.index(DIRS.len())].as_bytes())
                    .collect();
                match self.c.walk(self.root, &names) {
                    Ok((st, inodes)) => {
                        temp.extend(inodes.iter().map(|i| i.control_fd));
                        let dir_ok = st == WalkStatus::Success
                            && inodes
                                .last()
                                .is_some_and(|i| i.stat.mode & 0o170000 == 0o040000);
                        if dir_ok {
                            inodes.last().unwrap().control_fd
                        } else {
                            self.root
                        }
                    }
                    Err(_) => self.root,
                }
            }
        }
    }

    fn step(&mut self) {
        let mut temp = Vec::new();
        let pick = self.rng.below(100);
        match pick {
            0..=14 => {
                let depth = 1 + self.rng.index(3);
                let names: Vec<&str> = (0..depth).map(|_| self.name()).collect();
                let what = format!("walk {names:?}");
                self.set_current(what.clone());
                let bytes: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
                let r = self.c.walk(self.root, &bytes);
                if let Ok((_, inodes)) = &r {
                    temp.extend(inodes.iter().map(|i| i.control_fd));
                }
                self.result("walk", &what, &r);
            }
            15..=27 => {
                let dir = self.dir(&mut temp);
                let name = FILES[self.rng.index(FILES.len())];
                let what = format!("create {name} in FD {}", dir.0);
                self.set_current(what.clone());
                let r = self.c.open_create_at(
                    dir,
                    name.as_bytes(),
                    0o644,
                    Uid::NONE,
                    Gid::NONE,
                    O_RDWR,
                );
                if let Ok((inode, open, _donated)) = &r {
                    temp.push(inode.control_fd);
                    temp.push(*open);
                    let data = vec![b'w'; self.rng.index(4096)];
                    let w = self.c.pwrite(*open, 0, &data);
                    self.result("write", &format!("{what}: write"), &w);
                }
                self.result("create", &what, &r);
            }
            28..=35 => {
                let dir = self.dir(&mut temp);
                let name = DIRS[self.rng.index(DIRS.len())];
                let what = format!("mkdir {name} in FD {}", dir.0);
                self.set_current(what.clone());
                let r = self
                    .c
                    .mkdir_at(dir, name.as_bytes(), 0o755, Uid::NONE, Gid::NONE);
                if let Ok(inode) = &r {
                    temp.push(inode.control_fd);
                }
                self.result("mkdir", &what, &r);
            }
            36..=41 => {
                let dir = self.dir(&mut temp);
                let name = FILES[self.rng.index(FILES.len())];
                let what = format!("write {name} in FD {}", dir.0);
                self.set_current(what.clone());
                match self.c.walk(dir, &[name.as_bytes()]) {
                    Ok((WalkStatus::Success, inodes))
                        if inodes[0].stat.mode & 0o170000 == 0o100000 =>
                    {
                        temp.push(inodes[0].control_fd);
                        let r = self.c.open_at(inodes[0].control_fd, O_WRONLY);
                        if let Ok((open, _)) = &r {
                            temp.push(*open);
                            let off = self.rng.below(8192);
                            let w = self.c.pwrite(*open, off, b"stress");
                            self.result("write", &what, &w);
                        } else {
                            self.result("write", &what, &r);
                        }
                    }
                    Ok((_, inodes)) => temp.extend(inodes.iter().map(|i| i.control_fd)),
                    Err(e) => self.result("write", &what, &Err::<(), _>(e)),
                }
            }
            42..=61 => {
                let from = self.dir(&mut temp);
                let to = self.dir(&mut temp);
                let (a, b) = (self.name(), self.name());
                let flags = [0, 0, RENAME_EXCHANGE, RENAME_NOREPLACE][self.rng.index(4)];
                let what = format!("rename FD {}/{a} -> FD {}/{b} flags {flags}", from.0, to.0);
                self.set_current(what.clone());
                let r = self
                    .c
                    .rename_at2(from, a.as_bytes(), to, b.as_bytes(), flags);
                let op = match (flags, from == to) {
                    (RENAME_EXCHANGE, _) => "rename-exchange",
                    (_, false) => "rename-across",
                    _ => "rename",
                };
                self.result(op, &what, &r);
            }
            62..=71 => {
                let dir = self.dir(&mut temp);
                let name = self.name();
                let flags = if self.rng.chance(50) { AT_REMOVEDIR } else { 0 };
                let what = format!("unlink FD {}/{name} flags {flags:#x}", dir.0);
                self.set_current(what.clone());
                let r = self.c.unlink_at(dir, name.as_bytes(), flags);
                self.result("unlink", &what, &r);
            }
            72..=84 => {
                let dir = self.dir(&mut temp);
                let what = format!("getdents FD {}", dir.0);
                self.set_current(what.clone());
                match self.c.open_at(dir, O_RDONLY) {
                    Ok((open, _)) => {
                        temp.push(open);
                        let mut n = 0;
                        loop {
                            let r = self.c.getdents64(open, if n == 0 { -65536 } else { 65536 });
                            let done = !matches!(&r, Ok(v) if !v.is_empty()) || n > 50;
                            self.result("getdents", &what, &r);
                            n += 1;
                            if done {
                                break;
                            }
                        }
                    }
                    Err(e) => self.result("getdents", &what, &Err::<(), _>(e)),
                }
            }
            85..=91 => {
                // Hold a directory for later, or drop one.
                if self.held.len() < 12 && self.rng.chance(70) {
                    let name = DIRS[self.rng.index(DIRS.len())];
                    let dir = self.dir(&mut temp);
                    self.set_current(format!("hold {name}"));
                    if let Ok((WalkStatus::Success, inodes)) = self.c.walk(dir, &[name.as_bytes()])
                    {
                        let i = inodes[0];
                        if i.stat.mode & 0o170000 == 0o040000 {
                            self.held.push(i.control_fd);
                        } else {
                            temp.push(i.control_fd);
                        }
                    }
                } else if !self.held.is_empty() {
                    let i = self.rng.index(self.held.len());
                    temp.push(self.held.swap_remove(i));
                }
                self.shared.progress.fetch_add(1, Ordering::Relaxed);
            }
            92..=97 => {
                if !self.held.is_empty() {
                    let fd = self.held[self.rng.index(self.held.len())];
                    let what = format!("fstat held FD {}", fd.0);
                    self.set_current(what.clone());
                    let r = self.c.fstat(fd);
                    self.result("fstat-held", &what, &r);
                }
            }
            _ => {
                if self.panics_left > 0 {
                    self.panics_left -= 1;
                    // From the root: a walk from a deleted directory stops
                    // before the backend is asked (spec 1.4).
                    self.set_current("walk __panic__".into());
                    let r = self.c.walk(self.root, &[PANIC_NAME]);
                    let ok = matches!(r, Err(Error::Errno(EREMOTEIO)));
                    if !ok {
                        self.tally
                            .failures
                            .push(format!("worker {}: panicking walk gave {r:?}", self.id));
                    }
                    self.tally.count("panic-walk", ok);
                    self.shared.progress.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if !temp.is_empty() {
            self.set_current(format!("close {} FDs", temp.len()));
            let r = self.c.close(&temp);
            self.result("close", "close", &r);
        }
        self.set_current("idle".into());
    }
}

/// Every path under `dir`, relative, parents first.
fn host_paths(dir: &Path, rel: &mut Vec<String>, out: &mut Vec<(Vec<String>, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        rel.push(name);
        out.push((rel.clone(), e.path()));
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            host_paths(&e.path(), rel, out);
        }
        rel.pop();
    }
}

#[test]
fn eight_connections_on_one_tree() {
    record_panics();
    let scratch = Scratch::new("stress");
    for d in ["a", "b", "c", "d", "a/x", "b/y", "c/x/y", "d/y/x"] {
        std::fs::create_dir_all(scratch.path(d)).unwrap();
    }
    for f in ["f0", "a/f1", "b/f2", "c/x/f3"] {
        std::fs::write(scratch.path(f), b"seed").unwrap();
    }
    let service = panic_service(&scratch);
    let shared = Shared {
        progress: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        current: (0..WORKERS).map(|_| Mutex::new(String::new())).collect(),
    };
    // Half the workers send their requests over flipcall channels.
    let clients: Vec<Client> = (0..WORKERS)
        .map(|i| {
            let c = connect(&service);
            if i % 2 == 0 {
                c.start_channels(0).expect("start_channels");
            }
            c
        })
        .collect();
    let checker = connect(&service);
    // Workers wait here twice: once when they stop (the checker then walks
    // every host path while their FDs are still open), once after their own
    // FStat checks.
    let paused = Barrier::new(WORKERS + 1);
    let checked = Barrier::new(WORKERS + 1);
    let watchdog_done = AtomicBool::new(false);
    let started = Instant::now();

    let results = std::thread::scope(|s| {
        // The watchdog: no progress for STALL_LIMIT is a deadlock.
        s.spawn(|| {
            let mut last = shared.progress.load(Ordering::Relaxed);
            let mut since = Instant::now();
            while !watchdog_done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = shared.progress.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() > STALL_LIMIT {
                    let mut msg = format!(
                        "DEADLOCK: no progress for {STALL_LIMIT:?} after {last} operations \
                         ({:?} into the run).\nWhat each worker was doing:\n",
                        started.elapsed()
                    );
                    for (i, c) in shared.current.iter().enumerate() {
                        let cur = c.try_lock().map(|g| g.clone()).unwrap_or("(locked)".into());
                        msg.push_str(&format!("  worker {i}: {cur}\n"));
                    }
                    msg.push_str(&format!(
                        "Server stats: {:?}\nThreads:\n{}",
                        service.stats(),
                        thread_dump()
                    ));
                    eprintln!("{msg}");
                    // Joining the stuck workers would hang the test forever.
                    std::process::exit(101);
                }
            }
        });

        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(id, c)| {
                let (shared, paused, checked) = (&shared, &paused, &checked);
                s.spawn(move || {
                    let root = c.root().control_fd;
                    let mut w = Worker {
                        id,
                        c,
                        root,
                        rng: Rng::new(0x5EED_0000 + id as u64),
                        held: Vec::new(),
                        tally: Tally::default(),
                        shared,
                        panics_left: 2,
                    };
                    while !shared.stop.load(Ordering::Relaxed) {
                        w.step();
                    }
                    paused.wait();
                    // Every FDID still held answers FStat.
                    for fd in w.held.clone() {
                        let r = w.c.fstat(fd);
                        if let Err(e) = r {
                            w.tally
                                .failures
                                .push(format!("worker {id}: FStat of held FD {}: {e}", fd.0));
                        }
                    }
                    checked.wait();
                    // The node tree's deleted flags agree with the host: a
                    // held directory still linked on the host (nlink > 0)
                    // accepts a create; one removed from it refuses.
                    for (i, fd) in w.held.clone().into_iter().enumerate() {
                        let Ok(st) = w.c.fstat(fd) else { continue };
                        let name = format!("chk-{id}-{i}");
                        let r =
                            w.c.mkdir_at(fd, name.as_bytes(), 0o755, Uid::NONE, Gid::NONE);
                        let linked = st.nlink > 0;
                        let agrees = match &r {
                            Ok(_) => linked,
                            Err(Error::Errno(EINVAL | ENOENT)) => !linked,
                            Err(_) => false,
                        };
                        w.tally.count(
                            if linked {
                                "check-linked-dir"
                            } else {
                                "check-removed-dir"
                            },
                            agrees,
                        );
                        if !agrees {
                            w.tally.failures.push(format!(
                                "worker {id}: held dir FD {} has nlink {} on the host, \
                                 but MkdirAt in it gave {:?}",
                                fd.0,
                                st.nlink,
                                r.as_ref().map(|i| i.control_fd)
                            ));
                        }
                        if let Ok(inode) = r {
                            let _ = w.c.close(&[inode.control_fd]);
                            let _ = w.c.unlink_at(fd, name.as_bytes(), AT_REMOVEDIR);
                        }
                    }
                    let mut all = w.held.clone();
                    all.push(w.root);
                    if let Err(e) = w.c.close(&all) {
                        w.tally
                            .failures
                            .push(format!("worker {id}: final close: {e}"));
                    }
                    w.tally
                })
            })
            .collect();

        // RUN_FOR, extended (up to MAX_RUN) on a slow machine until enough
        // operations ran for every kind to have had its chance.
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let t = started.elapsed();
            let enough = shared.progress.load(Ordering::Relaxed) >= MIN_OPS;
            if (t >= RUN_FOR && enough) || t >= MAX_RUN {
                break;
            }
        }
        shared.stop.store(true, Ordering::Relaxed);
        paused.wait();
        // Quiescent, with every worker's FDs still open: every path on the
        // host walks from the root, to the same inode.
        let mut paths = Vec::new();
        host_paths(&scratch.root, &mut Vec::new(), &mut paths);
        let mut walk_failures = Vec::new();
        let root = checker.root().control_fd;
        for (rel, host) in &paths {
            let names: Vec<&[u8]> = rel.iter().map(|n| n.as_bytes()).collect();
            match checker.walk(root, &names) {
                Ok((WalkStatus::Success, inodes)) if inodes.len() == names.len() => {
                    let ino = std::fs::symlink_metadata(host).map(|m| {
                        use std::os::unix::fs::MetadataExt;
                        m.ino()
                    });
                    let last = inodes.last().unwrap().stat.ino;
                    if ino.as_ref().ok() != Some(&last) {
                        walk_failures.push(format!("{rel:?}: inode {last}, host {ino:?}"));
                    }
                    let ids: Vec<FdId> = inodes.iter().map(|i| i.control_fd).collect();
                    checker.close(&ids).unwrap();
                }
                Ok((st, inodes)) => {
                    walk_failures.push(format!("{rel:?}: {st:?} after {} inodes", inodes.len()));
                    let ids: Vec<FdId> = inodes.iter().map(|i| i.control_fd).collect();
                    checker.close(&ids).unwrap();
                }
                Err(e) => walk_failures.push(format!("{rel:?}: {e}")),
            }
        }
        println!(
            "walked {} host paths from the root with {} FDs open: {} failures",
            paths.len(),
            service.stats().control_fds + service.stats().open_fds,
            walk_failures.len()
        );
        checked.wait();
        let tallies: Vec<Tally> = handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect();
        watchdog_done.store(true, Ordering::Relaxed);
        (tallies, walk_failures)
    });
    let (results, walk_failures) = results;

    // Totals.
    let mut ops: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut errnos: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for t in results {
        for (k, (ok, err)) in t.ops {
            let e = ops.entry(k).or_default();
            e.0 += ok;
            e.1 += err;
        }
        for (k, n) in t.errnos {
            *errnos.entry(k).or_default() += n;
        }
        failures.extend(t.failures);
    }
    let total: u64 = ops.values().map(|(a, b)| a + b).sum();
    println!(
        "{total} operations in {:?} on {WORKERS} connections",
        started.elapsed()
    );
    for (k, (ok, err)) in &ops {
        println!("  {k:<16} {ok:>7} ok {err:>7} failed");
    }
    println!("  expected errnos: {errnos:?}");
    println!(
        "  requests served over channels: {}",
        service.channel_requests()
    );
    assert!(
        walk_failures.is_empty(),
        "host paths that do not walk from the root (node tree out of step \
         with the host):\n  {}",
        walk_failures.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "unexpected failures:\n  {}",
        failures.join("\n  ")
    );
    for op in [
        "rename-across",
        "rename-exchange",
        "unlink",
        "create",
        "getdents",
    ] {
        assert!(
            ops.get(op).is_some_and(|(ok, _)| *ok > 0),
            "no successful {op} in the run: {ops:?}"
        );
    }

    checker.close(&[checker.root().control_fd]).unwrap();
    let released = wait_until(Duration::from_secs(10), || {
        let s = service.stats();
        s.control_fds == 0 && s.open_fds == 0 && s.bound_socket_fds == 0 && s.nodes == 0
    });
    assert!(
        released,
        "FDs or nodes left after every FDID was closed: {:?}",
        service.stats()
    );
    drop(checker);
    assert!(
        wait_until(Duration::from_secs(10), || service.stats()
            == Stats::default()),
        "after disconnecting: {:?}",
        service.stats()
    );
    service.close();
}

// ---------------------------------------------------------------------------
// Closing the service while it is busy

#[test]
fn service_close_under_load_releases_everything() {
    let scratch = Scratch::new("close-load");
    for d in ["a", "b", "a/x"] {
        std::fs::create_dir_all(scratch.path(d)).unwrap();
    }
    std::fs::write(scratch.path("f0"), vec![b'z'; 1 << 20]).unwrap();
    let service = panic_service(&scratch);
    let clients: Vec<Client> = (0..4)
        .map(|i| {
            let c = connect(&service);
            if i % 2 == 0 {
                c.start_channels(0).expect("start_channels");
            }
            c
        })
        .collect();
    let ops = AtomicU64::new(0);
    let ends: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(id, c)| {
                let ops = &ops;
                s.spawn(move || {
                    let mut rng = Rng::new(id as u64);
                    let root = c.root().control_fd;
                    let until = Instant::now() + Duration::from_secs(20);
                    while Instant::now() < until {
                        let r: Result<Vec<FdId>, Error> = match rng.below(4) {
                            0 => c
                                .walk(root, &[b"a", b"x"])
                                .map(|(_, i)| i.iter().map(|i| i.control_fd).collect()),
                            1 => c
                                .open_create_at(
                                    root,
                                    FILES[rng.index(FILES.len())].as_bytes(),
                                    0o644,
                                    Uid::NONE,
                                    Gid::NONE,
                                    O_RDWR,
                                )
                                .map(|(i, o, _)| vec![i.control_fd, o]),
                            2 => c.walk(root, &[b"f0"]).and_then(|(_, i)| {
                                let (o, _) = c.open_at(i[0].control_fd, O_RDONLY)?;
                                let mut buf = vec![0u8; 1 << 20];
                                c.pread(o, 0, &mut buf)?;
                                Ok(vec![i[0].control_fd, o])
                            }),
                            _ => c
                                .rename_at(root, b"a", root, b"b")
                                .or_else(|_| c.rename_at(root, b"b", root, b"a"))
                                .map(|_| Vec::new()),
                        };
                        ops.fetch_add(1, Ordering::Relaxed);
                        match r {
                            // Keep some FDs open on purpose: close must
                            // release them.
                            Ok(ids) if rng.chance(50) => {
                                if let Err(e) = c.close(&ids) {
                                    if errno_of(&e).is_none() {
                                        return format!("worker {id}: ended on close: {e}");
                                    }
                                }
                            }
                            Ok(_) | Err(Error::Errno(_)) => {}
                            Err(e) => return format!("worker {id}: ended: {e}"),
                        }
                    }
                    format!("worker {id}: still running after 20 s: the close did not reach it")
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let before = ops.load(Ordering::Relaxed);
        let stats = service.stats();
        let t = Instant::now();
        let closer = s.spawn(|| service.close());
        let closed = wait_until(Duration::from_secs(10), || closer.is_finished());
        if !closed {
            eprintln!(
                "Service::close() did not return within 10 s.\nThreads:\n{}",
                thread_dump()
            );
            std::process::exit(101);
        }
        println!(
            "closed after {before} operations in {:?}, with {stats:?} live",
            t.elapsed()
        );
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for e in &ends {
        println!("  {e}");
        assert!(!e.contains("still running"), "{e}");
    }
    assert!(
        wait_until(Duration::from_secs(10), || service.stats()
            == Stats::default()),
        "after Service::close: {:?}",
        service.stats()
    );
    let (_c, s) = lisafs_transport::socket_pair().unwrap();
    assert!(
        service.attach(s).is_err(),
        "a closed service refuses new sockets"
    );
}
