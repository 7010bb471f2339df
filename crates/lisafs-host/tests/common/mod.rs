//! Test scaffolding shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionImpl, ControlFdImpl, Errno, NewControl};
use lisafs_wire::{Gid, Statx, StringArray, Uid};

pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFLNK: u16 = 0o120000;
pub const S_IFSOCK: u16 = 0o140000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFBLK: u16 = 0o060000;
pub const S_IFIFO: u16 = 0o010000;

pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_TRUNC: u32 = 0o1000;

pub const AT_REMOVEDIR: u32 = 0x200;

/// A scratch directory `<tmp>/lisafs-host-<pid>-<n>-<tag>` holding `root/`
/// (the served tree) and whatever lies outside it; removed on drop.
pub struct Scratch {
    pub base: PathBuf,
    pub root: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        // Modes in the tests are exact only without a host umask, which is
        // how the server is meant to run.
        lisafs_host::clear_umask();
        let n = N.fetch_add(1, Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("lisafs-host-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(&root).expect("create scratch root");
        Scratch { base, root }
    }

    pub fn fs(&self) -> HostFs {
        self.fs_with(HostOptions::default())
    }

    pub fn fs_with(&self, opts: HostOptions) -> HostFs {
        HostFs::new(&self.root, opts).expect("HostFs::new")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The root control FD of `fs`.
pub fn mount(fs: &HostFs) -> Box<dyn ControlFdImpl> {
    let (nc, donated) = fs.mount().expect("mount");
    assert_eq!(nc.stat.mode & S_IFMT, S_IFDIR);
    drop(donated);
    nc.imp
}

pub fn walk(dir: &dyn ControlFdImpl, name: &str) -> NewControl {
    dir.walk(name.as_bytes())
        .unwrap_or_else(|e| panic!("walk {name}: {e}"))
}

pub fn ftype(st: &Statx) -> u16 {
    st.mode & S_IFMT
}

/// Every stat `walk_stat` records for `path`.
pub fn walk_stat(dir: &dyn ControlFdImpl, path: &[&[u8]]) -> Result<Vec<Statx>, Errno> {
    let mut out = Vec::new();
    dir.walk_stat(StringArray::from_items(path), &mut |st| out.push(st))?;
    Ok(out)
}

pub fn lstat(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).expect("lstat")
}

pub fn no_owner() -> (Uid, Gid) {
    (Uid::NONE, Gid::NONE)
}

pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// Runs `f` on a fresh thread whose effective uid/gid are `nobody`'s when
/// the test runs as root (credentials are per thread at the syscall level),
/// so permission failures can be provoked; otherwise runs it unprivileged
/// as is. Returns `f`'s result.
pub fn as_unprivileged<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            if euid() == 0 {
                use rustix::thread::{Gid, Uid};
                rustix::thread::set_thread_res_gid(
                    None::<Gid>,
                    Some(Gid::from_raw(65534)),
                    None::<Gid>,
                )
                .expect("drop gid");
                rustix::thread::set_thread_res_uid(
                    None::<Uid>,
                    Some(Uid::from_raw(65534)),
                    None::<Uid>,
                )
                .expect("drop uid");
            }
            f()
        })
        .join()
        .expect("unprivileged thread")
    })
}

/// Sorted names in a host directory.
pub fn host_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
