//! Scaffolding for running the client against gVisor's own host-backed
//! LISAFS server: the `gvisor-gofer` Go program (`interop/cmd/gvisor-gofer`,
//! `runsc/fsgofer` on a `pkg/lisafs` server) serving a scratch directory on
//! one end of a socketpair.
//!
//! Every [`Gofer`] is bounded in time: a watchdog kills the program after
//! [`BUDGET`] (the client then sees the socket close instead of hanging),
//! and [`Gofer::finish`] waits at most [`EXIT_BUDGET`] for the program to
//! exit after the client disconnected.

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lisafs_client::{Client, FdId, Gid, Inode, Statx, Uid, WalkStatus};

/// Whole-test budget for one gofer process (the watchdog kills it then).
pub const BUDGET: Duration = Duration::from_secs(30);
/// How long the program may take to exit once the client disconnected.
pub const EXIT_BUDGET: Duration = Duration::from_secs(10);

pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFLNK: u16 = 0o120000;

pub const DT_DIR: u8 = 4;
pub const DT_REG: u8 = 8;
pub const DT_LNK: u8 = 10;

pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_TRUNC: u32 = 0o1000;
pub const AT_REMOVEDIR: u32 = 0x200;
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;
pub const XATTR_CREATE: u32 = 1;
pub const XATTR_REPLACE: u32 = 2;

pub const NO_UID: Uid = Uid::NONE;
pub const NO_GID: Gid = Gid::NONE;

// `assert_errno!` comes from `common`.

/// Env var naming the gvisor-gofer binary (set by scripts/test.sh).
pub const BIN_ENV: &str = "LISAFS_GVISOR_GOFER";

/// The gvisor-gofer binary: `$LISAFS_GVISOR_GOFER`, else
/// `<workspace>/target/gvisor-gofer`. Panics (never skips) when it is
/// missing, saying how to build it.
pub fn gofer_binary() -> PathBuf {
    let (path, origin) = match std::env::var_os(BIN_ENV) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), format!("${BIN_ENV}")),
        _ => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/gvisor-gofer"),
            format!("the default path (${BIN_ENV} is unset)"),
        ),
    };
    if !path.is_file() {
        panic!(
            "gVisor's reference gofer is missing: {} ({origin}) does not exist.\n\
             Build it from the repository root with\n    \
             (cd interop && go build -o ../target/gvisor-gofer ./cmd/gvisor-gofer)\n\
             or run scripts/test.sh, which builds it and sets ${BIN_ENV}. \
             These interop tests never skip.",
            path.display()
        );
    }
    path
}

/// Fails unless the tests run as root (like runsc's gofer, and like CI).
pub fn require_root() {
    let euid = rustix::process::geteuid().as_raw();
    assert_eq!(
        euid, 0,
        "the gVisor gofer interop tests must run as root (euid is {euid})"
    );
}

/// The scratch tree is the in-process tests' one: its `root/` is what the
/// gofer serves.
pub use super::common::Scratch;

/// Serializes "clear CLOEXEC on the server end, spawn, close the parent's
/// copy": while a server end is inheritable, no other test thread of this
/// binary may fork, or its gofer would hold a copy of this connection.
static SPAWN: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One gvisor-gofer process serving a scratch tree, and a client mounted on
/// it.
pub struct Gofer {
    // Dropped first: the client must disconnect before the process is
    // waited for.
    client: Option<Client>,
    pub scratch: Scratch,
    child: Arc<Mutex<Child>>,
    watchdog: Option<(mpsc::Sender<()>, JoinHandle<bool>)>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    finished: bool,
}

impl Gofer {
    /// Starts `gvisor-gofer --root <scratch>/root --fd N` on a fresh
    /// socketpair and mounts over the other end. `setup` populates the
    /// scratch tree first.
    pub fn start(tag: &str, setup: impl FnOnce(&Scratch)) -> Gofer {
        require_root();
        let bin = gofer_binary();
        let scratch = Scratch::new(tag);
        setup(&scratch);

        let (client_end, server_end) = lisafs_transport::socket_pair().expect("socketpair");
        let mut child = {
            let _spawning = lock(&SPAWN);
            // No pre_exec (and no unsafe): make the server end itself
            // inheritable and tell the program its number.
            rustix::io::fcntl_setfd(&server_end, rustix::io::FdFlags::empty())
                .expect("clear FD_CLOEXEC on the server end");
            let child = Command::new(&bin)
                .arg("--root")
                .arg(&scratch.root)
                .arg("--fd")
                .arg(server_end.as_raw_fd().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            drop(server_end);
            child
        };
        let stdout = child.stdout.take().map(drain::<ChildStdout>);
        let stderr = child.stderr.take().map(drain::<ChildStderr>);
        let child = Arc::new(Mutex::new(child));

        let (disarm, armed) = mpsc::channel::<()>();
        let dog_child = Arc::clone(&child);
        let dog = std::thread::spawn(move || match armed.recv_timeout(BUDGET) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The client then reads end of file instead of hanging.
                let _ = lock(&dog_child).kill();
                true
            }
            _ => false,
        });

        let mut gofer = Gofer {
            client: None,
            scratch,
            child,
            watchdog: Some((disarm, dog)),
            stdout,
            stderr,
            finished: false,
        };
        match Client::connect(client_end) {
            Ok(c) => gofer.client = Some(c),
            Err(e) => {
                let (status, _, err) = gofer.stop(true);
                panic!(
                    "mounting on gvisor-gofer failed: {e} (exit {status:?}, stderr: {})",
                    String::from_utf8_lossy(&err)
                );
            }
        }
        gofer
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("client is connected")
    }

    pub fn root(&self) -> FdId {
        self.client().root().control_fd
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.scratch.path(rel)
    }

    /// Walks `rel` ('/'-separated, relative to the root); every component
    /// must exist. Returns the last Inode.
    pub fn walk(&self, rel: &str) -> Inode {
        let names: Vec<&[u8]> = rel.split('/').map(str::as_bytes).collect();
        let (status, inodes) = self
            .client()
            .walk(self.root(), &names)
            .unwrap_or_else(|e| panic!("walk {rel}: {e}"));
        assert_eq!(status, WalkStatus::Success, "walk {rel}");
        assert_eq!(inodes.len(), names.len(), "walk {rel}");
        *inodes.last().expect("at least one component")
    }

    /// Disconnects the client and expects the program to exit 0 within
    /// [`EXIT_BUDGET`] with nothing on stdout.
    pub fn finish(mut self) {
        let (status, out, err) = self.stop(false);
        let err = String::from_utf8_lossy(&err);
        let status = status.unwrap_or_else(|| {
            panic!("gvisor-gofer did not exit within {EXIT_BUDGET:?} of the client disconnecting (killed); stderr: {err}")
        });
        assert!(
            status.success(),
            "gvisor-gofer exited with {status}; stderr: {err}"
        );
        assert!(
            out.is_empty(),
            "gvisor-gofer wrote to stdout: {:?}",
            String::from_utf8_lossy(&out)
        );
    }

    /// Drops the client, disarms the watchdog and reaps the program
    /// (killing it at once if `kill`, or after [`EXIT_BUDGET`]). Returns
    /// its status (`None` if it had to be killed here) and its output.
    fn stop(&mut self, kill: bool) -> (Option<ExitStatus>, Vec<u8>, Vec<u8>) {
        self.finished = true;
        drop(self.client.take());
        let mut fired = false;
        if let Some((disarm, dog)) = self.watchdog.take() {
            drop(disarm);
            fired = dog.join().unwrap_or(false);
        }
        let mut child = lock(&self.child);
        if kill {
            let _ = child.kill();
        }
        let deadline = Instant::now() + EXIT_BUDGET;
        let mut status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        drop(child);
        if fired {
            // Killed by the watchdog: never report that as a clean exit.
            status = None;
            eprintln!("gvisor-gofer ran over its {BUDGET:?} budget and was killed");
        }
        let out = self.stdout.take().map(join_output).unwrap_or_default();
        let err = self.stderr.take().map(join_output).unwrap_or_default();
        (status, out, err)
    }
}

impl Drop for Gofer {
    fn drop(&mut self) {
        if !self.finished {
            // A failed test: do not leave the process behind.
            let _ = self.stop(true);
        }
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn join_output(h: JoinHandle<Vec<u8>>) -> Vec<u8> {
    h.join().unwrap_or_default()
}

pub fn ftype(st: &Statx) -> u16 {
    st.mode & S_IFMT
}

/// Host inode number of `p` (not following a final symlink).
pub fn host_ino(p: &Path) -> u64 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
        .ino()
}

/// Host `st_mode` of `p` (not following a final symlink).
pub fn host_mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
        .mode()
}

/// Asserts that a Statx from the server describes the host file `p`.
pub fn assert_same_file(st: &Statx, p: &Path) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    assert_eq!(st.ino, m.ino(), "ino of {}", p.display());
    assert_eq!(u32::from(st.mode), m.mode(), "mode of {}", p.display());
    assert_eq!(
        (st.dev_major, st.dev_minor),
        (rustix::fs::major(m.dev()), rustix::fs::minor(m.dev())),
        "dev of {}",
        p.display()
    );
}

/// A deterministic, non-repeating-per-page byte pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 12)) as u8 ^ seed)
        .collect()
}
