//! One handler per MID. Checks run in the order gVisor's handlers apply
//! them, so the first failing check yields the same errno.

use std::sync::Arc;

use lisafs_wire::{self as w, statx_mask, FdId, Inode, Message, Mid, Seq, Statx, WalkStatus, Wire};

use crate::backend::NewControl;
use crate::connection::{Connection, Reply};
use crate::errno::{Errno, FsResult};
use crate::fd::{BoundSocketFd, ControlFd, FdEntry, OpenFd};

const O_ACCMODE: u32 = 3;
const O_TRUNC: u32 = 0o1000;
const ALLOWED_OPEN_FLAGS: u32 = O_ACCMODE | O_TRUNC;
const RENAME_EXCHANGE: u32 = 2;

/// FDIDs a request registered, forgotten again unless the request
/// succeeds (`keep`), including when a backend panic unwinds through it.
struct Forget<'c> {
    conn: &'c Connection,
    ids: Vec<FdId>,
}

impl Forget<'_> {
    fn keep(&mut self) {
        self.ids.clear();
    }
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let entries: Vec<FdEntry> = self
            .ids
            .iter()
            .filter_map(|&id| self.conn.remove(id))
            .collect();
        // Dropped here, outside the FD table lock and any node lock.
        drop(entries);
    }
}

/// gVisor's `checkSafeName`: one non-empty component, not `.` or `..`.
fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn decode<'a, M: Message<'a>>(payload: &'a [u8]) -> FsResult<M> {
    M::decode_payload(payload).map_err(|_| Errno::EIO)
}

fn respond<'a, M: Message<'a>>(reply: &mut Reply, msg: &M) -> FsResult<()> {
    msg.encode_to_vec(&mut reply.payload)
        .map_err(|_| Errno::EIO)
}

impl Connection {
    fn check_writable_conn(&self) -> FsResult<()> {
        if self.opts.readonly {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// Registers a control FD for `dir/name` made by the backend.
    ///
    /// Precondition: the rename lock is held and `dir`'s op lock is held
    /// (so the child cannot be unlinked meanwhile).
    fn insert_child_locked(
        &self,
        dir: &ControlFd,
        name: &[u8],
        nc: NewControl,
    ) -> (Inode, Arc<ControlFd>) {
        let node = dir.node.lookup_or_insert_child_locked(name);
        let fd = ControlFd::new(node, nc.stat.mode, nc.imp, &self.shared.counters);
        let id = self.insert(FdEntry::Control(Arc::clone(&fd)));
        (
            Inode {
                control_fd: id,
                stat: nc.stat,
            },
            fd,
        )
    }

    pub(crate) fn dispatch(&self, mid: Mid, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        match mid {
            Mid::ERROR => Err(Errno::EINVAL),
            Mid::MOUNT => self.mount(reply),
            Mid::CHANNEL => self.create_channel(reply),
            Mid::FSTAT => self.fstat(payload, reply),
            Mid::SET_STAT => self.set_stat(payload, reply),
            Mid::WALK => self.walk(payload, reply),
            Mid::WALK_STAT => self.walk_stat(payload, reply),
            Mid::OPEN_AT => self.open_at(payload, reply),
            Mid::OPEN_CREATE_AT => self.open_create_at(payload, reply),
            Mid::CLOSE => self.close_fds(payload, reply),
            Mid::FSYNC => self.fsync(payload, reply),
            Mid::PWRITE => self.pwrite(payload, reply),
            Mid::PREAD => self.pread(payload, reply),
            Mid::MKDIR_AT => self.mkdir_at(payload, reply),
            Mid::MKNOD_AT => self.mknod_at(payload, reply),
            Mid::SYMLINK_AT => self.symlink_at(payload, reply),
            Mid::LINK_AT => self.link_at(payload, reply),
            Mid::FSTAT_FS => self.fstatfs(payload, reply),
            Mid::FALLOCATE => self.fallocate(payload, reply),
            Mid::READ_LINK_AT => self.readlink_at(payload, reply),
            Mid::FLUSH => self.flush(payload, reply),
            Mid::CONNECT => {
                let req: w::ConnectReq = decode(payload)?;
                self.connect(req, None, reply)
            }
            Mid::UNLINK_AT => self.unlink_at(payload, reply),
            Mid::RENAME_AT => {
                self.check_writable_conn()?;
                let req: w::RenameAtReq = decode(payload)?;
                self.rename(req, 0)?;
                respond(reply, &w::RenameAtResp)
            }
            Mid::GETDENTS64 => self.getdents64(payload, reply),
            Mid::FGET_XATTR => self.fget_xattr(payload, reply),
            Mid::FSET_XATTR => self.fset_xattr(payload, reply),
            Mid::FLIST_XATTR => self.flist_xattr(payload, reply),
            Mid::FREMOVE_XATTR => self.fremove_xattr(payload, reply),
            Mid::BIND_AT => self.bind_at(payload, reply),
            Mid::LISTEN => self.listen(payload, reply),
            Mid::ACCEPT => self.accept(payload, reply),
            Mid::CONNECT_WITH_CREDS => {
                let req: w::ConnectWithCredsReq = decode(payload)?;
                self.connect(req.connect, Some((req.uid, req.gid)), reply)
            }
            Mid::RENAME_AT2 => {
                self.check_writable_conn()?;
                let req: w::RenameAt2Req = decode(payload)?;
                self.rename(req.rename, req.flags)?;
                respond(reply, &w::RenameAt2Resp)
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    fn mount(&self, reply: &mut Reply) -> FsResult<()> {
        self.reserve_fds(1)?;
        let root = Arc::clone(&self.shared.root);
        let (inode, donate) = {
            let _rename = self.shared.rename_mu.read();
            let _op = root.op_mu.read();
            if root.is_deleted() {
                return Err(Errno::ENOENT);
            }
            let (nc, donate) = self.imp.mount()?;
            let fd = ControlFd::new(
                Arc::clone(&root),
                nc.stat.mode,
                nc.imp,
                &self.shared.counters,
            );
            (
                Inode {
                    control_fd: self.insert(FdEntry::Control(fd)),
                    stat: nc.stat,
                },
                donate,
            )
        };
        respond(
            reply,
            &w::MountResp {
                root: inode,
                max_message_size: self.max_message_size,
                supported_mids: Seq::from_items(self.imp.supported_messages()),
            },
        )?;
        reply.fds.extend(donate);
        Ok(())
    }

    fn fstat(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::StatReq = decode(payload)?;
        let stat = match self.lookup(req.fd)? {
            FdEntry::Control(fd) => self.safely_read(&fd, || fd.imp.stat())?,
            FdEntry::Open(fd) => self.safely_read(&fd.control, || fd.imp.stat())?,
            // gVisor panics here (EREMOTEIO); a bound socket has no stat.
            FdEntry::BoundSocket(_) => return Err(Errno::EINVAL),
        };
        respond(reply, &stat)
    }

    fn set_stat(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::SetStatReq = decode(payload)?;
        let fd = self.lookup_control(req.fd)?;
        if req.mask & !statx_mask::SETTABLE != 0 {
            return Err(Errno::EPERM);
        }
        let result = self.safely_write(&fd, || {
            if fd.node.is_deleted() && !self.opts.set_attr_on_deleted {
                return Err(Errno::EINVAL);
            }
            Ok(fd.imp.set_stat(&req))
        })?;
        respond(
            reply,
            &w::SetStatResp {
                failure_mask: result.failure_mask,
                failure_errno: result.failure_errno.map_or(0, |e| e.0),
            },
        )
    }

    fn walk(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::WalkReq = decode(payload)?;
        let start = self.lookup_control(req.dir_fd)?;
        if !start.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let max_payload = 3 + req.path.len() * Inode::FIXED_LEN.unwrap_or(152);
        if max_payload > self.max_message_size as usize {
            return Err(Errno::EIO);
        }
        self.reserve_fds(req.path.len())?;
        let mut inodes: Vec<Inode> = Vec::with_capacity(req.path.len());
        let mut status = WalkStatus::Success;
        // Declared before the locks, so that on an error or a backend panic
        // the FDIDs made so far are forgotten after the locks are released:
        // a failed request leaves nothing behind.
        let mut walked = Forget {
            conn: self,
            ids: Vec::new(),
        };
        let result = {
            let _rename = self.shared.rename_mu.read();
            let mut cur = Arc::clone(&start);
            let mut result = Ok(());
            for name in req.path.iter() {
                if let Err(e) = check_name(name) {
                    result = Err(e);
                    break;
                }
                if cur.is_symlink() {
                    status = WalkStatus::ComponentSymlink;
                    break;
                }
                let step = {
                    let _op = cur.node.op_mu.read();
                    if cur.node.is_deleted() {
                        Err(Errno::ENOENT)
                    } else {
                        cur.imp
                            .walk(name)
                            .map(|nc| self.insert_child_locked(&cur, name, nc))
                    }
                };
                match step {
                    Ok((inode, next)) => {
                        walked.ids.push(inode.control_fd);
                        inodes.push(inode);
                        cur = next;
                    }
                    Err(Errno::ENOENT) => {
                        status = WalkStatus::ComponentDoesNotExist;
                        break;
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result
        };
        result?;
        respond(
            reply,
            &w::WalkResp {
                status,
                inodes: Seq::from_items(&inodes),
            },
        )?;
        walked.keep();
        Ok(())
    }

    fn walk_stat(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::WalkStatReq = decode(payload)?;
        let start = self.lookup_control(req.dir_fd)?;
        let n = req.path.len();
        let first_empty = req.path.iter().next().is_some_and(|c| c.is_empty());
        if !start.is_dir() && (n > 1 || (n == 1 && !first_empty)) {
            return Err(Errno::ENOTDIR);
        }
        for (i, name) in req.path.iter().enumerate() {
            if i == 0 && name.is_empty() {
                continue;
            }
            check_name(name)?;
        }
        let max_payload = 2 + n * Statx::FIXED_LEN.unwrap_or(144);
        if max_payload > self.max_message_size as usize {
            return Err(Errno::EIO);
        }
        let mut stats: Vec<Statx> = Vec::with_capacity(n);
        let mut overflow = false;
        let mut record = |s: Statx| {
            if stats.len() < n {
                stats.push(s);
            } else {
                overflow = true;
            }
        };
        if self.opts.walk_stat_supported {
            self.safely_read(&start, || start.imp.walk_stat(req.path, &mut record))?;
        } else {
            self.safely_read(&start, || walk_stat_generic(&start, req.path, &mut record))?;
        }
        if overflow {
            return Err(Errno::EIO);
        }
        respond(
            reply,
            &w::WalkStatResp {
                stats: Seq::from_items(&stats),
            },
        )
    }

    fn open_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::OpenAtReq = decode(payload)?;
        let flags = req.flags & ALLOWED_OPEN_FLAGS;
        let mutates = flags & O_ACCMODE != 0 || flags & O_TRUNC != 0;
        if self.opts.readonly && mutates {
            return Err(Errno::EROFS);
        }
        let fd = self.lookup_control(req.fd)?;
        if fd.is_dir() && mutates {
            return Err(Errno::EISDIR);
        }
        self.reserve_fds(1)?;
        let no = self.safely_read(&fd, || {
            if fd.node.is_deleted() && !self.opts.open_on_deleted {
                return Err(Errno::EINVAL);
            }
            if fd.is_symlink() {
                return Err(Errno::EINVAL);
            }
            fd.imp.open(flags)
        })?;
        let open_fd = self.insert(FdEntry::Open(OpenFd::new(Arc::clone(&fd), flags, no.imp)));
        respond(reply, &w::OpenAtResp { open_fd })?;
        reply.fds.extend(no.donate);
        Ok(())
    }

    fn open_create_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::OpenCreateAtReq = decode(payload)?;
        let flags = req.flags & ALLOWED_OPEN_FLAGS;
        check_name(req.name)?;
        let dir = self.lookup_control(req.common.dir_fd)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.reserve_fds(2)?;
        let c = req.common;
        let (child, new_fd, donate) = self.safely_write(&dir, || {
            if dir.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            let (nc, no) = dir.imp.open_create(c.mode, c.uid, c.gid, req.name, flags)?;
            let (child, control) = self.insert_child_locked(&dir, req.name, nc);
            let new_fd = self.insert(FdEntry::Open(OpenFd::new(control, flags, no.imp)));
            Ok((child, new_fd, no.donate))
        })?;
        respond(reply, &w::OpenCreateAtResp { child, new_fd })?;
        reply.fds.extend(donate);
        Ok(())
    }

    fn close_fds(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::CloseReq = decode(payload)?;
        let removed: Vec<FdEntry> = req.fds.iter().filter_map(|id| self.remove(id)).collect();
        drop(removed);
        respond(reply, &w::CloseResp)
    }

    fn fsync(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::FsyncReq = decode(payload)?;
        let mut first_err = None;
        for id in req.fds.iter() {
            let res = self
                .lookup_open(id)
                .and_then(|fd| self.safely_read(&fd.control, || fd.imp.sync()));
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        respond(reply, &w::FsyncResp)
    }

    fn pwrite(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::PWriteReq = decode(payload)?;
        let fd = self.lookup_open(req.fd)?;
        if !fd.writable {
            return Err(Errno::EBADF);
        }
        let count = self.safely_write(&fd.control, || fd.imp.write(req.data, req.offset))?;
        respond(reply, &w::PWriteResp { count })
    }

    fn pread(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let (fd, req) = self.pread_check(payload)?;
        // Read straight into the reply buffer, after room for the length.
        reply
            .payload
            .resize(w::PReadResp::HEADER_LEN + req.count as usize, 0);
        let n = self.pread_into(&fd, &req, &mut reply.payload)?;
        reply.payload.truncate(n);
        Ok(())
    }

    /// PRead's checks, in gVisor's order: the FD, its mode, the size.
    fn pread_check(&self, payload: &[u8]) -> FsResult<(Arc<OpenFd>, w::PReadReq)> {
        let req: w::PReadReq = decode(payload)?;
        let fd = self.lookup_open(req.fd)?;
        if !fd.readable {
            return Err(Errno::EBADF);
        }
        let header = w::PReadResp::HEADER_LEN;
        if header as u64 + u64::from(req.count) > u64::from(self.max_message_size) {
            return Err(Errno::ENOBUFS);
        }
        Ok((fd, req))
    }

    /// Reads for `req` into `out` laid out as a PRead response (length,
    /// then data); returns the response's length. `out` must hold the
    /// header and `req.count` bytes.
    fn pread_into(&self, fd: &OpenFd, req: &w::PReadReq, out: &mut [u8]) -> FsResult<usize> {
        let header = w::PReadResp::HEADER_LEN;
        let count = req.count as usize;
        let (len, data) = out.split_at_mut_checked(header).ok_or(Errno::ENOBUFS)?;
        let data = data.get_mut(..count).ok_or(Errno::ENOBUFS)?;
        let n = self.safely_read(&fd.control, || fd.imp.read(data, req.offset))?;
        let n = n.min(count);
        len.copy_from_slice(&(n as u64).to_le_bytes());
        Ok(header + n)
    }

    /// Handles a PRead whose response goes straight into `out` (a channel's
    /// window, so the data is read from the host once and never copied).
    /// Returns the response payload's length, or `None` when the response
    /// (an error) is in `reply` instead.
    pub(crate) fn handle_pread_in_place(
        &self,
        payload: &[u8],
        out: &mut [u8],
        reply: &mut Reply,
    ) -> Option<usize> {
        let result = if self.is_closing() {
            Err(Errno::ECONNRESET)
        } else if !self.is_supported(Mid::PREAD) {
            Err(Errno::EOPNOTSUPP)
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let (fd, req) = self.pread_check(payload)?;
                self.pread_into(&fd, &req, out)
            }))
            .unwrap_or(Err(Errno::EREMOTEIO))
        };
        match result {
            Ok(n) => Some(n),
            Err(errno) => {
                reply.mid = Mid::PREAD;
                reply.fds.clear();
                reply.error(errno);
                None
            }
        }
    }

    /// The shared shape of MkdirAt, MknodAt and SymlinkAt.
    fn create_in_dir(
        &self,
        dir_fd: FdId,
        name: &[u8],
        create: impl FnOnce(&ControlFd) -> FsResult<NewControl>,
    ) -> FsResult<Inode> {
        let dir = self.lookup_control(dir_fd)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.reserve_fds(1)?;
        self.safely_write(&dir, || {
            if dir.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            let nc = create(&dir)?;
            Ok(self.insert_child_locked(&dir, name, nc).0)
        })
    }

    fn mkdir_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::MkdirAtReq = decode(payload)?;
        check_name(req.name)?;
        let c = req.common;
        let child_dir = self.create_in_dir(c.dir_fd, req.name, |dir| {
            dir.imp.mkdir(c.mode, c.uid, c.gid, req.name)
        })?;
        respond(reply, &w::MkdirAtResp { child_dir })
    }

    fn mknod_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::MknodAtReq = decode(payload)?;
        check_name(req.name)?;
        let c = req.common;
        let child = self.create_in_dir(c.dir_fd, req.name, |dir| {
            dir.imp
                .mknod(c.mode, c.uid, c.gid, req.name, req.minor, req.major)
        })?;
        respond(reply, &w::MknodAtResp { child })
    }

    fn symlink_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::SymlinkAtReq = decode(payload)?;
        check_name(req.name)?;
        let symlink = self.create_in_dir(req.dir_fd, req.name, |dir| {
            dir.imp.symlink(req.name, req.target, req.uid, req.gid)
        })?;
        respond(reply, &w::SymlinkAtResp { symlink })
    }

    fn link_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::LinkAtReq = decode(payload)?;
        check_name(req.name)?;
        let dir = self.lookup_control(req.dir_fd)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let target = self.lookup_control(req.target)?;
        if target.is_dir() {
            return Err(Errno::EPERM);
        }
        self.reserve_fds(1)?;
        let link = self.safely_write(&dir, || {
            if dir.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            // A directory and a non-directory: directory first.
            let _target_op = target.node.op_mu.read();
            if target.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            let nc = target.imp.link(&*dir.imp, req.name)?;
            Ok(self.insert_child_locked(&dir, req.name, nc).0)
        })?;
        respond(reply, &w::LinkAtResp { link })
    }

    fn fstatfs(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::FStatFsReq = decode(payload)?;
        let fd = self.lookup_control(req.fd)?;
        let statfs = self.safely_read(&fd, || fd.imp.stat_fs())?;
        respond(reply, &statfs)
    }

    fn fallocate(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::FAllocateReq = decode(payload)?;
        let fd = self.lookup_open(req.fd)?;
        if !fd.writable {
            return Err(Errno::EBADF);
        }
        self.safely_write(&fd.control, || {
            if fd.control.node.is_deleted() && !self.opts.allocate_on_deleted {
                return Err(Errno::EINVAL);
            }
            fd.imp.allocate(req.mode, req.offset, req.length)
        })?;
        respond(reply, &w::FAllocateResp)
    }

    fn readlink_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::ReadLinkAtReq = decode(payload)?;
        let fd = self.lookup_control(req.fd)?;
        if !fd.is_symlink() {
            return Err(Errno::EINVAL);
        }
        let mut target = Vec::new();
        self.safely_read(&fd, || {
            if fd.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            fd.imp.readlink(&mut target)
        })?;
        if target.len() > usize::from(u16::MAX) {
            return Err(Errno::ENAMETOOLONG);
        }
        respond(reply, &w::ReadLinkAtResp { target: &target })
    }

    fn flush(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::FlushReq = decode(payload)?;
        let fd = self.lookup_open(req.fd)?;
        self.safely_read(&fd.control, || fd.imp.flush())?;
        respond(reply, &w::FlushResp)
    }

    fn connect(
        &self,
        req: w::ConnectReq,
        creds: Option<(w::Uid, w::Gid)>,
        reply: &mut Reply,
    ) -> FsResult<()> {
        let fd = self.lookup_control(req.fd)?;
        if !fd.is_socket() {
            return Err(Errno::ENOTSOCK);
        }
        let sock = self.safely_read(&fd, || {
            if fd.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            match creds {
                None => fd.imp.connect(req.sock_type),
                Some((uid, gid)) => fd.imp.connect_with_creds(req.sock_type, uid, gid),
            }
        })?;
        match creds {
            None => respond(reply, &w::ConnectResp)?,
            Some(_) => respond(reply, &w::ConnectWithCredsResp)?,
        }
        reply.fds.push(sock);
        Ok(())
    }

    fn unlink_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::UnlinkAtReq = decode(payload)?;
        check_name(req.name)?;
        let dir = self.lookup_control(req.dir_fd)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let child = self.safely_write(&dir, || {
            if dir.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            let child = dir.node.lookup_child(req.name);
            {
                // Parent before child: the ancestor order.
                let _child_op = child.as_ref().map(|c| c.op_mu.write());
                dir.imp.unlink(req.name, req.flags)?;
                if let Some(c) = &child {
                    dir.node.remove_child_global(req.name, c);
                    c.mark_deleted_recursive();
                }
            }
            Ok(child)
        })?;
        // Dropped outside every lock: it may be the node's last reference.
        drop(child);
        respond(reply, &w::UnlinkAtResp)
    }

    fn rename(&self, req: w::RenameAtReq, flags: u32) -> FsResult<()> {
        check_name(req.old_name)?;
        check_name(req.new_name)?;
        let old_dir = self.lookup_control(req.old_dir)?;
        let new_dir = self.lookup_control(req.new_dir)?;
        if !old_dir.is_dir() || !new_dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let (moved, displaced) = self.safely_global(|| {
            if old_dir.node.is_deleted() || new_dir.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            if Arc::ptr_eq(&old_dir.node, &new_dir.node) && req.old_name == req.new_name {
                return Ok((None, None));
            }
            old_dir
                .imp
                .rename_at(req.old_name, &*new_dir.imp, req.new_name, flags)?;
            let moved = old_dir.node.lookup_child(req.old_name);
            let displaced = new_dir.node.lookup_child(req.new_name);
            if flags & RENAME_EXCHANGE != 0 {
                if let Some(d) = &displaced {
                    new_dir.node.remove_child_global(req.new_name, d);
                }
                if let Some(m) = &moved {
                    m.move_global(&new_dir.node, req.new_name);
                }
                if let Some(d) = &displaced {
                    d.move_global(&old_dir.node, req.old_name);
                    d.for_each_fd_recursive_global(&mut |fd| fd.renamed_global());
                }
            } else {
                if let Some(d) = &displaced {
                    new_dir.node.remove_child_global(req.new_name, d);
                    d.mark_deleted_recursive();
                }
                if let Some(m) = &moved {
                    m.move_global(&new_dir.node, req.new_name);
                }
            }
            if let Some(m) = &moved {
                m.for_each_fd_recursive_global(&mut |fd| fd.renamed_global());
            }
            Ok((moved, displaced))
        })?;
        drop((moved, displaced));
        Ok(())
    }

    fn getdents64(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::Getdents64Req = decode(payload)?;
        let fd = self.lookup_open(req.dir_fd)?;
        if !fd.control.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let max = self.max_message_size as usize;
        // An encoded entry is at most 7 bytes larger than its host record,
        // and a host record is at least 24 bytes: bound the host budget so
        // the reply always fits (gVisor does not, and fails with EIO).
        let fits = (max.saturating_sub(2) / 31 * 24) as u32;
        let budget = req.count.unsigned_abs().min(fits);
        let seek0 = req.count < 0;
        reply.payload.clear();
        reply.payload.extend_from_slice(&[0, 0]);
        let mut count: u16 = 0;
        let mut overflow = false;
        let out = &mut reply.payload;
        self.safely_read(&fd.control, || {
            if fd.control.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            fd.imp.getdent64(budget, seek0, &mut |d| {
                if overflow || count == u16::MAX || out.len() + d.encoded_len() > max {
                    overflow = true;
                    return;
                }
                match d.append_to(out) {
                    Ok(()) => count += 1,
                    Err(_) => overflow = true,
                }
            })
        })?;
        if overflow {
            return Err(Errno::EIO);
        }
        reply.payload[..2].copy_from_slice(&count.to_le_bytes());
        Ok(())
    }

    fn fget_xattr(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::FGetXattrReq = decode(payload)?;
        let fd = self.lookup_control(req.fd)?;
        let mut value = Vec::new();
        self.safely_read(&fd, || {
            if fd.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            fd.imp.get_xattr(req.name, req.buf_size, &mut value)
        })?;
        if value.len() > usize::from(u16::MAX) {
            return Err(Errno::ERANGE);
        }
        respond(reply, &w::FGetXattrResp { value: &value })
    }

    fn fset_xattr(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::FSetXattrReq = decode(payload)?;
        let fd = self.lookup_control(req.fd)?;
        self.safely_write(&fd, || {
            if fd.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            fd.imp.set_xattr(req.name, req.value, req.flags)
        })?;
        respond(reply, &w::FSetXattrResp)
    }

    fn flist_xattr(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::FListXattrReq = decode(payload)?;
        let fd = self.lookup_control(req.fd)?;
        let mut names = Vec::new();
        self.safely_read(&fd, || {
            if fd.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            fd.imp.list_xattr(req.size, &mut names)
        })?;
        let slices: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        respond(
            reply,
            &w::FListXattrResp {
                xattrs: Seq::from_items(&slices),
            },
        )
        .map_err(|_| Errno::ERANGE)
    }

    fn fremove_xattr(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::FRemoveXattrReq = decode(payload)?;
        let fd = self.lookup_control(req.fd)?;
        self.safely_write(&fd, || {
            if fd.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            fd.imp.remove_xattr(req.name)
        })?;
        respond(reply, &w::FRemoveXattrResp)
    }

    fn bind_at(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        self.check_writable_conn()?;
        let req: w::BindAtReq = decode(payload)?;
        check_name(req.name)?;
        let c = req.common;
        let dir = self.lookup_control(c.dir_fd)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.reserve_fds(2)?;
        let (child, bound_socket_fd, sock) = self.safely_write(&dir, || {
            if dir.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            let (nc, bimp, sock) =
                dir.imp
                    .bind_at(req.name, req.sock_type, c.mode, c.uid, c.gid)?;
            let (child, control) = self.insert_child_locked(&dir, req.name, nc);
            let bound = self.insert(FdEntry::BoundSocket(BoundSocketFd::new(control, bimp)));
            Ok((child, bound, sock))
        })?;
        respond(
            reply,
            &w::BindAtResp {
                child,
                bound_socket_fd,
            },
        )?;
        reply.fds.push(sock);
        Ok(())
    }

    fn listen(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::ListenReq = decode(payload)?;
        let fd = self.lookup_bound_socket(req.fd)?;
        self.safely_read(&fd.control, || {
            if fd.control.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            fd.imp.listen(req.backlog)
        })?;
        respond(reply, &w::ListenResp)
    }

    fn accept(&self, payload: &[u8], reply: &mut Reply) -> FsResult<()> {
        let req: w::AcceptReq = decode(payload)?;
        let fd = self.lookup_bound_socket(req.fd)?;
        let (sock, peer) = self.safely_read(&fd.control, || {
            if fd.control.node.is_deleted() {
                return Err(Errno::EINVAL);
            }
            fd.imp.accept()
        })?;
        respond(reply, &w::AcceptResp { peer_addr: &peer }).map_err(|_| Errno::EIO)?;
        reply.fds.push(sock);
        Ok(())
    }
}

/// WalkStat for backends that do not implement it: walks with
/// [`crate::ControlFdImpl::walk`], creating no FDs.
fn walk_stat_generic(
    start: &ControlFd,
    path: w::StringArray<'_>,
    record: &mut dyn FnMut(Statx),
) -> FsResult<()> {
    let mut names = path.iter().peekable();
    if names.peek().is_some_and(|n| n.is_empty()) {
        names.next();
        record(start.imp.stat()?);
    }
    if start.is_symlink() {
        return Ok(());
    }
    let mut cur: Option<NewControl> = None;
    for name in names {
        let step = match &cur {
            None => start.imp.walk(name),
            Some(nc) => nc.imp.walk(name),
        };
        match step {
            Ok(nc) => {
                record(nc.stat);
                let is_symlink = nc.stat.mode & 0o170000 == 0o120000;
                cur = Some(nc);
                if is_symlink {
                    break;
                }
            }
            Err(Errno::ENOENT) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
