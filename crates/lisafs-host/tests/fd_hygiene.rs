//! No host FD outlives the objects that own it, on success or on failure.
//!
//! This binary counts `/proc/self/fd`, so every test in it takes `LOCK`
//! (the test harness runs tests of one binary on several threads).

mod common;

use std::sync::Mutex;

use common::*;
use lisafs_host::HostOptions;
use lisafs_server::{ConnectionImpl, Errno};
use lisafs_wire::{statx_mask, Gid, SetStatReq, Timespec, Uid};

static LOCK: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn all_on() -> HostOptions {
    HostOptions {
        host_uds_connect: true,
        host_uds_create: true,
        host_fifo_open: true,
        donate_mount_fd: true,
    }
}

/// Runs a broad mix of operations, successful and failing, dropping
/// everything they return.
fn exercise(s: &Scratch) {
    std::fs::write(s.path("f"), b"content").unwrap();
    std::fs::create_dir(s.path("d")).unwrap();
    std::os::unix::fs::symlink("../../etc", s.path("l")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("p"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();

    let fs = s.fs_with(all_on());
    let (root, donated) = fs.mount().unwrap();
    drop(donated);
    let root = root.imp;
    let (u, g) = no_owner();

    // Walks, successful and not.
    let f = walk(&*root, "f");
    let d = walk(&*root, "d");
    let l = walk(&*root, "l");
    let p = walk(&*root, "p");
    assert_eq!(root.walk(b"missing").err(), Some(Errno::ENOENT));
    assert_eq!(l.imp.walk(b"x").err(), Some(Errno::ENOTDIR));
    let _ = walk_stat(&*root, &[b"", b"d", b"nope"]).unwrap();
    let _ = walk_stat(&*root, &[b"l", b"x"]).unwrap();
    let _ = walk_stat(&*root, &[b"d", b".."]).unwrap_err();

    // Opens and I/O.
    let o = f.imp.open(O_RDWR).unwrap();
    let mut buf = [0u8; 16];
    o.imp.read(&mut buf, 0).unwrap();
    o.imp.write(b"more", 7).unwrap();
    o.imp.stat().unwrap();
    drop(o);
    assert!(l.imp.open(O_RDONLY).is_err());
    let po = p.imp.open(O_RDWR).unwrap();
    assert!(po.donate.is_some());
    drop(po);
    let dir = root.open(O_RDONLY).unwrap();
    dir.imp.getdent64(4096, true, &mut |_| {}).unwrap();
    dir.imp.getdent64(16, true, &mut |_| {}).unwrap();
    drop(dir);

    // Creation, successful and failing (with cleanup after creation).
    let (c, o) = d.imp.open_create(0o644, u, g, b"new", O_RDWR).unwrap();
    drop((c, o));
    assert!(d.imp.open_create(0o644, u, g, b"new", O_RDWR).is_err());
    d.imp.mkdir(0o755, u, g, b"sub").unwrap();
    assert!(d.imp.mkdir(0o755, u, g, b"sub").is_err());
    d.imp.mknod(S_IFREG | 0o600, u, g, b"node", 0, 0).unwrap();
    assert!(d.imp.mknod(S_IFIFO | 0o600, u, g, b"fifo", 0, 0).is_err());
    d.imp.symlink(b"sl", b"target", u, g).unwrap();
    f.imp.link(&*d.imp, b"hard").unwrap();
    assert!(f.imp.link(&*d.imp, b"hard").is_err());
    std::fs::set_permissions(
        s.path("d"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    as_unprivileged(|| {
        let (ru, rg) = (Uid(0), Gid(0));
        assert!(d.imp.open_create(0o644, ru, rg, b"x1", O_RDWR).is_err());
        assert!(d.imp.mkdir(0o755, ru, rg, b"x2").is_err());
        assert!(d.imp.symlink(b"x3", b"t", ru, rg).is_err());
        assert!(d.imp.bind_at(b"x4", 1, 0o755, ru, rg).is_err());
    });

    // Metadata.
    let req = SetStatReq {
        mask: statx_mask::SIZE | statx_mask::MODE | statx_mask::MTIME | statx_mask::UID,
        mode: 0o600,
        size: 2,
        mtime: Timespec { sec: 5, nsec: 0 },
        uid: Uid(euid()),
        ..SetStatReq::default()
    };
    assert_eq!(f.imp.set_stat(&req).failure_mask, 0);
    assert_ne!(l.imp.set_stat(&req).failure_mask, 0);
    root.stat_fs().unwrap();
    let mut out = Vec::new();
    l.imp.readlink(&mut out).unwrap();
    let _ = f.imp.set_xattr(b"user.a", b"b", 0);
    let _ = f.imp.get_xattr(b"user.a", 0, &mut out);
    let _ = l.imp.get_xattr(b"trusted.a", 0, &mut out);
    let mut names = Vec::new();
    let _ = l.imp.list_xattr(0, &mut names);
    let _ = f.imp.list_xattr(0, &mut names);

    // Sockets.
    let (sc, bound, donated) = root.bind_at(b"sock", 1, 0o755, u, g).unwrap();
    bound.listen(4).unwrap();
    let c1 = sc.imp.connect(1).unwrap();
    let c2 = walk(&*root, "sock")
        .imp
        .connect_with_creds(1, u, g)
        .unwrap();
    let (a1, _) = bound.accept().unwrap();
    let (a2, _) = bound.accept().unwrap();
    assert!(bound.accept().is_err());
    assert!(sc.imp.connect(3).is_err());
    assert!(root.bind_at(b"sock", 1, 0o755, u, g).is_err());
    drop((c1, c2, a1, a2, donated, bound, sc));

    // Renames and removals.
    root.rename_at(b"f", &*d.imp, b"f2", 0).unwrap();
    assert!(root.rename_at(b"f", &*d.imp, b"f2", 0).is_err());
    d.imp.unlink(b"f2", 0).unwrap();
    assert!(root.unlink(b"d", AT_REMOVEDIR).is_err());
}

#[test]
fn no_fd_outlives_its_owner() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("fds");
    // Warm up anything lazily opened by the runtime (and the first
    // as_unprivileged thread) before counting.
    exercise(&s);
    drop(s);
    let s = Scratch::new("fds2");
    let before = open_fds();
    exercise(&s);
    let after = open_fds();
    assert_eq!(before, after, "host FDs leaked");
}

#[test]
fn failed_opens_close_what_they_opened() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("fds-fail");
    // Block devices are opened, stat'ed and refused.
    let blk = rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("b"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(7, 201),
    )
    .is_ok();
    let fs = s.fs();
    let (root, _) = fs.mount().unwrap();
    let before = open_fds();
    for _ in 0..50 {
        if blk {
            assert_eq!(root.imp.walk(b"b").err(), Some(Errno::EPERM));
            assert!(walk_stat(&*root.imp, &[b"b"]).is_err());
        }
        assert!(root.imp.walk(b"nope").is_err());
        assert!(root.imp.open(O_WRONLY).is_err());
    }
    assert_eq!(open_fds(), before);
}
