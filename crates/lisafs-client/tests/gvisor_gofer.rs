//! Our client against gVisor's OWN host-backed LISAFS server.
//!
//! Each test starts `gvisor-gofer --root <scratch> --fd N`
//! (`interop/cmd/gvisor-gofer`: `runsc/fsgofer` on a `pkg/lisafs` server),
//! mounts over the other end of a socketpair, runs one scenario, checks
//! every result against the host filesystem, then disconnects and expects
//! the program to exit 0. Where our expectations and gVisor's server could
//! differ, the assertions follow gVisor's server (upstream wins).
//!
//! The binary is `$LISAFS_GVISOR_GOFER`, else `<workspace>/target/gvisor-gofer`
//! (`scripts/test.sh` builds it); without it every test FAILS. Must run as
//! root, like runsc's gofer.

mod common;
mod gofer;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};

use gofer::*;
use lisafs_client::{statx_mask, FdId, Mid, SetStatReq, Timespec, WalkStatus};
use lisafs_wire::errno::*;

const MIB: usize = 1 << 20;

#[test]
fn mount() {
    let g = Gofer::start("mount", |_| {});
    let c = g.client();
    let root = c.root();
    assert_eq!(ftype(&root.stat), S_IFDIR);
    assert_same_file(&root.stat, &g.scratch.root);
    assert_ne!(root.control_fd, FdId::INVALID);

    // gVisor's MaxMessageSize (HugePageSize − PageSize): under 3 MiB, so
    // the 3 MiB transfers below really are chunked.
    let max = c.max_message_size();
    assert!(
        (MIB as u32..3 * MIB as u32).contains(&max),
        "max_message_size {max}"
    );
    // fsgofer lists every standard MID except Error and Flush.
    for m in 1..=Mid::MAX_STANDARD.0 {
        assert_eq!(c.supports(Mid(m)), m != Mid::FLUSH.0, "MID {m}");
    }
    assert!(!c.supports(Mid::ERROR));
    // Directfs is off in gvisor-gofer: no mount point FD is donated.
    assert!(c.take_mount_fd().is_none());

    let st = c.fstat(root.control_fd).unwrap();
    assert_same_file(&st, &g.scratch.root);
    assert_eq!(st.mask & statx_mask::BASIC_STATS, statx_mask::BASIC_STATS);
    let ws = c.walk_stat(root.control_fd, &[b""]).unwrap();
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0].ino, root.stat.ino);

    // The root directory opens read-only (no donation for directories).
    let (dir_fd, donated) = c.open_at(root.control_fd, O_RDONLY).unwrap();
    assert!(donated.is_none());
    // Flush is not advertised: a local no-op.
    c.flush(dir_fd).unwrap();
    c.close(&[dir_fd]).unwrap();
    g.finish();
}

#[test]
fn walk() {
    let g = Gofer::start("walk", |s| {
        std::fs::create_dir_all(s.path("a/b/c")).unwrap();
        std::fs::write(s.path("a/b/c/file"), b"x").unwrap();
        std::os::unix::fs::symlink("a", s.path("link")).unwrap();
        std::os::unix::fs::symlink("nowhere", s.path("a/dangling")).unwrap();
    });
    let c = g.client();
    let root = g.root();
    let mut fds = Vec::new();

    // Multi-component, every step checked against the host.
    let (status, inodes) = c.walk(root, &[b"a", b"b", b"c", b"file"]).unwrap();
    assert_eq!(status, WalkStatus::Success);
    assert_eq!(inodes.len(), 4);
    for (inode, rel) in inodes.iter().zip(["a", "a/b", "a/b/c", "a/b/c/file"]) {
        assert_same_file(&inode.stat, &g.path(rel));
    }
    assert_eq!(ftype(&inodes[3].stat), S_IFREG);
    let file = inodes[3].control_fd;
    let dir_c = inodes[2].control_fd;
    fds.extend(inodes.iter().map(|i| i.control_fd));

    // Missing component: the prefix walked so far, status 1.
    let (status, inodes) = c.walk(root, &[b"a", b"missing", b"x"]).unwrap();
    assert_eq!(status, WalkStatus::ComponentDoesNotExist);
    assert_eq!(inodes.len(), 1);
    assert_same_file(&inodes[0].stat, &g.path("a"));
    fds.extend(inodes.iter().map(|i| i.control_fd));
    let (status, inodes) = c.walk(root, &[b"missing"]).unwrap();
    assert_eq!(
        (status, inodes.len()),
        (WalkStatus::ComponentDoesNotExist, 0)
    );

    // A symlink with components after it: returned, never followed.
    let (status, inodes) = c.walk(root, &[b"link", b"b"]).unwrap();
    assert_eq!(status, WalkStatus::ComponentSymlink);
    assert_eq!(inodes.len(), 1);
    assert_eq!(ftype(&inodes[0].stat), S_IFLNK);
    assert_same_file(&inodes[0].stat, &g.path("link"));
    fds.extend(inodes.iter().map(|i| i.control_fd));
    // A symlink as the last component: plain success.
    let (status, inodes) = c.walk(root, &[b"a", b"dangling"]).unwrap();
    assert_eq!((status, inodes.len()), (WalkStatus::Success, 2));
    assert_eq!(ftype(&inodes[1].stat), S_IFLNK);
    assert_same_file(&inodes[1].stat, &g.path("a/dangling"));
    fds.extend(inodes.iter().map(|i| i.control_fd));

    // From an inner directory, and the empty walk.
    let (status, inodes) = c.walk(dir_c, &[b"file"]).unwrap();
    assert_eq!((status, inodes.len()), (WalkStatus::Success, 1));
    assert_eq!(inodes[0].stat.ino, host_ino(&g.path("a/b/c/file")));
    fds.push(inodes[0].control_fd);
    let (status, inodes) = c.walk(root, &[]).unwrap();
    assert_eq!((status, inodes.len()), (WalkStatus::Success, 0));

    // Walking through a regular file: the host's ENOTDIR fails the RPC.
    assert_errno!(c.walk(root, &[b"a", b"b", b"c", b"file", b"x"]), ENOTDIR);
    // Starting at a non-directory: the handler's ENOTDIR.
    assert_errno!(c.walk(file, &[b"x"]), ENOTDIR);

    // WalkStat stops silently at the missing component.
    let stats = c.walk_stat(root, &[b"a", b"b", b"nope", b"x"]).unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[1].ino, host_ino(&g.path("a/b")));

    c.close(&fds).unwrap();
    // Closed FDIDs are gone.
    assert_errno!(c.fstat(file), EBADF);
    g.finish();
}

#[test]
fn create_write_read() {
    let g = Gofer::start("rw", |_| {});
    let c = g.client();
    let root = g.root();
    let path = g.path("new");

    // Mode 0666 arrives intact: the server runs with umask 0, whatever the
    // test process's umask is.
    let (child, fd, donated) = c
        .open_create_at(root, b"new", 0o666, NO_UID, NO_GID, O_RDWR)
        .unwrap();
    assert_eq!(child.stat.mode, S_IFREG | 0o666);
    assert_same_file(&child.stat, &path);
    assert_eq!(host_mode(&path), u32::from(S_IFREG | 0o666));
    assert_eq!(child.stat.size, 0);
    // fsgofer always donates a dup of the new open FD.
    let donated = File::from(donated.expect("OpenCreateAt donates a host FD"));

    // Small I/O, and reads at and past the end of file.
    assert_eq!(c.pwrite(fd, 0, b"hello world").unwrap(), 11);
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    let mut buf = [0u8; 100];
    assert_eq!(c.pread(fd, 0, &mut buf[..11]).unwrap(), 11);
    assert_eq!(&buf[..11], b"hello world");
    assert_eq!(c.pread(fd, 6, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"world");
    assert_eq!(c.pread(fd, 11, &mut buf).unwrap(), 0);
    assert_eq!(c.pread(fd, 1 << 40, &mut buf).unwrap(), 0);

    // 3 MiB through PWrite/PRead chunking (max_message_size is < 3 MiB).
    assert!((c.max_message_size() as usize) < 3 * MIB);
    let big = pattern(3 * MIB, 0x5a);
    assert_eq!(c.pwrite(fd, 0, &big).unwrap(), big.len() as u64);
    assert!(std::fs::read(&path).unwrap() == big, "host sees the 3 MiB");
    let mut back = vec![0u8; 3 * MIB + 100];
    assert_eq!(c.pread(fd, 0, &mut back).unwrap(), 3 * MIB);
    assert!(back[..3 * MIB] == big[..], "3 MiB read back over RPC");
    // A read straddling a chunk boundary at an odd offset.
    let off = c.max_message_size() as usize - 1000;
    let mut mid = vec![0u8; 5000];
    assert_eq!(c.pread(fd, off as u64, &mut mid).unwrap(), 5000);
    assert!(mid[..] == big[off..off + 5000]);
    assert_eq!(c.fstat(fd).unwrap().size, big.len() as u64);

    // The donated host FD is the same open file.
    let mut direct = vec![0u8; 3 * MIB];
    donated.read_exact_at(&mut direct, 0).unwrap();
    assert!(direct == big, "3 MiB read through the donated FD");
    let big2 = pattern(3 * MIB, 0xa5);
    donated.write_all_at(&big2, 0).unwrap();
    assert_eq!(c.pread(fd, 0, &mut back[..3 * MIB]).unwrap(), 3 * MIB);
    assert!(back[..3 * MIB] == big2[..], "RPC read of a direct write");
    assert!(std::fs::read(&path).unwrap() == big2);
    drop(donated);
    c.fsync(&[fd]).unwrap();

    // OpenAt on an existing regular file donates too (best effort dup).
    let (ro, ro_host) = c.open_at(child.control_fd, O_RDONLY).unwrap();
    let ro_host = File::from(ro_host.expect("OpenAt of a regular file donates a host FD"));
    let mut head = [0u8; 64];
    ro_host.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head[..], big2[..64]);
    assert_errno!(c.pwrite(ro, 0, b"x"), EBADF);
    assert_eq!(c.pread(ro, 0, &mut head).unwrap(), 64);

    // O_TRUNC through OpenAt; a write-only FD cannot be read.
    let (wo, _) = c.open_at(child.control_fd, O_WRONLY | O_TRUNC).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert_errno!(c.pread(wo, 0, &mut head), EBADF);
    assert_eq!(c.pwrite(wo, 0, b"tail").unwrap(), 4);
    assert_eq!(std::fs::read(&path).unwrap(), b"tail");

    c.close(&[fd, ro, wo, child.control_fd]).unwrap();
    g.finish();
}

#[test]
fn getdents() {
    const FILES: usize = 200;
    let g = Gofer::start("dents", |s| {
        std::fs::create_dir(s.path("d")).unwrap();
        for i in 0..FILES {
            std::fs::write(s.path(&format!("d/f{i:03}")), b"").unwrap();
        }
        std::fs::create_dir(s.path("d/sub")).unwrap();
        std::os::unix::fs::symlink("f000", s.path("d/lnk")).unwrap();
    });
    let c = g.client();
    let dir = g.walk("d");
    let (fd, donated) = c.open_at(dir.control_fd, O_RDONLY).unwrap();
    assert!(donated.is_none(), "no donation for directories");

    // The host's view: name -> (ino, DT_*, dev).
    let mut host = BTreeMap::new();
    for e in std::fs::read_dir(g.path("d")).unwrap() {
        let e = e.unwrap();
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        let ty = match m.file_type() {
            t if t.is_dir() => DT_DIR,
            t if t.is_symlink() => DT_LNK,
            _ => DT_REG,
        };
        host.insert(
            e.file_name().into_encoded_bytes(),
            (
                m.ino(),
                ty,
                rustix::fs::major(m.dev()),
                rustix::fs::minor(m.dev()),
            ),
        );
    }
    assert_eq!(host.len(), FILES + 2);

    // Small budgets: several calls, then an empty reply at the end.
    let mut seen = BTreeMap::new();
    let mut calls = 0;
    let mut first_batch = Vec::new();
    loop {
        let batch = c.getdents64(fd, 1024).unwrap();
        if batch.is_empty() {
            break;
        }
        calls += 1;
        assert!(calls < 100, "getdents never ends");
        if first_batch.is_empty() {
            first_batch = batch.iter().map(|d| d.name.clone()).collect();
        }
        for d in batch {
            assert!(d.name != b"." && d.name != b"..", "dot entries are skipped");
            let dup = seen.insert(d.name.clone(), (d.ino, d.ty, d.dev_major, d.dev_minor));
            assert!(
                dup.is_none(),
                "{:?} listed twice",
                String::from_utf8_lossy(&d.name)
            );
        }
    }
    assert!(
        calls >= 4,
        "a 1 KiB budget takes several calls, took {calls}"
    );
    assert_eq!(seen, host);
    assert!(
        c.getdents64(fd, 1024).unwrap().is_empty(),
        "still at the end"
    );

    // A negative count seeks to 0 first.
    let again = c.getdents64(fd, -1024).unwrap();
    let names: Vec<_> = again.iter().map(|d| d.name.clone()).collect();
    assert_eq!(names, first_batch);
    // The Go client's budget: everything at once after a rewind.
    let all = c.getdents64(fd, -65536).unwrap();
    assert_eq!(all.len(), FILES + 2);
    let all: BTreeSet<_> = all.into_iter().map(|d| d.name).collect();
    assert_eq!(all, host.keys().cloned().collect::<BTreeSet<_>>());

    // Not a directory; and directories only open read-only.
    let file = g.walk("d/f000");
    let (file_fd, _) = c.open_at(file.control_fd, O_RDONLY).unwrap();
    assert_errno!(c.getdents64(file_fd, 1024), ENOTDIR);
    assert_errno!(c.open_at(dir.control_fd, O_WRONLY), EISDIR);
    assert_errno!(c.open_at(dir.control_fd, O_RDONLY | O_TRUNC), EISDIR);

    c.close(&[fd, file_fd, file.control_fd, dir.control_fd])
        .unwrap();
    g.finish();
}

#[test]
fn rename() {
    let g = Gofer::start("rename", |s| {
        std::fs::create_dir(s.path("a")).unwrap();
        std::fs::create_dir(s.path("b")).unwrap();
        std::fs::write(s.path("a/f"), b"one").unwrap();
        std::fs::write(s.path("a/x"), b"two").unwrap();
        std::fs::write(s.path("b/y"), b"three").unwrap();
        std::fs::write(s.path("a/p"), b"P").unwrap();
        std::fs::write(s.path("b/q"), b"Q").unwrap();
    });
    let c = g.client();
    let a = g.walk("a").control_fd;
    let b = g.walk("b").control_fd;
    let f = g.walk("a/f");
    let read = |rel: &str| std::fs::read(g.path(rel)).unwrap();

    // Across directories; the moved node keeps working under its new name.
    c.rename_at(a, b"f", b, b"g").unwrap();
    assert!(!g.path("a/f").exists());
    assert_eq!(read("b/g"), b"one");
    assert_eq!(c.fstat(f.control_fd).unwrap().ino, host_ino(&g.path("b/g")));
    // LinkAt is path-based in fsgofer: it only works if the server moved
    // the node in its tree.
    let hl = c.link_at(a, f.control_fd, b"hl").unwrap();
    assert_eq!(host_ino(&g.path("a/hl")), host_ino(&g.path("b/g")));
    assert_eq!(std::fs::metadata(g.path("b/g")).unwrap().nlink(), 2);

    // Replacing an existing destination.
    c.rename_at(a, b"x", b, b"y").unwrap();
    assert!(!g.path("a/x").exists());
    assert_eq!(read("b/y"), b"two");

    // Same directory.
    c.rename_at(b, b"y", b, b"y2").unwrap();
    assert_eq!(read("b/y2"), b"two");
    assert!(!g.path("b/y").exists());

    assert_errno!(c.rename_at(a, b"missing", b, b"z"), ENOENT);
    assert_errno!(c.rename_at(a, b"..", b, b"z"), EINVAL);
    assert_errno!(c.rename_at(a, b"p", b, b"."), EINVAL);
    assert_errno!(c.rename_at(f.control_fd, b"p", b, b"z"), ENOTDIR);
    // A directory into its own subtree: the host's EINVAL.
    assert_errno!(c.rename_at(g.root(), b"a", a, b"inner"), EINVAL);

    if c.supports(Mid::RENAME_AT2) {
        c.rename_at2(a, b"p", b, b"q", RENAME_EXCHANGE).unwrap();
        assert_eq!(read("a/p"), b"Q");
        assert_eq!(read("b/q"), b"P");
        assert_errno!(c.rename_at2(a, b"p", b, b"q", RENAME_NOREPLACE), EEXIST);
        assert_errno!(
            c.rename_at2(a, b"p", b, b"nothing", RENAME_EXCHANGE),
            ENOENT
        );
        c.rename_at2(a, b"p", b, b"fresh", RENAME_NOREPLACE)
            .unwrap();
        assert_eq!(read("b/fresh"), b"Q");
        assert!(!g.path("a/p").exists());
    } else {
        // Not advertised: refused locally, as gVisor's client does.
        assert_errno!(c.rename_at2(a, b"p", b, b"q", RENAME_EXCHANGE), EINVAL);
    }

    c.close(&[a, b, f.control_fd, hl.control_fd]).unwrap();
    g.finish();
}

#[test]
fn unlink() {
    let g = Gofer::start("unlink", |s| {
        std::fs::write(s.path("f"), b"f").unwrap();
        std::fs::write(s.path("w"), b"walked").unwrap();
        std::fs::create_dir(s.path("d")).unwrap();
        std::fs::create_dir(s.path("full")).unwrap();
        std::fs::write(s.path("full/inner"), b"").unwrap();
    });
    let c = g.client();
    let root = g.root();

    c.unlink_at(root, b"f", 0).unwrap();
    assert!(!g.path("f").exists());
    assert_errno!(c.unlink_at(root, b"f", 0), ENOENT);

    // A directory needs AT_REMOVEDIR (host EISDIR), and must be empty.
    assert_errno!(c.unlink_at(root, b"d", 0), EISDIR);
    c.unlink_at(root, b"d", AT_REMOVEDIR).unwrap();
    assert!(!g.path("d").exists());
    assert_errno!(c.unlink_at(root, b"full", AT_REMOVEDIR), ENOTEMPTY);
    assert!(g.path("full/inner").exists());
    assert_errno!(c.unlink_at(root, b"full/inner", 0), EINVAL);
    assert_errno!(c.unlink_at(root, b"..", AT_REMOVEDIR), EINVAL);

    // A walked file, unlinked: its control FD still stats (no deleted
    // check on FStat) and shows no links.
    let w = g.walk("w");
    assert_errno!(c.unlink_at(w.control_fd, b"x", 0), ENOTDIR);
    c.unlink_at(root, b"w", 0).unwrap();
    assert!(!g.path("w").exists());
    let st = c.fstat(w.control_fd).unwrap();
    assert_eq!((st.ino, st.nlink), (w.stat.ino, 0));
    // ...and a name that reappears on the host is a new file.
    std::fs::write(g.path("w"), b"again").unwrap();
    let w2 = g.walk("w");
    assert_ne!(w2.stat.ino, w.stat.ino);

    let full = g.walk("full").control_fd;
    c.unlink_at(full, b"inner", 0).unwrap();
    c.unlink_at(root, b"full", AT_REMOVEDIR).unwrap();
    assert!(!g.path("full").exists());

    c.close(&[w.control_fd, w2.control_fd, full]).unwrap();
    g.finish();
}

#[test]
fn xattr() {
    let g = Gofer::start("xattr", |s| {
        std::fs::write(s.path("x"), b"x").unwrap();
        std::fs::create_dir(s.path("d")).unwrap();
        std::os::unix::fs::symlink("x", s.path("l")).unwrap();
    });
    let c = g.client();
    let x = g.walk("x").control_fd;
    let name = b"user.lisafs";

    match c.fset_xattr(x, name, b"value-1", 0) {
        Ok(()) => {}
        Err(lisafs_client::Error::Errno(EOPNOTSUPP)) => {
            // The host FS has no user xattrs: that errno, from the host.
            let host = rustix::fs::setxattr(
                g.path("x"),
                "user.probe",
                b"v",
                rustix::fs::XattrFlags::empty(),
            );
            assert_eq!(host, Err(rustix::io::Errno::OPNOTSUPP));
            assert_errno!(c.fget_xattr(x, name, 0), EOPNOTSUPP);
            c.close(&[x]).unwrap();
            g.finish();
            return;
        }
        Err(e) => panic!("FSetXattr: {e}"),
    }
    let host_get = |rel: &str, n: &str| {
        let mut buf = vec![0u8; 256];
        rustix::fs::getxattr(g.path(rel), n, &mut buf[..]).map(|len| buf[..len].to_vec())
    };
    assert_eq!(host_get("x", "user.lisafs").unwrap(), b"value-1");
    assert_eq!(c.fget_xattr(x, name, 0).unwrap(), b"value-1");
    assert_eq!(c.fget_xattr(x, name, 64).unwrap(), b"value-1");
    assert_errno!(c.fget_xattr(x, name, 3), ERANGE);
    assert!(c.flist_xattr(x, 0).unwrap().contains(&name.to_vec()));

    assert_errno!(c.fset_xattr(x, name, b"v", XATTR_CREATE), EEXIST);
    c.fset_xattr(x, name, b"value-2", XATTR_REPLACE).unwrap();
    assert_eq!(host_get("x", "user.lisafs").unwrap(), b"value-2");
    assert_errno!(c.fset_xattr(x, b"user.none", b"v", XATTR_REPLACE), ENODATA);
    // An empty value is a value.
    c.fset_xattr(x, b"user.empty", b"", 0).unwrap();
    assert_eq!(c.fget_xattr(x, b"user.empty", 0).unwrap(), b"");

    c.fremove_xattr(x, name).unwrap();
    assert_eq!(host_get("x", "user.lisafs"), Err(rustix::io::Errno::NODATA));
    assert_errno!(c.fget_xattr(x, name, 0), ENODATA);
    assert_errno!(c.fremove_xattr(x, name), ENODATA);
    let names = c.flist_xattr(x, 0).unwrap();
    assert!(!names.contains(&name.to_vec()), "{names:?}");
    assert!(names.contains(&b"user.empty".to_vec()));

    // Set on the host, seen through a directory's control FD.
    rustix::fs::setxattr(
        g.path("d"),
        "user.host",
        b"from-host",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let d = g.walk("d").control_fd;
    assert_eq!(c.fget_xattr(d, b"user.host", 0).unwrap(), b"from-host");
    assert_eq!(c.flist_xattr(d, 0).unwrap(), vec![b"user.host".to_vec()]);

    // Symlinks go through the path-based l*xattr calls; Linux refuses
    // user.* on symlinks (EPERM to set, ENODATA to get).
    let (_, inodes) = c.walk(g.root(), &[b"l"]).unwrap();
    let l = inodes[0].control_fd;
    assert_errno!(c.fset_xattr(l, name, b"v", 0), EPERM);
    assert_errno!(c.fget_xattr(l, name, 0), ENODATA);
    assert!(
        host_get("x", "user.lisafs").is_err(),
        "not set through the link"
    );

    c.close(&[x, d, l]).unwrap();
    g.finish();
}

#[test]
fn statfs() {
    let g = Gofer::start("statfs", |s| {
        std::fs::write(s.path("f"), b"f").unwrap();
    });
    let c = g.client();
    let before = rustix::fs::statvfs(&g.scratch.root).unwrap();
    let sfs = c.fstatfs(g.root()).unwrap();
    let after = rustix::fs::statvfs(&g.scratch.root).unwrap();
    let host = rustix::fs::statfs(&g.scratch.root).unwrap();

    assert_eq!(sfs.fs_type, host.f_type as u64);
    assert_eq!(sfs.block_size, host.f_bsize as i64);
    assert_eq!(sfs.block_size as u64, before.f_bsize);
    assert_eq!(sfs.blocks, before.f_blocks);
    assert_eq!(sfs.files, before.f_files);
    assert_eq!(sfs.name_length, before.f_namemax);
    // Free counts move with whatever else runs on the machine: within the
    // host's before/after range, plus slack.
    let within = |v: u64, a: u64, b: u64, slack: u64, what: &str| {
        let (lo, hi) = (a.min(b).saturating_sub(slack), a.max(b) + slack);
        assert!((lo..=hi).contains(&v), "{what}: {v} not in {lo}..={hi}");
    };
    let block_slack = (256 * MIB as u64) / before.f_bsize.max(1);
    within(
        sfs.blocks_free,
        before.f_bfree,
        after.f_bfree,
        block_slack,
        "bfree",
    );
    within(
        sfs.blocks_available,
        before.f_bavail,
        after.f_bavail,
        block_slack,
        "bavail",
    );
    within(
        sfs.files_free,
        before.f_ffree,
        after.f_ffree,
        10_000,
        "ffree",
    );
    assert!(sfs.blocks_available <= sfs.blocks_free && sfs.blocks_free <= sfs.blocks);

    // Any control FD; an open FD is the wrong kind.
    let f = g.walk("f");
    assert_eq!(c.fstatfs(f.control_fd).unwrap().fs_type, sfs.fs_type);
    let (open, _) = c.open_at(f.control_fd, O_RDONLY).unwrap();
    assert_errno!(c.fstatfs(open), EINVAL);
    c.close(&[f.control_fd, open]).unwrap();
    g.finish();
}

#[test]
fn mkdir_symlink_readlink_link() {
    let g = Gofer::start("mkdir", |s| {
        std::fs::write(s.path("f"), b"data").unwrap();
    });
    let c = g.client();
    let root = g.root();

    let d = c.mkdir_at(root, b"d", 0o750, NO_UID, NO_GID).unwrap();
    assert_eq!(d.stat.mode, S_IFDIR | 0o750, "no server umask");
    assert_same_file(&d.stat, &g.path("d"));
    assert_errno!(c.mkdir_at(root, b"d", 0o755, NO_UID, NO_GID), EEXIST);
    let e = c
        .mkdir_at(d.control_fd, b"e", 0o700, NO_UID, NO_GID)
        .unwrap();
    assert_same_file(&e.stat, &g.path("d/e"));
    // Owner given explicitly (the tests run as root).
    let o = c
        .mkdir_at(
            d.control_fd,
            b"owned",
            0o755,
            lisafs_client::Uid(4321),
            lisafs_client::Gid(8765),
        )
        .unwrap();
    let m = std::fs::metadata(g.path("d/owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 8765));
    assert_eq!((o.stat.uid, o.stat.gid), (4321, 8765));

    // Symlink targets are arbitrary bytes, stored as given.
    let target = b"../target/../x";
    let s = c
        .symlink_at(d.control_fd, b"s", target, NO_UID, NO_GID)
        .unwrap();
    assert_eq!(ftype(&s.stat), S_IFLNK);
    assert_same_file(&s.stat, &g.path("d/s"));
    assert_eq!(
        std::fs::read_link(g.path("d/s"))
            .unwrap()
            .as_os_str()
            .as_encoded_bytes(),
        target
    );
    assert_eq!(c.readlink_at(s.control_fd).unwrap(), target);
    assert_errno!(
        c.symlink_at(d.control_fd, b"s", b"y", NO_UID, NO_GID),
        EEXIST
    );
    // A target longer than fsgofer's first 128-byte buffer.
    let long: Vec<u8> = (0..1000).map(|i| b'a' + (i % 26) as u8).collect();
    let sl = c.symlink_at(root, b"long", &long, NO_UID, NO_GID).unwrap();
    assert_eq!(c.readlink_at(sl.control_fd).unwrap(), long);
    // A host-made symlink reads the same.
    std::os::unix::fs::symlink("/abs/elsewhere", g.path("hostlink")).unwrap();
    let (_, hl) = c.walk(root, &[b"hostlink"]).unwrap();
    assert_eq!(c.readlink_at(hl[0].control_fd).unwrap(), b"/abs/elsewhere");
    assert_errno!(c.readlink_at(d.control_fd), EINVAL);

    // Hard link of a walked file into another directory.
    let f = g.walk("f");
    let h = c.link_at(d.control_fd, f.control_fd, b"h").unwrap();
    assert_eq!(h.stat.ino, f.stat.ino);
    assert_eq!(h.stat.nlink, 2);
    assert_same_file(&h.stat, &g.path("d/h"));
    assert_eq!(std::fs::metadata(g.path("f")).unwrap().nlink(), 2);
    assert_eq!(std::fs::read(g.path("d/h")).unwrap(), b"data");
    assert_errno!(c.link_at(d.control_fd, f.control_fd, b"h"), EEXIST);
    assert_errno!(c.link_at(root, d.control_fd, b"dirlink"), EPERM);
    assert_errno!(c.link_at(f.control_fd, f.control_fd, b"x"), ENOTDIR);

    let ids = [d, e, o, s, sl, hl[0], f, h].map(|i| i.control_fd);
    c.close(&ids).unwrap();
    g.finish();
}

#[test]
fn set_stat() {
    let g = Gofer::start("setstat", |s| {
        std::fs::write(s.path("f"), [7u8; 100]).unwrap();
        std::fs::set_permissions(s.path("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir(s.path("d")).unwrap();
        std::os::unix::fs::symlink("f", s.path("l")).unwrap();
    });
    let c = g.client();
    let f = g.walk("f").control_fd;
    let req = |mask: u32| SetStatReq {
        fd: f,
        mask,
        ..SetStatReq::default()
    };
    let meta = || std::fs::symlink_metadata(g.path("f")).unwrap();

    assert_eq!(
        c.set_stat(&SetStatReq {
            mode: 0o600,
            ..req(statx_mask::MODE)
        })
        .unwrap(),
        (0, 0)
    );
    assert_eq!(meta().mode(), u32::from(S_IFREG) | 0o600);

    assert_eq!(
        c.set_stat(&SetStatReq {
            size: 10,
            ..req(statx_mask::SIZE)
        })
        .unwrap(),
        (0, 0)
    );
    assert_eq!(meta().len(), 10);
    assert_eq!(std::fs::read(g.path("f")).unwrap(), [7u8; 10]);

    // Mode and size together; growing fills with zeros.
    let both = SetStatReq {
        mode: 0o1711,
        size: 5000,
        ..req(statx_mask::MODE | statx_mask::SIZE)
    };
    assert_eq!(c.set_stat(&both).unwrap(), (0, 0));
    let m = meta();
    assert_eq!((m.mode(), m.len()), (u32::from(S_IFREG) | 0o1711, 5000));
    let st = c.fstat(f).unwrap();
    assert_eq!((st.mode, st.size), (S_IFREG | 0o1711, 5000));

    // Exact times.
    let times = SetStatReq {
        atime: Timespec {
            sec: 1_000_000_000,
            nsec: 123_456_789,
        },
        mtime: Timespec {
            sec: 1_500_000_000,
            nsec: 987_654_321,
        },
        ..req(statx_mask::ATIME | statx_mask::MTIME)
    };
    assert_eq!(c.set_stat(&times).unwrap(), (0, 0));
    let m = meta();
    assert_eq!((m.atime(), m.atime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_500_000_000, 987_654_321));
    let st = c.fstat(f).unwrap();
    assert_eq!((st.mtime.sec, st.mtime.nsec), (1_500_000_000, 987_654_321));

    // Owner (root may chown).
    let own = SetStatReq {
        uid: lisafs_client::Uid(1234),
        gid: lisafs_client::Gid(5678),
        ..req(statx_mask::UID | statx_mask::GID)
    };
    assert_eq!(c.set_stat(&own).unwrap(), (0, 0));
    let m = meta();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));

    // A directory's mode.
    let d = g.walk("d").control_fd;
    let dm = SetStatReq {
        fd: d,
        mode: 0o701,
        ..req(statx_mask::MODE)
    };
    assert_eq!(c.set_stat(&dm).unwrap(), (0, 0));
    assert_eq!(
        std::fs::metadata(g.path("d")).unwrap().mode(),
        u32::from(S_IFDIR) | 0o701
    );

    // A symlink's mode cannot change: a partial failure, not an error.
    let (_, l) = c.walk(g.root(), &[b"l"]).unwrap();
    let lm = SetStatReq {
        fd: l[0].control_fd,
        mode: 0o600,
        ..req(statx_mask::MODE)
    };
    assert_eq!(c.set_stat(&lm).unwrap(), (statx_mask::MODE, EOPNOTSUPP));
    assert_eq!(
        meta().mode(),
        u32::from(S_IFREG) | 0o1711,
        "target untouched"
    );

    // Unsettable bits: EPERM before anything is applied.
    assert_errno!(
        c.set_stat(&SetStatReq {
            mode: 0o600,
            ..req(statx_mask::MODE | statx_mask::NLINK)
        }),
        EPERM
    );
    assert_eq!(meta().mode(), u32::from(S_IFREG) | 0o1711);
    // An open FD is the wrong kind.
    let (open, _) = c.open_at(f, O_RDONLY).unwrap();
    assert_errno!(
        c.set_stat(&SetStatReq {
            fd: open,
            ..req(statx_mask::MODE)
        }),
        EINVAL
    );

    c.close(&[f, d, l[0].control_fd, open]).unwrap();
    g.finish();
}

#[test]
fn errors() {
    let g = Gofer::start("errors", |s| {
        std::fs::write(s.path("f"), b"f").unwrap();
        std::fs::create_dir(s.path("d")).unwrap();
    });
    let c = g.client();
    let root = g.root();
    let f = g.walk("f").control_fd;

    // EEXIST: exclusive creation over existing names.
    assert_errno!(
        c.open_create_at(root, b"f", 0o644, NO_UID, NO_GID, O_RDWR),
        EEXIST
    );
    assert_errno!(
        c.open_create_at(root, b"d", 0o644, NO_UID, NO_GID, O_RDWR),
        EEXIST
    );
    assert_errno!(c.mkdir_at(root, b"f", 0o755, NO_UID, NO_GID), EEXIST);
    assert_errno!(c.symlink_at(root, b"d", b"t", NO_UID, NO_GID), EEXIST);
    assert_eq!(std::fs::read(g.path("f")).unwrap(), b"f", "untouched");

    // ENOENT.
    assert_errno!(c.unlink_at(root, b"missing", 0), ENOENT);
    assert_errno!(c.rename_at(root, b"missing", root, b"other"), ENOENT);

    // ENOTDIR: a file where a directory is needed.
    assert_errno!(c.walk(f, &[b"x"]), ENOTDIR);
    assert_errno!(
        c.open_create_at(f, b"x", 0o644, NO_UID, NO_GID, O_RDWR),
        ENOTDIR
    );
    assert_errno!(c.mkdir_at(f, b"x", 0o755, NO_UID, NO_GID), ENOTDIR);
    assert_errno!(c.symlink_at(f, b"x", b"t", NO_UID, NO_GID), ENOTDIR);
    assert_errno!(c.walk_stat(f, &[b"x"]), ENOTDIR);

    // EINVAL: names that are not single components.
    for bad in [&b".."[..], b".", b"", b"a/b"] {
        assert_errno!(c.walk(root, &[bad]), EINVAL);
        assert_errno!(c.mkdir_at(root, bad, 0o755, NO_UID, NO_GID), EINVAL);
        assert_errno!(
            c.open_create_at(root, bad, 0o644, NO_UID, NO_GID, O_RDWR),
            EINVAL
        );
        assert_errno!(c.symlink_at(root, bad, b"t", NO_UID, NO_GID), EINVAL);
        assert_errno!(c.link_at(root, f, bad), EINVAL);
    }
    assert_errno!(c.walk(root, &[b"d", b".."]), EINVAL);
    // EINVAL: the wrong FD kind, and readlink of a non-symlink.
    let mut buf = [0u8; 8];
    assert_errno!(c.pread(f, 0, &mut buf), EINVAL);
    assert_errno!(c.pwrite(f, 0, b"x"), EINVAL);
    assert_errno!(c.readlink_at(f), EINVAL);

    // EBADF: FDIDs the server never handed out.
    let unknown = FdId(987_654);
    assert_errno!(c.fstat(unknown), EBADF);
    assert_errno!(c.walk(unknown, &[b"f"]), EBADF);
    assert_errno!(c.open_at(unknown, O_RDONLY), EBADF);
    assert_errno!(c.pread(unknown, 0, &mut buf), EBADF);
    assert_errno!(c.pwrite(unknown, 0, b"x"), EBADF);
    assert_errno!(c.getdents64(unknown, 1024), EBADF);
    assert_errno!(c.fstatfs(unknown), EBADF);
    assert_errno!(c.fget_xattr(unknown, b"user.x", 0), EBADF);
    assert_errno!(c.unlink_at(unknown, b"f", 0), EBADF);
    assert_errno!(c.fsync(&[unknown]), EBADF);
    // Close ignores unknown FDIDs.
    c.close(&[unknown]).unwrap();

    // No side effects on the host from any of the above.
    let mut names: Vec<_> = std::fs::read_dir(&g.scratch.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["d", "f"]);

    // The connection is still healthy after all those errors.
    assert_eq!(c.fstat(f).unwrap().ino, host_ino(&g.path("f")));
    c.close(&[f]).unwrap();
    g.finish();
}

#[test]
fn concurrent_callers() {
    let g = Gofer::start("threads", |s| {
        for i in 0..4 {
            std::fs::write(s.path(&format!("t{i}")), pattern(64 * 1024, i as u8)).unwrap();
        }
    });
    let c = g.client();
    std::thread::scope(|scope| {
        for i in 0..4u8 {
            let g = &g;
            scope.spawn(move || {
                let name = format!("t{i}");
                let want = pattern(64 * 1024, i);
                for _ in 0..20 {
                    let node = g.walk(&name);
                    let (fd, _) = c.open_at(node.control_fd, O_RDONLY).unwrap();
                    let mut buf = vec![0u8; want.len()];
                    assert_eq!(c.pread(fd, 0, &mut buf).unwrap(), want.len());
                    assert!(buf == want, "{name}");
                    c.close(&[fd, node.control_fd]).unwrap();
                }
            });
        }
    });
    g.finish();
}
