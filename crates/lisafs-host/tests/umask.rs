//! A server embedded in a process with a umask (Node's is usually 022) still
//! creates files with exactly the mode the client asked for. Its own test
//! binary: the umask is process-wide.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn creates_ignore_the_process_umask() {
    let scratch = Scratch::new("umask");
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    let fs = scratch.fs();
    let root = mount(&fs);
    let (uid, gid) = no_owner();
    root.mkdir(0o777, uid, gid, b"d").unwrap();
    root.open_create(0o666, uid, gid, b"f", O_RDWR).unwrap();
    root.mknod(S_IFREG | 0o646, uid, gid, b"n", 0, 0).unwrap();
    let mode = |p: &str| lstat(&scratch.path(p)).permissions().mode() & 0o7777;
    assert_eq!(mode("d"), 0o777);
    assert_eq!(mode("f"), 0o666);
    assert_eq!(mode("n"), 0o646);
    // Modes the umask would not touch take no extra chmod and stay exact.
    root.mkdir(0o750, uid, gid, b"e").unwrap();
    assert_eq!(mode("e"), 0o750);
}
