//! Confinement: a hostile client against the real server (`lisafs-server`
//! core + `lisafs-host` backend), served in-process over a socketpair as
//! `common::Harness` does, on a scratch tree under `/dev/shm` when that is a
//! writable tmpfs (else the temp directory).
//!
//! Next to every served root sits a sentinel directory (`<base>/outside`,
//! see `escape/sentinel.rs`): a file holding a marker and xattrs, a
//! subdirectory, a listening socket, and files named like the ones the tests
//! use inside. Every case runs on a fresh root and sentinel; afterwards the
//! whole scratch base outside the root is compared with a snapshot (content,
//! mode, owner, size, mtime, ctime, nlink, xattrs, listings, and the atime
//! of the sentinel file and directories, which the snapshot itself reads
//! with `O_NOATIME`), the sentinel socket must have no pending connection,
//! and no `esc-probe*` name may appear in `/`, `/etc`, `/tmp`, `/dev/shm`
//! or the temp directory. `sentinel_detects_escapes` proves the detector
//! catches each of these when done on the host.
//! Every stat the client gets back is checked against the inode numbers of
//! the sentinel, and every byte of data against its marker.
//!
//! Cases are grouped in tables (one `#[test]` per group, so the groups run
//! in parallel); `case_count` asserts there are at least 60. The race tests
//! swap a directory for a symlink to the sentinel, on the host or from a
//! second connection, while a client works through it, and count escapes.
//!
//! Exact results are those of this server on Linux as root (the suite runs
//! as root in CI); the few cases that need root skip themselves otherwise.
//! Notable ones: a symlink's control FD used as a directory is ENOTDIR for
//! every message; OpenAt on it is EINVAL (the core refuses before the host
//! could answer ELOOP); bad names are EINVAL, 256-byte ones the host's
//! ENAMETOOLONG; a NUL byte passes the core's name check (as in gVisor) and
//! is refused by the host backend, so it is EINVAL wherever a lookup
//! happens.
//!
//! Hard links: a file the host admin hard-linked into the root before
//! serving (`root/hl`, sharing its inode with `<base>/admin-linked.txt`) is
//! inside the root by definition. The server serves it as a normal file and
//! the client may add names for it inside the root; it cannot reach, and so
//! cannot link, any other outside inode.

mod common;
#[path = "escape/sentinel.rs"]
mod sentinel;

use std::os::fd::{AsFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use lisafs_client::{Client, FdId, Gid, Inode, SetStatReq, Statx, Timespec, Uid, WalkStatus};
use lisafs_host::HostOptions;
use lisafs_wire::errno::*;
use lisafs_wire::statx_mask;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, StatxFlags};
use sentinel::*;

const S_IFCHR: u16 = 0o020000;
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;
const INSIDE: &[u8] = b"an ordinary file inside the root\n";
const INSIDE_X: &[u8] = b"x inside the root\n";
/// NAME_MAX.
const NAME_MAX: usize = 255;

// ---------------------------------------------------------------------
// The environment of one case.
// ---------------------------------------------------------------------

/// A served root with the standard fixture, its sentinel, and a client.
struct Env {
    h: Harness,
    s: Sentinel,
}

/// Symlinks of the fixture at the top of the root, and their targets
/// (`@` stands for the scratch base).
const ROOT_LINKS: &[(&str, &str)] = &[
    ("abs_out", "@/outside"),
    ("abs_secret", "@/outside/sentinel-secret.txt"),
    ("abs_sock", "@/outside/sentinel.sock"),
    ("abs_sub", "@/outside/sentinel-subdir"),
    ("etc", "/etc"),
    ("rel_out", "../outside"),
    ("rel_secret", "../outside/sentinel-secret.txt"),
    ("rel_up", "../../.."),
    ("rel_a", "a/../../outside"),
    ("proc_fd", "/proc/self/fd/3"),
    ("proc_root", "/proc/self/root"),
    ("proc_cwd", "/proc/self/cwd"),
    ("dangling_out", "@/outside/esc-probe-dangling"),
    ("loop", "loop"),
];

/// Symlinks of the fixture in `dir/`.
const DIR_LINKS: &[(&str, &str)] = &[
    ("rel_deep", "../../outside/sentinel-secret.txt"),
    ("rel_deep_dir", "../../outside"),
];

fn uds_opts(on: bool) -> HostOptions {
    HostOptions {
        host_uds_connect: on,
        host_uds_create: on,
        ..HostOptions::default()
    }
}

/// Where scratch bases go: `/dev/shm` when it is a writable tmpfs (the
/// thousands of creates and removals then cost no disk I/O, whatever else
/// the machine is doing), else the temp directory.
fn scratch_parent() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        let shm = Path::new("/dev/shm");
        let is_tmpfs = rustix::fs::statfs(shm).is_ok_and(|s| s.f_type as u64 == TMPFS_MAGIC);
        let probe = shm.join(format!("lisafs-escape-probe-{}", std::process::id()));
        if is_tmpfs && std::fs::create_dir(&probe).is_ok() {
            let _ = std::fs::remove_dir(&probe);
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

/// The real server (`Service` + `HostFs`, as `Harness::with` makes it)
/// serving a fresh `<parent>/lisafs-escape-<pid>-<n>-<tag>/root`.
fn harness(tag: &str, uds: bool) -> Harness {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = scratch_parent().join(format!("lisafs-escape-{}-{n}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let scratch = Scratch { base, root };
    let fs = lisafs_host::HostFs::new(&scratch.root, uds_opts(uds)).expect("HostFs::new");
    let service = lisafs_server::Service::new(
        std::sync::Arc::new(fs),
        lisafs_server::ConnectionOpts::host(false),
    );
    let (client_end, server_end) = lisafs_transport::socket_pair().expect("socketpair");
    service.attach(server_end).expect("attach");
    let client = Client::connect(client_end).expect("connect");
    Harness {
        service,
        client,
        scratch,
    }
}

impl Env {
    fn new(tag: &str, uds: bool) -> Env {
        let h = harness(tag, uds);
        let base = h.scratch.base.clone();
        let root = h.scratch.root.clone();
        std::fs::write(root.join("file"), INSIDE).unwrap();
        std::fs::create_dir(root.join("dir")).unwrap();
        std::fs::write(root.join("dir/x"), INSIDE_X).unwrap();
        std::fs::write(root.join("dir/y"), b"y inside\n").unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        for (name, target) in ROOT_LINKS {
            let target = target.replace('@', base.to_str().unwrap());
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        }
        for (name, target) in DIR_LINKS {
            std::os::unix::fs::symlink(target, root.join("dir").join(name)).unwrap();
        }
        let s = Sentinel::create(&base, &root);
        Env { h, s }
    }

    fn c(&self) -> &Client {
        &self.h.client
    }

    fn root(&self) -> FdId {
        self.h.root()
    }

    fn base(&self) -> &Path {
        &self.h.scratch.base
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.h.scratch.root.join(rel)
    }

    /// The expanded target of fixture link `name`.
    fn target_of(&self, name: &str) -> Vec<u8> {
        let (_, t) = ROOT_LINKS
            .iter()
            .chain(DIR_LINKS)
            .find(|(n, _)| *n == name)
            .expect("fixture link");
        t.replace('@', self.base().to_str().unwrap()).into_bytes()
    }

    /// Fails the case if `st` is the stat of anything outside the root.
    fn check_stat(&self, st: &Statx, what: &str) {
        assert!(
            !self.s.is_outside(st),
            "ESCAPE: {what} returned the stat of an outside inode ({})",
            st.ino
        );
    }

    fn check_data(&self, data: &[u8], what: &str) {
        assert!(
            !has_marker(data),
            "ESCAPE: {what} returned the sentinel's content"
        );
    }

    /// Walk that must end with `status` after `n` inodes.
    fn walk_expect(&self, dir: FdId, names: &[&[u8]], status: WalkStatus, n: usize) -> Vec<Inode> {
        let (st, inodes) = self
            .c()
            .walk(dir, names)
            .unwrap_or_else(|e| panic!("walk {}: {e}", show(names)));
        assert_eq!((st, inodes.len()), (status, n), "walk {}", show(names));
        for i in &inodes {
            self.check_stat(&i.stat, "Walk");
        }
        inodes
    }

    /// The inode at `path` (`/`-separated, from the root), which must exist.
    fn get(&self, path: &str) -> Inode {
        let names: Vec<&[u8]> = path.split('/').map(str::as_bytes).collect();
        let n = names.len();
        *self
            .walk_expect(self.root(), &names, WalkStatus::Success, n)
            .last()
            .unwrap()
    }

    /// A fixture symlink's control FD; checks it is the link itself.
    fn link(&self, path: &str) -> FdId {
        let ino = self.get(path);
        assert_eq!(ftype(&ino.stat), S_IFLNK, "{path} is a symlink");
        assert_eq!(ino.stat.ino, host_ino(&self.host(path)), "{path} inode");
        ino.control_fd
    }

    /// Every top-level fixture symlink's control FD.
    fn links(&self) -> Vec<(&'static str, FdId)> {
        ROOT_LINKS
            .iter()
            .map(|(n, _)| (*n, self.link(n)))
            .chain(DIR_LINKS.iter().map(|(n, _)| {
                let path: &'static str = match *n {
                    "rel_deep" => "dir/rel_deep",
                    _ => "dir/rel_deep_dir",
                };
                (path, self.link(path))
            }))
            .collect()
    }

    /// Opens control FD `fd` read-only and reads it whole (checked for the
    /// marker).
    fn read_all(&self, fd: FdId) -> Vec<u8> {
        let (open, _) = self.c().open_at(fd, O_RDONLY).expect("open for reading");
        let mut buf = vec![0u8; 1 << 16];
        let n = self.c().pread(open, 0, &mut buf).expect("pread");
        buf.truncate(n);
        self.c().close(&[open]).unwrap();
        self.check_data(&buf, "PRead");
        buf
    }

    fn control_fds(&self) -> u64 {
        self.h.stats().control_fds
    }
}

fn show(names: &[&[u8]]) -> String {
    let parts: Vec<String> = names
        .iter()
        .map(|n| {
            if n.len() > 40 {
                format!("<{} bytes>", n.len())
            } else {
                format!("{:?}", String::from_utf8_lossy(n))
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn host_stat(path: &Path) -> rustix::fs::Statx {
    rustix::fs::statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .unwrap_or_else(|e| panic!("statx {}: {e}", path.display()))
}

fn host_ino(path: &Path) -> u64 {
    host_stat(path).stx_ino
}

fn host_type(path: &Path) -> u16 {
    host_stat(path).stx_mode & S_IFMT
}

fn is_root() -> bool {
    euid() == 0
}

fn set_stat_req(fd: FdId, mask: u32) -> SetStatReq {
    SetStatReq {
        fd,
        mask,
        mode: 0,
        uid: Uid::NONE,
        gid: Gid::NONE,
        size: 0,
        atime: Timespec::default(),
        mtime: Timespec::default(),
    }
}

/// Hostile single-component names, all refused with EINVAL by every
/// name-taking message.
const BAD_NAMES: &[&[u8]] = &[
    b"..",
    b".",
    b"",
    b"/",
    b"a/b",
    b"/etc",
    b"../x",
    b"x/",
    b"../outside",
    b"../outside/sentinel-secret.txt",
    b"/tmp/esc-probe-slash",
    b"a\0b",
    b"\0",
    b"..\0",
    b"esc-probe\0/../../x",
];

fn name_of(len: usize, fill: u8) -> Vec<u8> {
    vec![fill; len]
}

// ---------------------------------------------------------------------
// The case tables.
// ---------------------------------------------------------------------

struct Case {
    name: &'static str,
    /// Serve with host UDS connect and create enabled.
    uds: bool,
    run: fn(&Env),
}

macro_rules! cases {
    ($($(#[$uds:ident])? $f:ident),* $(,)?) => {
        &[$(Case { name: stringify!($f), uds: cases!(@uds $($uds)?), run: $f }),*]
    };
    (@uds uds) => { true };
    (@uds) => { false };
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// Runs every case of a table on a fresh environment, then checks the
/// sentinel; reports all failures at once.
fn run_group(group: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let started = Instant::now();
        let env = Env::new(&format!("{group}{i}"), case.uds);
        let res = panic::catch_unwind(AssertUnwindSafe(|| (case.run)(&env)));
        let bad = env.s.violations();
        let mut why = Vec::new();
        if let Err(p) = res {
            why.push(panic_text(&*p));
        }
        if !bad.is_empty() {
            why.push(format!("SENTINEL VIOLATED:\n{}", bad.join("\n")));
        }
        if why.is_empty() {
            println!(
                "escape {group}/{}: ok ({} ms)",
                case.name,
                started.elapsed().as_millis()
            );
        } else {
            failures.push(format!("{group}/{}: {}", case.name, why.join("\n")));
        }
    }
    println!("escape {group}: {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn case_count() {
    let groups: &[(&str, usize)] = &[
        ("symlinks", SYMLINK_CASES.len()),
        ("names", NAME_CASES.len()),
        ("hardlinks", HARDLINK_CASES.len()),
        ("sockets", SOCKET_CASES.len()),
        ("renames", RENAME_CASES.len()),
        ("deleted", DELETED_CASES.len()),
        ("magic", MAGIC_CASES.len()),
        ("deep", DEEP_CASES.len()),
    ];
    let total: usize = groups.iter().map(|(_, n)| n).sum();
    for (g, n) in groups {
        println!("escape cases: {g}: {n}");
    }
    println!("escape cases: total {total}");
    assert!(total >= 60, "only {total} hostile cases");
    let env = Env::new("count", false);
    println!(
        "escape: reads of the sentinel detected through atime: {}",
        env.s.atime_works()
    );
}

/// The detector itself: each of these host-side "escapes" must be caught.
#[test]
fn sentinel_detects_escapes() {
    type Escape = fn(&Sentinel);
    let escapes: &[(&str, Escape)] = &[
        ("read the secret", |s| {
            std::fs::read(s.dir.join(SECRET)).unwrap();
        }),
        ("list the sentinel directory", |s| {
            std::fs::read_dir(&s.dir).unwrap().for_each(drop);
        }),
        ("list the subdirectory", |s| {
            std::fs::read_dir(s.dir.join(SUBDIR))
                .unwrap()
                .for_each(drop);
        }),
        ("rewrite the secret unchanged", |s| {
            std::fs::write(s.dir.join(SECRET), MARKER).unwrap();
        }),
        ("write x", |s| {
            std::fs::write(s.dir.join(OUT_X), b"pwned").unwrap();
        }),
        ("create a file outside", |s| {
            std::fs::write(s.dir.join("new"), b"").unwrap();
        }),
        ("create and remove a file outside", |s| {
            std::fs::write(s.dir.join("tmp"), b"").unwrap();
            std::fs::remove_file(s.dir.join("tmp")).unwrap();
        }),
        ("create a file in the base", |s| {
            std::fs::write(s.base.join("new"), b"").unwrap();
        }),
        ("hard-link the secret into the root", |s| {
            std::fs::hard_link(s.dir.join(SECRET), s.root.join("stolen")).unwrap();
        }),
        ("connect to the sentinel socket", |s| {
            std::mem::forget(std::os::unix::net::UnixStream::connect(s.dir.join(SOCK)).unwrap());
        }),
        ("set an xattr on the secret", |s| {
            rustix::fs::setxattr(
                s.dir.join(SECRET),
                "user.pwned",
                b"1",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        }),
        ("rename y to z", |s| {
            std::fs::rename(s.dir.join(OUT_Y), s.dir.join("z")).unwrap();
        }),
    ];
    let mut missed = Vec::new();
    for (i, (what, escape)) in escapes.iter().enumerate() {
        let env = Env::new(&format!("det{i}"), false);
        assert!(env.s.violations().is_empty(), "{what}: dirty before");
        escape(&env.s);
        if env.s.violations().is_empty() {
            missed.push(*what);
        }
    }
    // (A probe name in /tmp would be caught as well; it is not tried here
    // because the groups running in parallel would see it too.)
    let env = Env::new("detp", false);
    // And a stat of an outside inode.
    let st = env.c().fstat(env.root()).unwrap();
    assert!(!env.s.is_outside(&st));
    let secret = host_stat(&env.s.dir.join(SECRET));
    assert!(env
        .s
        .is_outside_ino(secret.stx_dev_major, secret.stx_dev_minor, secret.stx_ino));
    assert!(has_marker(MARKER) && !has_marker(INSIDE));
    if !env.s.atime_works() {
        // Without atime tracking reads and listings cannot be seen.
        missed.retain(|m| !m.starts_with("read") && !m.starts_with("list"));
    }
    assert!(missed.is_empty(), "the sentinel missed: {missed:?}");
}

#[test]
fn symlinks() {
    run_group("sym", SYMLINK_CASES);
}

#[test]
fn names() {
    run_group("name", NAME_CASES);
}

#[test]
fn hardlinks() {
    run_group("hl", HARDLINK_CASES);
}

#[test]
fn sockets() {
    run_group("sock", SOCKET_CASES);
}

#[test]
fn renames() {
    run_group("ren", RENAME_CASES);
}

#[test]
fn deleted() {
    run_group("del", DELETED_CASES);
}

#[test]
fn magic_links() {
    run_group("mag", MAGIC_CASES);
}

#[test]
fn deep() {
    run_group("deep", DEEP_CASES);
}

// ---------------------------------------------------------------------
// Symlinks.
// ---------------------------------------------------------------------

const SYMLINK_CASES: &[Case] = cases![
    walk_abs_link_then_more,
    walk_abs_file_link_last,
    walk_etc_link,
    walk_rel_dotdot_link,
    walk_rel_up_link,
    walk_a_dotdot_link,
    walk_nested_rel_link,
    walk_dangling_and_loop_links,
    walk_from_link_fd_enotdir,
    open_file_links_einval,
    open_dir_links_einval,
    readlink_returns_raw_target,
    open_create_through_links_enotdir,
    mkdir_through_links_enotdir,
    symlink_through_links_enotdir,
    mknod_through_links_enotdir,
    #[uds]
    bind_through_links_enotdir,
    link_into_links_enotdir,
    unlink_through_links_enotdir,
    rename_through_links_enotdir,
    walk_stat_through_links,
    walk_stat_from_link_fd,
    linkat_from_file_link_links_the_link,
    linkat_from_dir_and_dangling_links,
    setstat_mode_on_link,
    setstat_size_on_link,
    setstat_times_on_link,
    setstat_owner_on_link,
    xattr_reads_on_link,
    xattr_writes_on_link,
    client_symlinks_to_outside,
    creates_over_dangling_link_eexist,
    #[uds]
    connect_socket_link_enotsock,
];

/// Walks `names` from the root and expects it to stop at a symlink after
/// `n` inodes, the last being the link at host path `link`.
fn walk_stops_at(e: &Env, names: &[&str], n: usize, link: &str) {
    let names: Vec<&[u8]> = names.iter().map(|s| s.as_bytes()).collect();
    let inodes = e.walk_expect(e.root(), &names, WalkStatus::ComponentSymlink, n);
    let last = inodes.last().unwrap();
    assert_eq!(ftype(&last.stat), S_IFLNK);
    assert_eq!(last.stat.ino, host_ino(&e.host(link)));
}

fn walk_abs_link_then_more(e: &Env) {
    walk_stops_at(e, &["abs_out", SECRET], 1, "abs_out");
    walk_stops_at(e, &["abs_out", SUBDIR, INNER], 1, "abs_out");
    walk_stops_at(e, &["abs_sub", INNER], 1, "abs_sub");
}

fn walk_abs_file_link_last(e: &Env) {
    let ino = e.get("abs_secret");
    assert_eq!(ftype(&ino.stat), S_IFLNK);
    assert_eq!(ino.stat.size, e.target_of("abs_secret").len() as u64);
    // A symlink is a leaf: nothing after it is walked, even a valid name.
    walk_stops_at(e, &["abs_secret", "x"], 1, "abs_secret");
}

fn walk_etc_link(e: &Env) {
    walk_stops_at(e, &["etc", "passwd"], 1, "etc");
    walk_stops_at(e, &["etc", "shadow"], 1, "etc");
}

fn walk_rel_dotdot_link(e: &Env) {
    walk_stops_at(e, &["rel_out", SECRET], 1, "rel_out");
    walk_stops_at(e, &["rel_secret", "x"], 1, "rel_secret");
}

fn walk_rel_up_link(e: &Env) {
    walk_stops_at(e, &["rel_up", "tmp"], 1, "rel_up");
    walk_stops_at(e, &["rel_up", "etc", "passwd"], 1, "rel_up");
}

fn walk_a_dotdot_link(e: &Env) {
    walk_stops_at(e, &["rel_a", SUBDIR, INNER], 1, "rel_a");
}

fn walk_nested_rel_link(e: &Env) {
    walk_stops_at(e, &["dir", "rel_deep_dir", SECRET], 2, "dir/rel_deep_dir");
    walk_stops_at(e, &["dir", "rel_deep", "x"], 2, "dir/rel_deep");
}

fn walk_dangling_and_loop_links(e: &Env) {
    walk_stops_at(e, &["dangling_out", "x"], 1, "dangling_out");
    walk_stops_at(e, &["loop", "loop", "loop"], 1, "loop");
    e.link("loop");
    e.link("dangling_out");
}

fn walk_from_link_fd_enotdir(e: &Env) {
    for (name, fd) in e.links() {
        let before = e.control_fds();
        assert_errno!(e.c().walk(fd, &[SECRET.as_bytes()]), ENOTDIR);
        assert_errno!(e.c().walk(fd, &[b"x", b"y"]), ENOTDIR);
        // Not even an empty walk starts from a symlink.
        assert_errno!(e.c().walk(fd, &[]), ENOTDIR);
        assert_eq!(e.control_fds(), before, "{name}: FDs leaked");
    }
}

fn open_file_links_einval(e: &Env) {
    for path in [
        "abs_secret",
        "rel_secret",
        "dir/rel_deep",
        "abs_sock",
        "dangling_out",
        "loop",
    ] {
        let fd = e.link(path);
        for flags in [O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_TRUNC, O_TRUNC] {
            assert_errno!(e.c().open_at(fd, flags), EINVAL);
        }
    }
}

fn open_dir_links_einval(e: &Env) {
    for path in [
        "abs_out",
        "rel_out",
        "etc",
        "rel_up",
        "rel_a",
        "abs_sub",
        "dir/rel_deep_dir",
    ] {
        let fd = e.link(path);
        assert_errno!(e.c().open_at(fd, O_RDONLY), EINVAL);
        // Getdents wants an open FD; a link cannot become one.
        assert_errno!(e.c().getdents64(fd, 4096), EINVAL);
        assert_errno!(e.c().getdents64(fd, -4096), EINVAL);
    }
}

fn readlink_returns_raw_target(e: &Env) {
    for (path, fd) in e.links() {
        let name = path.rsplit('/').next().unwrap();
        let target = e.c().readlink_at(fd).unwrap();
        assert_eq!(target, e.target_of(name), "readlink {path}");
    }
    let file = e.get("file").control_fd;
    assert_errno!(e.c().readlink_at(file), EINVAL);
    assert_errno!(e.c().readlink_at(e.root()), EINVAL);
    assert_errno!(e.c().readlink_at(FdId(987_654)), EBADF);
}

fn open_create_through_links_enotdir(e: &Env) {
    for (name, fd) in e.links() {
        for flags in [O_RDONLY, O_RDWR, O_WRONLY | O_TRUNC] {
            let r = e
                .c()
                .open_create_at(fd, b"esc-probe-oc", 0o644, NO_UID, NO_GID, flags);
            assert!(
                matches!(r, Err(lisafs_client::Error::Errno(ENOTDIR))),
                "{name}: {:?}",
                r.map(|_| ())
            );
        }
        assert_errno!(
            e.c()
                .open_create_at(fd, SECRET.as_bytes(), 0o644, NO_UID, NO_GID, O_RDWR),
            ENOTDIR
        );
    }
}

fn mkdir_through_links_enotdir(e: &Env) {
    for (_, fd) in e.links() {
        assert_errno!(
            e.c().mkdir_at(fd, b"esc-probe-mk", 0o755, NO_UID, NO_GID),
            ENOTDIR
        );
        assert_errno!(
            e.c().mkdir_at(fd, SUBDIR.as_bytes(), 0o755, NO_UID, NO_GID),
            ENOTDIR
        );
    }
}

fn symlink_through_links_enotdir(e: &Env) {
    for (_, fd) in e.links() {
        assert_errno!(
            e.c()
                .symlink_at(fd, b"esc-probe-sl", b"/etc", NO_UID, NO_GID),
            ENOTDIR
        );
    }
}

fn mknod_through_links_enotdir(e: &Env) {
    for (_, fd) in e.links() {
        assert_errno!(
            e.c()
                .mknod_at(fd, b"esc-probe-mn", S_IFREG | 0o644, NO_UID, NO_GID, 0, 0),
            ENOTDIR
        );
        assert_errno!(
            e.c()
                .mknod_at(fd, b"esc-probe-wh", S_IFCHR | 0o600, NO_UID, NO_GID, 0, 0),
            ENOTDIR
        );
    }
}

fn bind_through_links_enotdir(e: &Env) {
    for (_, fd) in e.links() {
        assert_errno!(
            e.c()
                .bind_at(fd, b"esc-probe-b.sock", SOCK_STREAM, 0o700, NO_UID, NO_GID),
            ENOTDIR
        );
    }
}

fn link_into_links_enotdir(e: &Env) {
    let file = e.get("file").control_fd;
    for (_, fd) in e.links() {
        assert_errno!(e.c().link_at(fd, file, b"esc-probe-ln"), ENOTDIR);
    }
}

fn unlink_through_links_enotdir(e: &Env) {
    for (_, fd) in e.links() {
        assert_errno!(e.c().unlink_at(fd, SECRET.as_bytes(), 0), ENOTDIR);
        assert_errno!(e.c().unlink_at(fd, b"x", 0), ENOTDIR);
        assert_errno!(
            e.c().unlink_at(fd, SUBDIR.as_bytes(), AT_REMOVEDIR),
            ENOTDIR
        );
    }
}

fn rename_through_links_enotdir(e: &Env) {
    let root = e.root();
    for (_, fd) in e.links() {
        // Out of a link used as a directory, into one, and exchanged.
        assert_errno!(e.c().rename_at(fd, b"x", root, b"esc-probe-r"), ENOTDIR);
        assert_errno!(
            e.c().rename_at(fd, SECRET.as_bytes(), root, b"esc-probe-r"),
            ENOTDIR
        );
        assert_errno!(e.c().rename_at(root, b"file", fd, b"esc-probe-r"), ENOTDIR);
        assert_errno!(
            e.c().rename_at2(root, b"file", fd, b"x", RENAME_EXCHANGE),
            ENOTDIR
        );
        assert_errno!(
            e.c().rename_at2(fd, b"y", root, b"file", RENAME_NOREPLACE),
            ENOTDIR
        );
    }
    assert_eq!(std::fs::read(e.host("file")).unwrap(), INSIDE);
}

fn walk_stat_through_links(e: &Env) {
    let root = e.root();
    let stats = e
        .c()
        .walk_stat(root, &[b"abs_out", SECRET.as_bytes()])
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(ftype(&stats[0]), S_IFLNK);
    assert_eq!(stats[0].ino, host_ino(&e.host("abs_out")));

    let stats = e
        .c()
        .walk_stat(root, &[b"", b"rel_out", SECRET.as_bytes()])
        .unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(ftype(&stats[0]), S_IFDIR);
    assert_eq!(stats[1].ino, host_ino(&e.host("rel_out")));

    let stats = e
        .c()
        .walk_stat(
            root,
            &[b"dir", b"rel_deep_dir", SUBDIR.as_bytes(), INNER.as_bytes()],
        )
        .unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(ftype(&stats[1]), S_IFLNK);

    for (name, _) in ROOT_LINKS {
        let stats = e.c().walk_stat(root, &[name.as_bytes(), b"x"]).unwrap();
        assert_eq!(stats.len(), 1, "{name}");
        assert_eq!(ftype(&stats[0]), S_IFLNK, "{name}");
        for s in &stats {
            e.check_stat(s, "WalkStat");
        }
    }
}

fn walk_stat_from_link_fd(e: &Env) {
    for (name, fd) in e.links() {
        assert_errno!(e.c().walk_stat(fd, &[SECRET.as_bytes()]), ENOTDIR);
        assert_errno!(e.c().walk_stat(fd, &[b"", b"x"]), ENOTDIR);
        // Only the link's own stat is available.
        let stats = e.c().walk_stat(fd, &[b""]).unwrap();
        assert_eq!(stats.len(), 1, "{name}");
        assert_eq!(ftype(&stats[0]), S_IFLNK, "{name}");
        assert_eq!(stats[0].ino, host_ino(&e.host(name)));
        assert!(e.c().walk_stat(fd, &[]).unwrap().is_empty());
        // FStat and FStatFS describe the link, not the target.
        let st = e.c().fstat(fd).unwrap();
        assert_eq!(ftype(&st), S_IFLNK);
        e.check_stat(&st, "FStat");
        e.c().fstatfs(fd).unwrap();
    }
}

fn linkat_from_file_link_links_the_link(e: &Env) {
    let link = e.link("abs_secret");
    let before = host_stat(&e.host("abs_secret"));
    let new = e.c().link_at(e.root(), link, b"esc-probe-hl").unwrap();
    e.check_stat(&new.stat, "LinkAt");
    assert_eq!(ftype(&new.stat), S_IFLNK);
    assert_eq!(new.stat.ino, before.stx_ino);
    assert_eq!(new.stat.nlink, 2);
    let p = e.host("esc-probe-hl");
    assert_eq!(host_type(&p), S_IFLNK);
    assert_eq!(
        std::fs::read_link(&p).unwrap().as_os_str().len(),
        e.target_of("abs_secret").len()
    );
    // The same through a relative link, and into a subdirectory.
    let rel = e.link("rel_secret");
    let dir = e.get("dir").control_fd;
    let new = e.c().link_at(dir, rel, b"esc-probe-hl2").unwrap();
    assert_eq!(ftype(&new.stat), S_IFLNK);
    assert_eq!(new.stat.ino, host_ino(&e.host("rel_secret")));
}

fn linkat_from_dir_and_dangling_links(e: &Env) {
    for (i, name) in [
        "abs_out",
        "etc",
        "rel_up",
        "dangling_out",
        "loop",
        "abs_sock",
    ]
    .iter()
    .enumerate()
    {
        let fd = e.link(name);
        let new_name = format!("esc-probe-l{i}");
        let new = e.c().link_at(e.root(), fd, new_name.as_bytes()).unwrap();
        assert_eq!(ftype(&new.stat), S_IFLNK, "{name}");
        assert_eq!(new.stat.ino, host_ino(&e.host(name)), "{name}");
        assert_eq!(host_type(&e.host(&new_name)), S_IFLNK);
    }
}

fn setstat_mode_on_link(e: &Env) {
    let fd = e.link("abs_secret");
    let mut req = set_stat_req(fd, statx_mask::MODE);
    req.mode = 0o777;
    assert_eq!(
        e.c().set_stat(&req).unwrap(),
        (statx_mask::MODE, EOPNOTSUPP)
    );
    let dir = e.link("abs_out");
    req.fd = dir;
    assert_eq!(
        e.c().set_stat(&req).unwrap(),
        (statx_mask::MODE, EOPNOTSUPP)
    );
}

fn setstat_size_on_link(e: &Env) {
    for name in ["abs_secret", "rel_secret", "dangling_out"] {
        let fd = e.link(name);
        let mut req = set_stat_req(fd, statx_mask::SIZE);
        req.size = 0;
        assert_eq!(e.c().set_stat(&req).unwrap(), (statx_mask::SIZE, EINVAL));
        req.size = 1 << 20;
        assert_eq!(e.c().set_stat(&req).unwrap(), (statx_mask::SIZE, EINVAL));
    }
}

fn setstat_times_on_link(e: &Env) {
    for name in ["abs_secret", "abs_out", "rel_out", "proc_root"] {
        let fd = e.link(name);
        let mut req = set_stat_req(fd, statx_mask::ATIME | statx_mask::MTIME);
        req.atime = Timespec {
            sec: 12_345,
            nsec: 0,
        };
        req.mtime = Timespec {
            sec: 23_456,
            nsec: 0,
        };
        assert_eq!(e.c().set_stat(&req).unwrap(), (0, 0), "{name}");
        // The link's own times moved.
        let st = e.c().fstat(fd).unwrap();
        assert_eq!(st.mtime.sec, 23_456, "{name}");
        assert_eq!(host_stat(&e.host(name)).stx_mtime.tv_sec, 23_456);
    }
    assert_ne!(host_stat(Path::new("/")).stx_mtime.tv_sec, 23_456);
}

fn setstat_owner_on_link(e: &Env) {
    if !is_root() {
        eprintln!("setstat_owner_on_link: needs root, skipped");
        return;
    }
    for name in ["abs_secret", "abs_out"] {
        let fd = e.link(name);
        let mut req = set_stat_req(fd, statx_mask::UID | statx_mask::GID);
        req.uid = Uid(4242);
        req.gid = Gid(4343);
        assert_eq!(e.c().set_stat(&req).unwrap(), (0, 0));
        let st = host_stat(&e.host(name));
        assert_eq!((st.stx_uid, st.stx_gid), (4242, 4343));
    }
}

fn xattr_reads_on_link(e: &Env) {
    for name in ["abs_secret", "rel_secret", "abs_out", "proc_fd"] {
        let fd = e.link(name);
        for x in ["trusted.sentinel", "user.sentinel"] {
            assert_errno!(e.c().fget_xattr(fd, x.as_bytes(), 0), ENODATA);
            assert_errno!(e.c().fget_xattr(fd, x.as_bytes(), 4096), ENODATA);
        }
        let names = e.c().flist_xattr(fd, 0).unwrap();
        assert!(
            !names.iter().any(|n| n.ends_with(b"sentinel")),
            "ESCAPE: {name}: listed the target's xattrs {names:?}"
        );
    }
}

fn xattr_writes_on_link(e: &Env) {
    let fd = e.link("abs_secret");
    // user.* is refused on a symlink itself: the target is not touched.
    assert_errno!(e.c().fset_xattr(fd, b"user.esc", b"v", 0), EPERM);
    assert_errno!(e.c().fremove_xattr(fd, b"user.sentinel"), EPERM);
    assert_errno!(e.c().fremove_xattr(fd, b"trusted.sentinel"), ENODATA);
    if !is_root() {
        eprintln!("xattr_writes_on_link: trusted.* needs root, rest skipped");
        return;
    }
    // trusted.* on the link lands on the link.
    e.c()
        .fset_xattr(fd, b"trusted.esc", b"on the link", 0)
        .unwrap();
    let mut buf = [0u8; 64];
    let n = rustix::fs::lgetxattr(e.host("abs_secret"), "trusted.esc", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"on the link");
    assert_eq!(
        e.c().fget_xattr(fd, b"trusted.esc", 0).unwrap(),
        b"on the link"
    );
    // Replacing the sentinel's own xattr through the link is impossible.
    assert_errno!(
        e.c().fset_xattr(fd, b"trusted.sentinel", b"pwned", 2),
        ENODATA
    );
    e.c().fremove_xattr(fd, b"trusted.esc").unwrap();
}

fn client_symlinks_to_outside(e: &Env) {
    let outside = format!("{}/outside", e.base().display());
    let secret = format!("{outside}/{SECRET}");
    let targets: &[(&str, &str)] = &[
        ("esc-probe-c-abs", &outside),
        ("esc-probe-c-sec", &secret),
        ("esc-probe-c-rel", "../outside"),
        ("esc-probe-c-up", "../../.."),
        ("esc-probe-c-a", "a/../../outside"),
        ("esc-probe-c-etc", "/etc"),
        ("esc-probe-c-root", "/"),
    ];
    for (name, target) in targets {
        let ino = e
            .c()
            .symlink_at(e.root(), name.as_bytes(), target.as_bytes(), NO_UID, NO_GID)
            .unwrap();
        e.check_stat(&ino.stat, "SymlinkAt");
        assert_eq!(ftype(&ino.stat), S_IFLNK);
        assert_eq!(
            e.c().readlink_at(ino.control_fd).unwrap(),
            target.as_bytes()
        );
        walk_stops_at(e, &[name, SECRET], 1, name);
        walk_stops_at(e, &[name, SUBDIR, INNER], 1, name);
        assert_errno!(e.c().open_at(ino.control_fd, O_RDONLY), EINVAL);
        assert_errno!(e.c().open_at(ino.control_fd, O_RDWR | O_TRUNC), EINVAL);
        assert_errno!(
            e.c()
                .mkdir_at(ino.control_fd, b"esc-probe-x", 0o755, NO_UID, NO_GID),
            ENOTDIR
        );
        assert_errno!(
            e.c().open_create_at(
                ino.control_fd,
                b"esc-probe-x",
                0o644,
                NO_UID,
                NO_GID,
                O_RDWR
            ),
            ENOTDIR
        );
        assert_errno!(
            e.c().unlink_at(ino.control_fd, OUT_X.as_bytes(), 0),
            ENOTDIR
        );
    }
}

fn creates_over_dangling_link_eexist(e: &Env) {
    let root = e.root();
    let c = e.c();
    let name = b"dangling_out";
    // O_CREAT|O_EXCL, mkdir, mknod, symlink and link never follow an
    // existing final symlink: its (outside) target is not created.
    assert_errno!(
        c.open_create_at(root, name, 0o644, NO_UID, NO_GID, O_RDWR),
        EEXIST
    );
    assert_errno!(c.mkdir_at(root, name, 0o755, NO_UID, NO_GID), EEXIST);
    assert_errno!(
        c.mknod_at(root, name, S_IFREG | 0o644, NO_UID, NO_GID, 0, 0),
        EEXIST
    );
    assert_errno!(c.symlink_at(root, name, b"/etc", NO_UID, NO_GID), EEXIST);
    let file = e.get("file").control_fd;
    assert_errno!(c.link_at(root, file, name), EEXIST);
    // The same over links to existing outside files.
    for name in ["abs_secret", "abs_out", "rel_secret", "etc"] {
        assert_errno!(
            c.open_create_at(
                root,
                name.as_bytes(),
                0o644,
                NO_UID,
                NO_GID,
                O_RDWR | O_TRUNC
            ),
            EEXIST
        );
        assert_errno!(
            c.mkdir_at(root, name.as_bytes(), 0o755, NO_UID, NO_GID),
            EEXIST
        );
    }
    assert!(!e.s.dir.join("esc-probe-dangling").exists());
}

fn connect_socket_link_enotsock(e: &Env) {
    let fd = e.link("abs_sock");
    assert_errno!(e.c().connect_socket(fd, SOCK_STREAM), ENOTSOCK);
    assert_errno!(
        e.c()
            .connect_socket_with_creds(fd, SOCK_STREAM, Uid(0), Gid(0)),
        ENOTSOCK
    );
    // Nor through any other link.
    for (_, fd) in e.links() {
        assert_errno!(e.c().connect_socket(fd, SOCK_STREAM), ENOTSOCK);
    }
}

// ---------------------------------------------------------------------
// Names.
// ---------------------------------------------------------------------

const NAME_CASES: &[Case] = cases![
    walk_bad_names,
    walk_stat_bad_names,
    open_create_bad_names,
    mkdir_bad_names,
    mknod_bad_names,
    symlink_bad_names,
    link_bad_names,
    unlink_bad_names,
    rename_bad_old_names,
    rename_bad_new_names,
    rename2_bad_names,
    #[uds]
    bind_bad_names,
    bind_bad_names_policy_off,
    name_max_boundary,
    #[uds]
    huge_names,
    symlink_hostile_targets,
    xattr_get_names,
    xattr_set_names,
    xattr_remove_names,
    rename_nul_name_onto_itself,
    #[uds]
    fd_kinds_as_directory,
];

fn walk_bad_names(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let before = e.control_fds();
    for &n in BAD_NAMES {
        let what = show(&[n]);
        for path in [
            vec![n],
            vec![b"dir".as_slice(), n],
            vec![b"dir".as_slice(), n, b"x"],
            vec![b"a".as_slice(), n, b"outside"],
            vec![b"abs_out".as_slice(), n],
        ] {
            // The core's name check (gVisor's checkSafeName) runs before the
            // symlink stop; a NUL byte is refused only by the host backend,
            // when a component is actually looked up, so after a symlink
            // the walk just stops there.
            let stops_first = path[0] == b"abs_out" && n.contains(&0) && check_name_ok(n);
            match c.walk(root, &path) {
                Err(lisafs_client::Error::Errno(EINVAL)) if !stops_first => {}
                Ok((WalkStatus::ComponentSymlink, inodes)) if stops_first && inodes.len() == 1 => {
                    assert_eq!(ftype(&inodes[0].stat), S_IFLNK);
                    c.close(&[inodes[0].control_fd]).unwrap();
                }
                other => panic!(
                    "walk {} ({what}): {:?}",
                    show(&path),
                    other.map(|r| (r.0, r.1.len()))
                ),
            }
        }
    }
    // A failed walk keeps none of the FDs it made on the way.
    assert_eq!(e.control_fds(), before);
}

/// gVisor's checkSafeName, which the server core applies: no NUL check.
fn check_name_ok(n: &[u8]) -> bool {
    !n.is_empty() && n != b"." && n != b".." && !n.contains(&b'/')
}

fn walk_stat_bad_names(e: &Env) {
    let (c, root) = (e.c(), e.root());
    for &n in BAD_NAMES {
        if n.is_empty() {
            // Only a leading empty name is allowed (the start's own stat).
            assert_eq!(c.walk_stat(root, &[n]).unwrap().len(), 1);
            assert_errno!(c.walk_stat(root, &[b"", n]), EINVAL);
            assert_errno!(c.walk_stat(root, &[b"dir", n]), EINVAL);
            continue;
        }
        assert_errno!(c.walk_stat(root, &[n]), EINVAL);
        assert_errno!(c.walk_stat(root, &[b"", n]), EINVAL);
        assert_errno!(c.walk_stat(root, &[b"dir", n]), EINVAL);
        assert_errno!(c.walk_stat(root, &[b"dir", n, b"x"]), EINVAL);
    }
}

/// The directories every create is tried in.
fn dirs(e: &Env) -> [FdId; 3] {
    [e.root(), e.get("dir").control_fd, e.get("a").control_fd]
}

fn open_create_bad_names(e: &Env) {
    for dir in dirs(e) {
        for &n in BAD_NAMES {
            for flags in [O_RDONLY, O_RDWR | O_TRUNC] {
                assert_errno!(
                    e.c().open_create_at(dir, n, 0o644, NO_UID, NO_GID, flags),
                    EINVAL
                );
            }
        }
    }
}

fn mkdir_bad_names(e: &Env) {
    for dir in dirs(e) {
        for &n in BAD_NAMES {
            assert_errno!(e.c().mkdir_at(dir, n, 0o755, NO_UID, NO_GID), EINVAL);
        }
    }
}

fn mknod_bad_names(e: &Env) {
    for dir in dirs(e) {
        for &n in BAD_NAMES {
            for mode in [S_IFREG | 0o644, S_IFCHR | 0o600, S_IFIFO | 0o644] {
                assert_errno!(e.c().mknod_at(dir, n, mode, NO_UID, NO_GID, 0, 0), EINVAL);
            }
        }
    }
}

fn symlink_bad_names(e: &Env) {
    for dir in dirs(e) {
        for &n in BAD_NAMES {
            assert_errno!(e.c().symlink_at(dir, n, b"/etc", NO_UID, NO_GID), EINVAL);
            assert_errno!(e.c().symlink_at(dir, n, b"x", NO_UID, NO_GID), EINVAL);
        }
    }
}

fn link_bad_names(e: &Env) {
    let file = e.get("file").control_fd;
    let link = e.link("abs_secret");
    for dir in dirs(e) {
        for &n in BAD_NAMES {
            assert_errno!(e.c().link_at(dir, file, n), EINVAL);
            assert_errno!(e.c().link_at(dir, link, n), EINVAL);
        }
    }
    assert_eq!(host_stat(&e.host("file")).stx_nlink, 1);
}

fn unlink_bad_names(e: &Env) {
    for dir in dirs(e) {
        for &n in BAD_NAMES {
            assert_errno!(e.c().unlink_at(dir, n, 0), EINVAL);
            assert_errno!(e.c().unlink_at(dir, n, AT_REMOVEDIR), EINVAL);
        }
    }
    assert!(e.host("dir/x").exists());
}

fn rename_bad_old_names(e: &Env) {
    let [root, dir, a] = dirs(e);
    for &n in BAD_NAMES {
        for (from, to) in [(root, root), (dir, root), (a, dir)] {
            assert_errno!(e.c().rename_at(from, n, to, b"esc-probe-rn"), EINVAL);
        }
    }
}

fn rename_bad_new_names(e: &Env) {
    let [root, dir, a] = dirs(e);
    for &n in BAD_NAMES {
        assert_errno!(e.c().rename_at(root, b"file", root, n), EINVAL);
        assert_errno!(e.c().rename_at(root, b"file", dir, n), EINVAL);
        assert_errno!(e.c().rename_at(dir, b"x", a, n), EINVAL);
        assert_errno!(e.c().rename_at(root, b"dir", a, n), EINVAL);
    }
    assert_eq!(std::fs::read(e.host("file")).unwrap(), INSIDE);
    assert_eq!(std::fs::read(e.host("dir/x")).unwrap(), INSIDE_X);
}

fn rename2_bad_names(e: &Env) {
    let [root, dir, _] = dirs(e);
    for &n in BAD_NAMES {
        for flags in [RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT] {
            assert_errno!(e.c().rename_at2(root, n, dir, b"x", flags), EINVAL);
            assert_errno!(e.c().rename_at2(root, b"file", dir, n, flags), EINVAL);
            assert_errno!(e.c().rename_at2(dir, b"x", root, n, flags), EINVAL);
        }
    }
    assert_eq!(std::fs::read(e.host("file")).unwrap(), INSIDE);
}

fn bind_bad_names(e: &Env) {
    for dir in dirs(e) {
        for &n in BAD_NAMES {
            assert_errno!(
                e.c().bind_at(dir, n, SOCK_STREAM, 0o700, NO_UID, NO_GID),
                EINVAL
            );
        }
    }
}

fn bind_bad_names_policy_off(e: &Env) {
    // The name check comes before the policy check.
    for &n in BAD_NAMES {
        assert_errno!(
            e.c()
                .bind_at(e.root(), n, SOCK_STREAM, 0o700, NO_UID, NO_GID),
            EINVAL
        );
    }
    assert_errno!(
        e.c().bind_at(
            e.root(),
            b"esc-probe.sock",
            SOCK_STREAM,
            0o700,
            NO_UID,
            NO_GID
        ),
        EPERM
    );
}

/// Every name-taking message with `name`, expecting `errno`.
fn all_name_ops_fail(e: &Env, name: &[u8], errno: u32) {
    let (c, root) = (e.c(), e.root());
    let file = e.get("file").control_fd;
    let what = format!("{}-byte name", name.len());
    let check = |r: lisafs_client::Result<()>, op: &str| match r {
        Err(lisafs_client::Error::Errno(n)) if n == errno => {}
        other => panic!("{op} with a {what}: expected errno {errno}, got {other:?}"),
    };
    check(c.walk(root, &[name]).map(drop), "Walk");
    check(c.walk(root, &[b"dir", name]).map(drop), "Walk in dir");
    check(c.walk_stat(root, &[name]).map(drop), "WalkStat");
    check(
        c.open_create_at(root, name, 0o644, NO_UID, NO_GID, O_RDWR)
            .map(drop),
        "OpenCreateAt",
    );
    check(
        c.mkdir_at(root, name, 0o755, NO_UID, NO_GID).map(drop),
        "MkdirAt",
    );
    check(
        c.mknod_at(root, name, S_IFREG | 0o644, NO_UID, NO_GID, 0, 0)
            .map(drop),
        "MknodAt",
    );
    check(
        c.symlink_at(root, name, b"/etc", NO_UID, NO_GID).map(drop),
        "SymlinkAt",
    );
    check(c.link_at(root, file, name).map(drop), "LinkAt");
    check(c.unlink_at(root, name, 0), "UnlinkAt");
    check(
        c.rename_at(root, name, root, b"esc-probe-rn"),
        "RenameAt old",
    );
    check(c.rename_at(root, b"file", root, name), "RenameAt new");
    check(
        c.rename_at2(root, b"file", root, name, RENAME_NOREPLACE),
        "RenameAt2",
    );
}

fn name_max_boundary(e: &Env) {
    let (c, root) = (e.c(), e.root());
    // NAME_MAX bytes work for every message...
    let n = |fill| name_of(NAME_MAX, fill);
    let (f, _, _) = c
        .open_create_at(root, &n(b'f'), 0o644, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    e.walk_expect(root, &[&n(b'f')], WalkStatus::Success, 1);
    assert_eq!(c.walk_stat(root, &[&n(b'f')]).unwrap().len(), 1);
    c.mkdir_at(root, &n(b'd'), 0o755, NO_UID, NO_GID).unwrap();
    c.mknod_at(root, &n(b'k'), S_IFREG | 0o644, NO_UID, NO_GID, 0, 0)
        .unwrap();
    c.symlink_at(root, &n(b's'), &n(b't'), NO_UID, NO_GID)
        .unwrap();
    c.link_at(root, f.control_fd, &n(b'l')).unwrap();
    c.rename_at(root, &n(b'f'), root, &n(b'g')).unwrap();
    for fill in [b'g', b'k', b's', b'l'] {
        c.unlink_at(root, &n(fill), 0).unwrap();
    }
    c.unlink_at(root, &n(b'd'), AT_REMOVEDIR).unwrap();
    // ...and one more byte is the host's ENAMETOOLONG everywhere.
    all_name_ops_fail(e, &name_of(NAME_MAX + 1, b'n'), ENAMETOOLONG);
}

fn huge_names(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let file = e.get("file").control_fd;
    // The longest name a SizedString can carry reaches the host, which
    // refuses it.
    let huge = name_of(usize::from(u16::MAX), b'h');
    all_name_ops_fail(e, &huge, ENAMETOOLONG);
    assert_errno!(
        c.bind_at(root, &huge, SOCK_STREAM, 0o700, NO_UID, NO_GID),
        EINVAL
    );
    assert_errno!(c.fget_xattr(file, &huge, 0), ERANGE);
    assert_errno!(c.fset_xattr(file, &huge, b"v", 0), ERANGE);
    assert_errno!(c.fremove_xattr(file, &huge), ERANGE);
    assert_errno!(
        c.symlink_at(root, b"esc-probe-t", &huge, NO_UID, NO_GID),
        ENAMETOOLONG
    );
    // One byte more cannot even be encoded: refused locally.
    let over = name_of(usize::from(u16::MAX) + 1, b'o');
    all_name_ops_fail(e, &over, EINVAL);
    assert_errno!(
        c.bind_at(root, &over, SOCK_STREAM, 0o700, NO_UID, NO_GID),
        EINVAL
    );
    assert_errno!(c.fget_xattr(file, &over, 0), EINVAL);
    assert_errno!(
        c.symlink_at(root, b"esc-probe-t", &over, NO_UID, NO_GID),
        EINVAL
    );
}

fn symlink_hostile_targets(e: &Env) {
    let (c, root) = (e.c(), e.root());
    assert_errno!(c.symlink_at(root, b"t-empty", b"", NO_UID, NO_GID), ENOENT);
    assert_errno!(
        c.symlink_at(root, b"t-nul", b"/etc\0/x", NO_UID, NO_GID),
        EINVAL
    );
    let long_ok = name_of(4095, b'p');
    let long_bad = name_of(4096, b'p');
    assert_errno!(
        c.symlink_at(root, b"t-long", &long_bad, NO_UID, NO_GID),
        ENAMETOOLONG
    );
    let targets: Vec<(&[u8], &[u8])> = vec![
        (b"t-4095", &long_ok),
        (b"t-dotdot", b".."),
        (b"t-slash", b"/"),
        (b"t-shadow", b"../../../../../../../../etc/shadow"),
        (b"t-proc", b"/proc/self/root/etc"),
        (b"t-dots", b"./././../outside"),
    ];
    for (name, target) in targets {
        let ino = c.symlink_at(root, name, target, NO_UID, NO_GID).unwrap();
        assert_eq!(ftype(&ino.stat), S_IFLNK);
        assert_eq!(ino.stat.size, target.len() as u64);
        assert_eq!(c.readlink_at(ino.control_fd).unwrap(), target);
        e.walk_expect(root, &[name, b"x"], WalkStatus::ComponentSymlink, 1);
        assert_errno!(c.open_at(ino.control_fd, O_RDONLY), EINVAL);
    }
    // Nothing was created where the failed ones pointed.
    for name in ["t-empty", "t-nul", "t-long"] {
        assert!(std::fs::symlink_metadata(e.host(name)).is_err(), "{name}");
    }
}

/// Xattr names are not paths: none reaches anything but the FD's file.
const PATHLIKE_XATTRS: &[(&[u8], u32)] = &[
    (b"../../outside/sentinel-secret.txt", EOPNOTSUPP),
    (b"/etc/passwd", EOPNOTSUPP),
    (b"sentinel", EOPNOTSUPP),
    (b"..", EOPNOTSUPP),
    (b"", ERANGE),
    (b"user.a\0b", EINVAL),
];

fn xattr_get_names(e: &Env) {
    let c = e.c();
    let long = [b"user.".as_slice(), &name_of(251, b'x')].concat();
    let longest_ok = [b"user.".as_slice(), &name_of(250, b'x')].concat();
    for fd in [e.get("file").control_fd, e.get("dir").control_fd, e.root()] {
        for (name, errno) in PATHLIKE_XATTRS {
            assert_errno!(c.fget_xattr(fd, name, 0), *errno);
        }
        assert_errno!(c.fget_xattr(fd, b"user.", 0), EINVAL);
        assert_errno!(c.fget_xattr(fd, b"trusted.sentinel", 0), ENODATA);
        assert_errno!(c.fget_xattr(fd, b"user.sentinel", 0), ENODATA);
        assert_errno!(
            c.fget_xattr(fd, b"user.../../outside/sentinel-secret.txt", 0),
            ENODATA
        );
        assert_errno!(c.fget_xattr(fd, &long, 0), ERANGE);
        assert_errno!(c.fget_xattr(fd, &longest_ok, 0), ENODATA);
        let names = c.flist_xattr(fd, 0).unwrap();
        assert!(!names.iter().any(|n| n.ends_with(b"sentinel")), "{names:?}");
    }
}

fn xattr_set_names(e: &Env) {
    let c = e.c();
    let fd = e.get("file").control_fd;
    for (name, errno) in PATHLIKE_XATTRS {
        assert_errno!(c.fset_xattr(fd, name, b"v", 0), *errno);
    }
    // Slashes and dots after a namespace are just bytes of the name: the
    // attribute lands on the file itself.
    for name in [
        b"user.../../outside/sentinel-secret.txt".as_slice(),
        b"user./etc/passwd",
    ] {
        c.fset_xattr(fd, name, b"inside", 0).unwrap();
        let mut buf = [0u8; 16];
        let n = rustix::fs::lgetxattr(e.host("file"), name, &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"inside");
        assert_eq!(c.fget_xattr(fd, name, 0).unwrap(), b"inside");
    }
    // XATTR_REPLACE of the sentinel's attribute name: the file has none.
    assert_errno!(c.fset_xattr(fd, b"user.sentinel", b"pwned", 2), ENODATA);
}

fn xattr_remove_names(e: &Env) {
    let c = e.c();
    let fd = e.get("file").control_fd;
    for (name, errno) in PATHLIKE_XATTRS {
        assert_errno!(c.fremove_xattr(fd, name), *errno);
    }
    assert_errno!(c.fremove_xattr(fd, b"user.sentinel"), ENODATA);
    assert_errno!(c.fremove_xattr(fd, b"trusted.sentinel"), ENODATA);
    assert_errno!(
        c.fremove_xattr(fd, b"user.../../outside/sentinel-secret.txt"),
        ENODATA
    );
}

fn rename_nul_name_onto_itself(e: &Env) {
    let (c, root) = (e.c(), e.root());
    // The core's name check lets NUL through (as gVisor's does) and a rename
    // of a name onto itself in the same directory returns before the host
    // is asked: a harmless success that touches nothing.
    c.rename_at(root, b"a\0b", root, b"a\0b").unwrap();
    c.rename_at2(root, b"x\0", root, b"x\0", RENAME_NOREPLACE)
        .unwrap();
    // Anything that reaches the host is refused.
    assert_errno!(c.rename_at(root, b"a\0b", root, b"a\0c"), EINVAL);
    assert_errno!(
        c.rename_at(root, b"file\0", e.get("dir").control_fd, b"file\0"),
        EINVAL
    );
    assert_eq!(std::fs::read(e.host("file")).unwrap(), INSIDE);
}

fn fd_kinds_as_directory(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let dir = e.get("dir").control_fd;
    let (open_dir, _) = c.open_at(dir, O_RDONLY).unwrap();
    let (ino, bound, _sock) = c
        .bind_at(root, b"s.sock", SOCK_STREAM, 0o700, NO_UID, NO_GID)
        .unwrap();
    let file = e.get("file").control_fd;
    // An open FD or a bound-socket FD is the wrong kind of FD for a
    // directory; a file or socket control FD is no directory.
    for fd in [open_dir, bound] {
        assert_errno!(c.walk(fd, &[b"x"]), EINVAL);
        assert_errno!(c.walk_stat(fd, &[b"x"]), EINVAL);
        assert_errno!(
            c.open_create_at(fd, b"esc-probe-k", 0o644, NO_UID, NO_GID, O_RDWR),
            EINVAL
        );
        assert_errno!(
            c.mkdir_at(fd, b"esc-probe-k", 0o755, NO_UID, NO_GID),
            EINVAL
        );
        assert_errno!(c.unlink_at(fd, b"x", 0), EINVAL);
        assert_errno!(c.rename_at(fd, b"x", root, b"esc-probe-k"), EINVAL);
        assert_errno!(c.link_at(fd, file, b"esc-probe-k"), EINVAL);
    }
    for fd in [file, ino.control_fd] {
        assert_errno!(c.walk(fd, &[b"x"]), ENOTDIR);
        assert_errno!(
            c.mkdir_at(fd, b"esc-probe-k", 0o755, NO_UID, NO_GID),
            ENOTDIR
        );
        assert_errno!(
            c.bind_at(fd, b"esc-probe-k", SOCK_STREAM, 0o700, NO_UID, NO_GID),
            ENOTDIR
        );
        assert_errno!(c.unlink_at(fd, b"x", 0), ENOTDIR);
    }
    assert_errno!(c.getdents64(dir, 4096), EINVAL);
    assert_errno!(c.getdents64(bound, 4096), EINVAL);
    assert_errno!(c.getdents64(FdId(999_999), 4096), EBADF);
}

// ---------------------------------------------------------------------
// Hard links.
// ---------------------------------------------------------------------

const HARDLINK_CASES: &[Case] = cases![
    admin_hardlink_served_as_file,
    admin_hardlink_relinked_inside,
    client_cannot_link_outside_inode,
    link_wrong_fd_kinds,
    link_client_deleted_file_einval,
    link_host_deleted_file_enoent,
    fd_pins_file_replaced_by_outside_link,
];

fn admin_hardlink_served_as_file(e: &Env) {
    // Linked by the host admin before serving: an ordinary file of the root.
    let hl = e.get("hl");
    assert_eq!(ftype(&hl.stat), S_IFREG);
    assert_eq!(hl.stat.nlink, 2);
    assert_eq!(hl.stat.ino, host_ino(&e.base().join(ADMIN_FILE)));
    assert_eq!(e.read_all(hl.control_fd), ADMIN_CONTENT);
}

fn admin_hardlink_relinked_inside(e: &Env) {
    let hl = e.get("hl");
    let new = e.c().link_at(e.root(), hl.control_fd, b"hl2").unwrap();
    assert_eq!(new.stat.ino, hl.stat.ino);
    assert_eq!(new.stat.nlink, 3);
    assert_eq!(std::fs::read(e.host("hl2")).unwrap(), ADMIN_CONTENT);
}

fn client_cannot_link_outside_inode(e: &Env) {
    // Every way to name an outside file is a symlink: linking it links the
    // symlink.
    let root = e.root();
    for (i, path) in ["abs_secret", "rel_secret", "dir/rel_deep", "proc_fd"]
        .iter()
        .enumerate()
    {
        let fd = e.link(path);
        let name = format!("esc-probe-{i}");
        let new = e.c().link_at(root, fd, name.as_bytes()).unwrap();
        e.check_stat(&new.stat, "LinkAt");
        assert_eq!(ftype(&new.stat), S_IFLNK);
        assert_eq!(new.stat.ino, host_ino(&e.host(path)));
    }
    let secret = host_stat(&e.s.dir.join(SECRET));
    assert_eq!(secret.stx_nlink, 1);
}

fn link_wrong_fd_kinds(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let file = e.get("file").control_fd;
    let dir = e.get("dir").control_fd;
    let (open, _) = c.open_at(file, O_RDONLY).unwrap();
    assert_errno!(c.link_at(root, root, b"esc-probe-l"), EPERM);
    assert_errno!(c.link_at(root, dir, b"esc-probe-l"), EPERM);
    assert_errno!(c.link_at(root, open, b"esc-probe-l"), EINVAL);
    assert_errno!(c.link_at(root, FdId(999_999), b"esc-probe-l"), EBADF);
    assert_errno!(c.link_at(open, file, b"esc-probe-l"), EINVAL);
    assert_errno!(c.link_at(file, file, b"esc-probe-l"), ENOTDIR);
    assert_errno!(c.link_at(FdId(999_999), file, b"esc-probe-l"), EBADF);
    assert_eq!(host_stat(&e.host("file")).stx_nlink, 1);
}

fn link_client_deleted_file_einval(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let (ino, open, _) = c
        .open_create_at(root, b"doomed", 0o644, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    c.close(&[open]).unwrap();
    c.unlink_at(root, b"doomed", 0).unwrap();
    assert_errno!(c.link_at(root, ino.control_fd, b"resurrected"), EINVAL);
    assert!(!e.host("resurrected").exists());
}

fn link_host_deleted_file_enoent(e: &Env) {
    let file = e.get("file").control_fd;
    std::fs::remove_file(e.host("file")).unwrap();
    // The server does not know; the host refuses to give an unlinked inode
    // a new name.
    assert_errno!(e.c().link_at(e.root(), file, b"resurrected"), ENOENT);
    assert!(!e.host("resurrected").exists());
}

fn fd_pins_file_replaced_by_outside_link(e: &Env) {
    let file = e.get("file");
    // The host replaces the file by a link to the sentinel.
    let tmp = e.host("file.tmp");
    std::os::unix::fs::symlink(e.s.dir.join(SECRET), &tmp).unwrap();
    std::fs::rename(&tmp, e.host("file")).unwrap();
    // The old FD still names the old (now unlinked) inode.
    assert_eq!(e.read_all(file.control_fd), INSIDE);
    let (w, _) = e.c().open_at(file.control_fd, O_RDWR | O_TRUNC).unwrap();
    e.c().pwrite(w, 0, b"still inside").unwrap();
    e.c().close(&[w]).unwrap();
    let st = e.c().fstat(file.control_fd).unwrap();
    assert_eq!(st.ino, file.stat.ino);
    assert_eq!(st.nlink, 0);
    assert_errno!(
        e.c().link_at(e.root(), file.control_fd, b"esc-probe-r"),
        ENOENT
    );
    // A new walk finds the link.
    let again = e.get("file");
    assert_eq!(ftype(&again.stat), S_IFLNK);
    assert_errno!(e.c().open_at(again.control_fd, O_RDONLY), EINVAL);
}

// ---------------------------------------------------------------------
// Sockets.
// ---------------------------------------------------------------------

const SOCKET_CASES: &[Case] = cases![
    #[uds]
    bind_sun_path_boundary,
    #[uds]
    bind_over_links_eaddrinuse,
    #[uds]
    connect_pinned_inside_socket,
    socket_policy_off,
    #[uds]
    bind_in_held_dir_after_host_swap,
];

fn bind_sun_path_boundary(e: &Env) {
    let (c, root) = (e.c(), e.root());
    // The server binds "/proc/self/fd/<dir fd>/<name>": 14 bytes, the FD's
    // digits, a slash and the name must stay under 108 bytes.
    let mut longest = None;
    for len in 80..=100 {
        let name = name_of(len, b'b');
        match c.bind_at(root, &name, SOCK_STREAM, 0o700, NO_UID, NO_GID) {
            Ok((ino, bound, _sock)) => {
                assert_eq!(ftype(&ino.stat), S_IFSOCK);
                assert!(longest.is_none(), "{len} bound after a shorter one failed");
                c.close(&[bound, ino.control_fd]).unwrap();
                c.unlink_at(root, &name, 0).unwrap();
            }
            Err(lisafs_client::Error::Errno(EINVAL)) => {
                longest.get_or_insert(len - 1);
            }
            Err(err) => panic!("bind of a {len}-byte name: {err}"),
        }
    }
    let longest = longest.expect("some length fails");
    let digits = 107 - 15 - longest;
    assert!((1..=5).contains(&digits), "longest name {longest}");
    for len in [NAME_MAX, NAME_MAX + 1, 108, 107 - 15] {
        let name = name_of(len, b'c');
        assert_errno!(
            c.bind_at(root, &name, SOCK_STREAM, 0o700, NO_UID, NO_GID),
            EINVAL
        );
    }
}

fn bind_over_links_eaddrinuse(e: &Env) {
    let (c, root) = (e.c(), e.root());
    // bind(2) never follows a final symlink, dangling or not.
    for name in [
        "dangling_out",
        "abs_sock",
        "abs_out",
        "abs_secret",
        "etc",
        "file",
    ] {
        assert_errno!(
            c.bind_at(root, name.as_bytes(), SOCK_STREAM, 0o700, NO_UID, NO_GID),
            EADDRINUSE
        );
    }
    assert!(!e.s.dir.join("esc-probe-dangling").exists());
}

fn connect_pinned_inside_socket(e: &Env) {
    use std::os::unix::net::UnixListener;
    let inside = UnixListener::bind(e.host("in.sock")).unwrap();
    inside.set_nonblocking(true).unwrap();
    let sock = e.get("in.sock");
    assert_eq!(ftype(&sock.stat), S_IFSOCK);
    // The host puts a link to the sentinel socket in its place.
    let tmp = e.host("in.tmp");
    std::os::unix::fs::symlink(e.s.dir.join(SOCK), &tmp).unwrap();
    std::fs::rename(&tmp, e.host("in.sock")).unwrap();
    // The FD names the inside socket, wherever its name went.
    let conn = e.c().connect_socket(sock.control_fd, SOCK_STREAM).unwrap();
    inside
        .accept()
        .expect("the inside socket got the connection");
    drop(conn);
    let again = e.get("in.sock");
    assert_eq!(ftype(&again.stat), S_IFLNK);
    assert_errno!(
        e.c().connect_socket(again.control_fd, SOCK_STREAM),
        ENOTSOCK
    );
}

fn socket_policy_off(e: &Env) {
    use std::os::unix::net::UnixListener;
    let _inside = UnixListener::bind(e.host("in.sock")).unwrap();
    let sock = e.get("in.sock");
    assert_errno!(e.c().connect_socket(sock.control_fd, SOCK_STREAM), EPERM);
    assert_errno!(e.c().open_at(sock.control_fd, O_RDONLY), EPERM);
    assert_errno!(
        e.c().connect_socket(e.link("abs_sock"), SOCK_STREAM),
        ENOTSOCK
    );
    assert_errno!(
        e.c().bind_at(
            e.root(),
            b"esc-probe.sock",
            SOCK_STREAM,
            0o700,
            NO_UID,
            NO_GID
        ),
        EPERM
    );
    assert_errno!(
        e.c().bind_at(
            e.root(),
            b"dangling_out",
            SOCK_STREAM,
            0o700,
            NO_UID,
            NO_GID
        ),
        EPERM
    );
}

fn bind_in_held_dir_after_host_swap(e: &Env) {
    let dir = e.get("dir").control_fd;
    std::fs::rename(e.host("dir"), e.host("dir.moved")).unwrap();
    std::os::unix::fs::symlink(&e.s.dir, e.host("dir")).unwrap();
    // BindAt goes through the directory FD's magic link: the socket is made
    // in the directory the FD holds.
    let (ino, bound, _sock) = e
        .c()
        .bind_at(dir, b"esc-probe-b.sock", SOCK_STREAM, 0o700, NO_UID, NO_GID)
        .unwrap();
    e.check_stat(&ino.stat, "BindAt");
    assert_eq!(host_type(&e.host("dir.moved/esc-probe-b.sock")), S_IFSOCK);
    e.c().listen(bound, 1).unwrap();
    let _peer =
        std::os::unix::net::UnixStream::connect(e.host("dir.moved/esc-probe-b.sock")).unwrap();
    e.c().accept(bound).unwrap();
}

// ---------------------------------------------------------------------
// Renames.
// ---------------------------------------------------------------------

const RENAME_CASES: &[Case] = cases![
    rename_root_unnameable,
    rename_over_outside_link_replaces_link,
    rename_dir_over_outside_link_enotdir,
    rename_noreplace_onto_link_eexist,
    rename_outside_link_moves_only_link,
    exchange_dir_with_outside_link,
    exchange_file_with_file_link,
    whiteout_stays_inside,
    rename_bad_flags_einval,
    held_dir_fd_after_host_swap,
    held_dir_fd_after_client_rename,
    rename_between_connections_refused,
];

fn rename_root_unnameable(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let dir = e.get("dir").control_fd;
    let root_ino = host_ino(&e.h.scratch.root);
    // The root has no name the client can use: its parent is out of reach
    // and "." / ".." are refused.
    for (from, old, to, new) in [
        (root, b".".as_slice(), root, b"esc-probe-root".as_slice()),
        (root, b"..", root, b"esc-probe-root"),
        (dir, b"..", root, b"esc-probe-root"),
        (root, b"dir", root, b".."),
        (root, b"dir", dir, b".."),
        (root, b"dir", root, b"."),
    ] {
        assert_errno!(c.rename_at(from, old, to, new), EINVAL);
        assert_errno!(c.rename_at2(from, old, to, new, RENAME_EXCHANGE), EINVAL);
    }
    assert_errno!(c.unlink_at(root, b".", AT_REMOVEDIR), EINVAL);
    assert_errno!(c.unlink_at(dir, b"..", AT_REMOVEDIR), EINVAL);
    // A directory cannot move below itself (the host's EINVAL).
    assert_errno!(c.rename_at(root, b"dir", dir, b"sub"), EINVAL);
    // Renaming onto itself is a no-op.
    c.rename_at(root, b"dir", root, b"dir").unwrap();
    assert_eq!(host_ino(&e.h.scratch.root), root_ino);
    assert_eq!(ftype(&c.fstat(root).unwrap()), S_IFDIR);
    assert_eq!(std::fs::read(e.host("dir/x")).unwrap(), INSIDE_X);
}

fn rename_over_outside_link_replaces_link(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let dir = e.get("dir").control_fd;
    // rename(2) replaces the link itself, never its target.
    c.rename_at(root, b"file", root, b"abs_out").unwrap();
    assert_eq!(host_type(&e.host("abs_out")), S_IFREG);
    assert_eq!(std::fs::read(e.host("abs_out")).unwrap(), INSIDE);
    c.rename_at(dir, b"x", root, b"rel_secret").unwrap();
    assert_eq!(std::fs::read(e.host("rel_secret")).unwrap(), INSIDE_X);
    c.rename_at(dir, b"y", dir, b"rel_deep").unwrap();
    assert_eq!(host_type(&e.host("dir/rel_deep")), S_IFREG);
    let moved = e.get("rel_secret");
    assert_eq!(e.read_all(moved.control_fd), INSIDE_X);
}

fn rename_dir_over_outside_link_enotdir(e: &Env) {
    let (c, root) = (e.c(), e.root());
    for target in ["abs_out", "etc", "rel_out", "dangling_out", "proc_root"] {
        assert_errno!(c.rename_at(root, b"dir", root, target.as_bytes()), ENOTDIR);
        assert_errno!(c.rename_at(root, b"a", root, target.as_bytes()), ENOTDIR);
    }
    assert_eq!(host_type(&e.host("dir")), S_IFDIR);
}

fn rename_noreplace_onto_link_eexist(e: &Env) {
    let (c, root) = (e.c(), e.root());
    for target in ["abs_out", "abs_secret", "dangling_out", "loop"] {
        assert_errno!(
            c.rename_at2(root, b"file", root, target.as_bytes(), RENAME_NOREPLACE),
            EEXIST
        );
        assert_errno!(
            c.rename_at2(root, b"dir", root, target.as_bytes(), RENAME_NOREPLACE),
            EEXIST
        );
    }
    assert_eq!(std::fs::read(e.host("file")).unwrap(), INSIDE);
}

fn rename_outside_link_moves_only_link(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let dir = e.get("dir").control_fd;
    c.rename_at(root, b"abs_secret", dir, b"moved").unwrap();
    c.rename_at(root, b"abs_out", dir, b"moved_dir").unwrap();
    c.rename_at(root, b"rel_out", dir, b"moved_rel").unwrap();
    assert_eq!(host_type(&e.host("dir/moved")), S_IFLNK);
    assert_eq!(
        std::fs::read_link(e.host("dir/moved_rel")).unwrap(),
        Path::new("../outside")
    );
    // Relative links now point elsewhere, still without being followed.
    walk_stops_at(e, &["dir", "moved_rel", SECRET], 2, "dir/moved_rel");
    walk_stops_at(e, &["dir", "moved_dir", SECRET], 2, "dir/moved_dir");
    walk_stops_at(e, &["dir", "moved", "x"], 2, "dir/moved");
}

fn exchange_dir_with_outside_link(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let dir = e.get("dir").control_fd;
    c.rename_at2(root, b"abs_out", root, b"dir", RENAME_EXCHANGE)
        .unwrap();
    // Only the names swapped: the link is now "dir", the directory
    // "abs_out"; nothing outside moved.
    assert_eq!(host_type(&e.host("dir")), S_IFLNK);
    assert_eq!(host_type(&e.host("abs_out")), S_IFDIR);
    walk_stops_at(e, &["dir", "x"], 1, "dir");
    let x = e.get("abs_out/x");
    assert_eq!(e.read_all(x.control_fd), INSIDE_X);
    // The FD held on the directory follows it.
    let (ino, open, _) = c
        .open_create_at(dir, b"esc-probe-e", 0o644, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    c.pwrite(open, 0, b"made through the held FD").unwrap();
    e.check_stat(&ino.stat, "OpenCreateAt");
    assert_eq!(
        std::fs::read(e.host("abs_out/esc-probe-e")).unwrap(),
        b"made through the held FD"
    );
    // And back.
    c.rename_at2(root, b"dir", root, b"abs_out", RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(host_type(&e.host("dir")), S_IFDIR);
    assert!(e.host("dir/esc-probe-e").exists());
}

fn exchange_file_with_file_link(e: &Env) {
    let (c, root) = (e.c(), e.root());
    c.rename_at2(root, b"file", root, b"abs_secret", RENAME_EXCHANGE)
        .unwrap();
    let f = e.get("abs_secret");
    assert_eq!(ftype(&f.stat), S_IFREG);
    assert_eq!(e.read_all(f.control_fd), INSIDE);
    let l = e.get("file");
    assert_eq!(ftype(&l.stat), S_IFLNK);
    assert_errno!(c.open_at(l.control_fd, O_RDWR | O_TRUNC), EINVAL);
    // Exchanging a directory with a file link is fine too: names only.
    c.rename_at2(root, b"dir", root, b"file", RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(host_type(&e.host("file")), S_IFDIR);
    assert_eq!(host_type(&e.host("dir")), S_IFLNK);
}

fn whiteout_stays_inside(e: &Env) {
    if !is_root() {
        eprintln!("whiteout_stays_inside: needs CAP_MKNOD, skipped");
        return;
    }
    let (c, root) = (e.c(), e.root());
    c.rename_at2(root, b"file", root, b"moved", RENAME_WHITEOUT)
        .unwrap();
    let wh = e.get("file");
    assert_eq!(ftype(&wh.stat), S_IFCHR);
    assert_eq!((wh.stat.rdev_major, wh.stat.rdev_minor), (0, 0));
    assert_errno!(c.open_at(wh.control_fd, O_RDONLY), EPERM);
    assert_eq!(std::fs::read(e.host("moved")).unwrap(), INSIDE);
    // Whiteout over an outside link replaces the link.
    c.rename_at2(root, b"moved", root, b"abs_secret", RENAME_WHITEOUT)
        .unwrap();
    assert_eq!(std::fs::read(e.host("abs_secret")).unwrap(), INSIDE);
}

fn rename_bad_flags_einval(e: &Env) {
    let (c, root) = (e.c(), e.root());
    for flags in [
        8,
        0x8000_0000,
        RENAME_NOREPLACE | RENAME_EXCHANGE,
        RENAME_WHITEOUT | RENAME_EXCHANGE,
    ] {
        assert_errno!(c.rename_at2(root, b"file", root, b"abs_out", flags), EINVAL);
    }
    assert_eq!(host_type(&e.host("abs_out")), S_IFLNK);
}

fn held_dir_fd_after_host_swap(e: &Env) {
    let c = e.c();
    let dir = e.get("dir").control_fd;
    // The host moves the directory away and puts a link to the sentinel
    // in its place.
    std::fs::rename(e.host("dir"), e.host("dir.moved")).unwrap();
    std::os::unix::fs::symlink(&e.s.dir, e.host("dir")).unwrap();
    // Everything through the held FD happens in the directory it holds.
    let (ino, open, _) = c
        .open_create_at(dir, b"esc-probe-h1", 0o644, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    e.check_stat(&ino.stat, "OpenCreateAt");
    c.pwrite(open, 0, b"h1").unwrap();
    c.mkdir_at(dir, b"esc-probe-h2", 0o755, NO_UID, NO_GID)
        .unwrap();
    c.symlink_at(dir, b"esc-probe-h3", b"/etc", NO_UID, NO_GID)
        .unwrap();
    c.mknod_at(dir, b"esc-probe-h4", S_IFREG | 0o644, NO_UID, NO_GID, 0, 0)
        .unwrap();
    c.rename_at(dir, b"x", dir, b"esc-probe-h5").unwrap();
    c.unlink_at(dir, b"y", 0).unwrap();
    for n in 1..=5 {
        assert!(
            e.host(&format!("dir.moved/esc-probe-h{n}")).exists(),
            "h{n}"
        );
    }
    assert!(!e.host("dir.moved/y").exists());
    let h5 = e.walk_expect(dir, &[b"esc-probe-h5"], WalkStatus::Success, 1);
    assert_eq!(e.read_all(h5[0].control_fd), INSIDE_X);
    e.walk_expect(
        dir,
        &[SECRET.as_bytes()],
        WalkStatus::ComponentDoesNotExist,
        0,
    );
    assert!(e
        .c()
        .walk_stat(dir, &[SECRET.as_bytes()])
        .unwrap()
        .is_empty());
    // Its listing is the held directory's.
    let (od, _) = c.open_at(dir, O_RDONLY).unwrap();
    let mut names: Vec<Vec<u8>> = c
        .getdents64(od, 65536)
        .unwrap()
        .into_iter()
        .map(|d| {
            assert!(
                !e.s.is_outside_ino(d.dev_major, d.dev_minor, d.ino),
                "ESCAPE: listed outside"
            );
            d.name
        })
        .collect();
    names.sort();
    let want: Vec<&[u8]> = vec![
        b"esc-probe-h1",
        b"esc-probe-h2",
        b"esc-probe-h3",
        b"esc-probe-h4",
        b"esc-probe-h5",
        b"rel_deep",
        b"rel_deep_dir",
    ];
    assert_eq!(names, want);
    // A fresh walk sees the link.
    walk_stops_at(e, &["dir", "x"], 1, "dir");
}

fn held_dir_fd_after_client_rename(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let a = e.get("a").control_fd;
    let dir = e.get("dir").control_fd;
    c.rename_at(root, b"a", dir, b"a2").unwrap();
    c.symlink_at(
        root,
        b"a",
        e.s.dir.as_os_str().as_encoded_bytes(),
        NO_UID,
        NO_GID,
    )
    .unwrap();
    c.open_create_at(a, b"esc-probe-c", 0o644, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    assert!(e.host("dir/a2/esc-probe-c").exists());
    walk_stops_at(e, &["a", "esc-probe-c"], 1, "a");
}

fn rename_between_connections_refused(e: &Env) {
    // FDIDs belong to one connection: another connection's numbers name
    // nothing (or something of its own) here.
    let (client_end, server_end) = lisafs_transport::socket_pair().unwrap();
    e.h.service.attach(server_end).unwrap();
    let other = Client::connect(client_end).unwrap();
    let theirs = {
        let (_, inodes) = other.walk(other.root().control_fd, &[b"dir"]).unwrap();
        inodes[0].control_fd
    };
    // This connection has made no FDID but its root (1): the other's
    // directory number is unknown here.
    assert!(theirs.0 > 1);
    assert_errno!(
        e.c().rename_at(theirs, b"x", e.root(), b"esc-probe-x"),
        EBADF
    );
    assert_errno!(e.c().walk(theirs, &[b"x"]), EBADF);
    assert_errno!(
        e.c()
            .mkdir_at(theirs, b"esc-probe-x", 0o755, NO_UID, NO_GID),
        EBADF
    );
    assert!(e.host("dir/x").exists());
}

// ---------------------------------------------------------------------
// Deleted nodes.
// ---------------------------------------------------------------------

const DELETED_CASES: &[Case] = cases![
    walk_from_deleted_dir,
    #[uds]
    create_in_deleted_dir_einval,
    mutate_in_deleted_dir_einval,
    walk_stat_from_deleted_dir,
    deleted_file_and_link_ops,
    host_deleted_dir_replaced_by_link,
    displaced_by_rename_einval,
];

/// A directory made and removed by the client; its control FD.
fn deleted_dir(e: &Env) -> FdId {
    let g = e
        .c()
        .mkdir_at(e.root(), b"gone", 0o755, NO_UID, NO_GID)
        .unwrap();
    e.c().unlink_at(e.root(), b"gone", AT_REMOVEDIR).unwrap();
    // Someone puts a link to the sentinel where it was.
    std::os::unix::fs::symlink(&e.s.dir, e.host("gone")).unwrap();
    g.control_fd
}

fn walk_from_deleted_dir(e: &Env) {
    let g = deleted_dir(e);
    e.walk_expect(g, &[b"x"], WalkStatus::ComponentDoesNotExist, 0);
    e.walk_expect(
        g,
        &[SECRET.as_bytes()],
        WalkStatus::ComponentDoesNotExist,
        0,
    );
    e.walk_expect(g, &[], WalkStatus::Success, 0);
    assert_errno!(e.c().walk(g, &[b".."]), EINVAL);
    walk_stops_at(e, &["gone", SECRET], 1, "gone");
}

fn create_in_deleted_dir_einval(e: &Env) {
    let c = e.c();
    let g = deleted_dir(e);
    let file = e.get("file").control_fd;
    assert_errno!(
        c.open_create_at(g, b"esc-probe-1", 0o644, NO_UID, NO_GID, O_RDWR),
        EINVAL
    );
    assert_errno!(c.mkdir_at(g, b"esc-probe-2", 0o755, NO_UID, NO_GID), EINVAL);
    assert_errno!(
        c.mknod_at(g, b"esc-probe-3", S_IFREG | 0o644, NO_UID, NO_GID, 0, 0),
        EINVAL
    );
    assert_errno!(
        c.symlink_at(g, b"esc-probe-4", b"/", NO_UID, NO_GID),
        EINVAL
    );
    assert_errno!(c.link_at(g, file, b"esc-probe-5"), EINVAL);
    assert_errno!(
        c.bind_at(g, b"esc-probe-6", SOCK_STREAM, 0o700, NO_UID, NO_GID),
        EINVAL
    );
}

fn mutate_in_deleted_dir_einval(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let g = deleted_dir(e);
    assert_errno!(c.unlink_at(g, SECRET.as_bytes(), 0), EINVAL);
    assert_errno!(c.unlink_at(g, SUBDIR.as_bytes(), AT_REMOVEDIR), EINVAL);
    assert_errno!(c.rename_at(g, b"x", root, b"esc-probe-y"), EINVAL);
    assert_errno!(c.rename_at(root, b"file", g, b"esc-probe-y"), EINVAL);
    assert_errno!(
        c.rename_at2(root, b"file", g, b"x", RENAME_EXCHANGE),
        EINVAL
    );
    assert_errno!(c.fset_xattr(g, b"user.x", b"v", 0), EINVAL);
    assert_errno!(c.fget_xattr(g, b"user.x", 0), EINVAL);
    assert!(e.host("file").exists());
}

fn walk_stat_from_deleted_dir(e: &Env) {
    let g = deleted_dir(e);
    assert!(e.c().walk_stat(g, &[SECRET.as_bytes()]).unwrap().is_empty());
    let stats = e.c().walk_stat(g, &[b"", b"x"]).unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(ftype(&stats[0]), S_IFDIR);
    assert_eq!(stats[0].nlink, 0);
    e.check_stat(&stats[0], "WalkStat");
}

fn deleted_file_and_link_ops(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let (f, open, _) = c
        .open_create_at(root, b"doomed", 0o644, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    c.pwrite(open, 0, INSIDE).unwrap();
    let l = c
        .symlink_at(
            root,
            b"doomed_link",
            e.target_of("abs_secret").as_slice(),
            NO_UID,
            NO_GID,
        )
        .unwrap();
    c.unlink_at(root, b"doomed", 0).unwrap();
    c.unlink_at(root, b"doomed_link", 0).unwrap();
    // The host server allows opening a deleted file; it is still the file.
    assert_eq!(e.read_all(f.control_fd), INSIDE);
    assert_errno!(c.readlink_at(l.control_fd), EINVAL);
    assert_errno!(c.open_at(l.control_fd, O_RDONLY), EINVAL);
    assert_errno!(c.fget_xattr(f.control_fd, b"user.x", 0), EINVAL);
    assert_errno!(c.fset_xattr(f.control_fd, b"user.x", b"v", 0), EINVAL);
    assert_errno!(c.flist_xattr(f.control_fd, 0), EINVAL);
    assert_errno!(c.fremove_xattr(f.control_fd, b"user.x"), EINVAL);
    assert_errno!(c.fget_xattr(l.control_fd, b"trusted.sentinel", 0), EINVAL);
    let mut req = set_stat_req(l.control_fd, statx_mask::ATIME | statx_mask::MTIME);
    req.mtime = Timespec { sec: 777, nsec: 0 };
    assert_eq!(c.set_stat(&req).unwrap(), (0, 0));
    let st = c.fstat(l.control_fd).unwrap();
    assert_eq!((ftype(&st), st.mtime.sec, st.nlink), (S_IFLNK, 777, 0));
}

fn host_deleted_dir_replaced_by_link(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let dir = e.get("dir").control_fd;
    std::fs::remove_dir_all(e.host("dir")).unwrap();
    std::os::unix::fs::symlink(&e.s.dir, e.host("dir")).unwrap();
    // The server does not know; the host's dead directory has no entries
    // and takes none.
    e.walk_expect(dir, &[b"x"], WalkStatus::ComponentDoesNotExist, 0);
    e.walk_expect(
        dir,
        &[SECRET.as_bytes()],
        WalkStatus::ComponentDoesNotExist,
        0,
    );
    assert!(c.walk_stat(dir, &[SECRET.as_bytes()]).unwrap().is_empty());
    assert_errno!(
        c.open_create_at(dir, b"esc-probe-d", 0o644, NO_UID, NO_GID, O_RDWR),
        ENOENT
    );
    assert_errno!(
        c.mkdir_at(dir, b"esc-probe-d", 0o755, NO_UID, NO_GID),
        ENOENT
    );
    assert_errno!(
        c.symlink_at(dir, b"esc-probe-d", b"/", NO_UID, NO_GID),
        ENOENT
    );
    assert_errno!(
        c.mknod_at(dir, b"esc-probe-d", S_IFREG | 0o644, NO_UID, NO_GID, 0, 0),
        ENOENT
    );
    assert_errno!(c.rename_at(root, b"file", dir, b"esc-probe-d"), ENOENT);
    assert_errno!(c.unlink_at(dir, SECRET.as_bytes(), 0), ENOENT);
    // Listing a dead directory is the host's ENOENT.
    let (od, _) = c.open_at(dir, O_RDONLY).unwrap();
    assert_errno!(c.getdents64(od, 65536), ENOENT);
    walk_stops_at(e, &["dir", "x"], 1, "dir");
}

fn displaced_by_rename_einval(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let v = c
        .mkdir_at(root, b"victim", 0o755, NO_UID, NO_GID)
        .unwrap()
        .control_fd;
    c.rename_at(root, b"a", root, b"victim").unwrap();
    assert_errno!(
        c.open_create_at(v, b"z", 0o644, NO_UID, NO_GID, O_RDWR),
        EINVAL
    );
    e.walk_expect(v, &[b"z"], WalkStatus::ComponentDoesNotExist, 0);
}

// ---------------------------------------------------------------------
// /proc magic links.
// ---------------------------------------------------------------------

const MAGIC_CASES: &[Case] = cases![
    proc_self_fd_link,
    proc_self_root_link,
    proc_self_cwd_link,
    #[uds]
    client_magic_links_every_fd,
    magic_link_linkat,
    magic_link_setstat,
];

/// Nothing follows the fixture's magic link `name`.
fn magic_link_inert(e: &Env, name: &str, next: &[&str]) {
    let fd = e.link(name);
    let mut path = vec![name];
    path.extend_from_slice(next);
    walk_stops_at(e, &path, 1, name);
    for flags in [O_RDONLY, O_RDWR, O_RDWR | O_TRUNC] {
        assert_errno!(e.c().open_at(fd, flags), EINVAL);
    }
    assert_eq!(e.c().readlink_at(fd).unwrap(), e.target_of(name));
    let bytes: Vec<&[u8]> = path.iter().map(|s| s.as_bytes()).collect();
    let stats = e.c().walk_stat(e.root(), &bytes).unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(ftype(&stats[0]), S_IFLNK);
    assert_errno!(e.c().walk(fd, &[b"x"]), ENOTDIR);
    assert_errno!(
        e.c().mkdir_at(fd, b"esc-probe-mg", 0o755, NO_UID, NO_GID),
        ENOTDIR
    );
    assert_errno!(e.c().fget_xattr(fd, b"trusted.sentinel", 0), ENODATA);
    assert_errno!(e.c().getdents64(fd, 4096), EINVAL);
}

fn proc_self_fd_link(e: &Env) {
    magic_link_inert(e, "proc_fd", &["x"]);
}

fn proc_self_root_link(e: &Env) {
    magic_link_inert(e, "proc_root", &["etc", "passwd"]);
}

fn proc_self_cwd_link(e: &Env) {
    magic_link_inert(e, "proc_cwd", &["Cargo.toml"]);
}

fn client_magic_links_every_fd(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let pid = std::process::id();
    // The server's process is this one: its FDs include the sentinel
    // socket's listener, the served root and /proc/self/fd itself.
    for n in 0..64 {
        for (i, target) in [
            format!("/proc/self/fd/{n}"),
            format!("/proc/thread-self/fd/{n}"),
            format!("/proc/{pid}/fd/{n}"),
        ]
        .iter()
        .enumerate()
        {
            let name = format!("m{i}-{n}");
            let ino = c
                .symlink_at(root, name.as_bytes(), target.as_bytes(), NO_UID, NO_GID)
                .unwrap();
            let fd = ino.control_fd;
            assert_eq!(ftype(&ino.stat), S_IFLNK);
            e.walk_expect(
                root,
                &[name.as_bytes(), b"x"],
                WalkStatus::ComponentSymlink,
                1,
            );
            assert_errno!(c.open_at(fd, O_RDONLY), EINVAL);
            assert_errno!(c.connect_socket(fd, SOCK_STREAM), ENOTSOCK);
            assert_errno!(c.fget_xattr(fd, b"trusted.sentinel", 0), ENODATA);
            let mut req = set_stat_req(fd, statx_mask::SIZE);
            req.size = 0;
            assert_eq!(c.set_stat(&req).unwrap(), (statx_mask::SIZE, EINVAL));
            let st = c.walk_stat(root, &[name.as_bytes(), b"x"]).unwrap();
            assert_eq!(st.len(), 1);
            e.check_stat(&st[0], "WalkStat");
            c.close(&[fd]).unwrap();
        }
    }
}

fn magic_link_linkat(e: &Env) {
    for (i, name) in ["proc_root", "proc_fd", "proc_cwd"].iter().enumerate() {
        let fd = e.link(name);
        let new_name = format!("esc-probe-ml{i}");
        let new = e.c().link_at(e.root(), fd, new_name.as_bytes()).unwrap();
        assert_eq!(ftype(&new.stat), S_IFLNK);
        assert_eq!(new.stat.ino, host_ino(&e.host(name)));
    }
}

fn magic_link_setstat(e: &Env) {
    for name in ["proc_root", "proc_fd", "proc_cwd"] {
        let fd = e.link(name);
        let mut req = set_stat_req(
            fd,
            statx_mask::ATIME | statx_mask::MTIME | statx_mask::MODE | statx_mask::SIZE,
        );
        req.mtime = Timespec { sec: 4242, nsec: 0 };
        req.mode = 0o777;
        let (mask, _) = e.c().set_stat(&req).unwrap();
        assert_eq!(mask, statx_mask::MODE | statx_mask::SIZE, "{name}");
        assert_eq!(host_stat(&e.host(name)).stx_mtime.tv_sec, 4242);
        if is_root() {
            let mut req = set_stat_req(fd, statx_mask::UID);
            req.uid = Uid(4242);
            assert_eq!(e.c().set_stat(&req).unwrap(), (0, 0));
            assert_eq!(host_stat(&e.host(name)).stx_uid, 4242);
        }
    }
    // Never the target's ("/") times or owner.
    let after = host_stat(Path::new("/"));
    assert_ne!(after.stx_mtime.tv_sec, 4242);
    assert_ne!(after.stx_uid, 4242);
}

// ---------------------------------------------------------------------
// Deep paths.
// ---------------------------------------------------------------------

const DEEP_CASES: &[Case] = cases![
    walk_2000_components,
    walk_over_message_limit_eio,
    walk_stat_over_message_limit_eio,
    walk_200_then_dotdot_einval,
    deep_link_still_stops,
];

/// Lets this process hold `want` FDs, as far as the hard limit allows.
fn raise_nofile(want: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let cur = lim.current.unwrap_or(u64::MAX);
    if cur < want {
        lim.current = Some(lim.maximum.map_or(want, |m| m.min(want)));
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

/// `depth` nested directories `d` under the root, made on the host; removed
/// (deepest first, FD-relative) on drop, much faster than a recursive
/// removal of the scratch tree.
struct Chain {
    /// FDs of the root and of every level.
    fds: Vec<OwnedFd>,
    inos: Vec<u64>,
}

impl Chain {
    fn new(e: &Env, depth: usize) -> Chain {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut fds = vec![rustix::fs::open(&e.h.scratch.root, flags, Mode::empty()).unwrap()];
        let mut inos = Vec::with_capacity(depth);
        for _ in 0..depth {
            let parent = fds.last().unwrap();
            rustix::fs::mkdirat(parent, "d", Mode::from_raw_mode(0o755)).unwrap();
            let fd = rustix::fs::openat(parent, "d", flags, Mode::empty()).unwrap();
            inos.push(rustix::fs::fstat(&fd).unwrap().st_ino);
            fds.push(fd);
        }
        Chain { fds, inos }
    }

    fn deepest(&self) -> &OwnedFd {
        self.fds.last().unwrap()
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        while let Some(fd) = self.fds.pop() {
            // Anything a case left at the bottom level goes first.
            if let Ok(dir) = rustix::fs::Dir::read_from(&fd) {
                for ent in dir.flatten() {
                    let name = ent.file_name();
                    if name != c"." && name != c".." {
                        let _ = rustix::fs::unlinkat(&fd, name, AtFlags::empty());
                    }
                }
            }
            if let Some(parent) = self.fds.last() {
                let _ = rustix::fs::unlinkat(parent, "d", AtFlags::REMOVEDIR);
            }
        }
    }
}

fn walk_2000_components(e: &Env) {
    raise_nofile(16_384);
    let chain = Chain::new(e, 2000);
    let inos = &chain.inos;
    let before = e.control_fds();
    let names = vec![b"d".as_slice(); 2000];
    let got = e.walk_expect(e.root(), &names, WalkStatus::Success, 2000);
    for (i, (g, want)) in got.iter().zip(inos).enumerate() {
        assert_eq!(g.stat.ino, *want, "component {i}");
    }
    // One more than exists stops cleanly.
    let mut more = names.clone();
    more.push(b"d");
    let got2 = e.walk_expect(e.root(), &more, WalkStatus::ComponentDoesNotExist, 2000);
    let ids: Vec<FdId> = got.iter().chain(&got2).map(|i| i.control_fd).collect();
    e.c().close(&ids).unwrap();
    assert_eq!(e.control_fds(), before);
}

fn walk_over_message_limit_eio(e: &Env) {
    let max = e.c().max_message_size() as usize;
    // The reply would need 3 + 152 bytes per component.
    let n = (max - 3) / 152 + 1;
    let before = e.control_fds();
    assert_errno!(e.c().walk(e.root(), &vec![b"nx".as_slice(); n]), EIO);
    assert_errno!(e.c().walk(e.root(), &vec![b"dir".as_slice(); n]), EIO);
    e.walk_expect(
        e.root(),
        &vec![b"nx".as_slice(); n - 1],
        WalkStatus::ComponentDoesNotExist,
        0,
    );
    assert_eq!(e.control_fds(), before);
}

fn walk_stat_over_message_limit_eio(e: &Env) {
    let max = e.c().max_message_size() as usize;
    let n = (max - 2) / 144 + 1;
    assert_errno!(e.c().walk_stat(e.root(), &vec![b"nx".as_slice(); n]), EIO);
    assert!(e
        .c()
        .walk_stat(e.root(), &vec![b"nx".as_slice(); n - 1])
        .unwrap()
        .is_empty());
}

fn walk_200_then_dotdot_einval(e: &Env) {
    let (c, root) = (e.c(), e.root());
    let _chain = Chain::new(e, 200);
    let before = e.control_fds();
    let mut names = vec![b"d".as_slice(); 200];
    names.push(b"..");
    assert_errno!(c.walk(root, &names), EINVAL);
    let mut names = vec![b"d".as_slice(); 100];
    names.extend(vec![b"..".as_slice(); 101]);
    assert_errno!(c.walk(root, &names), EINVAL);
    assert_errno!(c.walk_stat(root, &names), EINVAL);
    // No FD of the 200 walked survives the failure.
    assert_eq!(e.control_fds(), before);
    let got = e.walk_expect(root, &vec![b"d".as_slice(); 200], WalkStatus::Success, 200);
    let last = got.last().unwrap().control_fd;
    assert_errno!(c.walk(last, &[b".."]), EINVAL);
    assert_errno!(c.walk(last, &[b"..", b".."]), EINVAL);
    assert_errno!(c.walk_stat(last, &[b".."]), EINVAL);
    assert_errno!(c.walk_stat(last, &[b"", b".."]), EINVAL);
    assert_errno!(
        c.open_create_at(last, b"..", 0o644, NO_UID, NO_GID, O_RDWR),
        EINVAL
    );
    assert_errno!(c.mkdir_at(last, b"..", 0o755, NO_UID, NO_GID), EINVAL);
    assert_errno!(c.rename_at(last, b"..", root, b"esc-probe-up"), EINVAL);
    assert_errno!(c.unlink_at(last, b"..", AT_REMOVEDIR), EINVAL);
}

fn deep_link_still_stops(e: &Env) {
    let chain = Chain::new(e, 200);
    rustix::fs::symlinkat(e.s.dir.as_os_str(), chain.deepest(), "l").unwrap();
    let mut names = vec![b"d".as_slice(); 200];
    names.push(b"l");
    names.push(SECRET.as_bytes());
    let got = e.walk_expect(e.root(), &names, WalkStatus::ComponentSymlink, 201);
    assert_eq!(ftype(&got[200].stat), S_IFLNK);
    let stats = e.c().walk_stat(e.root(), &names).unwrap();
    assert_eq!(stats.len(), 201);
    assert_eq!(ftype(&stats[200]), S_IFLNK);
    for s in &stats {
        e.check_stat(s, "WalkStat");
    }
}

// ---------------------------------------------------------------------
// Races: a directory swapped for a symlink to the sentinel while a client
// works through it.
// ---------------------------------------------------------------------

const RACE_TIME: Duration = Duration::from_secs(5);
const SWAP_PAUSE: Duration = Duration::from_micros(20);

#[derive(Debug, Default)]
struct Tally {
    iterations: u64,
    /// Walks of d/x that went through the directory / stopped at the link.
    through_dir: u64,
    stopped_at_link: u64,
    /// Held-FD rounds done on the directory / refused on the link.
    dir_rounds: u64,
    link_rounds: u64,
    /// Reads of f that got the inside file / opens refused on the link.
    file_reads: u64,
    file_links: u64,
    escapes: Vec<String>,
    unexpected: Vec<String>,
}

impl Tally {
    fn escape(&mut self, what: String) {
        if self.escapes.len() < 20 {
            self.escapes.push(what);
        }
    }

    fn unexpected(&mut self, what: String) {
        if self.unexpected.len() < 20 {
            self.unexpected.push(what);
        }
    }

    fn check_stat(&mut self, s: &Sentinel, st: &Statx, what: &str) {
        if s.is_outside(st) {
            self.escape(format!("{what}: stat of outside inode {}", st.ino));
        }
    }
}

/// `root/d` (x, y) and `root/f`; `<base>/outside` holds `x` and `y` too.
fn race_fixture(e: &Env) {
    std::fs::create_dir(e.host("d")).unwrap();
    std::fs::write(e.host("d/x"), INSIDE_X).unwrap();
    std::fs::write(e.host("d/y"), b"y inside\n").unwrap();
    std::fs::write(e.host("f"), INSIDE).unwrap();
}

fn read_checked(c: &Client, fd: FdId, t: &mut Tally, what: &str) -> Option<Vec<u8>> {
    let (open, _) = match c.open_at(fd, O_RDONLY) {
        Ok(o) => o,
        Err(err) => {
            t.unexpected(format!("{what}: open: {err}"));
            return None;
        }
    };
    let mut buf = vec![0u8; 4096];
    let r = c.pread(open, 0, &mut buf);
    let _ = c.close(&[open]);
    match r {
        Ok(n) => {
            buf.truncate(n);
            if has_marker(&buf) {
                t.escape(format!("{what}: read the sentinel's content"));
            }
            Some(buf)
        }
        Err(err) => {
            t.unexpected(format!("{what}: pread: {err}"));
            None
        }
    }
}

/// One round of work through a held FD on `d` while it is a directory;
/// every step must succeed and stay in that directory.
fn dir_round(c: &Client, s: &Sentinel, d: FdId, t: &mut Tally) {
    let ok = |r: lisafs_client::Result<()>, what: &str, t: &mut Tally| {
        if let Err(err) = r {
            t.unexpected(format!("{what} in the held directory: {err}"));
        }
    };
    match c.open_create_at(d, b"new", 0o644, NO_UID, NO_GID, O_RDWR) {
        Ok((ino, open, _)) => {
            t.check_stat(s, &ino.stat, "OpenCreateAt new");
            ok(c.pwrite(open, 0, b"new inside").map(drop), "PWrite new", t);
            let _ = c.close(&[ino.control_fd, open]);
        }
        Err(err) => t.unexpected(format!("OpenCreateAt new: {err}")),
    }
    ok(c.unlink_at(d, b"new", 0), "UnlinkAt new", t);
    ok(c.rename_at(d, b"y", d, b"z"), "RenameAt y z", t);
    ok(c.rename_at(d, b"z", d, b"y"), "RenameAt z y", t);
    ok(c.unlink_at(d, b"x", 0), "UnlinkAt x", t);
    match c.open_create_at(d, b"x", 0o644, NO_UID, NO_GID, O_RDWR) {
        Ok((ino, open, _)) => {
            t.check_stat(s, &ino.stat, "OpenCreateAt x");
            ok(c.pwrite(open, 0, INSIDE_X).map(drop), "PWrite x", t);
            let _ = c.close(&[ino.control_fd, open]);
        }
        Err(err) => t.unexpected(format!("OpenCreateAt x: {err}")),
    }
    match c.walk_stat(d, &[b"x"]) {
        Ok(stats) => {
            for st in &stats {
                t.check_stat(s, st, "WalkStat d/x");
            }
        }
        Err(err) => t.unexpected(format!("WalkStat x: {err}")),
    }
    match c.open_at(d, O_RDONLY) {
        Ok((od, _)) => {
            match c.getdents64(od, -65536) {
                Ok(ents) => {
                    for ent in ents {
                        if s.is_outside_ino(ent.dev_major, ent.dev_minor, ent.ino) {
                            t.escape(format!(
                                "Getdents64 listed outside entry {:?}",
                                String::from_utf8_lossy(&ent.name)
                            ));
                        }
                    }
                }
                Err(err) => t.unexpected(format!("Getdents64: {err}")),
            }
            let _ = c.close(&[od]);
        }
        Err(err) => t.unexpected(format!("OpenAt d: {err}")),
    }
    t.dir_rounds += 1;
}

/// The same round through a held FD on `d` while it is the link: every step
/// is refused with ENOTDIR.
fn link_round(c: &Client, d: FdId, t: &mut Tally) {
    let mut enotdir = |r: lisafs_client::Result<()>, what: &str| match r {
        Err(lisafs_client::Error::Errno(ENOTDIR)) => {}
        other => t.unexpected(format!("{what} through the link: {:?}", other.map(drop))),
    };
    enotdir(
        c.open_create_at(d, b"new", 0o644, NO_UID, NO_GID, O_RDWR)
            .map(drop),
        "OpenCreateAt",
    );
    enotdir(c.unlink_at(d, b"x", 0), "UnlinkAt");
    enotdir(c.rename_at(d, b"y", d, b"z"), "RenameAt");
    enotdir(
        c.mkdir_at(d, b"new", 0o755, NO_UID, NO_GID).map(drop),
        "MkdirAt",
    );
    enotdir(c.walk(d, &[b"x"]).map(drop), "Walk");
    t.link_rounds += 1;
}

/// The client side of a race: works on `d/x`, through a held FD on `d`,
/// and on `f`, until `deadline`.
fn race_client(c: &Client, s: &Sentinel, deadline: Instant) -> Tally {
    let root = c.root().control_fd;
    let mut t = Tally::default();
    while Instant::now() < deadline {
        t.iterations += 1;
        let mut fds = Vec::new();
        // 1. One Walk of d/x, then read and write x.
        match c.walk(root, &[b"d", b"x"]) {
            Ok((WalkStatus::Success, inodes)) => {
                fds.extend(inodes.iter().map(|i| i.control_fd));
                for i in &inodes {
                    t.check_stat(s, &i.stat, "Walk d/x");
                }
                let x = inodes[1].control_fd;
                read_checked(c, x, &mut t, "d/x");
                match c.open_at(x, O_RDWR) {
                    Ok((w, _)) => {
                        if let Err(err) = c.pwrite(w, 0, INSIDE_X) {
                            t.unexpected(format!("PWrite d/x: {err}"));
                        }
                        fds.push(w);
                    }
                    Err(err) => t.unexpected(format!("OpenAt d/x O_RDWR: {err}")),
                }
                t.through_dir += 1;
            }
            Ok((WalkStatus::ComponentSymlink, inodes))
                if inodes.len() == 1 && ftype(&inodes[0].stat) == S_IFLNK =>
            {
                fds.push(inodes[0].control_fd);
                t.check_stat(s, &inodes[0].stat, "Walk d");
                t.stopped_at_link += 1;
            }
            other => t.unexpected(format!(
                "Walk d/x: {:?}",
                other.map(|(st, i)| (st, i.len()))
            )),
        }
        // 2. A held FD on d.
        match c.walk(root, &[b"d"]) {
            Ok((WalkStatus::Success, inodes)) => {
                let d = inodes[0];
                fds.push(d.control_fd);
                t.check_stat(s, &d.stat, "Walk d");
                match ftype(&d.stat) {
                    S_IFDIR => dir_round(c, s, d.control_fd, &mut t),
                    S_IFLNK => link_round(c, d.control_fd, &mut t),
                    other => t.unexpected(format!("d has type {other:o}")),
                }
            }
            other => t.unexpected(format!("Walk d: {:?}", other.map(|(st, i)| (st, i.len())))),
        }
        // 3. WalkStat of d/x.
        match c.walk_stat(root, &[b"d", b"x"]) {
            Ok(stats) => {
                for st in &stats {
                    t.check_stat(s, st, "WalkStat d/x");
                }
            }
            Err(err) => t.unexpected(format!("WalkStat d/x: {err}")),
        }
        // 4. f: the inside file or a link to the sentinel's secret.
        match c.walk(root, &[b"f"]) {
            Ok((WalkStatus::Success, inodes)) => {
                let f = inodes[0];
                fds.push(f.control_fd);
                t.check_stat(s, &f.stat, "Walk f");
                match ftype(&f.stat) {
                    S_IFREG => {
                        if let Some(data) = read_checked(c, f.control_fd, &mut t, "f") {
                            if data != INSIDE {
                                t.unexpected(format!("f read {data:?}"));
                            }
                        }
                        t.file_reads += 1;
                    }
                    S_IFLNK => {
                        match c.open_at(f.control_fd, O_RDONLY) {
                            Err(lisafs_client::Error::Errno(EINVAL)) => {}
                            Ok((o, _)) => {
                                fds.push(o);
                                t.escape("OpenAt of the link f succeeded".into());
                            }
                            Err(err) => t.unexpected(format!("OpenAt link f: {err}")),
                        }
                        t.file_links += 1;
                    }
                    other => t.unexpected(format!("f has type {other:o}")),
                }
            }
            other => t.unexpected(format!("Walk f: {:?}", other.map(|(st, i)| (st, i.len())))),
        }
        if let Err(err) = c.close(&fds) {
            t.unexpected(format!("Close: {err}"));
        }
    }
    t
}

/// Aborts the process if a race does not finish (a server deadlock would
/// otherwise hang the suite).
fn watchdog(what: &'static str) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(RACE_TIME + Duration::from_secs(20))
        {
            eprintln!("{what}: still running 20 s after its deadline: server hang");
            std::process::abort();
        }
    });
    tx
}

fn report(what: &str, t: &Tally, swaps: u64, e: &Env) {
    println!(
        "{what}: {} client iterations, {swaps} swaps; d/x walked through the directory {} times, \
         stopped at the link {} times; held-FD rounds: {} on the directory, {} refused on the \
         link; f read {} times, refused as a link {} times; {} escapes",
        t.iterations,
        t.through_dir,
        t.stopped_at_link,
        t.dir_rounds,
        t.link_rounds,
        t.file_reads,
        t.file_links,
        t.escapes.len()
    );
    assert!(
        t.escapes.is_empty(),
        "ESCAPES in {what}:\n{}",
        t.escapes.join("\n")
    );
    assert!(
        t.unexpected.is_empty(),
        "unexpected results in {what}:\n{}",
        t.unexpected.join("\n")
    );
    e.s.assert_intact();
    let outside = &e.s.dir;
    assert_eq!(std::fs::read(outside.join(OUT_X)).unwrap(), MARKER);
    assert!(outside.join(OUT_Y).exists());
    for name in ["new", "z"] {
        assert!(!outside.join(name).exists(), "{name} made outside");
    }
    // Both states were actually seen.
    assert!(t.iterations >= 50, "only {} iterations", t.iterations);
    assert!(swaps >= 50, "only {swaps} swaps");
    assert!(t.through_dir > 0 && t.stopped_at_link > 0, "{t:?}");
}

#[test]
fn race_host_swaps_dir_for_outside_link() {
    let e = Env::new("race1", false);
    race_fixture(&e);
    std::os::unix::fs::symlink(&e.s.dir, e.host("d.swap")).unwrap();
    std::os::unix::fs::symlink(e.s.dir.join(SECRET), e.host("f.swap")).unwrap();
    let dog = watchdog("race_host_swaps_dir_for_outside_link");
    let deadline = Instant::now() + RACE_TIME;
    let root_fd = rustix::fs::open(
        &e.h.scratch.root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let (tally, swaps) = std::thread::scope(|scope| {
        let swapper = scope.spawn(|| {
            let mut swaps = 0u64;
            let fd = root_fd.as_fd();
            while Instant::now() < deadline {
                for (a, b) in [("d", "d.swap"), ("f", "f.swap")] {
                    rustix::fs::renameat_with(fd, a, fd, b, RenameFlags::EXCHANGE).unwrap();
                }
                swaps += 1;
                // Still many swaps per client iteration, without taking a
                // whole CPU from the client and server threads.
                std::thread::sleep(SWAP_PAUSE);
            }
            swaps
        });
        let client = scope.spawn(|| race_client(e.c(), &e.s, deadline));
        (client.join().unwrap(), swapper.join().unwrap())
    });
    drop(dog);
    report("race_host_swaps_dir_for_outside_link", &tally, swaps, &e);
}

#[test]
fn race_second_client_swaps_dir_for_outside_link() {
    let e = Env::new("race2", false);
    race_fixture(&e);
    // A second, equally hostile connection to the same server does the
    // swapping with RenameAt2(RENAME_EXCHANGE).
    let (client_end, server_end) = lisafs_transport::socket_pair().unwrap();
    e.h.service.attach(server_end).unwrap();
    let other = Client::connect(client_end).unwrap();
    let root2 = other.root().control_fd;
    let outside = e.s.dir.as_os_str().as_encoded_bytes().to_vec();
    let secret = e.s.dir.join(SECRET).as_os_str().as_encoded_bytes().to_vec();
    other
        .symlink_at(root2, b"d.swap", &outside, NO_UID, NO_GID)
        .unwrap();
    other
        .symlink_at(root2, b"f.swap", &secret, NO_UID, NO_GID)
        .unwrap();
    let dog = watchdog("race_second_client_swaps_dir_for_outside_link");
    let deadline = Instant::now() + RACE_TIME;
    let (tally, (swaps, swap_errors)) = std::thread::scope(|scope| {
        let swapper = scope.spawn(|| {
            let mut swaps = 0u64;
            let mut errors = Vec::new();
            while Instant::now() < deadline {
                for (a, b) in [(b"d", b"d.swap"), (b"f", b"f.swap")] {
                    if let Err(err) = other.rename_at2(root2, a, root2, b, RENAME_EXCHANGE) {
                        errors.push(format!("RenameAt2 exchange: {err}"));
                    }
                }
                swaps += 1;
                std::thread::sleep(SWAP_PAUSE);
            }
            (swaps, errors)
        });
        let client = scope.spawn(|| race_client(e.c(), &e.s, deadline));
        (client.join().unwrap(), swapper.join().unwrap())
    });
    drop(dog);
    assert!(swap_errors.is_empty(), "{swap_errors:?}");
    report(
        "race_second_client_swaps_dir_for_outside_link",
        &tally,
        swaps,
        &e,
    );
}
