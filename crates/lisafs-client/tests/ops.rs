//! Every message against the real server and host backend, in-process.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};

use common::*;
use lisafs_client::{statx_mask, Error, FdId, Mid, SetStatReq, Timespec, WalkStatus};
use lisafs_host::HostOptions;
use lisafs_wire::errno::*;

#[test]
fn mount_and_basics() {
    let h = Harness::new("mount");
    let c = &h.client;
    let root = c.root();
    assert_eq!(ftype(&root.stat), S_IFDIR);
    assert_eq!(
        root.stat.ino,
        std::fs::metadata(&h.scratch.root).unwrap().ino()
    );
    assert_eq!(c.max_message_size(), lisafs_wire::DEFAULT_MAX_MESSAGE_SIZE);
    for mid in host_mids() {
        assert!(c.supports(mid), "{mid:?}");
    }
    assert!(!c.supports(Mid::FLUSH));
    assert!(!c.supports(Mid::ERROR));
    assert!(!c.supports(Mid(300)));
    assert!(c.take_mount_fd().is_none(), "no donation by default");

    let st = c.fstat(root.control_fd).unwrap();
    assert_eq!((st.ino, st.mode), (root.stat.ino, root.stat.mode));
    let sfs = c.fstatfs(root.control_fd).unwrap();
    let host = rustix::fs::statfs(&h.scratch.root).unwrap();
    assert_eq!(sfs.fs_type, host.f_type as u64);
    assert_eq!(sfs.name_length, host.f_namelen as u64);
    assert!(sfs.block_size > 0);

    assert_errno!(c.fstat(FdId(9999)), EBADF);
    assert_errno!(c.fstatfs(FdId(9999)), EBADF);
    // Channels up to the server's limit, then ENOMEM (gVisor's "no more").
    let mut grants = Vec::new();
    let err = loop {
        match c.channel() {
            Ok(g) => grants.push(g),
            Err(e) => break e,
        }
        assert!(grants.len() <= 4, "the server allows at most 4 channels");
    };
    assert_eq!(err.errno(), ENOMEM);
    assert!(grants.len() >= 2);
    for g in &grants {
        assert!(g.data_length >= 4096 && g.data_offset >= 0);
    }
    drop(grants);
    let e = c.fstat(FdId(9999)).unwrap_err();
    assert_eq!(e.errno(), EBADF);
    assert!(e.to_string().contains("Bad file descriptor"), "{e}");
    h.finish(&[]);
}

#[test]
fn donated_mount_fd() {
    let opts = HostOptions {
        donate_mount_fd: true,
        ..HostOptions::default()
    };
    let h = Harness::with("donate", opts, false);
    let fd = h.client.take_mount_fd().expect("the mount FD is donated");
    assert!(h.client.take_mount_fd().is_none(), "taken once");
    let st = rustix::fs::fstat(&fd).unwrap();
    assert_eq!(st.st_ino, h.client.root().stat.ino);
    drop(fd);
    h.finish(&[]);
}

#[test]
fn walk_statuses_and_errors() {
    let h = Harness::new("walk");
    let c = &h.client;
    std::fs::create_dir_all(h.scratch.path("a/b")).unwrap();
    std::fs::write(h.scratch.path("a/b/file"), b"x").unwrap();
    std::os::unix::fs::symlink("a", h.scratch.path("link")).unwrap();
    let root = h.root();
    let mut fds = Vec::new();

    let (status, inodes) = c.walk(root, &[b"a", b"b", b"file"]).unwrap();
    assert_eq!(status, WalkStatus::Success);
    assert_eq!(inodes.len(), 3);
    assert_eq!(ftype(&inodes[1].stat), S_IFDIR);
    assert_eq!(ftype(&inodes[2].stat), S_IFREG);
    assert_eq!(
        inodes[2].stat.ino,
        std::fs::metadata(h.scratch.path("a/b/file")).unwrap().ino()
    );
    let file = inodes[2].control_fd;
    fds.extend(inodes.iter().map(|i| i.control_fd));

    let (status, inodes) = c.walk(root, &[b"a", b"missing", b"x"]).unwrap();
    assert_eq!(status, WalkStatus::ComponentDoesNotExist);
    assert_eq!(inodes.len(), 1);
    fds.extend(inodes.iter().map(|i| i.control_fd));

    let (status, inodes) = c.walk(root, &[b"link", b"b"]).unwrap();
    assert_eq!(status, WalkStatus::ComponentSymlink);
    assert_eq!(inodes.len(), 1);
    assert_eq!(ftype(&inodes[0].stat), S_IFLNK);
    fds.extend(inodes.iter().map(|i| i.control_fd));

    let (status, inodes) = c.walk(root, &[]).unwrap();
    assert_eq!((status, inodes.len()), (WalkStatus::Success, 0));

    let before = h.stats();
    assert_errno!(c.walk(root, &[b"a", b".."]), EINVAL);
    assert_errno!(c.walk(root, &[b"a/b"]), EINVAL);
    assert_errno!(c.walk(root, &[b""]), EINVAL);
    assert_errno!(c.walk(file, &[b"x"]), ENOTDIR);
    assert_errno!(c.walk(FdId(12345), &[b"a"]), EBADF);
    // Over a SizedString: refused before sending.
    let long = vec![b'n'; 70_000];
    assert_errno!(c.walk(root, &[&long]), EINVAL);
    assert_errno!(c.mkdir_at(root, &long, 0o755, NO_UID, NO_GID), EINVAL);
    assert_eq!(h.stats(), before, "failed walks leave nothing behind");

    h.finish(&fds);
}

#[test]
fn walk_stat() {
    let h = Harness::new("walkstat");
    let c = &h.client;
    std::fs::create_dir_all(h.scratch.path("a/b")).unwrap();
    let root = h.root();
    let before = h.stats();
    let stats = c.walk_stat(root, &[b"", b"a", b"b"]).unwrap();
    assert_eq!(stats.len(), 3);
    assert_eq!(stats[0].ino, c.root().stat.ino);
    assert_eq!(
        stats[2].ino,
        std::fs::metadata(h.scratch.path("a/b")).unwrap().ino()
    );
    let stats = c.walk_stat(root, &[b"a", b"nope", b"b"]).unwrap();
    assert_eq!(stats.len(), 1);
    assert_errno!(c.walk_stat(root, &[b"a", b".."]), EINVAL);
    assert_errno!(c.walk_stat(FdId(777), &[b"a"]), EBADF);
    assert_eq!(h.stats(), before, "WalkStat creates no FDs");
    h.finish(&[]);
}

#[test]
fn create_write_read_sync() {
    let h = Harness::new("file");
    let c = &h.client;
    let root = h.root();
    let (ino, wfd, donated) = c
        .open_create_at(root, b"f", 0o640, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    assert_eq!(ino.stat.mode, S_IFREG | 0o640);
    assert!(donated.is_some(), "the host server donates regular files");
    assert_eq!(c.pwrite(wfd, 0, b"hello, world").unwrap(), 12);
    assert_eq!(c.pwrite(wfd, 7, b"WORLD").unwrap(), 5);
    assert_eq!(c.pwrite(wfd, 0, b"").unwrap(), 0);
    let mut buf = [0u8; 64];
    let n = c.pread(wfd, 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello, WORLD");
    assert_eq!(c.pread(wfd, 100, &mut buf).unwrap(), 0, "EOF");
    assert_eq!(c.pread(wfd, 0, &mut []).unwrap(), 0);
    assert_eq!(c.fstat(wfd).unwrap().size, 12, "FStat on an open FD");
    c.fsync(&[wfd]).unwrap();
    c.fsync(&[]).unwrap();
    c.flush(wfd).unwrap(); // not advertised: a local no-op
    c.fallocate(wfd, 0, 0, 4096).unwrap();
    assert!(std::fs::metadata(h.scratch.path("f")).unwrap().len() >= 4096);
    assert_eq!(
        std::fs::read(h.scratch.path("f")).unwrap()[..12],
        *b"hello, WORLD"
    );

    assert_errno!(
        c.open_create_at(root, b"f", 0o600, NO_UID, NO_GID, O_RDWR),
        EEXIST
    );
    assert_errno!(
        c.open_create_at(ino.control_fd, b"g", 0o600, NO_UID, NO_GID, O_RDWR),
        ENOTDIR
    );
    assert_errno!(
        c.open_create_at(root, b"..", 0o600, NO_UID, NO_GID, O_RDWR),
        EINVAL
    );

    // A read-only open FD: writes are EBADF, and so is fallocate.
    let (rfd, _) = c.open_at(ino.control_fd, O_RDONLY).unwrap();
    assert_errno!(c.pwrite(rfd, 0, b"x"), EBADF);
    assert_errno!(c.fallocate(rfd, 0, 0, 10), EBADF);
    let (wofd, _) = c.open_at(ino.control_fd, O_WRONLY).unwrap();
    assert_errno!(c.pread(wofd, 0, &mut buf), EBADF);
    assert_errno!(c.pread(FdId(4242), 0, &mut buf), EBADF);
    assert_errno!(c.fsync(&[rfd, FdId(4242)]), EBADF);
    // A control FD is the wrong kind for I/O.
    assert_errno!(c.pread(ino.control_fd, 0, &mut buf), EINVAL);
    assert_errno!(c.open_at(root, O_RDWR), EISDIR);
    assert_errno!(c.open_at(FdId(4242), O_RDONLY), EBADF);

    // O_TRUNC through open_at.
    let (tfd, _) = c.open_at(ino.control_fd, O_WRONLY | O_TRUNC).unwrap();
    assert_eq!(c.fstat(ino.control_fd).unwrap().size, 0);
    h.finish(&[ino.control_fd, wfd, rfd, wofd, tfd]);
}

#[test]
fn large_io_is_chunked_and_donated_fd_works() {
    const LEN: usize = 5 * 1024 * 1024 + 123;
    let h = Harness::new("bigio");
    let c = &h.client;
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 + i / 4096) as u8).collect();
    let (ino, fd, donated) = c
        .open_create_at(h.root(), b"big", 0o600, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    assert_eq!(c.pwrite(fd, 0, &data).unwrap(), LEN as u64);
    assert_eq!(std::fs::read(h.scratch.path("big")).unwrap(), data);

    let mut back = vec![0u8; LEN];
    assert_eq!(c.pread(fd, 0, &mut back).unwrap(), LEN);
    assert!(back == data, "5 MiB read back intact");

    // Short read across chunk boundaries at the end of the file.
    let mut tail = vec![0u8; 3 * 1024 * 1024];
    let off = LEN as u64 - 1_000_000;
    assert_eq!(c.pread(fd, off, &mut tail).unwrap(), 1_000_000);
    assert!(tail[..1_000_000] == data[LEN - 1_000_000..]);

    // The donated host FD reads the same bytes without the server.
    let file = File::from(donated.expect("donated FD"));
    let mut direct = vec![0u8; 4096];
    file.read_at(&mut direct, 2 * 1024 * 1024).unwrap();
    assert!(direct[..] == data[2 * 1024 * 1024..2 * 1024 * 1024 + 4096]);
    drop(file);
    h.finish(&[ino.control_fd, fd]);
}

#[test]
fn set_stat() {
    let h = Harness::new("setstat");
    let c = &h.client;
    std::fs::write(h.scratch.path("f"), b"0123456789").unwrap();
    let f = h.walk1("f");
    let req = SetStatReq {
        fd: f.control_fd,
        mask: statx_mask::MODE | statx_mask::SIZE | statx_mask::MTIME,
        mode: 0o604,
        size: 4,
        mtime: Timespec {
            sec: 1_000_000,
            nsec: 5,
        },
        atime: Timespec {
            sec: 0,
            nsec: lisafs_client::UTIME_OMIT,
        },
        ..SetStatReq::default()
    };
    assert_eq!(c.set_stat(&req).unwrap(), (0, 0));
    let meta = std::fs::metadata(h.scratch.path("f")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o604);
    assert_eq!(meta.len(), 4);
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_000_000, 5));

    // A partial failure is a successful reply: size on a directory.
    let (mask, errno) = c
        .set_stat(&SetStatReq {
            fd: h.root(),
            mask: statx_mask::SIZE,
            ..SetStatReq::default()
        })
        .unwrap();
    assert_eq!((mask, errno), (statx_mask::SIZE, EISDIR));

    assert_errno!(
        c.set_stat(&SetStatReq {
            fd: f.control_fd,
            mask: statx_mask::INO,
            ..SetStatReq::default()
        }),
        EPERM
    );
    assert_errno!(
        c.set_stat(&SetStatReq {
            fd: FdId(999),
            ..SetStatReq::default()
        }),
        EBADF
    );
    h.finish(&[f.control_fd]);
}

#[test]
fn create_link_unlink_rename() {
    let h = Harness::new("tree");
    let c = &h.client;
    let root = h.root();
    let mut fds = Vec::new();

    let d = c.mkdir_at(root, b"d", 0o750, NO_UID, NO_GID).unwrap();
    assert_eq!(d.stat.mode, S_IFDIR | 0o750);
    assert!(h.scratch.path("d").is_dir());
    assert_errno!(c.mkdir_at(root, b"d", 0o750, NO_UID, NO_GID), EEXIST);
    assert_errno!(c.mkdir_at(root, b"..", 0o750, NO_UID, NO_GID), EINVAL);
    assert_errno!(c.mkdir_at(FdId(31337), b"x", 0o750, NO_UID, NO_GID), EBADF);
    fds.push(d.control_fd);

    // Like runsc's gofer, the host backend makes only regular files (and
    // overlay whiteouts) with mknod.
    let node = c
        .mknod_at(d.control_fd, b"node", S_IFREG | 0o600, NO_UID, NO_GID, 0, 0)
        .unwrap();
    assert_eq!(node.stat.mode, S_IFREG | 0o600);
    assert!(h.scratch.path("d/node").is_file());
    assert_errno!(
        c.mknod_at(d.control_fd, b"node", S_IFREG | 0o600, NO_UID, NO_GID, 0, 0),
        EEXIST
    );
    assert_errno!(
        c.mknod_at(d.control_fd, b"fifo", S_IFIFO | 0o600, NO_UID, NO_GID, 0, 0),
        EPERM
    );
    fds.push(node.control_fd);

    let (f, ffd, _) = c
        .open_create_at(d.control_fd, b"file", 0o644, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    c.pwrite(ffd, 0, b"content").unwrap();
    fds.extend([f.control_fd, ffd]);
    assert_errno!(
        c.mkdir_at(f.control_fd, b"sub", 0o755, NO_UID, NO_GID),
        ENOTDIR
    );

    // The target is sent as given; the host kernel cannot take a NUL.
    assert_errno!(
        c.symlink_at(root, b"sl", b"d/file\0weird", NO_UID, NO_GID),
        EINVAL
    );
    let sl = c
        .symlink_at(root, b"sl", b"d/\xfffile", NO_UID, NO_GID)
        .unwrap();
    assert_eq!(ftype(&sl.stat), S_IFLNK);
    assert_eq!(c.readlink_at(sl.control_fd).unwrap(), b"d/\xfffile");
    fds.push(sl.control_fd);
    let plain = c
        .symlink_at(root, b"sl2", b"../outside/target", NO_UID, NO_GID)
        .unwrap();
    assert_eq!(
        c.readlink_at(plain.control_fd).unwrap(),
        b"../outside/target"
    );
    fds.push(plain.control_fd);
    assert_errno!(c.readlink_at(f.control_fd), EINVAL);
    assert_errno!(c.symlink_at(root, b"sl2", b"x", NO_UID, NO_GID), EEXIST);

    let link = c.link_at(root, f.control_fd, b"hard").unwrap();
    assert_eq!(link.stat.ino, f.stat.ino);
    assert_eq!(std::fs::read(h.scratch.path("hard")).unwrap(), b"content");
    fds.push(link.control_fd);
    assert_errno!(c.link_at(root, d.control_fd, b"dirlink"), EPERM);
    assert_errno!(c.link_at(root, f.control_fd, b"hard"), EEXIST);

    // Unlink.
    c.unlink_at(root, b"hard", 0).unwrap();
    assert!(!h.scratch.path("hard").exists());
    assert_errno!(c.unlink_at(root, b"hard", 0), ENOENT);
    assert_errno!(c.unlink_at(root, b"d", 0), EISDIR);
    assert_errno!(c.unlink_at(root, b"d", AT_REMOVEDIR), ENOTEMPTY);
    assert_errno!(c.unlink_at(f.control_fd, b"x", 0), ENOTDIR);

    // Rename, RenameAt2 exchange and no-replace.
    c.rename_at(d.control_fd, b"file", root, b"moved").unwrap();
    assert_eq!(std::fs::read(h.scratch.path("moved")).unwrap(), b"content");
    std::fs::write(h.scratch.path("other"), b"other").unwrap();
    c.rename_at2(root, b"moved", root, b"other", 2).unwrap();
    assert_eq!(std::fs::read(h.scratch.path("moved")).unwrap(), b"other");
    assert_eq!(std::fs::read(h.scratch.path("other")).unwrap(), b"content");
    assert_errno!(c.rename_at2(root, b"moved", root, b"other", 1), EEXIST);
    c.rename_at2(root, b"moved", d.control_fd, b"back", 0)
        .unwrap();
    assert!(h.scratch.path("d/back").is_file());
    assert_errno!(c.rename_at(root, b"nope", root, b"x"), ENOENT);
    assert_errno!(c.rename_at(root, b"..", root, b"x"), EINVAL);
    assert_errno!(c.rename_at(f.control_fd, b"a", root, b"b"), ENOTDIR);
    // The renamed file's control FD follows it.
    assert_eq!(c.fstat(f.control_fd).unwrap().size, 7);
    let mut buf = [0u8; 16];
    let n = c.pread(ffd, 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"content");

    c.unlink_at(d.control_fd, b"node", 0).unwrap();
    c.unlink_at(d.control_fd, b"back", 0).unwrap();
    c.unlink_at(root, b"d", AT_REMOVEDIR).unwrap();
    assert!(!h.scratch.path("d").exists());
    h.finish(&fds);
}

#[test]
fn getdents_many_entries() {
    const N: usize = 600;
    let h = Harness::new("dents");
    let c = &h.client;
    let dir = h.scratch.path("many");
    std::fs::create_dir(&dir).unwrap();
    let mut expected = BTreeSet::new();
    for i in 0..N {
        let name = format!("entry-with-a-fairly-long-name-{i:05}");
        std::fs::write(dir.join(&name), b"").unwrap();
        expected.insert(name.into_bytes());
    }
    let many = h.walk1("many");
    let (dfd, _) = c.open_at(many.control_fd, O_RDONLY).unwrap();

    let read_all = |first_count: i32| {
        let mut names = BTreeSet::new();
        let mut calls = 0;
        let mut count = first_count;
        loop {
            let batch = c.getdents64(dfd, count).unwrap();
            count = count.abs();
            if batch.is_empty() {
                break;
            }
            calls += 1;
            for d in batch {
                assert_eq!(d.ty, 8, "DT_REG");
                assert_ne!(d.ino, 0);
                assert!(names.insert(d.name), "no duplicates");
            }
        }
        (names, calls)
    };
    let (names, calls) = read_all(4096);
    assert_eq!(names, expected);
    assert!(calls > 1, "{calls} calls for {N} entries");
    assert!(
        c.getdents64(dfd, 4096).unwrap().is_empty(),
        "still at the end"
    );
    // A negative count rewinds first.
    let (again, _) = read_all(-65536);
    assert_eq!(again, expected);

    let (ffd, _) = {
        let f = h.walk_from(many.control_fd, "entry-with-a-fairly-long-name-00000");
        let opened = c.open_at(f.control_fd, O_RDONLY).unwrap();
        c.close(&[f.control_fd]).unwrap();
        opened
    };
    assert_errno!(c.getdents64(ffd, 4096), ENOTDIR);
    assert_errno!(c.getdents64(many.control_fd, 4096), EINVAL);
    assert_errno!(c.getdents64(FdId(5555), 4096), EBADF);
    h.finish(&[many.control_fd, dfd, ffd]);
}

#[test]
fn xattrs() {
    let h = Harness::new("xattr");
    let c = &h.client;
    std::fs::write(h.scratch.path("f"), b"").unwrap();
    let f = h.walk1("f").control_fd;
    match c.fset_xattr(f, b"user.lisafs", b"value-1", 0) {
        Err(Error::Errno(EOPNOTSUPP)) => {
            eprintln!("skipping: user xattrs are not supported here");
            h.finish(&[f]);
            return;
        }
        other => other.unwrap(),
    }
    assert_eq!(c.fget_xattr(f, b"user.lisafs", 0).unwrap(), b"value-1");
    assert_eq!(c.fget_xattr(f, b"user.lisafs", 64).unwrap(), b"value-1");
    assert_errno!(c.fget_xattr(f, b"user.lisafs", 3), ERANGE);
    assert_errno!(c.fset_xattr(f, b"user.lisafs", b"x", 1), EEXIST);
    assert_errno!(c.fset_xattr(f, b"user.absent", b"x", 2), ENODATA);
    c.fset_xattr(f, b"user.second", b"", 0).unwrap();
    let names: BTreeSet<Vec<u8>> = c.flist_xattr(f, 0).unwrap().into_iter().collect();
    assert!(names.contains(&b"user.lisafs"[..]));
    assert!(names.contains(&b"user.second"[..]));
    c.fremove_xattr(f, b"user.lisafs").unwrap();
    assert_errno!(c.fget_xattr(f, b"user.lisafs", 0), ENODATA);
    assert_errno!(c.fremove_xattr(f, b"user.lisafs"), ENODATA);
    assert_errno!(c.fget_xattr(FdId(8888), b"user.x", 0), EBADF);
    h.finish(&[f]);
}

#[test]
fn read_only_service() {
    let h = Harness::with("ro", HostOptions::default(), true);
    let c = &h.client;
    std::fs::write(h.scratch.path("f"), b"data").unwrap();
    let root = h.root();
    let f = h.walk1("f");
    assert_errno!(c.mkdir_at(root, b"d", 0o755, NO_UID, NO_GID), EROFS);
    assert_errno!(
        c.open_create_at(root, b"n", 0o644, NO_UID, NO_GID, O_RDWR),
        EROFS
    );
    assert_errno!(c.open_at(f.control_fd, O_RDWR), EROFS);
    assert_errno!(c.open_at(f.control_fd, O_RDONLY | O_TRUNC), EROFS);
    assert_errno!(c.unlink_at(root, b"f", 0), EROFS);
    assert_errno!(c.rename_at(root, b"f", root, b"g"), EROFS);
    assert_errno!(c.fset_xattr(f.control_fd, b"user.x", b"y", 0), EROFS);
    assert_errno!(
        c.set_stat(&SetStatReq {
            fd: f.control_fd,
            mask: statx_mask::MODE,
            mode: 0o600,
            ..SetStatReq::default()
        }),
        EROFS
    );
    let (rfd, _) = c.open_at(f.control_fd, O_RDONLY).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.pread(rfd, 0, &mut buf).unwrap(), 4);
    assert_errno!(c.pwrite(rfd, 0, b"x"), EROFS);
    assert_eq!(std::fs::read(h.scratch.path("f")).unwrap(), b"data");
    h.finish(&[f.control_fd, rfd]);
}

#[test]
fn unsupported_messages() {
    let mids: Vec<Mid> = host_mids()
        .into_iter()
        .filter(|m| ![Mid::MKDIR_AT, Mid::RENAME_AT2, Mid::CONNECT_WITH_CREDS].contains(m))
        .chain([Mid::FLUSH])
        .collect();
    let h = Harness::limited("unsupported", mids);
    let c = &h.client;
    let root = h.root();
    assert!(!c.supports(Mid::MKDIR_AT));
    assert!(c.supports(Mid::FLUSH));
    assert_errno!(c.mkdir_at(root, b"d", 0o755, NO_UID, NO_GID), EOPNOTSUPP);
    assert!(!h.scratch.path("d").exists());
    // Non-zero flags without RenameAt2: EINVAL; zero flags use RenameAt.
    std::fs::write(h.scratch.path("a"), b"").unwrap();
    assert_errno!(c.rename_at2(root, b"a", root, b"b", 1), EINVAL);
    c.rename_at2(root, b"a", root, b"b", 0).unwrap();
    assert!(h.scratch.path("b").exists());
    // Flush is advertised here, so it reaches the server.
    let b = h.walk1("b").control_fd;
    let (bfd, _) = c.open_at(b, O_RDONLY).unwrap();
    c.flush(bfd).unwrap();
    assert_errno!(c.flush(FdId(9999)), EBADF);
    h.finish(&[b, bfd]);
}

#[test]
fn unsupported_flush_is_a_noop() {
    let h = Harness::new("flush");
    // Not advertised by the host server: no request, so even a bogus FDID
    // "succeeds", as with gVisor's client.
    h.client.flush(FdId(424242)).unwrap();
    h.finish(&[]);
}

#[test]
fn many_threads_share_one_client() {
    let h = Harness::new("threads");
    let c = &h.client;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (ino, fd, _) = c
        .open_create_at(h.root(), b"shared", 0o600, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    c.pwrite(fd, 0, &data).unwrap();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let data = &data;
            s.spawn(move || {
                for i in 0..50u64 {
                    let off = (t * 7919 + i * 104_729) % 250_000;
                    let mut buf = vec![0u8; 40_000];
                    let n = c.pread(fd, off, &mut buf).unwrap();
                    let off = off as usize;
                    let want = (data.len() - off).min(buf.len());
                    assert_eq!(n, want);
                    assert!(buf[..n] == data[off..off + n]);
                    let st = c.fstat(ino.control_fd).unwrap();
                    assert_eq!(st.size, data.len() as u64);
                }
            });
        }
    });
    h.finish(&[ino.control_fd, fd]);
}

#[test]
fn close_many_in_batches() {
    let h = Harness::new("closemany");
    std::fs::write(h.scratch.path("f"), b"").unwrap();
    let fds: Vec<FdId> = (0..250).map(|_| h.walk1("f").control_fd).collect();
    assert_eq!(h.stats().control_fds, 251);
    // Unknown FDIDs are ignored by the server.
    let mut with_junk = fds.clone();
    with_junk.push(FdId(1 << 40));
    h.finish(&with_junk);
}

#[test]
fn shutdown_ends_the_connection() {
    let h = Harness::new("shutdown");
    h.client.shutdown().unwrap();
    let err = h.client.fstat(h.root()).unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    // The OS reason, not a blanket EIO: the socket was shut down here.
    assert_eq!(err.errno(), lisafs_client::errno::EPIPE);
    assert!(matches!(h.client.fstat(h.root()), Err(Error::Io(_))));
    wait_for(
        || h.stats() == lisafs_server::Stats::default(),
        || format!("{:?}", h.stats()),
    );
}

#[test]
fn deleted_nodes() {
    let h = Harness::new("deleted");
    let c = &h.client;
    let root = h.root();
    let (f, fd, _) = c
        .open_create_at(root, b"f", 0o600, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    let d = c.mkdir_at(root, b"d", 0o700, NO_UID, NO_GID).unwrap();
    let (dfd, _) = c.open_at(d.control_fd, O_RDONLY).unwrap();
    c.unlink_at(root, b"f", 0).unwrap();
    c.unlink_at(root, b"d", AT_REMOVEDIR).unwrap();

    // An open file outlives its name.
    assert_eq!(c.pwrite(fd, 0, b"still here").unwrap(), 10);
    let mut buf = [0u8; 16];
    assert_eq!(c.pread(fd, 0, &mut buf).unwrap(), 10);
    assert_eq!(c.fstat(f.control_fd).unwrap().nlink, 0);
    let (again, _) = c.open_at(f.control_fd, O_RDONLY).unwrap();
    assert_eq!(
        c.set_stat(&SetStatReq {
            fd: f.control_fd,
            mask: statx_mask::SIZE,
            size: 4,
            ..SetStatReq::default()
        })
        .unwrap(),
        (0, 0)
    );
    assert_eq!(c.fstat(fd).unwrap().size, 4);
    assert_errno!(c.link_at(root, f.control_fd, b"revived"), EINVAL);
    let (status, inodes) = c.walk(root, &[b"f"]).unwrap();
    assert_eq!(
        (status, inodes.len()),
        (WalkStatus::ComponentDoesNotExist, 0)
    );

    // A deleted directory can be neither listed nor created in.
    assert_errno!(c.getdents64(dfd, 4096), EINVAL);
    assert_errno!(
        c.mkdir_at(d.control_fd, b"x", 0o700, NO_UID, NO_GID),
        EINVAL
    );
    h.finish(&[f.control_fd, fd, again, d.control_fd, dfd]);
}
