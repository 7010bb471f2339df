//! The client is hostile: nothing it does through the backend may read,
//! write or even stat a file outside the served tree.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::*;
use lisafs_server::Errno;
use lisafs_wire::{statx_mask, Gid, SetStatReq, Timespec, Uid};

const SECRET: &[u8] = b"SECRET sentinel outside the root";

/// A scratch tree whose root holds symlinks pointing out of it in every way
/// there is, next to a sentinel file and directory outside the root.
struct Escape {
    s: Scratch,
    sentinel: PathBuf,
    sentinel_mtime: (i64, i64),
    sentinel_ino: u64,
    sentinel_mode: u32,
}

impl Escape {
    fn new(tag: &str) -> Escape {
        let s = Scratch::new(tag);
        let sentinel = s.base.join("outside.txt");
        std::fs::write(&sentinel, SECRET).unwrap();
        std::fs::create_dir(s.base.join("outdir")).unwrap();
        std::fs::write(s.base.join("outdir/inner"), SECRET).unwrap();
        let link = |target: &std::path::Path, name: &str| {
            std::os::unix::fs::symlink(target, s.path(name)).unwrap()
        };
        link("/etc".as_ref(), "abs_etc");
        link("../outside.txt".as_ref(), "rel_file");
        link("..".as_ref(), "rel_up");
        link("../outdir".as_ref(), "rel_dir");
        link(&sentinel, "abs_file");
        link(&s.base.join("outdir"), "abs_dir");
        let meta = lstat(&sentinel);
        Escape {
            sentinel_mtime: (meta.mtime(), meta.mtime_nsec()),
            sentinel_ino: meta.ino(),
            sentinel_mode: meta.mode(),
            sentinel,
            s,
        }
    }

    /// The sentinel is exactly as it was created.
    fn check_sentinel(&self) {
        assert_eq!(
            std::fs::read(&self.sentinel).unwrap(),
            SECRET,
            "sentinel content changed"
        );
        let meta = lstat(&self.sentinel);
        assert_eq!(
            (meta.mtime(), meta.mtime_nsec()),
            self.sentinel_mtime,
            "sentinel mtime changed"
        );
        assert_eq!(meta.nlink(), 1, "sentinel gained a hard link");
        assert_eq!(meta.mode(), self.sentinel_mode, "sentinel mode changed");
        assert_eq!(
            std::fs::read(self.s.base.join("outdir/inner")).unwrap(),
            SECRET
        );
        let mut outside = host_names(&self.s.base);
        outside.retain(|n| n != "root");
        assert_eq!(
            outside,
            ["outdir", "outside.txt"],
            "something appeared outside the root"
        );
        assert_eq!(host_names(&self.s.base.join("outdir")), ["inner"]);
    }
}

const LINKS: [&str; 6] = [
    "abs_etc", "rel_file", "rel_up", "rel_dir", "abs_file", "abs_dir",
];

#[test]
fn walk_returns_the_link_never_the_target() {
    let e = Escape::new("walk");
    let fs = e.s.fs();
    let root = mount(&fs);
    for name in LINKS {
        let l = walk(&*root, name);
        assert_eq!(ftype(&l.stat), S_IFLNK, "{name}");
        assert_eq!(l.stat.ino, lstat(&e.s.path(name)).ino(), "{name}");
        assert_ne!(l.stat.ino, e.sentinel_ino);
        assert_eq!(ftype(&l.imp.stat().unwrap()), S_IFLNK);
        // The link's target is reported verbatim, never resolved.
        let mut target = Vec::new();
        l.imp.readlink(&mut target).unwrap();
        assert_eq!(
            target,
            std::fs::read_link(e.s.path(name))
                .unwrap()
                .as_os_str()
                .as_encoded_bytes()
        );
    }
    e.check_sentinel();
}

#[test]
fn open_of_a_link_fails() {
    let e = Escape::new("open");
    let fs = e.s.fs();
    let root = mount(&fs);
    for name in LINKS {
        let l = walk(&*root, name);
        for flags in [O_RDONLY, O_WRONLY, O_RDWR, O_WRONLY | O_TRUNC] {
            assert_eq!(
                l.imp.open(flags).err(),
                Some(Errno::ELOOP),
                "{name} {flags:#o}"
            );
        }
    }
    e.check_sentinel();
}

#[test]
fn walking_through_a_link_fails() {
    let e = Escape::new("through");
    let fs = e.s.fs();
    let root = mount(&fs);
    for (name, child) in [
        ("abs_etc", "passwd"),
        ("rel_up", "outside.txt"),
        ("rel_up", "root"),
        ("rel_dir", "inner"),
        ("abs_dir", "inner"),
        ("rel_file", "x"),
    ] {
        let l = walk(&*root, name);
        let err = l.imp.walk(child.as_bytes()).err();
        assert!(
            matches!(err, Some(Errno::ENOTDIR | Errno::ELOOP)),
            "walk {name}/{child}: {err:?}"
        );
        // WalkStat stops at the link, from the parent or from the link.
        let st = walk_stat(&*root, &[name.as_bytes(), child.as_bytes()]).unwrap();
        assert_eq!(st.iter().map(ftype).collect::<Vec<_>>(), [S_IFLNK]);
        assert!(walk_stat(&*l.imp, &[child.as_bytes()]).unwrap().is_empty());
        let st = walk_stat(&*l.imp, &[b"", child.as_bytes()]).unwrap();
        assert_eq!(st.iter().map(ftype).collect::<Vec<_>>(), [S_IFLNK]);
    }
    e.check_sentinel();
}

#[test]
fn dot_dot_never_leaves_the_root() {
    let e = Escape::new("dotdot");
    let fs = e.s.fs();
    let root = mount(&fs);
    assert_eq!(root.walk(b"..").err(), Some(Errno::EINVAL));
    assert_eq!(walk_stat(&*root, &[b"", b".."]).err(), Some(Errno::EINVAL));
    assert_eq!(
        walk_stat(&*root, &[b"../outside.txt"]).err(),
        Some(Errno::EINVAL)
    );
    let (u, g) = no_owner();
    assert_eq!(root.mkdir(0o755, u, g, b"../x").err(), Some(Errno::EINVAL));
    assert_eq!(root.symlink(b"../x", b"t", u, g).err(), Some(Errno::EINVAL));
    assert_eq!(
        root.open_create(0o644, u, g, b"../x", O_RDWR)
            .err()
            .map(|e| e.0),
        Some(Errno::EINVAL.0)
    );
    assert_eq!(root.unlink(b"../outside.txt", 0).err(), Some(Errno::EINVAL));
    e.check_sentinel();
}

#[test]
fn creating_under_a_link_fails() {
    let e = Escape::new("create");
    let fs = e.s.fs();
    let root = mount(&fs);
    let (u, g) = no_owner();
    for name in ["rel_up", "rel_dir", "abs_dir", "abs_etc"] {
        let l = walk(&*root, name);
        let l = &*l.imp;
        assert!(
            l.open_create(0o644, u, g, b"new", O_RDWR).is_err(),
            "{name}"
        );
        assert!(l.mkdir(0o755, u, g, b"new").is_err(), "{name}");
        assert!(
            l.mknod(S_IFREG | 0o644, u, g, b"new", 0, 0).is_err(),
            "{name}"
        );
        assert!(l.symlink(b"new", b"t", u, g).is_err(), "{name}");
        assert!(l.unlink(b"inner", 0).is_err(), "{name}");
        assert!(l.unlink(b"outside.txt", 0).is_err(), "{name}");
        assert!(
            l.rename_at(b"inner", &*root, b"stolen", 0).is_err(),
            "{name}"
        );
        assert!(
            root.rename_at(b"rel_file", l, b"moved", 0).is_err(),
            "{name}"
        );
        let f = walk(&*root, "rel_file");
        assert!(f.imp.link(l, b"new").is_err(), "{name}");
        let mut v = Vec::new();
        assert!(l.get_xattr(b"user.x", 0, &mut v).is_err());
    }
    assert!(!e.s.path("stolen").exists());
    e.check_sentinel();
}

#[test]
fn metadata_changes_stay_on_the_link() {
    let e = Escape::new("setstat");
    let fs = e.s.fs();
    let root = mount(&fs);
    for name in ["abs_file", "rel_file"] {
        let l = walk(&*root, name);
        let req = SetStatReq {
            mask: statx_mask::MODE
                | statx_mask::SIZE
                | statx_mask::ATIME
                | statx_mask::MTIME
                | statx_mask::UID
                | statx_mask::GID,
            mode: 0o777,
            uid: Uid(euid()),
            gid: Gid(egid()),
            size: 0,
            atime: Timespec { sec: 99, nsec: 0 },
            mtime: Timespec { sec: 99, nsec: 0 },
            ..SetStatReq::default()
        };
        let r = l.imp.set_stat(&req);
        // Mode and size cannot apply to a link; times and owner apply to it.
        assert_eq!(
            r.failure_mask,
            statx_mask::MODE | statx_mask::SIZE,
            "{name}"
        );
        assert_eq!(lstat(&e.s.path(name)).mtime(), 99);
        // Xattrs: user.* is refused on links by Linux, so nothing reaches
        // the target either.
        assert!(l.imp.set_xattr(b"user.evil", b"1", 0).is_err());
        assert!(l.imp.remove_xattr(b"user.evil").is_err());
    }
    let mut buf = [0u8; 8];
    assert!(rustix::fs::getxattr(&e.sentinel, "user.evil", &mut buf[..]).is_err());
    e.check_sentinel();
}

#[test]
fn link_of_a_link_links_the_link() {
    let e = Escape::new("link");
    let fs = e.s.fs();
    let root = mount(&fs);
    for name in ["abs_file", "rel_file"] {
        let l = walk(&*root, name);
        let new = format!("hl_{name}");
        match l.imp.link(&*root, new.as_bytes()) {
            Ok(n) => {
                assert_eq!(ftype(&n.stat), S_IFLNK);
                assert_eq!(n.stat.ino, l.stat.ino);
                assert_eq!(lstat(&e.s.path(&new)).ino(), l.stat.ino);
            }
            // Refusing is acceptable too; linking the target is not.
            Err(err) => {
                eprintln!("link of {name} refused: {err}");
                assert!(std::fs::symlink_metadata(e.s.path(&new)).is_err());
            }
        }
    }
    e.check_sentinel();
}

#[test]
fn getdents_lists_only_the_root() {
    let e = Escape::new("getdents");
    let fs = e.s.fs();
    let root = mount(&fs);
    let dir = root.open(O_RDONLY).unwrap();
    let mut names = Vec::new();
    loop {
        let before = names.len();
        dir.imp
            .getdent64(4096, false, &mut |d| {
                names.push(String::from_utf8_lossy(d.name).into_owned())
            })
            .unwrap();
        if names.len() == before {
            break;
        }
    }
    names.sort();
    let mut want: Vec<String> = LINKS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    // An open FD on a link is impossible, so there is no way to list
    // through one.
    let l = walk(&*root, "rel_up");
    assert!(l.imp.open(O_RDONLY).is_err());
    e.check_sentinel();
}

#[test]
fn a_link_renamed_into_place_is_still_not_followed() {
    // A directory the client holds is swapped for a link to the outside
    // between two operations: later operations on the old control FD act on
    // the moved directory, and walks from the new name see a link.
    let e = Escape::new("swap");
    std::fs::create_dir(e.s.path("d")).unwrap();
    let fs = e.s.fs();
    let root = mount(&fs);
    let d = walk(&*root, "d");
    std::fs::rename(e.s.path("d"), e.s.path("d_moved")).unwrap();
    std::os::unix::fs::symlink(e.s.base.join("outdir"), e.s.path("d")).unwrap();
    let (u, g) = no_owner();
    d.imp.mkdir(0o755, u, g, b"fresh").unwrap();
    assert!(e.s.path("d_moved/fresh").is_dir());
    assert_eq!(ftype(&walk(&*root, "d").stat), S_IFLNK);
    let st = walk_stat(&*root, &[b"d", b"inner"]).unwrap();
    assert_eq!(st.len(), 1);
    e.check_sentinel();
}
