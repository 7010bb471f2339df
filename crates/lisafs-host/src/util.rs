//! Helpers shared by the control, open and socket FDs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use lisafs_server::{Errno, FsResult};
use lisafs_wire::{Gid, Pad16, Statx, StatxTimestamp, Uid};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use rustix::path::DecInt;

/// A host errno as a wire errno.
pub(crate) fn host(e: rustix::io::Errno) -> Errno {
    Errno(e.raw_os_error().unsigned_abs())
}

/// Flags of every open of a client-named file: symlinks are never followed
/// and no FD leaks into a child process.
pub(crate) const OPEN_FLAGS: OFlags = OFlags::NOFOLLOW.union(OFlags::CLOEXEC);

/// Opens a client-named file the way runsc does: readable (non-blocking, so
/// a FIFO cannot stall the server) if possible, else `O_PATH`, which is how
/// symlinks, sockets and unreadable files get an FD. `open` receives the
/// flags to use, [`OPEN_FLAGS`] included. Returns the FD and whether it is
/// an `O_PATH` FD.
pub(crate) fn try_open(
    open: impl Fn(OFlags) -> rustix::io::Result<OwnedFd>,
) -> FsResult<(OwnedFd, bool)> {
    match open(OFlags::RDONLY | OFlags::NONBLOCK | OPEN_FLAGS) {
        Ok(fd) => Ok((fd, false)),
        // Nothing to retry: the name is not there.
        Err(rustix::io::Errno::NOENT) => Err(Errno::ENOENT),
        Err(_) => open(OFlags::PATH | OPEN_FLAGS)
            .map(|fd| (fd, true))
            .map_err(host),
    }
}

/// Opens `name` in `dir` with [`try_open`], adding `extra` flags.
pub(crate) fn open_child(
    dir: BorrowedFd<'_>,
    name: &[u8],
    extra: OFlags,
) -> FsResult<(OwnedFd, bool)> {
    try_open(|flags| rustix::fs::openat(dir, name, flags | extra, Mode::empty()))
}

/// Re-opens the file behind `fd` through its `/proc/self/fd` magic link with
/// new `flags`. The link is followed on purpose: it names exactly the file
/// `fd` refers to (for a symlink FD, the link itself), never a path.
pub(crate) fn reopen(
    proc_fd: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    flags: OFlags,
) -> FsResult<OwnedFd> {
    rustix::fs::openat(
        proc_fd,
        DecInt::from_fd(fd).as_c_str(),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(host)
}

/// The absolute `/proc/self/fd/<fd>` path, for the calls that take no
/// directory FD (path-based xattr calls, `sockaddr_un`).
pub(crate) fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// A close-on-exec duplicate of `fd`, for donation.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> FsResult<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(host)
}

/// Stats the file behind `fd` (any kind of FD, `O_PATH` included).
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> FsResult<Statx> {
    rustix::fs::statx(
        fd,
        c"",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
    .map(|s| to_wire(&s))
    .map_err(host)
}

fn ts(t: rustix::fs::StatxTimestamp) -> StatxTimestamp {
    StatxTimestamp {
        sec: t.tv_sec,
        nsec: t.tv_nsec,
    }
}

/// The kernel's statx as the protocol's frozen 144-byte statx. Attributes
/// are not passed on (upstream reports them as 0).
fn to_wire(s: &rustix::fs::Statx) -> Statx {
    Statx {
        mask: s.stx_mask,
        blksize: s.stx_blksize,
        attributes: 0,
        nlink: s.stx_nlink,
        uid: s.stx_uid,
        gid: s.stx_gid,
        mode: s.stx_mode,
        pad_mode: Pad16,
        ino: s.stx_ino,
        size: s.stx_size,
        blocks: s.stx_blocks,
        attributes_mask: 0,
        atime: ts(s.stx_atime),
        btime: ts(s.stx_btime),
        ctime: ts(s.stx_ctime),
        mtime: ts(s.stx_mtime),
        rdev_major: s.stx_rdev_major,
        rdev_minor: s.stx_rdev_minor,
        dev_major: s.stx_dev_major,
        dev_minor: s.stx_dev_minor,
    }
}

/// The file type in a statx mode, if the host server serves that type.
/// Block devices (and anything unrecognised) are refused with EPERM.
pub(crate) fn served_type(mode: u16) -> FsResult<FileType> {
    match FileType::from_raw_mode(u32::from(mode)) {
        t @ (FileType::RegularFile
        | FileType::Directory
        | FileType::Symlink
        | FileType::CharacterDevice
        | FileType::Socket
        | FileType::Fifo) => Ok(t),
        _ => Err(Errno::EPERM),
    }
}

/// Changes the owner of the file behind `fd` (never following a symlink).
/// A sentinel id means "unchanged"; with both sentinels nothing is done.
pub(crate) fn chown_fd(fd: BorrowedFd<'_>, uid: Uid, gid: Gid) -> FsResult<()> {
    if !uid.is_some() && !gid.is_some() {
        return Ok(());
    }
    let owner = uid.is_some().then(|| rustix::fs::Uid::from_raw(uid.0));
    let group = gid.is_some().then(|| rustix::fs::Gid::from_raw(gid.0));
    rustix::fs::chownat(
        fd,
        c"",
        owner,
        group,
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(host)
}

/// Removes a just-created directory entry unless disarmed, so a failed
/// create leaves nothing behind.
pub(crate) struct Undo<'a> {
    dir: BorrowedFd<'a>,
    name: &'a [u8],
    flags: AtFlags,
    armed: bool,
}

impl<'a> Undo<'a> {
    /// Arms removal of `name` in `dir` with `unlinkat` flags `flags`.
    pub(crate) fn new(dir: &'a impl AsFd, name: &'a [u8], flags: AtFlags) -> Self {
        Undo {
            dir: dir.as_fd(),
            name,
            flags,
            armed: true,
        }
    }

    /// The entry is to stay.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the create already failed and that error is the
            // one to report.
            let _ = rustix::fs::unlinkat(self.dir, self.name, self.flags);
        }
    }
}

/// Refuses a name that could leave its directory or is not a single
/// component (empty, `.`, `..`, or containing `/` or NUL). The server core
/// checks names before calling a backend; this repeats the check so that a
/// core bug cannot become an escape from the served tree.
pub(crate) fn safe_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name == b"." || name == b".." || name.iter().any(|&b| b == b'/' || b == 0)
    {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}
