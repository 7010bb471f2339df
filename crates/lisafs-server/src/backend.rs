//! The traits a filesystem backend implements: [`ConnectionImpl`] for a
//! mount, [`ControlFdImpl`] for a position in the tree, [`OpenFdImpl`] for
//! an open file and [`BoundSocketFdImpl`] for a bound socket. They mirror
//! gVisor's `ConnectionImpl`, `ControlFDImpl`, `OpenFDImpl` and
//! `BoundSocketFDImpl`.
//!
//! A backend never sees FDIDs, nodes or locks. The server core validates
//! every request (FD kinds, names, read-only mode, deleted nodes), takes the
//! locks that give each method its stated **concurrency guarantee**, builds
//! the node tree and the FD table from what the methods return, and encodes
//! the reply. Every method has a default that answers `ENOSYS`, so a backend
//! implements what it supports and nothing panics for the rest.
//!
//! Concurrency guarantees (what the core holds while the method runs):
//! * **none**: no lock;
//! * **read**: the server's rename lock shared and this node's op lock
//!   shared: no write on this node and no rename anywhere runs meanwhile,
//!   and every ancestor stays in place;
//! * **write**: the rename lock shared and this node's op lock exclusive;
//! * **global**: the rename lock exclusive: nothing else runs.
//!
//! Names handed to a backend have passed the protocol's name check: they are
//! non-empty, contain no `/` and are neither `.` nor `..`. They are bytes,
//! not necessarily UTF-8.

use std::any::Any;
use std::os::fd::OwnedFd;

use lisafs_wire::{Dirent64, Gid, Mid, SetStatReq, StatFs, Statx, StringArray, Uid};

use crate::errno::{Errno, FsResult};

/// A new control FD created by a backend: its implementation and its stat.
/// The core registers it in the node tree (under the directory the method
/// was called on, with the name it was given) and in the FD table.
pub struct NewControl {
    /// The implementation behind the new control FD.
    pub imp: Box<dyn ControlFdImpl>,
    /// Its stat; the file type in `stat.mode` fixes the FD's type for life.
    pub stat: Statx,
}

/// A new open FD: its implementation and, optionally, a host FD to donate
/// to the client (which then does I/O on it directly).
pub struct NewOpen {
    /// The implementation behind the new open FD.
    pub imp: Box<dyn OpenFdImpl>,
    /// A host FD to send with the reply, if any.
    pub donate: Option<OwnedFd>,
}

/// What SetStat achieved: a partial failure is still a successful reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetStatResult {
    /// `STATX_*` bits of the requested changes that failed.
    pub failure_mask: u32,
    /// The errno of one failure (the last one, as gVisor's host server does).
    pub failure_errno: Option<Errno>,
}

/// One mount as served to one connection (gVisor's `ConnectionImpl`).
pub trait ConnectionImpl: Send + Sync + 'static {
    /// Opens the mount point and returns its control FD, stat and
    /// optionally a host FD to donate.
    ///
    /// Concurrency guarantee: read (on the mount node).
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)>;

    /// The MIDs this connection serves. The list is advertised in the Mount
    /// reply and enforced: other MIDs get EOPNOTSUPP. It must not be empty.
    fn supported_messages(&self) -> &[Mid];

    /// The largest payload either side may send. Must not be 0.
    fn max_message_size(&self) -> u32 {
        lisafs_wire::DEFAULT_MAX_MESSAGE_SIZE
    }
}

/// A position in the tree (gVisor's `ControlFDImpl`).
///
/// `Any` lets a backend recover its own type from the other FD passed to
/// [`ControlFdImpl::link`] and [`ControlFdImpl::rename_at`].
#[allow(unused_variables)]
pub trait ControlFdImpl: Any + Send + Sync {
    /// Stats the file.
    ///
    /// Concurrency guarantee: read.
    fn stat(&self) -> FsResult<Statx> {
        Err(Errno::ENOSYS)
    }

    /// Applies the attributes selected by `req.mask` (only bits of
    /// `statx_mask::SETTABLE` reach here) and reports which failed.
    ///
    /// Concurrency guarantee: write.
    fn set_stat(&self, req: &SetStatReq) -> SetStatResult {
        SetStatResult {
            failure_mask: req.mask,
            failure_errno: Some(Errno::ENOSYS),
        }
    }

    /// Looks up `name` in this directory. ENOENT ends a Walk with status
    /// "component does not exist"; any other error fails the whole Walk.
    ///
    /// Precondition: this is a directory.
    /// Concurrency guarantee: read.
    fn walk(&self, name: &[u8]) -> FsResult<NewControl> {
        Err(Errno::ENOSYS)
    }

    /// Walks `path` from this directory and records a stat per component,
    /// stopping silently at a missing component or after a symlink. A
    /// first component of `""` asks for this directory's own stat first.
    ///
    /// Concurrency guarantee: read (on this node only; the nodes walked
    /// through are not locked, as in gVisor with `WalkStatSupported`).
    fn walk_stat(&self, path: StringArray<'_>, record: &mut dyn FnMut(Statx)) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Opens the file. `flags` holds only `O_ACCMODE | O_TRUNC`.
    ///
    /// Concurrency guarantee: read.
    fn open(&self, flags: u32) -> FsResult<NewOpen> {
        Err(Errno::ENOSYS)
    }

    /// Creates the regular file `name` exclusively in this directory and
    /// opens it with `flags` (only `O_ACCMODE | O_TRUNC`).
    ///
    /// Precondition: this is a directory.
    /// Concurrency guarantee: write.
    fn open_create(
        &self,
        mode: u16,
        uid: Uid,
        gid: Gid,
        name: &[u8],
        flags: u32,
    ) -> FsResult<(NewControl, NewOpen)> {
        Err(Errno::ENOSYS)
    }

    /// Creates the directory `name`.
    ///
    /// Precondition: this is a directory.
    /// Concurrency guarantee: write.
    fn mkdir(&self, mode: u16, uid: Uid, gid: Gid, name: &[u8]) -> FsResult<NewControl> {
        Err(Errno::ENOSYS)
    }

    /// Creates the node `name`; `mode` carries the file type.
    ///
    /// Precondition: this is a directory.
    /// Concurrency guarantee: write.
    fn mknod(
        &self,
        mode: u16,
        uid: Uid,
        gid: Gid,
        name: &[u8],
        minor: u32,
        major: u32,
    ) -> FsResult<NewControl> {
        Err(Errno::ENOSYS)
    }

    /// Creates the symlink `name` pointing at `target` (arbitrary bytes,
    /// never interpreted by the server).
    ///
    /// Precondition: this is a directory.
    /// Concurrency guarantee: write.
    fn symlink(&self, name: &[u8], target: &[u8], uid: Uid, gid: Gid) -> FsResult<NewControl> {
        Err(Errno::ENOSYS)
    }

    /// Hard-links this file (never a directory) as `dir/name`.
    ///
    /// Concurrency guarantee: write on `dir`, read on this node.
    fn link(&self, dir: &dyn ControlFdImpl, name: &[u8]) -> FsResult<NewControl> {
        Err(Errno::ENOSYS)
    }

    /// Statistics of the filesystem holding this file.
    ///
    /// Concurrency guarantee: read.
    fn stat_fs(&self) -> FsResult<StatFs> {
        Err(Errno::ENOSYS)
    }

    /// Appends the symlink's target to `out`.
    ///
    /// Precondition: this is a symlink.
    /// Concurrency guarantee: read.
    fn readlink(&self, out: &mut Vec<u8>) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Connects a new host socket of `sock_type` to this socket file.
    ///
    /// Precondition: this is a socket.
    /// Concurrency guarantee: read.
    fn connect(&self, sock_type: u32) -> FsResult<OwnedFd> {
        Err(Errno::ENOSYS)
    }

    /// Like [`ControlFdImpl::connect`], as user `uid` and group `gid`.
    ///
    /// Concurrency guarantee: read.
    fn connect_with_creds(&self, sock_type: u32, uid: Uid, gid: Gid) -> FsResult<OwnedFd> {
        Err(Errno::ENOSYS)
    }

    /// Creates a socket of `sock_type`, binds it at `name` in this directory
    /// and returns the socket file's control FD, the bound socket, and the
    /// host FD to donate (the client polls it for incoming connections).
    ///
    /// Precondition: this is a directory.
    /// Concurrency guarantee: write.
    fn bind_at(
        &self,
        name: &[u8],
        sock_type: u32,
        mode: u16,
        uid: Uid,
        gid: Gid,
    ) -> FsResult<(NewControl, Box<dyn BoundSocketFdImpl>, OwnedFd)> {
        Err(Errno::ENOSYS)
    }

    /// Removes `name` from this directory (`flags`: `AT_REMOVEDIR`).
    ///
    /// Precondition: this is a directory.
    /// Concurrency guarantee: write (on this directory, and on the child's
    /// node when the child is in the tree).
    fn unlink(&self, name: &[u8], flags: u32) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Renames `old_name` in this directory to `new_name` in `new_dir`, with
    /// `renameat2(2)` `flags` (0 for RenameAt).
    ///
    /// Precondition: both are directories.
    /// Concurrency guarantee: global.
    fn rename_at(
        &self,
        old_name: &[u8],
        new_dir: &dyn ControlFdImpl,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Called after this file (or an ancestor) was renamed.
    ///
    /// Concurrency guarantee: global.
    fn renamed(&self) {}

    /// Appends the value of extended attribute `name` to `out`. `size` is
    /// the client's buffer size (0: the whole value).
    ///
    /// Concurrency guarantee: read.
    fn get_xattr(&self, name: &[u8], size: u32, out: &mut Vec<u8>) -> FsResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Sets extended attribute `name` (`flags`: `XATTR_CREATE`,
    /// `XATTR_REPLACE`).
    ///
    /// Concurrency guarantee: write.
    fn set_xattr(&self, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Appends the names of the extended attributes to `out`. `size` is the
    /// client's buffer hint (0: all).
    ///
    /// Concurrency guarantee: read.
    fn list_xattr(&self, size: u64, out: &mut Vec<Vec<u8>>) -> FsResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Removes extended attribute `name`.
    ///
    /// Concurrency guarantee: write.
    fn remove_xattr(&self, name: &[u8]) -> FsResult<()> {
        Err(Errno::EOPNOTSUPP)
    }
}

/// An open file (gVisor's `OpenFDImpl`). Locks are those of the control FD
/// it was opened from.
#[allow(unused_variables)]
pub trait OpenFdImpl: Any + Send + Sync {
    /// Stats the open file.
    ///
    /// Concurrency guarantee: read.
    fn stat(&self) -> FsResult<Statx> {
        Err(Errno::ENOSYS)
    }

    /// Flushes the file to stable storage.
    ///
    /// Concurrency guarantee: read.
    fn sync(&self) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Writes `buf` at `off`; returns the bytes written.
    ///
    /// Precondition: opened for writing.
    /// Concurrency guarantee: write.
    fn write(&self, buf: &[u8], off: u64) -> FsResult<u64> {
        Err(Errno::ENOSYS)
    }

    /// Reads into `buf` from `off`; returns the bytes read, short only at
    /// end of file.
    ///
    /// Precondition: opened for reading.
    /// Concurrency guarantee: read.
    fn read(&self, buf: &mut [u8], off: u64) -> FsResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// `fallocate(2)`.
    ///
    /// Precondition: opened for writing.
    /// Concurrency guarantee: write.
    fn allocate(&self, mode: u64, off: u64, len: u64) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Flushes client-visible state (close-time semantics).
    ///
    /// Concurrency guarantee: read.
    fn flush(&self) -> FsResult<()> {
        Ok(())
    }

    /// Reads directory entries worth at most `count` bytes of host records
    /// and records each one, skipping `.` and `..`; `seek0` rewinds first.
    /// Recording nothing means end of directory.
    ///
    /// Precondition: opened on a directory.
    /// Concurrency guarantee: read.
    fn getdent64(
        &self,
        count: u32,
        seek0: bool,
        record: &mut dyn FnMut(Dirent64<'_>),
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Called after the file (or an ancestor) was renamed.
    ///
    /// Concurrency guarantee: global.
    fn renamed(&self) {}
}

/// A bound host socket (gVisor's `BoundSocketFDImpl`).
#[allow(unused_variables)]
pub trait BoundSocketFdImpl: Any + Send + Sync {
    /// `listen(2)`.
    ///
    /// Concurrency guarantee: read (on the socket file's node).
    fn listen(&self, backlog: i32) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Accepts one pending connection without blocking (EAGAIN when none);
    /// returns the connected socket and the peer address (servers usually
    /// report it empty).
    ///
    /// Concurrency guarantee: read (on the socket file's node).
    fn accept(&self) -> FsResult<(OwnedFd, Vec<u8>)> {
        Err(Errno::ENOSYS)
    }
}
