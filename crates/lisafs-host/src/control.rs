//! [`HostControl`]: a control FD backed by one host FD.

use std::any::Any;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use lisafs_server::{
    BoundSocketFdImpl, ControlFdImpl, Errno, FsResult, NewControl, NewOpen, SetStatResult,
};
use lisafs_wire::{statx_mask, Gid, SetStatReq, StatFs, Statx, StringArray, Uid, UTIME_OMIT};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Timespec, Timestamps, XattrFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use rustix::path::DecInt;

use crate::open::{HostBoundSocket, HostOpen};
use crate::util::{
    chown_fd, dup, host, open_child, proc_path, reopen, safe_name, served_type, stat_fd, try_open,
    Undo, OPEN_FLAGS,
};
use crate::{Creds, Shared};

/// Linux's `XATTR_SIZE_MAX` and `XATTR_LIST_MAX`: the buffer used when the
/// client asks for "everything" (size 0) or more than the kernel allows.
const XATTR_MAX: usize = 65536;

/// Upstream gives up on symlink targets this long (its buffer stops
/// doubling below 64 KiB).
const READLINK_MAX: usize = 32768;

/// `UNIX_PATH_MAX`: a `sockaddr_un` path must be shorter than this.
const UNIX_PATH_MAX: usize = 108;

/// A position in the served tree: one host FD (readable when the file could
/// be opened for reading, else `O_PATH`) and the file's type.
pub(crate) struct HostControl {
    shared: Arc<Shared>,
    fd: OwnedFd,
    ftype: FileType,
    /// `fd` is an `O_PATH` FD: `f*` calls other than stat/chown/statfs fail
    /// on it, so those go through its `/proc/self/fd` magic link instead.
    is_path: bool,
    is_mount_point: bool,
}

impl HostControl {
    /// The mount point's control FD (and its donation, if enabled).
    pub(crate) fn mount(
        shared: &Arc<Shared>,
        root: &OwnedFd,
    ) -> FsResult<(NewControl, Option<OwnedFd>)> {
        // A fresh description of the root, readable when possible as
        // upstream's open of the mount path is. NOFOLLOW must not be set
        // here: the last component is the magic link itself.
        let (fd, is_path) = try_open(|flags| {
            rustix::fs::openat(
                shared.proc_fd.as_fd(),
                DecInt::from_fd(root).as_c_str(),
                flags.difference(OFlags::NOFOLLOW) | OFlags::DIRECTORY,
                Mode::empty(),
            )
        })?;
        let donate = if shared.opts.donate_mount_fd {
            Some(dup(fd.as_fd())?)
        } else {
            None
        };
        let control = Self::from_fd(shared, fd, is_path, true)?;
        Ok((control, donate))
    }

    /// Stats `fd`, refuses file types the host server does not serve, and
    /// wraps it.
    fn from_fd(
        shared: &Arc<Shared>,
        fd: OwnedFd,
        is_path: bool,
        is_mount_point: bool,
    ) -> FsResult<NewControl> {
        let stat = stat_fd(fd.as_fd())?;
        let ftype = served_type(stat.mode)?;
        Ok(NewControl {
            imp: Box::new(HostControl {
                shared: Arc::clone(shared),
                fd,
                ftype,
                is_path,
                is_mount_point,
            }),
            stat,
        })
    }

    /// The `/proc/self/fd` entry name of this FD.
    fn proc_name(&self) -> DecInt {
        DecInt::from_fd(&self.fd)
    }

    /// Gives a just-created file exactly `mode`'s permission bits when the
    /// process umask stripped some of them.
    fn undo_umask(shared: &Shared, fd: BorrowedFd<'_>, is_path: bool, mode: u16) -> FsResult<()> {
        let mode = u32::from(mode) & 0o7777;
        if mode & shared.umask == 0 {
            return Ok(());
        }
        let m = Mode::from_raw_mode(mode);
        if is_path {
            rustix::fs::chmodat(
                &shared.proc_fd,
                DecInt::from_fd(fd).as_c_str(),
                m,
                AtFlags::empty(),
            )
            .map_err(host)
        } else {
            rustix::fs::fchmod(fd, m).map_err(host)
        }
    }

    fn chmod(&self, mode: u32) -> FsResult<()> {
        let mode = Mode::from_raw_mode(mode & 0o7777);
        match self.ftype {
            // Linux has no way to change a symlink's mode.
            FileType::Symlink => Err(Errno::EOPNOTSUPP),
            // fchmod fails with EBADF on O_PATH FDs (sockets, unreadable
            // files); the magic link reaches the same inode.
            _ if self.is_path => rustix::fs::chmodat(
                &self.shared.proc_fd,
                self.proc_name().as_c_str(),
                mode,
                AtFlags::empty(),
            )
            .map_err(host),
            _ => rustix::fs::fchmod(&self.fd, mode).map_err(host),
        }
    }

    fn truncate(&self, size: u64) -> FsResult<()> {
        match self.ftype {
            FileType::RegularFile => {
                // ftruncate needs an FD open for writing.
                let w = reopen(
                    self.shared.proc_fd.as_fd(),
                    self.fd.as_fd(),
                    OFlags::WRONLY | OFlags::NONBLOCK,
                )?;
                rustix::fs::ftruncate(&w, size).map_err(host)
            }
            FileType::Directory => Err(Errno::EISDIR),
            // Never open a device, FIFO or socket just to fail: opening can
            // block or have side effects.
            _ => Err(Errno::EINVAL),
        }
    }

    fn set_times(&self, req: &SetStatReq) -> FsResult<()> {
        let pick = |wanted: u32, t: lisafs_wire::Timespec| {
            if req.mask & wanted != 0 {
                Timespec {
                    tv_sec: t.sec,
                    tv_nsec: t.nsec,
                }
            } else {
                Timespec {
                    tv_sec: 0,
                    tv_nsec: UTIME_OMIT,
                }
            }
        };
        let times = Timestamps {
            last_access: pick(statx_mask::ATIME, req.atime),
            last_modification: pick(statx_mask::MTIME, req.mtime),
        };
        // Through the magic link, which works for every kind of FD (O_PATH
        // included) and, for a symlink FD, lands on the link itself rather
        // than its target.
        rustix::fs::utimensat(
            &self.shared.proc_fd,
            self.proc_name().as_c_str(),
            &times,
            AtFlags::empty(),
        )
        .map_err(host)
    }

    /// Creates and connects a Unix socket of `sock_type` to this socket file.
    fn connect_socket(&self, sock_type: u32) -> FsResult<OwnedFd> {
        let ty = socket_type(sock_type)?;
        let sock = rustix::net::socket_with(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None)
            .map_err(host)?;
        // The magic link of the FD this control FD holds names exactly this
        // socket file, with a path short enough for any tree depth.
        let addr = SocketAddrUnix::new(proc_path(self.fd.as_fd())).map_err(host)?;
        rustix::net::connect(&sock, &addr).map_err(host)?;
        // The client waits on the donated socket itself; never let a read
        // or write on it block the server.
        rustix::io::ioctl_fionbio(&sock, true).map_err(host)?;
        Ok(sock)
    }

    fn xattr_get(&self, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize> {
        if self.is_path {
            rustix::fs::getxattr(proc_path(self.fd.as_fd()), name, buf)
        } else {
            rustix::fs::fgetxattr(&self.fd, name, buf)
        }
    }

    fn xattr_list(&self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        if self.is_path {
            rustix::fs::listxattr(proc_path(self.fd.as_fd()), buf)
        } else {
            rustix::fs::flistxattr(&self.fd, buf)
        }
    }
}

/// The socket types the host server connects and binds (stream, datagram,
/// seqpacket); others get ENXIO as upstream.
fn socket_type(sock_type: u32) -> FsResult<SocketType> {
    let ty = SocketType::from_raw(sock_type);
    if ty == SocketType::STREAM || ty == SocketType::DGRAM || ty == SocketType::SEQPACKET {
        Ok(ty)
    } else {
        Err(Errno::ENXIO)
    }
}

/// Recovers a [`HostControl`] from another control FD of the same
/// connection; a different backend cannot share host FDs with this one.
fn host_control(imp: &dyn ControlFdImpl) -> FsResult<&HostControl> {
    (imp as &dyn Any)
        .downcast_ref::<HostControl>()
        .ok_or(Errno::EXDEV)
}

impl ControlFdImpl for HostControl {
    fn stat(&self) -> FsResult<Statx> {
        stat_fd(self.fd.as_fd())
    }

    fn set_stat(&self, req: &SetStatReq) -> SetStatResult {
        let mut res = SetStatResult::default();
        let mut fail = |bits: u32, e: Errno| {
            res.failure_mask |= bits;
            res.failure_errno = Some(e);
        };
        if req.mask & statx_mask::MODE != 0 {
            if let Err(e) = self.chmod(req.mode) {
                fail(statx_mask::MODE, e);
            }
        }
        if req.mask & statx_mask::SIZE != 0 {
            if let Err(e) = self.truncate(req.size) {
                fail(statx_mask::SIZE, e);
            }
        }
        let times = req.mask & (statx_mask::ATIME | statx_mask::MTIME);
        if times != 0 {
            if let Err(e) = self.set_times(req) {
                fail(times, e);
            }
        }
        let owner = req.mask & (statx_mask::UID | statx_mask::GID);
        if owner != 0 {
            let uid = if req.mask & statx_mask::UID != 0 {
                req.uid
            } else {
                Uid::NONE
            };
            let gid = if req.mask & statx_mask::GID != 0 {
                req.gid
            } else {
                Gid::NONE
            };
            if let Err(e) = chown_fd(self.fd.as_fd(), uid, gid) {
                fail(owner, e);
            }
        }
        res
    }

    fn walk(&self, name: &[u8]) -> FsResult<NewControl> {
        safe_name(name)?;
        let (fd, is_path) = open_child(self.fd.as_fd(), name, OFlags::empty())?;
        Self::from_fd(&self.shared, fd, is_path, false)
    }

    fn walk_stat(&self, path: StringArray<'_>, record: &mut dyn FnMut(Statx)) -> FsResult<()> {
        let mut names = path.iter().peekable();
        if names.next_if(|n| n.is_empty()).is_some() {
            record(stat_fd(self.fd.as_fd())?);
        }
        if self.ftype == FileType::Symlink {
            return Ok(());
        }
        // The directory walked from; each step's FD replaces (and closes)
        // the previous one.
        let mut cur: Option<OwnedFd> = None;
        for name in names {
            safe_name(name)?;
            let dir = cur.as_ref().map_or(self.fd.as_fd(), |fd| fd.as_fd());
            let next = match rustix::fs::openat(dir, name, OFlags::PATH | OPEN_FLAGS, Mode::empty())
            {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => break,
                Err(e) => return Err(host(e)),
            };
            let stat = stat_fd(next.as_fd())?;
            let ftype = served_type(stat.mode)?;
            record(stat);
            if ftype == FileType::Symlink {
                break;
            }
            cur = Some(next);
        }
        Ok(())
    }

    fn open(&self, flags: u32) -> FsResult<NewOpen> {
        let opts = &self.shared.opts;
        match self.ftype {
            FileType::Fifo if !opts.host_fifo_open => return Err(Errno::EPERM),
            FileType::Socket if !opts.host_uds_connect => return Err(Errno::EPERM),
            // No character-device passthrough policy is offered.
            FileType::CharacterDevice => return Err(Errno::EPERM),
            _ => {}
        }
        let mut flags = OFlags::from_bits_retain(flags) & (OFlags::ACCMODE | OFlags::TRUNC);
        if matches!(self.ftype, FileType::Fifo | FileType::RegularFile) {
            // A blocking open of a FIFO waits for the other end: a client
            // could park this connection's thread forever. Both are donated,
            // and the core makes donated FDs non-blocking; the donation
            // shares this file description, so opening non-blocking spares
            // it an F_SETFL per open (regular files ignore the flag for I/O).
            flags |= OFlags::NONBLOCK;
        }
        let fd = reopen(self.shared.proc_fd.as_fd(), self.fd.as_fd(), flags)?;
        let donate = match self.ftype {
            // Donation of a regular file only speeds the client up: give up
            // quietly if the dup fails.
            FileType::RegularFile => dup(fd.as_fd()).ok(),
            // The client must wait on a FIFO itself, and the mount point
            // must be donated when so configured.
            FileType::Fifo => Some(dup(fd.as_fd())?),
            _ if self.is_mount_point && opts.donate_mount_fd => Some(dup(fd.as_fd())?),
            _ => None,
        };
        Ok(NewOpen {
            imp: Box::new(HostOpen::new(fd)),
            donate,
        })
    }

    fn open_create(
        &self,
        mode: u16,
        uid: Uid,
        gid: Gid,
        name: &[u8],
        flags: u32,
    ) -> FsResult<(NewControl, NewOpen)> {
        safe_name(name)?;
        let child = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::RDONLY | OFlags::NONBLOCK | OPEN_FLAGS,
            Mode::from_raw_mode(u32::from(mode) & 0o7777),
        )
        .map_err(host)?;
        let undo = Undo::new(&self.fd, name, AtFlags::empty());
        Self::undo_umask(&self.shared, child.as_fd(), false, mode)?;
        chown_fd(child.as_fd(), uid, gid)?;
        let stat = stat_fd(child.as_fd())?;
        // Non-blocking as in `open`: the donation shares the description.
        let flags =
            OFlags::from_bits_retain(flags) & (OFlags::ACCMODE | OFlags::TRUNC) | OFlags::NONBLOCK;
        let open_fd = reopen(self.shared.proc_fd.as_fd(), child.as_fd(), flags)?;
        // O_CREAT | O_EXCL made a regular file: donating it is best effort.
        let donate = dup(open_fd.as_fd()).ok();
        undo.keep();
        let control = NewControl {
            imp: Box::new(HostControl {
                shared: Arc::clone(&self.shared),
                fd: child,
                ftype: FileType::RegularFile,
                is_path: false,
                is_mount_point: false,
            }),
            stat,
        };
        let open = NewOpen {
            imp: Box::new(HostOpen::new(open_fd)),
            donate,
        };
        Ok((control, open))
    }

    fn mkdir(&self, mode: u16, uid: Uid, gid: Gid, name: &[u8]) -> FsResult<NewControl> {
        safe_name(name)?;
        rustix::fs::mkdirat(
            &self.fd,
            name,
            Mode::from_raw_mode(u32::from(mode) & 0o7777),
        )
        .map_err(host)?;
        let undo = Undo::new(&self.fd, name, AtFlags::REMOVEDIR);
        let (fd, is_path) = open_child(self.fd.as_fd(), name, OFlags::DIRECTORY)?;
        Self::undo_umask(&self.shared, fd.as_fd(), is_path, mode)?;
        chown_fd(fd.as_fd(), uid, gid)?;
        let control = Self::from_fd(&self.shared, fd, is_path, false)?;
        undo.keep();
        Ok(control)
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
        safe_name(name)?;
        let ftype = FileType::from_raw_mode(u32::from(mode));
        match ftype {
            FileType::RegularFile => {}
            // An overlayfs whiteout: the kernel lets anyone create a 0:0
            // character device, and the overlay client needs it.
            FileType::CharacterDevice if minor == 0 && major == 0 => {}
            // mknod(2): EPERM when the filesystem does not support the type.
            _ => return Err(Errno::EPERM),
        }
        rustix::fs::mknodat(
            &self.fd,
            name,
            ftype,
            Mode::from_raw_mode(u32::from(mode) & 0o7777),
            0,
        )
        .map_err(host)?;
        let undo = Undo::new(&self.fd, name, AtFlags::empty());
        let (fd, is_path) = open_child(self.fd.as_fd(), name, OFlags::empty())?;
        Self::undo_umask(&self.shared, fd.as_fd(), is_path, mode)?;
        chown_fd(fd.as_fd(), uid, gid)?;
        let control = Self::from_fd(&self.shared, fd, is_path, false)?;
        undo.keep();
        Ok(control)
    }

    fn symlink(&self, name: &[u8], target: &[u8], uid: Uid, gid: Gid) -> FsResult<NewControl> {
        safe_name(name)?;
        rustix::fs::symlinkat(target, &self.fd, name).map_err(host)?;
        let undo = Undo::new(&self.fd, name, AtFlags::empty());
        let fd = rustix::fs::openat(&self.fd, name, OFlags::PATH | OPEN_FLAGS, Mode::empty())
            .map_err(host)?;
        chown_fd(fd.as_fd(), uid, gid)?;
        let control = Self::from_fd(&self.shared, fd, true, false)?;
        undo.keep();
        Ok(control)
    }

    fn link(&self, dir: &dyn ControlFdImpl, name: &[u8]) -> FsResult<NewControl> {
        safe_name(name)?;
        let dir = host_control(dir)?;
        // linkat(fd, "", …, AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH in the
        // root user namespace; following the magic link needs nothing and
        // reaches the same inode (for a symlink FD, the link itself, never
        // its target).
        rustix::fs::linkat(
            &self.shared.proc_fd,
            self.proc_name().as_c_str(),
            &dir.fd,
            name,
            AtFlags::SYMLINK_FOLLOW,
        )
        .map_err(host)?;
        let undo = Undo::new(&dir.fd, name, AtFlags::empty());
        let (fd, is_path) = open_child(dir.fd.as_fd(), name, OFlags::empty())?;
        let control = Self::from_fd(&dir.shared, fd, is_path, false)?;
        undo.keep();
        Ok(control)
    }

    #[allow(clippy::unnecessary_cast)] // statfs field types differ by architecture.
    fn stat_fs(&self) -> FsResult<StatFs> {
        let s = rustix::fs::fstatfs(&self.fd).map_err(host)?;
        Ok(StatFs {
            fs_type: s.f_type as u64,
            block_size: s.f_bsize as i64,
            blocks: s.f_blocks as u64,
            blocks_free: s.f_bfree as u64,
            blocks_available: s.f_bavail as u64,
            files: s.f_files as u64,
            files_free: s.f_ffree as u64,
            name_length: s.f_namelen as u64,
        })
    }

    fn readlink(&self, out: &mut Vec<u8>) -> FsResult<()> {
        // An empty path reads the link an O_PATH symlink FD refers to.
        let target = rustix::fs::readlinkat(&self.fd, c"", Vec::new()).map_err(host)?;
        let target = target.as_bytes();
        if target.len() >= READLINK_MAX {
            return Err(Errno::ENOMEM);
        }
        out.extend_from_slice(target);
        Ok(())
    }

    fn connect(&self, sock_type: u32) -> FsResult<OwnedFd> {
        if !self.shared.opts.host_uds_connect {
            return Err(Errno::EPERM);
        }
        self.connect_socket(sock_type)
    }

    fn connect_with_creds(&self, sock_type: u32, uid: Uid, gid: Gid) -> FsResult<OwnedFd> {
        if !self.shared.opts.host_uds_connect {
            return Err(Errno::EPERM);
        }
        let _creds = CredSwitch::new(self.shared.creds, uid, gid);
        self.connect_socket(sock_type)
    }

    fn bind_at(
        &self,
        name: &[u8],
        sock_type: u32,
        mode: u16,
        uid: Uid,
        gid: Gid,
    ) -> FsResult<(NewControl, Box<dyn BoundSocketFdImpl>, OwnedFd)> {
        safe_name(name)?;
        if !self.shared.opts.host_uds_create {
            return Err(Errno::EPERM);
        }
        // There is no bindat(2): bind through the directory FD's magic link.
        let mut path = proc_path(self.fd.as_fd()).into_bytes();
        path.push(b'/');
        path.extend_from_slice(name);
        if path.len() >= UNIX_PATH_MAX {
            return Err(Errno::EINVAL);
        }
        let ty = socket_type(sock_type)?;
        let sock = rustix::net::socket_with(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None)
            .map_err(host)?;
        // bind(2) gives the new inode the socket's mode, so set it first.
        rustix::fs::fchmod(&sock, Mode::from_raw_mode(u32::from(mode) & 0o7777)).map_err(host)?;
        let addr = SocketAddrUnix::new(path.as_slice()).map_err(host)?;
        rustix::net::bind(&sock, &addr).map_err(host)?;
        let undo = Undo::new(&self.fd, name, AtFlags::empty());
        // The control FD gets its own descriptor on the socket file (not
        // the socket), so stat and statfs describe the file.
        let (file, is_path) = open_child(self.fd.as_fd(), name, OFlags::empty())?;
        Self::undo_umask(&self.shared, file.as_fd(), is_path, mode)?;
        chown_fd(file.as_fd(), uid, gid)?;
        let control = Self::from_fd(&self.shared, file, is_path, false)?;
        // accept must never block the server, whatever the client does with
        // its copy.
        rustix::io::ioctl_fionbio(&sock, true).map_err(host)?;
        let donate = dup(sock.as_fd())?;
        undo.keep();
        Ok((control, Box::new(HostBoundSocket::new(sock)), donate))
    }

    fn unlink(&self, name: &[u8], flags: u32) -> FsResult<()> {
        safe_name(name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::from_bits_retain(flags)).map_err(host)
    }

    fn rename_at(
        &self,
        old_name: &[u8],
        new_dir: &dyn ControlFdImpl,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        safe_name(old_name)?;
        safe_name(new_name)?;
        let new_dir = host_control(new_dir)?;
        if flags == 0 {
            rustix::fs::renameat(&self.fd, old_name, &new_dir.fd, new_name).map_err(host)
        } else {
            rustix::fs::renameat_with(
                &self.fd,
                old_name,
                &new_dir.fd,
                new_name,
                RenameFlags::from_bits_retain(flags),
            )
            .map_err(host)
        }
    }

    fn get_xattr(&self, name: &[u8], size: u32, out: &mut Vec<u8>) -> FsResult<()> {
        // Size 0 asks for the value's size; the client learns it from the
        // whole value.
        let size = match usize::try_from(size) {
            Ok(s) if s != 0 && s <= XATTR_MAX => s,
            _ => XATTR_MAX,
        };
        let start = out.len();
        out.resize(start + size, 0);
        match self.xattr_get(name, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(host(e))
            }
        }
    }

    fn set_xattr(&self, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        let flags = XattrFlags::from_bits_retain(flags);
        if self.is_path {
            rustix::fs::setxattr(proc_path(self.fd.as_fd()), name, value, flags).map_err(host)
        } else {
            rustix::fs::fsetxattr(&self.fd, name, value, flags).map_err(host)
        }
    }

    fn list_xattr(&self, size: u64, out: &mut Vec<Vec<u8>>) -> FsResult<()> {
        let size = match usize::try_from(size) {
            Ok(s) if s != 0 && s <= XATTR_MAX => s,
            _ => XATTR_MAX,
        };
        let mut buf = vec![0u8; size];
        let n = self.xattr_list(&mut buf).map_err(host)?;
        let list = buf.get(..n).ok_or(Errno::EIO)?;
        out.extend(
            list.split(|&b| b == 0)
                .filter(|name| !name.is_empty())
                .map(<[u8]>::to_vec),
        );
        Ok(())
    }

    fn remove_xattr(&self, name: &[u8]) -> FsResult<()> {
        if self.is_path {
            rustix::fs::removexattr(proc_path(self.fd.as_fd()), name).map_err(host)
        } else {
            rustix::fs::fremovexattr(&self.fd, name).map_err(host)
        }
    }
}

/// Switches this thread's effective gid and uid for the lifetime of the
/// value (ConnectWithCreds), as upstream does on a locked OS thread. Linux
/// credentials are per thread at the syscall level, so no other thread is
/// affected. Without the privilege to switch, the connect simply happens
/// with the server's own credentials (upstream only logs that failure).
struct CredSwitch {
    creds: Creds,
    uid_changed: bool,
    gid_changed: bool,
}

impl CredSwitch {
    fn new(creds: Creds, uid: Uid, gid: Gid) -> Self {
        // The gid first: once the uid is no longer 0 the capability to
        // change the gid is gone.
        let gid_changed = gid.is_some() && gid.0 != creds.egid && set_egid(gid.0).is_ok();
        let uid_changed = uid.is_some() && uid.0 != creds.euid && set_euid(uid.0).is_ok();
        CredSwitch {
            creds,
            uid_changed,
            gid_changed,
        }
    }
}

impl Drop for CredSwitch {
    fn drop(&mut self) {
        // Running on with borrowed credentials would be a privilege bug far
        // worse than stopping, so a failed restore is fatal (as upstream).
        if self.uid_changed && set_euid(self.creds.euid).is_err() {
            eprintln!("lisafs-host: cannot restore the effective uid after ConnectWithCreds");
            std::process::abort();
        }
        if self.gid_changed && set_egid(self.creds.egid).is_err() {
            eprintln!("lisafs-host: cannot restore the effective gid after ConnectWithCreds");
            std::process::abort();
        }
    }
}

/// Sets only this thread's effective uid (real and saved stay, so the
/// original can be restored without privilege).
fn set_euid(uid: u32) -> rustix::io::Result<()> {
    use rustix::thread::Uid;
    rustix::thread::set_thread_res_uid(None::<Uid>, Some(Uid::from_raw(uid)), None::<Uid>)
}

/// Sets only this thread's effective gid.
fn set_egid(gid: u32) -> rustix::io::Result<()> {
    use rustix::thread::Gid;
    rustix::thread::set_thread_res_gid(None::<Gid>, Some(Gid::from_raw(gid)), None::<Gid>)
}
