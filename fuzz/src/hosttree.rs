//! The host tree served by the `dispatch` target.
//!
//! Created once per process under `<parent>/lisafs-fuzz-<pid>/`, where the
//! parent is `$LISAFS_FUZZ_DIR`, else `/dev/shm`, else `$TMPDIR`:
//!
//! ```text
//! root/                 the served directory (mode 0755)
//!   file                "hello, lisafs\n", user.test xattr (if supported)
//!   big                 10000 bytes
//!   ro                  mode 0444
//!   empty               empty file
//!   dir/a, dir/hard     dir/hard is a hard link of file
//!   dir/sub/deep
//!   emptydir/
//!   link -> file        symlinks: relative, to outside (relative and
//!   escape -> ../outside          absolute), dangling, self loop
//!   abs -> <base>/outside/secret
//!   dangling -> nowhere
//!   loop -> loop
//!   fifo                a FIFO (only when LISAFS_FUZZ_FIFO=1, see README)
//!   wh                  a 0:0 character device (an overlay whiteout)
//!   sock                a listening Unix socket held by the harness
//! outside/secret        must never change, and outside/ never gains entries
//! ```
//!
//! **Reset policy**: every input starts from exactly this tree, so that
//! inputs are reproducible. After an input that may have changed the tree
//! (a mutating request that was not refused before reaching the backend,
//! see `driver::Outcome::mutated`) the contents of `root/` are deleted and
//! re-created, and root's own mode, owner and xattrs restored; as a safety
//! net the tree is also re-created every [`RESET_EVERY`] inputs. Inputs
//! that only read skip the reset (most of the run), which keeps the target
//! fast.
//!
//! Growth is bounded: at most 64 requests per input, and the process's
//! `RLIMIT_FSIZE` is lowered to [`MAX_FILE_SIZE`] (with `SIGXFSZ` ignored,
//! so an oversized write or fallocate fails with EFBIG instead of killing
//! the process), so an input can occupy at most a few hundred MiB, and only
//! until the reset that follows it.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// Largest file the process may write (`RLIMIT_FSIZE`).
pub const MAX_FILE_SIZE: u64 = 4 << 20;

/// Safety-net reset period (inputs).
pub const RESET_EVERY: u64 = 5000;

const SECRET: &[u8] = b"top secret: the sandbox must never see or change this\n";

/// What `outside/secret` looked like at creation.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Snapshot {
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn snapshot(p: &Path) -> Snapshot {
    let m = fs::symlink_metadata(p).expect("stat outside/secret");
    Snapshot {
        ino: m.ino(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: m.nlink(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    }
}

/// The fixture; see the module docs.
pub struct HostTree {
    pub base: PathBuf,
    pub root: PathBuf,
    outside: PathBuf,
    secret: Snapshot,
    outside_mode: u32,
    listener: Option<UnixListener>,
    fifo: bool,
    inputs: u64,
    /// Resets done so far.
    pub resets: u64,
}

/// Lowers `RLIMIT_FSIZE` and ignores `SIGXFSZ` (see module docs).
pub fn limit_file_size() {
    let limit = std::env::var("LISAFS_FUZZ_FSIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_FILE_SIZE);
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: libc::RLIM_INFINITY,
        };
        libc::setrlimit(libc::RLIMIT_FSIZE, &rl);
    }
}

/// Removes `lisafs-fuzz-<pid>` directories of processes that are gone.
fn remove_stale(tmp: &Path) {
    let Ok(rd) = fs::read_dir(tmp) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("lisafs-fuzz-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Where the tree goes: `$LISAFS_FUZZ_DIR`, else `/dev/shm` (a tmpfs:
/// creating and deleting the fixture after every mutating input is several
/// times faster there than on a disk filesystem), else the temp directory.
pub fn parent_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LISAFS_FUZZ_DIR") {
        return PathBuf::from(d);
    }
    let shm = Path::new("/dev/shm");
    let c = cpath(shm);
    // SAFETY: valid C string.
    if shm.is_dir() && unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

fn base_dir() -> PathBuf {
    parent_dir().join(format!("lisafs-fuzz-{}", std::process::id()))
}

extern "C" fn remove_base_at_exit() {
    let _ = fs::remove_dir_all(base_dir());
}

impl HostTree {
    /// Creates the tree (and the outside directory).
    pub fn create() -> HostTree {
        remove_stale(&parent_dir());
        let base = base_dir();
        let _ = fs::remove_dir_all(&base);
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir_all(&root).expect("create root");
        fs::create_dir_all(&outside).expect("create outside");
        let secret = outside.join("secret");
        fs::write(&secret, SECRET).expect("write secret");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod secret");
        // SAFETY: registers a plain function.
        unsafe {
            libc::atexit(remove_base_at_exit);
        }
        let mut t = HostTree {
            secret: snapshot(&secret),
            outside_mode: fs::metadata(&outside).expect("stat outside").mode(),
            base,
            root,
            outside,
            listener: None,
            fifo: std::env::var("LISAFS_FUZZ_FIFO").is_ok_and(|v| v == "1"),
            inputs: 0,
            resets: 0,
        };
        t.populate();
        t
    }

    fn populate(&mut self) {
        let r = &self.root;
        let w = |p: &str, data: &[u8], mode: u32| {
            let p = r.join(p);
            fs::write(&p, data).expect("write fixture file");
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod fixture");
        };
        fs::set_permissions(r, fs::Permissions::from_mode(0o755)).expect("chmod root");
        w("file", b"hello, lisafs\n", 0o644);
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        w("big", &big, 0o600);
        w("ro", b"read only\n", 0o444);
        w("empty", b"", 0o644);
        fs::create_dir(r.join("dir")).expect("mkdir dir");
        fs::create_dir(r.join("dir/sub")).expect("mkdir dir/sub");
        fs::create_dir(r.join("emptydir")).expect("mkdir emptydir");
        w("dir/a", b"a\n", 0o644);
        w("dir/sub/deep", b"deep\n", 0o640);
        fs::hard_link(r.join("file"), r.join("dir/hard")).expect("hard link");
        symlink("file", r.join("link")).expect("symlink link");
        symlink("../outside", r.join("escape")).expect("symlink escape");
        symlink(self.outside.join("secret"), r.join("abs")).expect("symlink abs");
        symlink("nowhere", r.join("dangling")).expect("symlink dangling");
        symlink("loop", r.join("loop")).expect("symlink loop");
        let _ = xattr_set(&r.join("file"), "user.test", b"value");
        let c = cpath(&r.join("wh"));
        // SAFETY: valid C string; a 0:0 char device is allowed for anyone
        // who may create files (overlay whiteout); failure is ignored.
        unsafe {
            libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0);
        }
        if self.fifo {
            let c = cpath(&r.join("fifo"));
            // SAFETY: valid C string.
            unsafe {
                libc::mkfifo(c.as_ptr(), 0o644);
            }
        }
        let l = UnixListener::bind(r.join("sock")).expect("bind fixture socket");
        l.set_nonblocking(true).expect("nonblocking listener");
        self.listener = Some(l);
    }

    /// Accepts and drops connections the server made to `sock`.
    pub fn drain_listener(&self) {
        if let Some(l) = &self.listener {
            while l.accept().is_ok() {}
        }
    }

    /// Deletes everything in `root/`, restores root's attributes and
    /// re-creates the fixture.
    pub fn reset(&mut self) {
        self.listener = None;
        for e in fs::read_dir(&self.root).expect("read root").flatten() {
            let p = e.path();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let res = if is_dir {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            res.unwrap_or_else(|err| panic!("reset: cannot remove {}: {err}", p.display()));
        }
        let c = cpath(&self.root);
        // SAFETY: valid C string; restores the owner a SetStat may change.
        unsafe {
            libc::chown(c.as_ptr(), libc::geteuid(), libc::getegid());
        }
        for name in xattr_list(&self.root) {
            let n = CString::new(name).expect("xattr names have no NUL");
            // SAFETY: valid C strings.
            unsafe {
                libc::removexattr(c.as_ptr(), n.as_ptr());
            }
        }
        self.populate();
        self.resets += 1;
    }

    /// Confinement: `outside/` holds only `secret`, unchanged, and `base/`
    /// only `root` and `outside`.
    pub fn check_outside(&self) {
        let secret = self.outside.join("secret");
        assert_eq!(
            fs::read(&secret).expect("read outside/secret"),
            SECRET,
            "CONFINEMENT: outside/secret content changed"
        );
        assert_eq!(
            snapshot(&secret),
            self.secret,
            "CONFINEMENT: outside/secret metadata changed"
        );
        let names = |d: &Path| {
            let mut v: Vec<_> = fs::read_dir(d)
                .expect("read dir")
                .flatten()
                .map(|e| e.file_name())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&self.outside),
            ["secret"],
            "CONFINEMENT: outside/ changed"
        );
        assert_eq!(
            names(&self.base),
            ["outside", "root"],
            "CONFINEMENT: base changed"
        );
        let m = fs::symlink_metadata(&self.outside).expect("stat outside");
        assert_eq!(
            m.mode(),
            self.outside_mode,
            "CONFINEMENT: outside/ mode changed"
        );
        assert!(
            xattr_list(&secret).is_empty(),
            "CONFINEMENT: xattr set outside"
        );
    }

    /// Bookkeeping after an input: confinement check, then a reset when
    /// the input may have changed the tree (or periodically).
    pub fn after_input(&mut self, mutated: bool) {
        self.drain_listener();
        self.check_outside();
        self.inputs += 1;
        if mutated || self.inputs.is_multiple_of(RESET_EVERY) {
            self.reset();
        }
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL")
}

fn xattr_set(p: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let c = cpath(p);
    let n = CString::new(name).expect("no NUL");
    // SAFETY: valid C strings and a valid buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn xattr_list(p: &Path) -> Vec<Vec<u8>> {
    let c = cpath(p);
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}
