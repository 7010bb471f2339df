//! The server core against a small in-memory backend: reference counting,
//! the node tree, renames, deletion, validation order and error mapping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lisafs_server::*;
use lisafs_wire::{self as w, FdId, Message, Mid, Seq, Statx};

static RENAMED: AtomicUsize = AtomicUsize::new(0);
static NEXT_INO: AtomicU64 = AtomicU64::new(1);

enum Kind {
    Dir(BTreeMap<Vec<u8>, Arc<MemNode>>),
    File(Vec<u8>),
    Symlink(Vec<u8>),
}

struct MemNode {
    ino: u64,
    kind: Mutex<Kind>,
}

impl MemNode {
    fn new(kind: Kind) -> Arc<Self> {
        Arc::new(MemNode {
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
            kind: Mutex::new(kind),
        })
    }
    fn stat(&self) -> Statx {
        let (mode, size) = match &*self.kind.lock().unwrap() {
            Kind::Dir(_) => (0o040755, 0),
            Kind::File(d) => (0o100644, d.len() as u64),
            Kind::Symlink(t) => (0o120777, t.len() as u64),
        };
        Statx {
            mask: w::statx_mask::BASIC_STATS,
            mode,
            size,
            ino: self.ino,
            nlink: 1,
            ..Default::default()
        }
    }
    fn control(self: &Arc<Self>) -> NewControl {
        NewControl {
            imp: Box::new(MemFd(Arc::clone(self))),
            stat: self.stat(),
        }
    }
}

struct MemFd(Arc<MemNode>);

impl MemFd {
    fn with_dir<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<Vec<u8>, Arc<MemNode>>) -> FsResult<T>,
    ) -> FsResult<T> {
        match &mut *self.0.kind.lock().unwrap() {
            Kind::Dir(d) => f(d),
            _ => Err(Errno::ENOTDIR),
        }
    }
    fn create(&self, name: &[u8], kind: Kind) -> FsResult<NewControl> {
        self.with_dir(|d| {
            if d.contains_key(name) {
                return Err(Errno::EEXIST);
            }
            let n = MemNode::new(kind);
            d.insert(name.to_vec(), Arc::clone(&n));
            Ok(n.control())
        })
    }
}

impl ControlFdImpl for MemFd {
    fn stat(&self) -> FsResult<Statx> {
        Ok(self.0.stat())
    }
    fn walk(&self, name: &[u8]) -> FsResult<NewControl> {
        if name == b"panic" {
            panic!("backend bug");
        }
        self.with_dir(|d| d.get(name).map(|n| n.control()).ok_or(Errno::ENOENT))
    }
    fn open(&self, _flags: u32) -> FsResult<NewOpen> {
        Ok(NewOpen {
            imp: Box::new(MemOpen(Arc::clone(&self.0))),
            donate: None,
        })
    }
    fn open_create(
        &self,
        _m: u16,
        _u: w::Uid,
        _g: w::Gid,
        name: &[u8],
        _f: u32,
    ) -> FsResult<(NewControl, NewOpen)> {
        let nc = self.create(name, Kind::File(Vec::new()))?;
        let node = self.with_dir(|d| d.get(name).cloned().ok_or(Errno::EIO))?;
        Ok((
            nc,
            NewOpen {
                imp: Box::new(MemOpen(node)),
                donate: None,
            },
        ))
    }
    fn mkdir(&self, _m: u16, _u: w::Uid, _g: w::Gid, name: &[u8]) -> FsResult<NewControl> {
        self.create(name, Kind::Dir(BTreeMap::new()))
    }
    fn symlink(&self, name: &[u8], target: &[u8], _u: w::Uid, _g: w::Gid) -> FsResult<NewControl> {
        self.create(name, Kind::Symlink(target.to_vec()))
    }
    fn readlink(&self, out: &mut Vec<u8>) -> FsResult<()> {
        match &*self.0.kind.lock().unwrap() {
            Kind::Symlink(t) => {
                out.extend_from_slice(t);
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        }
    }
    fn unlink(&self, name: &[u8], _flags: u32) -> FsResult<()> {
        self.with_dir(|d| d.remove(name).map(drop).ok_or(Errno::ENOENT))
    }
    fn rename_at(
        &self,
        old: &[u8],
        new_dir: &dyn ControlFdImpl,
        new: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        let any: &dyn std::any::Any = new_dir;
        let new_dir = any.downcast_ref::<MemFd>().ok_or(Errno::EXDEV)?;
        if flags & 1 != 0 && new_dir.with_dir(|d| Ok(d.contains_key(new)))? {
            return Err(Errno::EEXIST);
        }
        let node = self.with_dir(|d| d.remove(old).ok_or(Errno::ENOENT))?;
        new_dir.with_dir(|d| {
            d.insert(new.to_vec(), node);
            Ok(())
        })
    }
    fn renamed(&self) {
        RENAMED.fetch_add(1, Ordering::Relaxed);
    }
}

struct MemOpen(Arc<MemNode>);

impl OpenFdImpl for MemOpen {
    fn stat(&self) -> FsResult<Statx> {
        Ok(self.0.stat())
    }
    fn read(&self, buf: &mut [u8], off: u64) -> FsResult<usize> {
        match &*self.0.kind.lock().unwrap() {
            Kind::File(d) => {
                let start = (off as usize).min(d.len());
                let n = buf.len().min(d.len() - start);
                buf[..n].copy_from_slice(&d[start..start + n]);
                Ok(n)
            }
            _ => Err(Errno::EISDIR),
        }
    }
    fn write(&self, buf: &[u8], off: u64) -> FsResult<u64> {
        match &mut *self.0.kind.lock().unwrap() {
            Kind::File(d) => {
                let end = off as usize + buf.len();
                if d.len() < end {
                    d.resize(end, 0);
                }
                d[off as usize..end].copy_from_slice(buf);
                Ok(buf.len() as u64)
            }
            _ => Err(Errno::EISDIR),
        }
    }
    fn getdent64(
        &self,
        _count: u32,
        _seek0: bool,
        record: &mut dyn FnMut(w::Dirent64<'_>),
    ) -> FsResult<()> {
        if let Kind::Dir(d) = &*self.0.kind.lock().unwrap() {
            for (i, (name, n)) in d.iter().enumerate() {
                record(w::Dirent64 {
                    ino: n.ino,
                    off: i as u64 + 1,
                    ty: 8,
                    name,
                    ..Default::default()
                });
            }
        }
        Ok(())
    }
}

struct MemFs {
    root: Arc<MemNode>,
    mids: Vec<Mid>,
}

impl ConnectionImpl for MemFs {
    fn mount(&self) -> FsResult<(NewControl, Option<std::os::fd::OwnedFd>)> {
        Ok((self.root.control(), None))
    }
    fn supported_messages(&self) -> &[Mid] {
        &self.mids
    }
}

fn memfs() -> Arc<MemFs> {
    Arc::new(MemFs {
        root: MemNode::new(Kind::Dir(BTreeMap::new())),
        mids: (1..=33).filter(|&m| m != 20).map(Mid).collect(),
    })
}

/// Sends one request through `handle` and decodes the reply: Ok(payload
/// bytes) or Err(errno).
fn call<'a, M: Message<'a>>(conn: &Connection, req: &M) -> Result<Vec<u8>, Errno> {
    let mut payload = Vec::new();
    req.encode_to_vec(&mut payload).unwrap();
    call_raw(conn, M::MID, &payload)
}

fn call_raw(conn: &Connection, mid: Mid, payload: &[u8]) -> Result<Vec<u8>, Errno> {
    let mut reply = Reply::default();
    conn.handle(mid, payload, &mut reply);
    if reply.mid == Mid::ERROR {
        let e = w::ErrorResp::decode_payload_exact(&reply.payload).unwrap();
        return Err(Errno(e.errno));
    }
    assert_eq!(reply.mid, mid);
    Ok(reply.payload)
}

fn mount(conn: &Connection) -> FdId {
    let p = call(conn, &w::MountReq).unwrap();
    w::MountResp::decode_payload_exact(&p)
        .unwrap()
        .root
        .control_fd
}

fn mkdir(conn: &Connection, dir: FdId, name: &[u8]) -> FdId {
    let req = w::MkdirAtReq {
        common: w::CreateCommon {
            dir_fd: dir,
            mode: 0o755,
            ..Default::default()
        },
        name,
    };
    w::MkdirAtResp::decode_payload_exact(&call(conn, &req).unwrap())
        .unwrap()
        .child_dir
        .control_fd
}

fn walk(conn: &Connection, dir: FdId, path: &[&[u8]]) -> Result<(w::WalkStatus, Vec<FdId>), Errno> {
    let p = call(
        conn,
        &w::WalkReq {
            dir_fd: dir,
            path: Seq::from_items(path),
        },
    )?;
    let r = w::WalkResp::decode_payload_exact(&p).unwrap();
    Ok((r.status, r.inodes.iter().map(|i| i.control_fd).collect()))
}

fn close(conn: &Connection, fds: &[FdId]) {
    call(
        conn,
        &w::CloseReq {
            fds: Seq::from_items(fds),
        },
    )
    .unwrap();
}

#[test]
fn fdids_count_from_one_and_close_releases_everything() {
    let server = Server::new();
    let conn = server
        .new_connection(memfs(), ConnectionOpts::default())
        .unwrap();
    let root = mount(&conn);
    assert_eq!(root, FdId(1));
    let a = mkdir(&conn, root, b"a");
    let b = mkdir(&conn, a, b"b");
    assert_eq!((a, b), (FdId(2), FdId(3)));
    let (status, fds) = walk(&conn, root, &[b"a", b"b"]).unwrap();
    assert_eq!(status, w::WalkStatus::Success);
    assert_eq!(
        fds,
        [FdId(4), FdId(5)],
        "walk allocates in path order, never reusing"
    );
    let s = server.stats();
    assert_eq!(
        (s.control_fds, s.nodes, s.connections),
        (5, 2, 1),
        "two nodes shared by four FDs"
    );
    close(&conn, &[a, b, fds[0]]);
    assert_eq!(
        server.stats().nodes,
        2,
        "b's node still held by FD 5, a's by b's node"
    );
    close(&conn, &[fds[1], FdId(999)]);
    let s = server.stats();
    assert_eq!((s.control_fds, s.nodes), (1, 0), "only the root FD remains");
    drop(conn);
    assert_eq!(server.stats(), Stats::default());
}

#[test]
fn open_fd_keeps_its_control_fd_alive_after_close() {
    let server = Server::new();
    let conn = server
        .new_connection(memfs(), ConnectionOpts::default())
        .unwrap();
    let root = mount(&conn);
    let req = w::OpenCreateAtReq {
        common: w::CreateCommon {
            dir_fd: root,
            mode: 0o644,
            ..Default::default()
        },
        flags: 2,
        name: b"f",
    };
    let r = w::OpenCreateAtResp::decode_payload_exact(&call(&conn, &req).unwrap()).unwrap();
    close(&conn, &[r.child.control_fd]);
    assert_eq!(
        call(
            &conn,
            &w::StatReq {
                fd: r.child.control_fd
            }
        ),
        Err(Errno::EBADF)
    );
    let s = server.stats();
    assert_eq!((s.control_fds, s.open_fds, s.nodes), (2, 1, 1));
    let n = call(
        &conn,
        &w::PWriteReq {
            offset: 0,
            fd: r.new_fd,
            data: b"hello",
        },
    )
    .unwrap();
    assert_eq!(w::PWriteResp::decode_payload_exact(&n).unwrap().count, 5);
    let p = call(
        &conn,
        &w::PReadReq {
            offset: 1,
            fd: r.new_fd,
            count: 100,
        },
    )
    .unwrap();
    assert_eq!(
        w::PReadResp::decode_payload_exact(&p).unwrap().data,
        b"ello"
    );
    close(&conn, &[r.new_fd]);
    let s = server.stats();
    assert_eq!((s.control_fds, s.open_fds, s.nodes), (1, 0, 0));
}

#[test]
fn validation_order_matches_gvisor() {
    let server = Server::new();
    let conn = server
        .new_connection(memfs(), ConnectionOpts::default())
        .unwrap();
    let root = mount(&conn);
    let dir = mkdir(&conn, root, b"d");
    let open = w::OpenAtResp::decode_payload_exact(
        &call(&conn, &w::OpenAtReq { fd: dir, flags: 0 }).unwrap(),
    )
    .unwrap()
    .open_fd;
    // Unknown FDID, then wrong kind.
    assert_eq!(walk(&conn, FdId(77), &[b"x"]), Err(Errno::EBADF));
    assert_eq!(walk(&conn, open, &[b"x"]), Err(Errno::EINVAL));
    // Unsafe names.
    for bad in [&b".."[..], b".", b"", b"a/b"] {
        assert_eq!(walk(&conn, root, &[bad]), Err(Errno::EINVAL), "{bad:?}");
        let req = w::MkdirAtReq {
            common: w::CreateCommon {
                dir_fd: root,
                ..Default::default()
            },
            name: bad,
        };
        assert_eq!(call(&conn, &req).map(drop), Err(Errno::EINVAL));
    }
    // A failed walk leaves no FD behind.
    let before = conn.fd_count();
    assert_eq!(walk(&conn, root, &[b"d", b".."]), Err(Errno::EINVAL));
    assert_eq!(conn.fd_count(), before);
    // Not a directory.
    let f = w::OpenCreateAtReq {
        common: w::CreateCommon {
            dir_fd: root,
            ..Default::default()
        },
        flags: 0,
        name: b"f",
    };
    let file = w::OpenCreateAtResp::decode_payload_exact(&call(&conn, &f).unwrap())
        .unwrap()
        .child
        .control_fd;
    assert_eq!(walk(&conn, file, &[b"x"]), Err(Errno::ENOTDIR));
    // Reads of a read-only open FD refuse writes with EBADF.
    assert_eq!(
        call(
            &conn,
            &w::PWriteReq {
                offset: 0,
                fd: open,
                data: b"x"
            }
        )
        .map(drop),
        Err(Errno::EBADF)
    );
    // Opening a directory for writing.
    assert_eq!(
        call(&conn, &w::OpenAtReq { fd: dir, flags: 2 }).map(drop),
        Err(Errno::EISDIR)
    );
    // Not advertised, unknown, and the Error MID.
    assert_eq!(call_raw(&conn, Mid::FLUSH, &[0; 8]), Err(Errno::EOPNOTSUPP));
    assert_eq!(call_raw(&conn, Mid(34), &[]), Err(Errno::EOPNOTSUPP));
    assert_eq!(call_raw(&conn, Mid::ERROR, &[]), Err(Errno::EOPNOTSUPP));
    // Undecodable payload.
    assert_eq!(call_raw(&conn, Mid::WALK, &[1, 0, 0]), Err(Errno::EIO));
    // SetStat with an unsupported mask bit.
    let req = w::SetStatReq {
        fd: root,
        mask: w::statx_mask::NLINK,
        ..Default::default()
    };
    assert_eq!(call(&conn, &req).map(drop), Err(Errno::EPERM));
    // PRead larger than a message.
    let p = w::PReadReq {
        offset: 0,
        fd: open,
        count: u32::MAX,
    };
    assert_eq!(call(&conn, &p).map(drop), Err(Errno::ENOBUFS));
}

#[test]
fn readonly_connections_refuse_mutations_with_erofs() {
    let server = Server::new();
    let conn = server
        .new_connection(
            memfs(),
            ConnectionOpts {
                readonly: true,
                ..Default::default()
            },
        )
        .unwrap();
    let root = mount(&conn);
    let req = w::MkdirAtReq {
        common: w::CreateCommon {
            dir_fd: root,
            ..Default::default()
        },
        name: b"x",
    };
    assert_eq!(call(&conn, &req).map(drop), Err(Errno::EROFS));
    // Even an undecodable request: the read-only check comes first.
    assert_eq!(call_raw(&conn, Mid::UNLINK_AT, &[]), Err(Errno::EROFS));
    assert_eq!(
        call(
            &conn,
            &w::OpenAtReq {
                fd: root,
                flags: 0o1000
            }
        )
        .map(drop),
        Err(Errno::EROFS)
    );
    assert!(call(&conn, &w::OpenAtReq { fd: root, flags: 0 }).is_ok());
}

#[test]
fn unlink_marks_the_subtree_deleted() {
    let server = Server::new();
    let conn = server
        .new_connection(memfs(), ConnectionOpts::default())
        .unwrap();
    let root = mount(&conn);
    let d = mkdir(&conn, root, b"d");
    let e = mkdir(&conn, d, b"e");
    // The backend lets us unlink a non-empty dir; the tree must follow.
    call(
        &conn,
        &w::UnlinkAtReq {
            dir_fd: root,
            flags: 0x200,
            name: b"d",
        },
    )
    .unwrap();
    let req = w::MkdirAtReq {
        common: w::CreateCommon {
            dir_fd: e,
            ..Default::default()
        },
        name: b"x",
    };
    assert_eq!(
        call(&conn, &req).map(drop),
        Err(Errno::EINVAL),
        "mutations on a deleted node"
    );
    assert_eq!(
        walk(&conn, e, &[b"x"]).unwrap().0,
        w::WalkStatus::ComponentDoesNotExist
    );
    // A new directory with the old name is a new node, not deleted.
    let d2 = mkdir(&conn, root, b"d");
    let req = w::MkdirAtReq {
        common: w::CreateCommon {
            dir_fd: d2,
            ..Default::default()
        },
        name: b"y",
    };
    assert!(call(&conn, &req).is_ok());
}

#[test]
fn rename_moves_the_subtree_and_notifies_its_fds() {
    let server = Server::new();
    let conn = server
        .new_connection(memfs(), ConnectionOpts::default())
        .unwrap();
    let root = mount(&conn);
    let a = mkdir(&conn, root, b"a");
    let b = mkdir(&conn, root, b"b");
    let c = mkdir(&conn, a, b"c");
    let _x = mkdir(&conn, c, b"x");
    let before = RENAMED.load(Ordering::Relaxed);
    let req = w::RenameAtReq {
        old_dir: a,
        new_dir: b,
        old_name: b"c",
        new_name: b"c2",
    };
    call(&conn, &req).unwrap();
    assert!(
        RENAMED.load(Ordering::Relaxed) >= before + 2,
        "c and x were notified"
    );
    // Walking the new path reuses the moved nodes: no new nodes appear.
    let nodes = server.stats().nodes;
    let (status, fds) = walk(&conn, root, &[b"b", b"c2", b"x"]).unwrap();
    assert_eq!((status, fds.len()), (w::WalkStatus::Success, 3));
    assert_eq!(server.stats().nodes, nodes);
    assert_eq!(
        walk(&conn, a, &[b"c"]).unwrap().0,
        w::WalkStatus::ComponentDoesNotExist
    );
    // NOREPLACE onto an existing name fails in the backend; the tree is unchanged.
    let _y = mkdir(&conn, b, b"y");
    let req = w::RenameAt2Req {
        rename: w::RenameAtReq {
            old_dir: b,
            new_dir: b,
            old_name: b"c2",
            new_name: b"y",
        },
        flags: 1,
    };
    assert_eq!(call(&conn, &req).map(drop), Err(Errno::EEXIST));
    assert_eq!(
        walk(&conn, root, &[b"b", b"c2"]).unwrap().0,
        w::WalkStatus::Success
    );
    // Same directory and same name: success without touching the backend.
    let req = w::RenameAtReq {
        old_dir: b,
        new_dir: b,
        old_name: b"nope",
        new_name: b"nope",
    };
    assert!(call(&conn, &req).is_ok());
}

#[test]
fn walk_stops_at_symlinks_and_missing_components() {
    let server = Server::new();
    let conn = server
        .new_connection(memfs(), ConnectionOpts::default())
        .unwrap();
    let root = mount(&conn);
    let req = w::SymlinkAtReq {
        dir_fd: root,
        uid: w::Uid::NONE,
        gid: w::Gid::NONE,
        name: b"l",
        target: b"/etc",
    };
    call(&conn, &req).unwrap();
    let (status, fds) = walk(&conn, root, &[b"l", b"passwd"]).unwrap();
    assert_eq!((status, fds.len()), (w::WalkStatus::ComponentSymlink, 1));
    let (status, fds) = walk(&conn, root, &[b"l"]).unwrap();
    assert_eq!(
        (status, fds.len()),
        (w::WalkStatus::Success, 1),
        "a final symlink is returned, not followed"
    );
    let p = call(&conn, &w::ReadLinkAtReq { fd: fds[0] }).unwrap();
    assert_eq!(
        w::ReadLinkAtResp::decode_payload_exact(&p).unwrap().target,
        b"/etc"
    );
    assert_eq!(
        call(
            &conn,
            &w::OpenAtReq {
                fd: fds[0],
                flags: 0
            }
        )
        .map(drop),
        Err(Errno::EINVAL)
    );
    let (status, fds) = walk(&conn, root, &[b"missing", b"x"]).unwrap();
    assert_eq!(
        (status, fds.len()),
        (w::WalkStatus::ComponentDoesNotExist, 0)
    );
    // WalkStat through the generic fallback: self stat, then stop at the symlink.
    let p = call(
        &conn,
        &w::WalkStatReq {
            dir_fd: root,
            path: Seq::from_items(&[&b""[..], b"l", b"x"]),
        },
    )
    .unwrap();
    assert_eq!(
        w::WalkStatResp::decode_payload_exact(&p)
            .unwrap()
            .stats
            .len(),
        2
    );
}

#[test]
fn a_panicking_backend_answers_eremoteio_and_the_connection_carries_on() {
    let server = Server::new();
    let conn = server
        .new_connection(memfs(), ConnectionOpts::default())
        .unwrap();
    let root = mount(&conn);
    mkdir(&conn, root, b"panic");
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = walk(&conn, root, &[b"panic"]);
    std::panic::set_hook(prev);
    assert_eq!(r, Err(Errno::EREMOTEIO));
    assert!(walk(&conn, root, &[b"x"]).is_ok());
}

#[test]
fn getdents_and_closed_connections() {
    let server = Server::new();
    let conn = server
        .new_connection(memfs(), ConnectionOpts::default())
        .unwrap();
    let root = mount(&conn);
    for n in [&b"a"[..], b"b", b"c"] {
        mkdir(&conn, root, n);
    }
    let open = w::OpenAtResp::decode_payload_exact(
        &call(&conn, &w::OpenAtReq { fd: root, flags: 0 }).unwrap(),
    )
    .unwrap()
    .open_fd;
    let p = call(
        &conn,
        &w::Getdents64Req {
            dir_fd: open,
            count: -65536,
        },
    )
    .unwrap();
    let names: Vec<Vec<u8>> = w::Getdents64Resp::decode_payload_exact(&p)
        .unwrap()
        .dirents
        .iter()
        .map(|d| d.name.to_vec())
        .collect();
    assert_eq!(names, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    conn.close();
    assert_eq!(
        call(&conn, &w::StatReq { fd: root }).map(drop),
        Err(Errno::ECONNRESET)
    );
    let s = server.stats();
    assert_eq!((s.control_fds, s.open_fds, s.nodes), (0, 0, 0));
}

#[test]
fn fd_limit_answers_emfile_before_the_backend_runs() {
    let server = Server::new();
    let fs = memfs();
    let opts = ConnectionOpts {
        max_fds: 3,
        ..Default::default()
    };
    let conn = server.new_connection(Arc::clone(&fs) as _, opts).unwrap();
    let root = mount(&conn);
    let a = mkdir(&conn, root, b"a");
    let _b = mkdir(&conn, a, b"b");
    // Three FDIDs held: a fourth is refused, and the directory is not made.
    let req = w::MkdirAtReq {
        common: w::CreateCommon {
            dir_fd: root,
            ..Default::default()
        },
        name: b"c",
    };
    assert_eq!(call(&conn, &req).map(drop), Err(Errno::EMFILE));
    assert_eq!(
        walk(&conn, root, &[b"c"]),
        Err(Errno::EMFILE),
        "a walk would need one more too"
    );
    close(&conn, &[a]);
    assert_eq!(
        walk(&conn, root, &[b"c"]).unwrap().0,
        w::WalkStatus::ComponentDoesNotExist
    );
    assert!(call(&conn, &req).is_ok(), "room again after a close");
}
