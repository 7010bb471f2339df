//! A small in-memory backend for `dispatch_mem`: fast (no syscalls), fully
//! deterministic (a fresh tree per input), and strict enough about POSIX
//! rules that the server core's node tree stays consistent with it (a
//! directory cannot be renamed into itself, non-empty directories cannot be
//! removed, ...). It is written for the fuzzer only: an error here means
//! the harness, not the server, misbehaved.
//!
//! Files are capped at [`MAX_FILE`] bytes (EFBIG), xattrs per node at 16.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use lisafs_server::{
    ConnectionImpl, ControlFdImpl, Errno, FsResult, NewControl, NewOpen, OpenFdImpl, SetStatResult,
};
use lisafs_wire::{
    statx_mask, Dirent64, Gid, Mid, SetStatReq, StatFs, Statx, StatxTimestamp, StringArray, Uid,
};

/// Largest file.
pub const MAX_FILE: u64 = 1 << 20;

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const O_TRUNC: u32 = 0o1000;
const AT_REMOVEDIR: u32 = 0x200;
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const XATTR_CREATE: u32 = 1;
const XATTR_REPLACE: u32 = 2;
const ENODATA: Errno = Errno(61);
const ENOTEMPTY: Errno = Errno(39);
const EFBIG: Errno = Errno(27);
const E2BIG: Errno = Errno(7);
const ENOSPC: Errno = Errno(28);
const EEXIST: Errno = Errno(17);
const EISDIR: Errno = Errno(21);

enum Kind {
    Dir {
        entries: BTreeMap<Vec<u8>, Arc<MNode>>,
        parent: Weak<MNode>,
    },
    File(Vec<u8>),
    Symlink(Vec<u8>),
    /// A 0:0 character device.
    Whiteout,
}

struct Inner {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    atime: (i64, u32),
    mtime: (i64, u32),
    kind: Kind,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

struct MNode {
    ino: u64,
    inner: Mutex<Inner>,
}

fn lock(n: &MNode) -> MutexGuard<'_, Inner> {
    n.inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl MNode {
    fn new(fs: &FsShared, mode: u32, kind: Kind) -> Arc<MNode> {
        Arc::new(MNode {
            ino: fs.next_ino.fetch_add(1, Ordering::Relaxed),
            inner: Mutex::new(Inner {
                mode,
                uid: 0,
                gid: 0,
                nlink: 1,
                atime: (1, 0),
                mtime: (1, 0),
                kind,
                xattrs: BTreeMap::new(),
            }),
        })
    }

    fn is_dir(&self) -> bool {
        matches!(lock(self).kind, Kind::Dir { .. })
    }

    fn stat(&self) -> Statx {
        let i = lock(self);
        let size = match &i.kind {
            Kind::File(d) => d.len() as u64,
            Kind::Symlink(t) => t.len() as u64,
            Kind::Dir { entries, .. } => entries.len() as u64,
            Kind::Whiteout => 0,
        };
        let ts = |(sec, nsec): (i64, u32)| StatxTimestamp { sec, nsec };
        Statx {
            mask: statx_mask::BASIC_STATS,
            blksize: 4096,
            nlink: i.nlink,
            uid: i.uid,
            gid: i.gid,
            mode: i.mode as u16,
            ino: self.ino,
            size,
            blocks: size.div_ceil(512),
            atime: ts(i.atime),
            mtime: ts(i.mtime),
            ctime: ts(i.mtime),
            btime: ts((1, 0)),
            dev_major: 0,
            dev_minor: 42,
            ..Default::default()
        }
    }
}

struct FsShared {
    next_ino: AtomicU64,
}

/// A connection's in-memory filesystem (one per input).
pub struct MemFs {
    shared: Arc<FsShared>,
    root: Arc<MNode>,
    max_message_size: u32,
}

const ALL_MIDS: [Mid; 33] = {
    let mut m = [Mid(0); 33];
    let mut i = 0;
    while i < 33 {
        m[i] = Mid(i as u16 + 1);
        i += 1;
    }
    m
};

struct Ctl {
    fs: Arc<FsShared>,
    node: Arc<MNode>,
}

fn control(fs: &Arc<FsShared>, node: &Arc<MNode>) -> NewControl {
    NewControl {
        stat: node.stat(),
        imp: Box::new(Ctl {
            fs: Arc::clone(fs),
            node: Arc::clone(node),
        }),
    }
}

fn as_ctl(imp: &dyn ControlFdImpl) -> FsResult<&Ctl> {
    (imp as &dyn std::any::Any)
        .downcast_ref::<Ctl>()
        .ok_or(Errno::EXDEV)
}

impl MemFs {
    /// A fresh tree with the same names as the host fixture, and payloads
    /// of at most `max_message_size` bytes.
    pub fn new(max_message_size: u32) -> MemFs {
        let shared = Arc::new(FsShared {
            next_ino: AtomicU64::new(1),
        });
        let dir = |parent: &Arc<MNode>| {
            MNode::new(
                &shared,
                S_IFDIR | 0o755,
                Kind::Dir {
                    entries: BTreeMap::new(),
                    parent: Arc::downgrade(parent),
                },
            )
        };
        let root = MNode::new(
            &shared,
            S_IFDIR | 0o755,
            Kind::Dir {
                entries: BTreeMap::new(),
                parent: Weak::new(),
            },
        );
        let add = |d: &Arc<MNode>, name: &str, n: Arc<MNode>| {
            if let Kind::Dir { entries, .. } = &mut lock(d).kind {
                entries.insert(name.as_bytes().to_vec(), n);
            }
        };
        let file =
            |data: &[u8], mode: u32| MNode::new(&shared, S_IFREG | mode, Kind::File(data.to_vec()));
        let link = |t: &str| {
            MNode::new(
                &shared,
                S_IFLNK | 0o777,
                Kind::Symlink(t.as_bytes().to_vec()),
            )
        };
        let f = file(b"hello, lisafs\n", 0o644);
        lock(&f)
            .xattrs
            .insert(b"user.test".to_vec(), b"value".to_vec());
        lock(&f).nlink = 2;
        add(&root, "file", Arc::clone(&f));
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        add(&root, "big", file(&big, 0o600));
        add(&root, "ro", file(b"read only\n", 0o444));
        add(&root, "empty", file(b"", 0o644));
        let d = dir(&root);
        add(&root, "dir", Arc::clone(&d));
        add(&d, "a", file(b"a\n", 0o644));
        add(&d, "hard", f);
        let sub = dir(&d);
        add(&d, "sub", Arc::clone(&sub));
        add(&sub, "deep", file(b"deep\n", 0o640));
        add(&root, "emptydir", dir(&root));
        add(&root, "link", link("file"));
        add(&root, "escape", link("../outside"));
        add(&root, "abs", link("/tmp/outside/secret"));
        add(&root, "dangling", link("nowhere"));
        add(&root, "loop", link("loop"));
        add(
            &root,
            "wh",
            MNode::new(&shared, S_IFCHR | 0o600, Kind::Whiteout),
        );
        MemFs {
            shared,
            root,
            max_message_size,
        }
    }
}

impl ConnectionImpl for MemFs {
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)> {
        Ok((control(&self.shared, &self.root), None))
    }
    fn supported_messages(&self) -> &[Mid] {
        &ALL_MIDS
    }
    fn max_message_size(&self) -> u32 {
        self.max_message_size
    }
}

fn check_name(name: &[u8]) -> FsResult<()> {
    // The core already checked; a failure here is a server bug.
    assert!(
        !(name.is_empty() || name == b"." || name == b".." || name.contains(&b'/')),
        "server passed an unsafe name to the backend: {name:?}"
    );
    if name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl Ctl {
    fn with_dir<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<Vec<u8>, Arc<MNode>>) -> FsResult<T>,
    ) -> FsResult<T> {
        match &mut lock(&self.node).kind {
            Kind::Dir { entries, .. } => f(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn lookup(&self, name: &[u8]) -> FsResult<Arc<MNode>> {
        self.with_dir(|e| e.get(name).cloned().ok_or(Errno::ENOENT))
    }

    fn create(
        &self,
        name: &[u8],
        mode: u32,
        kind: Kind,
        uid: Uid,
        gid: Gid,
    ) -> FsResult<NewControl> {
        check_name(name)?;
        let n = MNode::new(&self.fs, mode, kind);
        {
            let mut i = lock(&n);
            if uid.is_some() {
                i.uid = uid.0;
            }
            if gid.is_some() {
                i.gid = gid.0;
            }
        }
        self.with_dir(|e| {
            if e.len() >= 256 {
                return Err(ENOSPC);
            }
            if e.contains_key(name) {
                return Err(EEXIST);
            }
            e.insert(name.to_vec(), Arc::clone(&n));
            Ok(())
        })?;
        Ok(control(&self.fs, &n))
    }

    fn dir_node(&self, parent: &Arc<MNode>) -> Kind {
        Kind::Dir {
            entries: BTreeMap::new(),
            parent: Arc::downgrade(parent),
        }
    }
}

/// Whether `node` is `anc` or lies below it (directories only).
fn is_within(node: &Arc<MNode>, anc: &Arc<MNode>) -> bool {
    let mut cur = Some(Arc::clone(node));
    let mut steps = 0;
    while let Some(c) = cur {
        if Arc::ptr_eq(&c, anc) {
            return true;
        }
        steps += 1;
        assert!(steps < 100_000, "memfs: directory cycle");
        cur = match &lock(&c).kind {
            Kind::Dir { parent, .. } => parent.upgrade(),
            _ => None,
        };
    }
    false
}

fn set_parent(n: &Arc<MNode>, p: &Arc<MNode>) {
    if let Kind::Dir { parent, .. } = &mut lock(n).kind {
        *parent = Arc::downgrade(p);
    }
}

impl ControlFdImpl for Ctl {
    fn stat(&self) -> FsResult<Statx> {
        Ok(self.node.stat())
    }

    fn set_stat(&self, req: &SetStatReq) -> SetStatResult {
        let mut res = SetStatResult::default();
        let mut i = lock(&self.node);
        if req.mask & statx_mask::MODE != 0 {
            if i.mode & S_IFMT == S_IFLNK {
                res.failure_mask |= statx_mask::MODE;
                res.failure_errno = Some(Errno::EOPNOTSUPP);
            } else {
                i.mode = (i.mode & S_IFMT) | (req.mode & 0o7777);
            }
        }
        if req.mask & statx_mask::SIZE != 0 {
            let e = match &mut i.kind {
                Kind::File(d) if req.size <= MAX_FILE => {
                    d.resize(req.size as usize, 0);
                    None
                }
                Kind::File(_) => Some(EFBIG),
                Kind::Dir { .. } => Some(EISDIR),
                _ => Some(Errno::EINVAL),
            };
            if let Some(e) = e {
                res.failure_mask |= statx_mask::SIZE;
                res.failure_errno = Some(e);
            }
        }
        let t = |ts: lisafs_wire::Timespec| (ts.sec, (ts.nsec as u64 % 1_000_000_000) as u32);
        if req.mask & statx_mask::ATIME != 0 {
            i.atime = t(req.atime);
        }
        if req.mask & statx_mask::MTIME != 0 {
            i.mtime = t(req.mtime);
        }
        if req.mask & statx_mask::UID != 0 && req.uid.is_some() {
            i.uid = req.uid.0;
        }
        if req.mask & statx_mask::GID != 0 && req.gid.is_some() {
            i.gid = req.gid.0;
        }
        res
    }

    fn walk(&self, name: &[u8]) -> FsResult<NewControl> {
        check_name(name)?;
        let n = self.lookup(name)?;
        Ok(control(&self.fs, &n))
    }

    fn walk_stat(&self, path: StringArray<'_>, record: &mut dyn FnMut(Statx)) -> FsResult<()> {
        let mut names = path.iter().peekable();
        if names.next_if(|n| n.is_empty()).is_some() {
            record(self.node.stat());
        }
        let mut cur = Arc::clone(&self.node);
        for name in names {
            check_name(name)?;
            let next = match &lock(&cur).kind {
                Kind::Dir { entries, .. } => entries.get(name).cloned(),
                Kind::Symlink(_) => return Ok(()),
                _ => return Err(Errno::ENOTDIR),
            };
            let Some(next) = next else { return Ok(()) };
            record(next.stat());
            cur = next;
        }
        Ok(())
    }

    fn open(&self, flags: u32) -> FsResult<NewOpen> {
        let mut i = lock(&self.node);
        match &mut i.kind {
            Kind::File(d) => {
                if flags & O_TRUNC != 0 {
                    d.clear();
                }
            }
            Kind::Dir { .. } => {}
            Kind::Symlink(_) => panic!("server opened a symlink"),
            Kind::Whiteout => return Err(Errno::EPERM),
        }
        drop(i);
        Ok(NewOpen {
            imp: Box::new(Open {
                node: Arc::clone(&self.node),
                cursor: Mutex::new(None),
            }),
            donate: None,
        })
    }

    fn open_create(
        &self,
        mode: u16,
        uid: Uid,
        gid: Gid,
        name: &[u8],
        _flags: u32,
    ) -> FsResult<(NewControl, NewOpen)> {
        let nc = self.create(
            name,
            S_IFREG | (u32::from(mode) & 0o7777),
            Kind::File(Vec::new()),
            uid,
            gid,
        )?;
        let node = self.lookup(name)?;
        Ok((
            nc,
            NewOpen {
                imp: Box::new(Open {
                    node,
                    cursor: Mutex::new(None),
                }),
                donate: None,
            },
        ))
    }

    fn mkdir(&self, mode: u16, uid: Uid, gid: Gid, name: &[u8]) -> FsResult<NewControl> {
        let kind = self.dir_node(&self.node);
        self.create(name, S_IFDIR | (u32::from(mode) & 0o7777), kind, uid, gid)
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
        let mode = u32::from(mode);
        let perm = mode & 0o7777;
        match mode & S_IFMT {
            0 | S_IFREG => self.create(name, S_IFREG | perm, Kind::File(Vec::new()), uid, gid),
            S_IFCHR if minor == 0 && major == 0 => {
                self.create(name, S_IFCHR | perm, Kind::Whiteout, uid, gid)
            }
            _ => Err(Errno::EPERM),
        }
    }

    fn symlink(&self, name: &[u8], target: &[u8], uid: Uid, gid: Gid) -> FsResult<NewControl> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() > 4095 {
            return Err(Errno::ENAMETOOLONG);
        }
        self.create(
            name,
            S_IFLNK | 0o777,
            Kind::Symlink(target.to_vec()),
            uid,
            gid,
        )
    }

    fn link(&self, dir: &dyn ControlFdImpl, name: &[u8]) -> FsResult<NewControl> {
        check_name(name)?;
        assert!(!self.node.is_dir(), "server hard-links a directory");
        let dir = as_ctl(dir)?;
        dir.with_dir(|e| {
            if e.contains_key(name) {
                return Err(EEXIST);
            }
            e.insert(name.to_vec(), Arc::clone(&self.node));
            Ok(())
        })?;
        let mut i = lock(&self.node);
        i.nlink = i.nlink.saturating_add(1);
        drop(i);
        Ok(control(&self.fs, &self.node))
    }

    fn stat_fs(&self) -> FsResult<StatFs> {
        Ok(StatFs {
            fs_type: 0x858458f6,
            block_size: 4096,
            blocks: 1000,
            blocks_free: 500,
            blocks_available: 500,
            files: 1000,
            files_free: 900,
            name_length: 255,
        })
    }

    fn readlink(&self, out: &mut Vec<u8>) -> FsResult<()> {
        match &lock(&self.node).kind {
            Kind::Symlink(t) => {
                out.extend_from_slice(t);
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn connect(&self, _sock_type: u32) -> FsResult<OwnedFd> {
        Err(Errno::ECONNREFUSED)
    }

    fn unlink(&self, name: &[u8], flags: u32) -> FsResult<()> {
        check_name(name)?;
        if flags & !AT_REMOVEDIR != 0 {
            return Err(Errno::EINVAL);
        }
        let victim = self.with_dir(|e| {
            let n = e.get(name).cloned().ok_or(Errno::ENOENT)?;
            let (is_dir, empty) = match &lock(&n).kind {
                Kind::Dir { entries, .. } => (true, entries.is_empty()),
                _ => (false, true),
            };
            match (flags & AT_REMOVEDIR != 0, is_dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(EISDIR),
                (true, true) if !empty => return Err(ENOTEMPTY),
                _ => {}
            }
            e.remove(name);
            Ok(n)
        })?;
        let mut i = lock(&victim);
        i.nlink = i.nlink.saturating_sub(1);
        Ok(())
    }

    fn rename_at(
        &self,
        old_name: &[u8],
        new_dir: &dyn ControlFdImpl,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        check_name(old_name)?;
        check_name(new_name)?;
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(Errno::EINVAL);
        }
        let new_dir = as_ctl(new_dir)?;
        let src = self.lookup(old_name)?;
        let dst = match new_dir.lookup(new_name) {
            Ok(d) => Some(d),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        // A directory cannot move below itself.
        if src.is_dir() && is_within(&new_dir.node, &src) {
            return Err(Errno::EINVAL);
        }
        if flags & RENAME_EXCHANGE != 0 {
            let Some(dst) = dst else {
                return Err(Errno::ENOENT);
            };
            if dst.is_dir() && is_within(&self.node, &dst) {
                return Err(Errno::EINVAL);
            }
            self.with_dir(|e| {
                e.insert(old_name.to_vec(), Arc::clone(&dst));
                Ok(())
            })?;
            new_dir.with_dir(|e| {
                e.insert(new_name.to_vec(), Arc::clone(&src));
                Ok(())
            })?;
            set_parent(&src, &new_dir.node);
            set_parent(&dst, &self.node);
            return Ok(());
        }
        if let Some(dst) = &dst {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(EEXIST);
            }
            if Arc::ptr_eq(dst, &src) {
                return Ok(());
            }
            match (src.is_dir(), &lock(dst).kind) {
                (true, Kind::Dir { entries, .. }) if !entries.is_empty() => return Err(ENOTEMPTY),
                (true, Kind::Dir { .. }) => {}
                (true, _) => return Err(Errno::ENOTDIR),
                (false, Kind::Dir { .. }) => return Err(EISDIR),
                (false, _) => {}
            }
            if dst.is_dir() && is_within(&self.node, dst) {
                // Replacing an ancestor of the source directory.
                return Err(ENOTEMPTY);
            }
        }
        self.with_dir(|e| {
            e.remove(old_name);
            Ok(())
        })?;
        let displaced = new_dir.with_dir(|e| Ok(e.insert(new_name.to_vec(), Arc::clone(&src))))?;
        if let Some(d) = displaced {
            let mut i = lock(&d);
            i.nlink = i.nlink.saturating_sub(1);
        }
        set_parent(&src, &new_dir.node);
        Ok(())
    }

    fn get_xattr(&self, name: &[u8], size: u32, out: &mut Vec<u8>) -> FsResult<()> {
        let i = lock(&self.node);
        let v = i.xattrs.get(name).ok_or(ENODATA)?;
        if size != 0 && v.len() > size as usize {
            return Err(Errno::ERANGE);
        }
        out.extend_from_slice(v);
        Ok(())
    }

    fn set_xattr(&self, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        if name.is_empty() || name.len() > 255 || name.contains(&0) {
            return Err(Errno::EINVAL);
        }
        if value.len() > 65536 {
            return Err(E2BIG);
        }
        let mut i = lock(&self.node);
        let exists = i.xattrs.contains_key(name);
        if flags & XATTR_CREATE != 0 && exists {
            return Err(EEXIST);
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(ENODATA);
        }
        if !exists && i.xattrs.len() >= 16 {
            return Err(ENOSPC);
        }
        i.xattrs.insert(name.to_vec(), value.to_vec());
        Ok(())
    }

    fn list_xattr(&self, size: u64, out: &mut Vec<Vec<u8>>) -> FsResult<()> {
        let i = lock(&self.node);
        let total: u64 = i.xattrs.keys().map(|k| k.len() as u64 + 1).sum();
        if size != 0 && total > size {
            return Err(Errno::ERANGE);
        }
        out.extend(i.xattrs.keys().cloned());
        Ok(())
    }

    fn remove_xattr(&self, name: &[u8]) -> FsResult<()> {
        lock(&self.node)
            .xattrs
            .remove(name)
            .map(|_| ())
            .ok_or(ENODATA)
    }
}

struct Open {
    node: Arc<MNode>,
    /// getdents position: the last name returned.
    cursor: Mutex<Option<Vec<u8>>>,
}

fn end(off: u64, len: usize) -> FsResult<usize> {
    off.checked_add(len as u64)
        .filter(|&e| e <= MAX_FILE)
        .map(|e| e as usize)
        .ok_or(EFBIG)
}

impl OpenFdImpl for Open {
    fn stat(&self) -> FsResult<Statx> {
        Ok(self.node.stat())
    }

    fn sync(&self) -> FsResult<()> {
        Ok(())
    }

    fn write(&self, buf: &[u8], off: u64) -> FsResult<u64> {
        match &mut lock(&self.node).kind {
            Kind::File(d) => {
                let e = end(off, buf.len())?;
                if d.len() < e {
                    d.resize(e, 0);
                }
                d[off as usize..e].copy_from_slice(buf);
                Ok(buf.len() as u64)
            }
            Kind::Dir { .. } => Err(EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read(&self, buf: &mut [u8], off: u64) -> FsResult<usize> {
        match &lock(&self.node).kind {
            Kind::File(d) => {
                let Ok(off) = usize::try_from(off) else {
                    return Ok(0);
                };
                let src = d.get(off..).unwrap_or(&[]);
                let n = src.len().min(buf.len());
                buf[..n].copy_from_slice(&src[..n]);
                Ok(n)
            }
            Kind::Dir { .. } => Err(EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn allocate(&self, mode: u64, off: u64, len: u64) -> FsResult<()> {
        if mode != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = usize::try_from(len).map_err(|_| EFBIG)?;
        match &mut lock(&self.node).kind {
            Kind::File(d) => {
                let e = end(off, len)?;
                if d.len() < e {
                    d.resize(e, 0);
                }
                Ok(())
            }
            _ => Err(Errno(19)),
        }
    }

    fn getdent64(
        &self,
        count: u32,
        seek0: bool,
        record: &mut dyn FnMut(Dirent64<'_>),
    ) -> FsResult<()> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        if seek0 {
            *cursor = None;
        }
        let i = lock(&self.node);
        let Kind::Dir { entries, .. } = &i.kind else {
            return Err(Errno::ENOTDIR);
        };
        let mut used = 0usize;
        let from = match cursor.as_ref() {
            None => std::ops::Bound::Unbounded,
            Some(c) => std::ops::Bound::Excluded(c.clone()),
        };
        for (k, (name, n)) in entries
            .range::<Vec<u8>, _>((from, std::ops::Bound::Unbounded))
            .enumerate()
        {
            let reclen = (19 + name.len() + 1 + 7) & !7;
            if used + reclen > count as usize {
                break;
            }
            used += reclen;
            let ty = match &lock(n).kind {
                Kind::Dir { .. } => 4,
                Kind::File(_) => 8,
                Kind::Symlink(_) => 10,
                Kind::Whiteout => 2,
            };
            record(Dirent64 {
                ino: n.ino,
                dev_minor: 42,
                dev_major: 0,
                off: k as u64 + 1,
                ty,
                name,
            });
            *cursor = Some(name.clone());
        }
        Ok(())
    }
}
