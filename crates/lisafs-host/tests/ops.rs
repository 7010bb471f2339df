//! Filesystem operations of the host backend, called directly through the
//! backend traits on a scratch directory.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionImpl, ControlFdImpl, Errno, OpenFdImpl};
use lisafs_wire::{statx_mask, Gid, Mid, SetStatReq, Timespec, Uid, UTIME_OMIT};

fn set_stat_req(mask: u32) -> SetStatReq {
    SetStatReq {
        mask,
        ..SetStatReq::default()
    }
}

fn read_all(f: &dyn OpenFdImpl) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let n = f.read(&mut buf, out.len() as u64).expect("read");
        out.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return out;
        }
    }
}

#[test]
fn new_requires_a_directory() {
    let s = Scratch::new("newdir");
    std::fs::write(s.path("file"), b"x").unwrap();
    assert!(HostFs::new(s.path("file"), HostOptions::default()).is_err());
    assert!(HostFs::new(s.path("missing"), HostOptions::default()).is_err());
}

#[test]
fn supported_messages_are_upstreams() {
    let s = Scratch::new("mids");
    let fs = s.fs();
    let mids = fs.supported_messages();
    assert_eq!(mids.len(), 32);
    for m in 1..=33u16 {
        assert_eq!(mids.contains(&Mid(m)), m != Mid::FLUSH.0, "MID {m}");
    }
    assert_eq!(fs.max_message_size(), lisafs_wire::DEFAULT_MAX_MESSAGE_SIZE);
}

#[test]
fn mount_donation_follows_the_option() {
    let s = Scratch::new("mountdonate");
    let (_, d) = s.fs().mount().unwrap();
    assert!(d.is_none());
    let fs = s.fs_with(HostOptions {
        donate_mount_fd: true,
        ..HostOptions::default()
    });
    let (root, d) = fs.mount().unwrap();
    assert!(d.is_some());
    // Opening the mount point donates too when so configured.
    let open = root.imp.open(O_RDONLY).unwrap();
    assert!(open.donate.is_some());
    // Other directories are never donated.
    std::fs::create_dir(s.path("d")).unwrap();
    let d = walk(&*root.imp, "d");
    assert!(d.imp.open(O_RDONLY).unwrap().donate.is_none());
}

#[test]
fn walk_and_stat() {
    let s = Scratch::new("walk");
    std::fs::write(s.path("f"), b"hello").unwrap();
    std::fs::create_dir(s.path("d")).unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    let f = walk(&*root, "f");
    assert_eq!(ftype(&f.stat), S_IFREG);
    assert_eq!(f.stat.size, 5);
    assert_eq!(f.stat.attributes, 0);
    assert_eq!(f.stat.attributes_mask, 0);
    assert_ne!(f.stat.mask & statx_mask::BASIC_STATS, 0);
    let meta = lstat(&s.path("f"));
    assert_eq!(f.stat.ino, meta.ino());
    assert_eq!(f.imp.stat().unwrap().ino, meta.ino());
    let d = walk(&*root, "d");
    assert_eq!(ftype(&d.stat), S_IFDIR);
    assert_eq!(root.walk(b"missing").err(), Some(Errno::ENOENT));
    // Defence in depth: names the core should never pass are refused.
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(root.walk(bad).err(), Some(Errno::EINVAL), "{bad:?}");
    }
    // Walking from a regular file is not walking anywhere.
    assert_eq!(f.imp.walk(b"x").err(), Some(Errno::ENOTDIR));
}

#[test]
fn walk_stat_stops_at_missing_and_symlinks() {
    let s = Scratch::new("walkstat");
    std::fs::create_dir_all(s.path("a/b")).unwrap();
    std::fs::write(s.path("a/b/f"), b"x").unwrap();
    std::os::unix::fs::symlink("b", s.path("a/l")).unwrap();
    let fs = s.fs();
    let root = mount(&fs);

    let st = walk_stat(&*root, &[b"", b"a", b"b", b"f"]).unwrap();
    assert_eq!(
        st.iter().map(ftype).collect::<Vec<_>>(),
        [S_IFDIR, S_IFDIR, S_IFDIR, S_IFREG]
    );
    assert_eq!(st[3].ino, lstat(&s.path("a/b/f")).ino());

    // A missing component ends the walk quietly.
    let st = walk_stat(&*root, &[b"a", b"nope", b"f"]).unwrap();
    assert_eq!(st.len(), 1);

    // A symlink is recorded and ends the walk.
    let st = walk_stat(&*root, &[b"a", b"l", b"f"]).unwrap();
    assert_eq!(st.iter().map(ftype).collect::<Vec<_>>(), [S_IFDIR, S_IFLNK]);

    // Starting at a symlink: only its own stat, when asked for.
    let a = walk(&*root, "a");
    let l = walk(&*a.imp, "l");
    let st = walk_stat(&*l.imp, &[b"", b"f"]).unwrap();
    assert_eq!(st.iter().map(ftype).collect::<Vec<_>>(), [S_IFLNK]);
    assert!(walk_stat(&*l.imp, &[b"f"]).unwrap().is_empty());

    // Bad names fail the whole walk.
    assert_eq!(walk_stat(&*root, &[b"a", b".."]).err(), Some(Errno::EINVAL));
    assert_eq!(walk_stat(&*root, &[b"a", b""]).err(), Some(Errno::EINVAL));
}

#[test]
fn create_write_read() {
    let s = Scratch::new("rw");
    let fs = s.fs();
    let root = mount(&fs);
    let (u, g) = no_owner();
    let (ctl, open) = root.open_create(0o640, u, g, b"f", O_RDWR).unwrap();
    assert_eq!(ctl.stat.mode, S_IFREG | 0o640);
    assert!(open.donate.is_some(), "a new regular file is donated");
    let meta = lstat(&s.path("f"));
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(ctl.stat.ino, meta.ino());

    let f = &*open.imp;
    assert_eq!(f.write(b"hello world", 0).unwrap(), 11);
    assert_eq!(f.write(b"W", 6).unwrap(), 1);
    assert_eq!(read_all(f), b"hello World");
    let mut buf = [0u8; 32];
    assert_eq!(f.read(&mut buf, 6).unwrap(), 5);
    assert_eq!(&buf[..5], b"World");
    assert_eq!(f.read(&mut buf, 11).unwrap(), 0, "0 bytes at EOF");
    assert_eq!(f.read(&mut buf, 1000).unwrap(), 0);
    assert_eq!(f.stat().unwrap().size, 11);
    f.sync().unwrap();
    f.flush().unwrap();
    f.allocate(0, 0, 4096).unwrap();
    assert_eq!(f.stat().unwrap().size, 4096);
    assert_eq!(std::fs::read(s.path("f")).unwrap().len(), 4096);

    // A read-only open cannot write; a write-only open cannot read.
    let ro = ctl.imp.open(O_RDONLY).unwrap();
    assert!(ro.donate.is_some());
    assert_eq!(ro.imp.write(b"x", 0).err(), Some(Errno::EBADF));
    let wo = ctl.imp.open(O_WRONLY | O_TRUNC).unwrap();
    assert_eq!(wo.imp.read(&mut buf, 0).err(), Some(Errno::EBADF));
    assert_eq!(lstat(&s.path("f")).len(), 0, "O_TRUNC truncated");

    // Donated FDs are real, independent descriptors on the same file.
    let donated = std::fs::File::from(ro.donate.unwrap());
    assert_eq!(donated.metadata().unwrap().ino(), meta.ino());
}

#[test]
fn open_create_does_not_touch_an_existing_name() {
    let s = Scratch::new("excl");
    std::fs::write(s.path("f"), b"keep").unwrap();
    std::os::unix::fs::symlink("f", s.path("l")).unwrap();
    std::os::unix::fs::symlink("dangling", s.path("dl")).unwrap();
    let before = host_names(&s.root);
    let fs = s.fs();
    let root = mount(&fs);
    let (u, g) = no_owner();
    for name in ["f", "l", "dl"] {
        let err = root
            .open_create(0o600, u, g, name.as_bytes(), O_RDWR | O_TRUNC)
            .err();
        assert_eq!(err, Some(Errno::EEXIST), "{name}");
    }
    assert_eq!(std::fs::read(s.path("f")).unwrap(), b"keep");
    assert_eq!(host_names(&s.root), before);
    assert!(
        !s.path("dangling").exists(),
        "O_EXCL never follows a dangling symlink"
    );
}

#[test]
fn failed_creates_leave_nothing_behind() {
    let s = Scratch::new("cleanup");
    // The unprivileged thread must be able to create here.
    std::fs::set_permissions(&s.root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    // Giving a file to root fails without privilege, after the file exists:
    // each create must then remove what it made.
    let results = as_unprivileged(|| {
        let (u, g) = (Uid(0), Gid(0));
        vec![
            root.open_create(0o644, u, g, b"f", O_RDWR).err(),
            root.mkdir(0o755, u, g, b"d").err(),
            root.mknod(S_IFREG | 0o644, u, g, b"n", 0, 0).err(),
            root.symlink(b"l", b"target", u, g).err(),
        ]
    });
    for r in results {
        assert_eq!(r, Some(Errno::EPERM));
    }
    assert!(
        host_names(&s.root).is_empty(),
        "left: {:?}",
        host_names(&s.root)
    );
}

#[test]
fn mkdir_mode_and_owner() {
    let s = Scratch::new("mkdir");
    let fs = s.fs();
    let root = mount(&fs);
    let d = root.mkdir(0o750, Uid(euid()), Gid::NONE, b"d").unwrap();
    assert_eq!(d.stat.mode, S_IFDIR | 0o750);
    assert_eq!(d.stat.uid, euid());
    assert_eq!(lstat(&s.path("d")).mode() & 0o7777, 0o750);
    // The new directory is usable at once.
    let (u, g) = no_owner();
    d.imp.mkdir(0o700, u, g, b"sub").unwrap();
    assert!(s.path("d/sub").is_dir());
    assert_eq!(root.mkdir(0o755, u, g, b"d").err(), Some(Errno::EEXIST));
    // Set-id and sticky bits pass; type bits in the mode are ignored.
    let t = root.mkdir(S_IFREG | 0o1777, u, g, b"t").unwrap();
    assert_eq!(t.stat.mode, S_IFDIR | 0o1777);
}

#[test]
fn mknod_regular_and_whiteout_only() {
    let s = Scratch::new("mknod");
    let fs = s.fs();
    let root = mount(&fs);
    let (u, g) = no_owner();
    let n = root.mknod(S_IFREG | 0o604, u, g, b"reg", 0, 0).unwrap();
    assert_eq!(n.stat.mode, S_IFREG | 0o604);
    assert!(s.path("reg").is_file());

    for (name, mode, minor, major) in [
        ("fifo", S_IFIFO | 0o644, 0, 0),
        ("blk", S_IFBLK | 0o644, 0, 0),
        ("chr", S_IFCHR | 0o644, 3, 1),
        ("sock", S_IFSOCK | 0o644, 0, 0),
        ("dir", S_IFDIR | 0o755, 0, 0),
    ] {
        assert_eq!(
            root.mknod(mode, u, g, name.as_bytes(), minor, major).err(),
            Some(Errno::EPERM),
            "{name}"
        );
        assert!(
            std::fs::symlink_metadata(s.path(name)).is_err(),
            "{name} was created"
        );
    }

    // An overlay whiteout (0:0 character device) is allowed; opening a
    // character device never is.
    match root.mknod(S_IFCHR, u, g, b"wh", 0, 0) {
        Ok(wh) => {
            assert_eq!(ftype(&wh.stat), S_IFCHR);
            assert_eq!((wh.stat.rdev_major, wh.stat.rdev_minor), (0, 0));
            assert_eq!(wh.imp.open(O_RDONLY).err(), Some(Errno::EPERM));
        }
        Err(e) => eprintln!("skipping whiteout check: host refused it with {e}"),
    }
}

#[test]
fn symlink_and_readlink() {
    let s = Scratch::new("symlink");
    let fs = s.fs();
    let root = mount(&fs);
    let (u, g) = no_owner();
    let l = root.symlink(b"l", b"../some/where", u, g).unwrap();
    assert_eq!(ftype(&l.stat), S_IFLNK);
    assert_eq!(l.stat.size, 13);
    assert_eq!(
        std::fs::read_link(s.path("l")).unwrap().as_os_str(),
        "../some/where"
    );
    let mut out = b"prefix:".to_vec();
    l.imp.readlink(&mut out).unwrap();
    assert_eq!(out, b"prefix:../some/where");
    // Walking to it again gives the same answer.
    let mut out = Vec::new();
    walk(&*root, "l").imp.readlink(&mut out).unwrap();
    assert_eq!(out, b"../some/where");
    assert_eq!(root.symlink(b"l", b"x", u, g).err(), Some(Errno::EEXIST));
    assert_eq!(root.symlink(b"z", b"a\0b", u, g).err(), Some(Errno::EINVAL));
    // readlink of a non-symlink.
    std::fs::write(s.path("f"), b"").unwrap();
    // (the host answers ENOENT: an empty path names no link)
    assert_eq!(
        walk(&*root, "f").imp.readlink(&mut out).err(),
        Some(Errno::ENOENT)
    );
}

/// A control FD of some other backend.
struct Foreign;
impl ControlFdImpl for Foreign {}

#[test]
fn link_files() {
    let s = Scratch::new("link");
    std::fs::write(s.path("f"), b"data").unwrap();
    std::fs::create_dir(s.path("d")).unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    let f = walk(&*root, "f");
    let d = walk(&*root, "d");
    let g = f.imp.link(&*d.imp, b"g").unwrap();
    assert_eq!(g.stat.ino, f.stat.ino);
    assert_eq!(g.stat.nlink, 2);
    assert_eq!(std::fs::read(s.path("d/g")).unwrap(), b"data");
    assert_eq!(f.imp.link(&*d.imp, b"g").err(), Some(Errno::EEXIST));
    assert_eq!(f.imp.link(&Foreign, b"h").err(), Some(Errno::EXDEV));
    // Directories cannot be hard-linked.
    assert!(d.imp.link(&*root, b"d2").is_err());
    assert!(!s.path("d2").exists());
}

#[test]
fn unlink_and_rename() {
    let s = Scratch::new("unlink");
    std::fs::write(s.path("a"), b"A").unwrap();
    std::fs::write(s.path("b"), b"B").unwrap();
    std::fs::create_dir_all(s.path("d/e")).unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    let d = walk(&*root, "d");

    root.rename_at(b"a", &*d.imp, b"a2", 0).unwrap();
    assert_eq!(std::fs::read(s.path("d/a2")).unwrap(), b"A");
    // RENAME_NOREPLACE
    assert_eq!(
        d.imp.rename_at(b"a2", &*root, b"b", 1).err(),
        Some(Errno::EEXIST)
    );
    // RENAME_EXCHANGE
    d.imp.rename_at(b"a2", &*root, b"b", 2).unwrap();
    assert_eq!(std::fs::read(s.path("b")).unwrap(), b"A");
    assert_eq!(std::fs::read(s.path("d/a2")).unwrap(), b"B");
    assert_eq!(
        root.rename_at(b"missing", &*d.imp, b"x", 0).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        root.rename_at(b"b", &Foreign, b"x", 0).err(),
        Some(Errno::EXDEV)
    );
    assert_eq!(
        root.rename_at(b"b", &*d.imp, b"..", 0).err(),
        Some(Errno::EINVAL)
    );

    assert_eq!(root.unlink(b"d", 0).err(), Some(Errno::EISDIR));
    assert_eq!(
        root.unlink(b"d", AT_REMOVEDIR).err(),
        Some(Errno::ENOTEMPTY)
    );
    assert_eq!(root.unlink(b"b", AT_REMOVEDIR).err(), Some(Errno::ENOTDIR));
    d.imp.unlink(b"e", AT_REMOVEDIR).unwrap();
    d.imp.unlink(b"a2", 0).unwrap();
    root.unlink(b"d", AT_REMOVEDIR).unwrap();
    root.unlink(b"b", 0).unwrap();
    assert_eq!(root.unlink(b"b", 0).err(), Some(Errno::ENOENT));
    assert!(host_names(&s.root).is_empty());
    // The control FD of a removed directory still stats.
    assert_eq!(ftype(&d.imp.stat().unwrap()), S_IFDIR);
}

type Entry = (Vec<u8>, u64, u8, u32, u32, u64);

fn getdents(dir: &dyn OpenFdImpl, count: u32, seek0: bool) -> Vec<Entry> {
    let mut v = Vec::new();
    dir.getdent64(count, seek0, &mut |d| {
        v.push((
            d.name.to_vec(),
            d.ino,
            d.ty,
            d.dev_major,
            d.dev_minor,
            d.off,
        ))
    })
    .expect("getdent64");
    v
}

fn reclen(name: &[u8]) -> u32 {
    ((19 + name.len() + 1 + 7) & !7) as u32
}

#[test]
fn getdents_pages_resumes_and_rewinds() {
    let s = Scratch::new("getdents");
    let mut want = HashSet::new();
    for i in 0..120 {
        let name = format!("file-with-a-longish-name-{i:04}");
        std::fs::write(s.path(&name), b"").unwrap();
        want.insert(name.into_bytes());
    }
    std::fs::create_dir(s.path("subdir")).unwrap();
    std::os::unix::fs::symlink("x", s.path("link")).unwrap();
    want.insert(b"subdir".to_vec());
    want.insert(b"link".to_vec());
    let dev = lstat(&s.root).dev();

    let fs = s.fs();
    let root = mount(&fs);
    let dir = root.open(O_RDONLY).unwrap();
    assert!(dir.donate.is_none(), "directories are not donated");
    let dir = &*dir.imp;

    let count = 600;
    let mut seen = Vec::new();
    let mut first_page = None;
    loop {
        let page = getdents(dir, count, false);
        if page.is_empty() {
            break;
        }
        let bytes: u32 = page.iter().map(|e| reclen(&e.0)).sum();
        assert!(
            bytes <= count,
            "page of {bytes} bytes for a budget of {count}"
        );
        first_page.get_or_insert_with(|| page.clone());
        seen.extend(page);
    }
    let names: Vec<&Vec<u8>> = seen.iter().map(|e| &e.0).collect();
    let unique: HashSet<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
    assert_eq!(
        names.len(),
        unique.len(),
        "an entry came twice: offsets did not resume"
    );
    assert_eq!(unique, want);
    for (name, ino, ty, major, minor, _) in &seen {
        let meta = lstat(&s.root.join(std::str::from_utf8(name).unwrap()));
        assert_eq!(*ino, meta.ino());
        assert_eq!(
            (*major, *minor),
            (rustix::fs::major(dev), rustix::fs::minor(dev)),
            "device of {name:?}"
        );
        let want_ty = match name.as_slice() {
            b"subdir" => 4,
            b"link" => 10,
            _ => 8,
        };
        assert_eq!(*ty, want_ty, "{name:?}");
    }
    // At the end, still the end; seek0 starts over.
    assert!(getdents(dir, count, false).is_empty());
    assert_eq!(Some(getdents(dir, count, true)), first_page);

    // A budget too small for any record ends the read without error.
    assert!(getdents(dir, 16, true).is_empty());
    // A huge budget reads everything in one call.
    assert_eq!(getdents(dir, u32::MAX, true).len(), want.len());
}

#[test]
fn set_stat_applies_each_attribute() {
    let s = Scratch::new("setstat");
    std::fs::write(s.path("f"), b"0123456789").unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    let f = walk(&*root, "f");

    // Size.
    let mut req = set_stat_req(statx_mask::SIZE);
    req.size = 3;
    assert_eq!(f.imp.set_stat(&req), Default::default());
    assert_eq!(std::fs::read(s.path("f")).unwrap(), b"012");

    // Mode: only permission bits are applied.
    let mut req = set_stat_req(statx_mask::MODE);
    req.mode = u32::from(S_IFDIR) | 0o4640;
    assert_eq!(f.imp.set_stat(&req), Default::default());
    assert_eq!(f.imp.stat().unwrap().mode, S_IFREG | 0o4640);

    // Times: an unrequested time is left alone.
    let before = f.imp.stat().unwrap();
    let mut req = set_stat_req(statx_mask::MTIME);
    req.mtime = Timespec {
        sec: 1_000_000,
        nsec: 5,
    };
    req.atime = Timespec { sec: 7, nsec: 0 };
    assert_eq!(f.imp.set_stat(&req), Default::default());
    let after = f.imp.stat().unwrap();
    assert_eq!((after.mtime.sec, after.mtime.nsec), (1_000_000, 5));
    assert_eq!(after.atime, before.atime);
    let mut req = set_stat_req(statx_mask::ATIME | statx_mask::MTIME);
    req.atime = Timespec { sec: 42, nsec: 0 };
    req.mtime = Timespec {
        sec: 0,
        nsec: UTIME_OMIT,
    };
    assert_eq!(f.imp.set_stat(&req), Default::default());
    let after = f.imp.stat().unwrap();
    assert_eq!(after.atime.sec, 42);
    assert_eq!(after.mtime.sec, 1_000_000);

    // Owner: a sentinel id means "unchanged", and two sentinels do nothing.
    let mut req = set_stat_req(statx_mask::UID | statx_mask::GID);
    req.uid = Uid(euid());
    req.gid = Gid::NONE;
    assert_eq!(f.imp.set_stat(&req), Default::default());
    let mut req = set_stat_req(statx_mask::UID);
    req.uid = Uid::NONE;
    req.gid = Gid(12345); // not requested: ignored
    assert_eq!(f.imp.set_stat(&req), Default::default());
    let st = f.imp.stat().unwrap();
    assert_eq!((st.uid, st.gid), (euid(), egid()));

    // A failure marks its bits, and the rest still happens.
    std::fs::create_dir(s.path("d")).unwrap();
    let d = walk(&*root, "d");
    let mut req = set_stat_req(statx_mask::SIZE | statx_mask::MODE);
    req.size = 0;
    req.mode = 0o711;
    let r = d.imp.set_stat(&req);
    assert_eq!(r.failure_mask, statx_mask::SIZE);
    assert_eq!(r.failure_errno, Some(Errno::EISDIR));
    assert_eq!(d.imp.stat().unwrap().mode, S_IFDIR | 0o711);
}

#[test]
fn set_stat_owner_failure_marks_requested_bits() {
    let s = Scratch::new("setstat-owner");
    std::fs::write(s.path("f"), b"").unwrap();
    std::fs::set_permissions(s.path("f"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    let f = walk(&*root, "f");
    let r = as_unprivileged(|| {
        let mut req = set_stat_req(statx_mask::GID | statx_mask::SIZE);
        req.gid = Gid(0);
        req.uid = Uid(0);
        req.size = 1;
        f.imp.set_stat(&req)
    });
    if euid() == 0 || lstat(&s.path("f")).uid() != 0 {
        // Not the owner (or not allowed to give it away): the gid bit fails,
        // the size (writable by all) succeeds.
        assert_eq!(r.failure_mask, statx_mask::GID);
        assert_eq!(r.failure_errno, Some(Errno::EPERM));
        assert_eq!(lstat(&s.path("f")).len(), 1);
    }
}

#[test]
fn set_stat_on_symlink() {
    let s = Scratch::new("setstat-link");
    std::fs::write(s.path("target"), b"t").unwrap();
    std::os::unix::fs::symlink("target", s.path("l")).unwrap();
    let target_before = lstat(&s.path("target"));
    let fs = s.fs();
    let root = mount(&fs);
    let l = walk(&*root, "l");
    let mut req = set_stat_req(statx_mask::MODE | statx_mask::MTIME | statx_mask::SIZE);
    req.mode = 0o600;
    req.size = 0;
    req.mtime = Timespec {
        sec: 12345,
        nsec: 0,
    };
    let r = l.imp.set_stat(&req);
    assert_eq!(r.failure_mask, statx_mask::MODE | statx_mask::SIZE);
    assert!(r.failure_errno.is_some());
    // The link's own time changed, the target's did not.
    assert_eq!(lstat(&s.path("l")).mtime(), 12345);
    let target_after = lstat(&s.path("target"));
    assert_eq!(target_after.mtime(), target_before.mtime());
    assert_eq!(target_after.mode(), target_before.mode());
    assert_eq!(target_after.len(), 1);
}

#[test]
fn statfs_matches_host() {
    let s = Scratch::new("statfs");
    let fs = s.fs();
    let root = mount(&fs);
    let st = root.stat_fs().unwrap();
    let host = rustix::fs::statfs(&s.root).unwrap();
    assert_eq!(st.fs_type, host.f_type as u64);
    assert_eq!(st.block_size, host.f_bsize);
    assert_eq!(st.name_length, host.f_namelen as u64);
    assert!(st.blocks > 0);
    assert!(st.block_size > 0);
}

#[test]
fn xattr_round_trip() {
    let s = Scratch::new("xattr");
    std::fs::write(s.path("f"), b"").unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    let f = walk(&*root, "f");
    match f.imp.set_xattr(b"user.lisafs", b"hello", 0) {
        Err(Errno::EOPNOTSUPP) => {
            eprintln!(
                "skipping xattr_round_trip: the filesystem under {:?} has no user xattrs",
                s.root
            );
            return;
        }
        r => r.unwrap(),
    }
    f.imp.set_xattr(b"user.other", b"", 0).unwrap();
    // XATTR_CREATE on an existing name.
    assert_eq!(
        f.imp.set_xattr(b"user.lisafs", b"x", 1).err(),
        Some(Errno::EEXIST)
    );
    // XATTR_REPLACE of a missing name.
    assert_eq!(
        f.imp.set_xattr(b"user.none", b"x", 2).err(),
        Some(Errno::ENODATA)
    );

    let mut v = b"pre".to_vec();
    f.imp.get_xattr(b"user.lisafs", 0, &mut v).unwrap();
    assert_eq!(v, b"prehello");
    let mut v = Vec::new();
    f.imp.get_xattr(b"user.lisafs", 5, &mut v).unwrap();
    assert_eq!(v, b"hello");
    let mut v = b"keep".to_vec();
    assert_eq!(
        f.imp.get_xattr(b"user.lisafs", 2, &mut v).err(),
        Some(Errno::ERANGE)
    );
    assert_eq!(v, b"keep", "a failed get appends nothing");
    assert_eq!(
        f.imp.get_xattr(b"user.none", 0, &mut v).err(),
        Some(Errno::ENODATA)
    );

    let mut names = Vec::new();
    f.imp.list_xattr(0, &mut names).unwrap();
    names.sort();
    assert!(names.contains(&b"user.lisafs".to_vec()), "{names:?}");
    assert!(names.contains(&b"user.other".to_vec()), "{names:?}");
    let mut names = Vec::new();
    assert_eq!(f.imp.list_xattr(3, &mut names).err(), Some(Errno::ERANGE));

    f.imp.remove_xattr(b"user.lisafs").unwrap();
    assert_eq!(
        f.imp.remove_xattr(b"user.lisafs").err(),
        Some(Errno::ENODATA)
    );
    assert_eq!(
        f.imp.get_xattr(b"user.lisafs", 0, &mut v).err(),
        Some(Errno::ENODATA)
    );

    // Directories take xattrs through their (readable) FD as well.
    root.set_xattr(b"user.dir", b"d", 0).unwrap();
    let mut v = Vec::new();
    root.get_xattr(b"user.dir", 0, &mut v).unwrap();
    assert_eq!(v, b"d");
}

#[test]
fn xattr_on_symlinks_and_sockets() {
    let s = Scratch::new("xattr-opath");
    std::fs::write(s.path("target"), b"").unwrap();
    std::os::unix::fs::symlink("target", s.path("l")).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(s.path("sock")).unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    for name in ["l", "sock"] {
        // Both get O_PATH FDs, on which f*xattr would fail with EBADF.
        let c = walk(&*root, name);
        if euid() != 0 {
            // Linux keeps user.* xattrs to regular files and directories.
            assert_eq!(
                c.imp.set_xattr(b"user.x", b"v", 0).err(),
                Some(Errno::EPERM),
                "{name}"
            );
            let mut names = Vec::new();
            c.imp.list_xattr(0, &mut names).unwrap();
            continue;
        }
        match c.imp.set_xattr(b"trusted.lisafs", b"v", 0) {
            Err(Errno::EOPNOTSUPP) => {
                eprintln!("skipping: no trusted xattrs under {:?}", s.root);
                return;
            }
            r => r.unwrap_or_else(|e| panic!("{name}: {e}")),
        }
        let mut v = Vec::new();
        c.imp.get_xattr(b"trusted.lisafs", 0, &mut v).unwrap();
        assert_eq!(v, b"v");
        let mut names = Vec::new();
        c.imp.list_xattr(0, &mut names).unwrap();
        assert!(names.contains(&b"trusted.lisafs".to_vec()), "{names:?}");
        // It landed on the link itself, not on what it points to.
        let mut buf = [0u8; 8];
        assert!(rustix::fs::lgetxattr(s.path(name), "trusted.lisafs", &mut buf[..]).is_ok());
        assert!(rustix::fs::getxattr(s.path("target"), "trusted.lisafs", &mut buf[..]).is_err());
        c.imp.remove_xattr(b"trusted.lisafs").unwrap();
        assert_eq!(
            c.imp.get_xattr(b"trusted.lisafs", 0, &mut v).err(),
            Some(Errno::ENODATA)
        );
    }
}

#[test]
fn fifo_open_needs_the_option() {
    let s = Scratch::new("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("p"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    let p = walk(&*root, "p");
    assert_eq!(ftype(&p.stat), S_IFIFO);
    assert_eq!(p.imp.open(O_RDWR).err(), Some(Errno::EPERM));

    let fs = s.fs_with(HostOptions {
        host_fifo_open: true,
        ..HostOptions::default()
    });
    let root = mount(&fs);
    let p = walk(&*root, "p");
    // O_RDWR does not wait for a peer.
    let open = p.imp.open(O_RDWR).unwrap();
    assert!(open.donate.is_some(), "FIFOs are always donated");
    drop(open);

    // Nor does O_RDONLY with no writer: a blocking open would park the
    // connection's thread until one appeared (found by fuzzing).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(p.imp.open(O_RDONLY).map(|o| o.donate.is_some()));
    });
    let opened = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("O_RDONLY open of a FIFO blocked");
    assert_eq!(opened, Ok(true));
}

#[test]
fn block_devices_are_not_served() {
    let s = Scratch::new("blkdev");
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("b"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(7, 200),
    );
    if made.is_err() {
        eprintln!("skipping block_devices_are_not_served: cannot mknod a block device here");
        return;
    }
    let fs = s.fs();
    let root = mount(&fs);
    assert_eq!(root.walk(b"b").err(), Some(Errno::EPERM));
    assert_eq!(walk_stat(&*root, &[b"b"]).err(), Some(Errno::EPERM));
}
