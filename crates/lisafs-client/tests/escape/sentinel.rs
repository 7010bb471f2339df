//! The sentinel: a directory next to the served root, holding things a
//! confined client must never read, write, list, link or connect to, and a
//! snapshot of everything in the scratch base outside the root to prove it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use lisafs_client::Statx;
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags, Timespec, Timestamps, XattrFlags};

/// The content of every file outside the root. Nothing the client gets back
/// may ever contain [`MARKER_CORE`].
pub const MARKER: &[u8] =
    b"LISAFS-SENTINEL-5b1f0e7c: if a client reads this, it escaped the root\n";
/// The part of [`MARKER`] searched for in data returned to the client.
pub const MARKER_CORE: &[u8] = b"LISAFS-SENTINEL-5b1f0e7c";

/// Names in the sentinel directory `<base>/outside`.
pub const SECRET: &str = "sentinel-secret.txt";
pub const SUBDIR: &str = "sentinel-subdir";
pub const INNER: &str = "inner.txt";
pub const SOCK: &str = "sentinel.sock";
/// Files named like the race's inside files, so a confused server would hit
/// them.
pub const OUT_X: &str = "x";
pub const OUT_Y: &str = "y";

/// The file outside the root that the host admin hard-linked into it
/// (`root/hl`) before serving: inside by definition, so only its content is
/// compared.
pub const ADMIN_FILE: &str = "admin-linked.txt";
pub const ADMIN_CONTENT: &[u8] = b"admin hard-linked this file into the root\n";

/// Every name a test creates on purpose starts with this; none may ever
/// appear in `/`, `/etc` or the temp directory.
pub const PROBE: &str = "esc-probe";

/// Times given to the watched objects: an atime older than the mtime, so
/// that (with `relatime`) any read or listing moves the atime.
const OLD_ATIME: i64 = 1_000_000_000;
const OLD_MTIME: i64 = 1_100_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    ino: u64,
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
    /// Only for the watched objects, and only when atime is tracked.
    atime: Option<(i64, u32)>,
    content: Option<Vec<u8>>,
    target: Option<Vec<u8>>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The sentinel of one scratch base.
pub struct Sentinel {
    pub base: PathBuf,
    pub root: PathBuf,
    /// `<base>/outside`.
    pub dir: PathBuf,
    listener: Option<UnixListener>,
    watched: BTreeSet<PathBuf>,
    atime_works: bool,
    snapshot: BTreeMap<PathBuf, Entry>,
    /// `(dev_major, dev_minor, ino)` of everything under `<base>/outside`.
    inos: HashSet<(u32, u32, u64)>,
}

fn noatime_dir(path: &Path) -> OwnedFd {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOATIME | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn read_noatime(path: &Path) -> Vec<u8> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOATIME | OFlags::NOFOLLOW).bits() as i32)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Vec::new();
    f.read_to_end(&mut out).unwrap();
    out
}

fn set_old_times(path: &Path) {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: OLD_ATIME,
            tv_nsec: 0,
        },
        last_modification: Timespec {
            tv_sec: OLD_MTIME,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn lstatx(path: &Path) -> rustix::fs::Statx {
    rustix::fs::statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .unwrap_or_else(|e| panic!("statx {}: {e}", path.display()))
}

fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(path, &mut buf[..]) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut val = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name, &mut val[..]).unwrap_or(0);
        out.push((name.to_vec(), val[..len].to_vec()));
    }
    out.sort();
    out
}

impl Sentinel {
    /// Creates `<base>/outside` (a secret file with xattrs, a subdirectory,
    /// a listening socket, files `x` and `y`), the admin's hard-linked file
    /// (and its link `root/hl`), and takes the snapshot.
    pub fn create(base: &Path, root: &Path) -> Sentinel {
        let dir = base.join("outside");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join(SECRET);
        std::fs::write(&file, MARKER).unwrap();
        // trusted.* needs root; user.* works for the owner. Either may be
        // unsupported by the filesystem: the snapshot records what stuck.
        let _ = rustix::fs::lsetxattr(&file, "user.sentinel", MARKER, XattrFlags::empty());
        let _ = rustix::fs::lsetxattr(&file, "trusted.sentinel", MARKER, XattrFlags::empty());
        let sub = dir.join(SUBDIR);
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join(INNER), MARKER).unwrap();
        set_old_times(&sub);
        std::fs::write(dir.join(OUT_X), MARKER).unwrap();
        std::fs::write(dir.join(OUT_Y), MARKER).unwrap();
        // A path too long for sockaddr_un only costs the socket check.
        let listener = UnixListener::bind(dir.join(SOCK)).ok();
        if let Some(l) = &listener {
            l.set_nonblocking(true).unwrap();
        }
        set_old_times(&file);
        set_old_times(&dir);

        let admin = base.join(ADMIN_FILE);
        std::fs::write(&admin, ADMIN_CONTENT).unwrap();
        std::fs::hard_link(&admin, root.join("hl")).unwrap();

        // Does a read move an old atime on this filesystem?
        let probe = base.join("atime-probe");
        std::fs::write(&probe, b"probe").unwrap();
        set_old_times(&probe);
        let _ = std::fs::read(&probe).unwrap();
        let atime_works = lstatx(&probe).stx_atime.tv_sec != OLD_ATIME;

        let watched: BTreeSet<PathBuf> = [dir.clone(), file, sub].into_iter().collect();
        let mut s = Sentinel {
            base: base.to_path_buf(),
            root: root.to_path_buf(),
            dir,
            listener,
            watched,
            atime_works,
            snapshot: BTreeMap::new(),
            inos: HashSet::new(),
        };
        s.snapshot = s.scan();
        let outside = s.dir.clone();
        for path in s.snapshot.keys() {
            if path.starts_with(&outside) {
                let st = lstatx(path);
                s.inos
                    .insert((st.stx_dev_major, st.stx_dev_minor, st.stx_ino));
            }
        }
        s
    }

    /// Whether reads of the watched objects are detected through atime.
    pub fn atime_works(&self) -> bool {
        self.atime_works
    }

    /// Whether `st` describes something under `<base>/outside`.
    pub fn is_outside(&self, st: &Statx) -> bool {
        self.inos.contains(&(st.dev_major, st.dev_minor, st.ino))
    }

    /// Whether `(dev_major, dev_minor, ino)` is under `<base>/outside`.
    pub fn is_outside_ino(&self, major: u32, minor: u32, ino: u64) -> bool {
        self.inos.contains(&(major, minor, ino))
    }

    /// Everything under the base except the served root.
    fn scan(&self) -> BTreeMap<PathBuf, Entry> {
        let mut out = BTreeMap::new();
        self.scan_into(&self.base, &mut out);
        out
    }

    fn entry(&self, path: &Path) -> Entry {
        let st = lstatx(path);
        let ftype = u32::from(st.stx_mode) & 0o170000;
        let shared = path == self.base.join(ADMIN_FILE);
        let content = (ftype == 0o100000).then(|| read_noatime(path));
        let target = (ftype == 0o120000)
            .then(|| rustix::fs::readlink(path, Vec::new()).unwrap().into_bytes());
        let atime = (self.atime_works && self.watched.contains(path))
            .then_some((st.stx_atime.tv_sec, st.stx_atime.tv_nsec));
        let mut e = Entry {
            ino: st.stx_ino,
            mode: u32::from(st.stx_mode),
            nlink: st.stx_nlink,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
            ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
            atime,
            content,
            target,
            xattrs: xattrs(path),
        };
        if shared {
            // Linked into the root by the admin: the client may add names
            // to it (inside the root), which moves nlink and ctime.
            e.nlink = 0;
            e.ctime = (0, 0);
        }
        e
    }

    fn scan_into(&self, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        out.insert(dir.to_path_buf(), self.entry(dir));
        let fd = noatime_dir(dir);
        let mut names = Vec::new();
        for ent in rustix::fs::Dir::new(fd).unwrap() {
            let ent = ent.unwrap();
            let name = ent.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        for name in names {
            let path = dir.join(OsStr::from_bytes(&name));
            if path == self.root {
                continue;
            }
            let st = lstatx(&path);
            if u32::from(st.stx_mode) & 0o170000 == 0o040000 {
                self.scan_into(&path, out);
            } else {
                out.insert(path.clone(), self.entry(&path));
            }
        }
    }

    /// Everything that differs from the snapshot, as readable lines; empty
    /// when the sentinel is intact.
    pub fn violations(&self) -> Vec<String> {
        let mut bad = Vec::new();
        let now = self.scan();
        for (path, before) in &self.snapshot {
            match now.get(path) {
                None => bad.push(format!("{} disappeared", path.display())),
                Some(after) if after != before => bad.push(format!(
                    "{} changed:\n  before {before:?}\n  after  {after:?}",
                    path.display()
                )),
                Some(_) => {}
            }
        }
        for path in now.keys() {
            if !self.snapshot.contains_key(path) {
                bad.push(format!("{} appeared outside the root", path.display()));
            }
        }
        if let Some(l) = &self.listener {
            match l.accept() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Ok(_) => bad.push("someone connected to the sentinel socket".into()),
                Err(e) => bad.push(format!("sentinel socket accept: {e}")),
            }
        }
        let mut dirs: Vec<PathBuf> =
            vec!["/".into(), "/etc".into(), "/tmp".into(), "/dev/shm".into()];
        dirs.push(std::env::temp_dir());
        if let Some(p) = self.base.parent() {
            dirs.push(p.to_path_buf());
        }
        for d in dirs {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for ent in rd.flatten() {
                if ent.file_name().as_bytes().starts_with(PROBE.as_bytes()) {
                    bad.push(format!(
                        "{} appeared outside the root",
                        ent.path().display()
                    ));
                }
            }
        }
        bad
    }

    /// Panics with every violation.
    pub fn assert_intact(&self) {
        let bad = self.violations();
        assert!(bad.is_empty(), "sentinel violated:\n{}", bad.join("\n"));
    }
}

/// Whether `data` contains the sentinel's marker.
pub fn has_marker(data: &[u8]) -> bool {
    data.windows(MARKER_CORE.len()).any(|w| w == MARKER_CORE)
}
