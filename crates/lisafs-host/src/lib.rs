//! A LISAFS backend that serves a host directory tree, after gVisor's
//! `runsc/fsgofer`.
//!
//! [`HostFs`] implements [`lisafs_server::ConnectionImpl`]. Every node is
//! reached through a host FD obtained with `openat(parent_fd, name,
//! O_NOFOLLOW | O_CLOEXEC | …)` relative to its parent's FD, so the client
//! (which is untrusted) can never name a file outside the served tree:
//! symlinks are never followed, and the few operations that need a path use
//! the `/proc/self/fd/<fd>` magic link of an FD the server already holds,
//! never a path string built from client input.
//!
//! # Process requirements
//!
//! * `/proc` must be mounted at `/proc` (the server opens `/proc/self/fd`
//!   once per [`HostFs`] to re-open FDs, and uses `/proc/self/fd/<fd>` paths
//!   for extended attributes and sockets).
//! * The client sends modes with its own umask already applied. runsc's
//!   gofer runs with a zero umask; an embedding process (Node's umask is
//!   usually 022) need not: creates whose mode the process umask would strip
//!   get an explicit chmod. [`clear_umask`] avoids that extra syscall for a
//!   program that may change its umask.
//!
//! # Differences from runsc's fsgofer
//!
//! Upstream runs chroot'ed and, for the few operations without an FD-based
//! syscall, rebuilds the node's absolute path from its node tree. This
//! backend never builds a path from the tree: it goes through the
//! `/proc/self/fd/<fd>` magic link of an FD it already holds, which names
//! exactly that file (for a symlink FD, the link itself, never its target).
//! What follows from that, and the other deliberate differences:
//!
//! * LinkAt: `linkat(/proc/self/fd/<fd>, AT_SYMLINK_FOLLOW)` instead of
//!   opening the parent; no capability needed. A file already unlinked
//!   cannot be linked again (ENOENT).
//! * Connect / ConnectWithCreds: the address is the magic link, so the
//!   socket's depth in the tree no longer matters (upstream: EINVAL when the
//!   absolute path reaches 108 bytes). The connected socket is made
//!   non-blocking before it is returned.
//! * BindAt: the 108-byte `sun_path` limit applies to
//!   `/proc/self/fd/<dir>/<name>`. The control FD holds its own descriptor
//!   on the socket file, and the socket is made non-blocking explicitly
//!   (both as the protocol spec's Appendix B recommends).
//! * O_PATH FDs (symlinks, sockets, files that could not be opened for
//!   reading) are chosen by how the FD was opened, not by file type: their
//!   chmod, utimes and xattr calls go through the magic link (path xattr
//!   calls that follow it). Upstream uses `l*xattr` on the node path for
//!   symlinks and sockets only, and fails with EBADF on unreadable regular
//!   files.
//! * SetStat times always go through the magic link (upstream: the parent
//!   for symlinks, a cached writable FD for regular files). SetStat size on
//!   anything but a regular file fails without opening it: EISDIR for a
//!   directory, EINVAL otherwise (upstream re-opens `O_WRONLY`, which blocks
//!   on a FIFO and opens devices). The writable FD is not cached.
//! * ConnectWithCreds switches only the calling thread's effective ids
//!   (`setresgid`/`setresuid` with the real and saved ids unchanged), skips
//!   a sentinel id, and aborts the process if it cannot switch back.
//! * FAllocate with a mode that does not fit 32 bits is EINVAL (upstream
//!   truncates it).
//! * There is no character-device passthrough policy: opening a character
//!   device is always EPERM.
//! * Names are checked again (EINVAL for empty, `.`, `..`, `/` or NUL)
//!   although the server core already does, so that a core bug cannot turn
//!   into an escape.

#![warn(missing_docs)]

mod control;
mod open;
mod util;

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use lisafs_server::{ConnectionImpl, FsResult, NewControl};
use lisafs_wire::Mid;
use rustix::fs::{Mode, OFlags};

use crate::control::HostControl;

/// Policies of a [`HostFs`]; everything is off by default, as in runsc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostOptions {
    /// Allow opening and connecting to host Unix domain sockets found in the
    /// tree (runsc `--host-uds=open`).
    pub host_uds_connect: bool,
    /// Allow the client to create (bind) host Unix domain sockets
    /// (runsc `--host-uds=create`).
    pub host_uds_create: bool,
    /// Allow opening host FIFOs (runsc `--host-fifo=open`).
    pub host_fifo_open: bool,
    /// Donate a host FD for the mount point on Mount and on opening the
    /// mount point (runsc's directfs mode).
    pub donate_mount_fd: bool,
}

/// The process credentials ConnectWithCreds switches away from and back to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Creds {
    pub(crate) euid: u32,
    pub(crate) egid: u32,
}

/// State every FD of one [`HostFs`] needs.
pub(crate) struct Shared {
    /// `/proc/self/fd`, for re-opening FDs through their magic links.
    pub(crate) proc_fd: OwnedFd,
    pub(crate) opts: HostOptions,
    pub(crate) creds: Creds,
    /// The process umask when the filesystem was created. Creates whose
    /// mode it would strip get an explicit chmod, so clients get the mode
    /// they asked for without the process umask having to change.
    pub(crate) umask: u32,
}

/// A host directory served over LISAFS.
pub struct HostFs {
    shared: Arc<Shared>,
    /// The served root, `O_PATH`; every node descends from it.
    root: OwnedFd,
}

/// Everything the host server implements; Flush is a no-op upstream and is
/// not advertised.
const SUPPORTED: [Mid; 32] = [
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

impl HostFs {
    /// Serves the directory `root` with policies `opts`.
    ///
    /// `root` is resolved once, here (it is trusted configuration, so
    /// symlinks in it are followed); it must be a directory.
    pub fn new(root: impl AsRef<Path>, opts: HostOptions) -> io::Result<HostFs> {
        let root = rustix::fs::open(
            root.as_ref(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let proc_fd = rustix::fs::open(
            "/proc/self/fd",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let creds = Creds {
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
        };
        Ok(HostFs {
            shared: Arc::new(Shared {
                proc_fd,
                opts,
                creds,
                umask: current_umask(),
            }),
            root,
        })
    }

    /// The policies this filesystem was created with.
    pub fn options(&self) -> HostOptions {
        self.shared.opts
    }
}

impl ConnectionImpl for HostFs {
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)> {
        HostControl::mount(&self.shared, &self.root)
    }

    fn supported_messages(&self) -> &[Mid] {
        &SUPPORTED
    }
}

/// The process umask, read without changing it (Linux 4.7+); if it cannot
/// be read, assume every permission bit may be stripped, which only costs
/// an extra chmod per create.
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o7777)
}

/// Sets the process umask to 0, as runsc's gofer runs: the client applies
/// its own umask before sending a mode, and a second one on the host would
/// strip bits the client asked for. Process-wide; call it once at start-up
/// before serving.
pub fn clear_umask() {
    rustix::process::umask(Mode::empty());
}
