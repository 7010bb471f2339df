//! Host Unix domain sockets: BindAt, Listen, Accept, Connect and
//! ConnectWithCreds, and the policies that gate them.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;

use common::*;
use lisafs_host::HostOptions;
use lisafs_server::{ConnectionImpl, Errno};
use lisafs_wire::{Gid, Uid};

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_RAW: u32 = 3;
const SOCK_SEQPACKET: u32 = 5;

fn all_on() -> HostOptions {
    HostOptions {
        host_uds_connect: true,
        host_uds_create: true,
        ..HostOptions::default()
    }
}

fn is_nonblocking(fd: &OwnedFd) -> bool {
    rustix::fs::fcntl_getfl(fd)
        .unwrap()
        .contains(rustix::fs::OFlags::NONBLOCK)
}

#[test]
fn bind_listen_connect_accept() {
    let s = Scratch::new("sock");
    let fs = s.fs_with(all_on());
    let root = mount(&fs);
    let (u, g) = no_owner();
    let (ctl, bound, donated) = root.bind_at(b"srv", SOCK_STREAM, 0o751, u, g).unwrap();
    assert_eq!(
        ctl.stat.mode,
        S_IFSOCK | 0o751,
        "fchmod before bind sets the file's mode"
    );
    let meta = lstat(&s.path("srv"));
    assert_eq!(ctl.stat.ino, meta.ino());
    // The control FD describes the socket file, not the socket object.
    let again = ctl.imp.stat().unwrap();
    assert_eq!((again.ino, again.mode), (meta.ino(), S_IFSOCK | 0o751));
    assert_eq!(ctl.imp.stat_fs().unwrap(), root.stat_fs().unwrap());
    assert!(is_nonblocking(&donated));

    bound.listen(8).unwrap();
    // Nothing pending: accept must not block.
    assert_eq!(bound.accept().err(), Some(Errno::EAGAIN));

    // Connect through a fresh walk to the socket file.
    let sock_file = walk(&*root, "srv");
    assert_eq!(ftype(&sock_file.stat), S_IFSOCK);
    let client = sock_file.imp.connect(SOCK_STREAM).unwrap();
    assert!(is_nonblocking(&client));
    let (server_side, peer) = bound.accept().unwrap();
    assert!(peer.is_empty(), "the peer address is never reported");
    assert!(is_nonblocking(&server_side));

    let mut client = UnixStream::from(client);
    let mut server_side = UnixStream::from(server_side);
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server_side.set_nonblocking(false).unwrap();
    server_side.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    server_side.write_all(b"pong").unwrap();
    client.set_nonblocking(false).unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");

    // The donated copy is the listening socket too.
    let _c2 = ctl.imp.connect(SOCK_STREAM).unwrap();
    let accepted = rustix::net::accept_with(&donated, rustix::net::SocketFlags::CLOEXEC);
    assert!(accepted.is_ok());

    // Connecting with the wrong type fails; unsupported types get ENXIO.
    assert!(ctl.imp.connect(SOCK_DGRAM).is_err());
    assert_eq!(ctl.imp.connect(SOCK_RAW).err(), Some(Errno::ENXIO));
    assert_eq!(ctl.imp.connect(0).err(), Some(Errno::ENXIO));
    // Sockets cannot be opened.
    assert!(ctl.imp.open(O_RDWR).is_err());

    // Socket files have O_PATH FDs; their metadata still changes.
    let req = lisafs_wire::SetStatReq {
        mask: lisafs_wire::statx_mask::MODE | lisafs_wire::statx_mask::MTIME,
        mode: 0o700,
        mtime: lisafs_wire::Timespec { sec: 777, nsec: 0 },
        ..Default::default()
    };
    assert_eq!(ctl.imp.set_stat(&req), Default::default());
    let meta = lstat(&s.path("srv"));
    assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o700, 777));
}

#[test]
fn connect_to_a_socket_made_by_someone_else() {
    let s = Scratch::new("sock-ext");
    let listener = std::os::unix::net::UnixListener::bind(s.path("ext")).unwrap();
    let fs = s.fs_with(HostOptions {
        host_uds_connect: true,
        ..HostOptions::default()
    });
    let root = mount(&fs);
    let ext = walk(&*root, "ext");
    let c = ext
        .imp
        .connect_with_creds(SOCK_STREAM, Uid(euid()), Gid(egid()))
        .unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    let mut c = UnixStream::from(c);
    c.set_nonblocking(false).unwrap();
    peer.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
    // Creating sockets needs its own option.
    assert_eq!(
        root.bind_at(b"new", SOCK_STREAM, 0o755, Uid::NONE, Gid::NONE)
            .err(),
        Some(Errno::EPERM)
    );
}

#[test]
fn connect_with_creds_switches_identity_for_the_connect_only() {
    let s = Scratch::new("sock-creds");
    let fs = s.fs_with(all_on());
    let root = mount(&fs);
    let (ctl, bound, _donated) = root
        .bind_at(b"priv", SOCK_STREAM, 0o700, Uid::NONE, Gid::NONE)
        .unwrap();
    bound.listen(4).unwrap();
    if euid() == 0 {
        // As nobody, a 0700 root socket cannot be written to.
        assert_eq!(
            ctl.imp
                .connect_with_creds(SOCK_STREAM, Uid(65534), Gid(65534))
                .err(),
            Some(Errno::EACCES)
        );
        // ...and the thread is root again afterwards.
        assert_eq!(euid(), 0);
        assert_eq!(egid(), 0);
    }
    // Sentinels and the server's own ids mean "as the server".
    ctl.imp
        .connect_with_creds(SOCK_STREAM, Uid::NONE, Gid::NONE)
        .unwrap();
    ctl.imp
        .connect_with_creds(SOCK_SEQPACKET, Uid(euid()), Gid(egid()))
        .err();
    assert_eq!(euid(), rustix::process::getuid().as_raw());
}

#[test]
fn sockets_are_off_by_default() {
    let s = Scratch::new("sock-off");
    let listener = std::os::unix::net::UnixListener::bind(s.path("ext")).unwrap();
    let fs = s.fs();
    let root = mount(&fs);
    let (u, g) = no_owner();
    assert_eq!(
        root.bind_at(b"s", SOCK_STREAM, 0o755, u, g).err(),
        Some(Errno::EPERM)
    );
    assert!(!s.path("s").exists());
    let ext = walk(&*root, "ext");
    assert_eq!(ext.imp.connect(SOCK_STREAM).err(), Some(Errno::EPERM));
    assert_eq!(
        ext.imp.connect_with_creds(SOCK_STREAM, u, g).err(),
        Some(Errno::EPERM)
    );
    assert_eq!(ext.imp.open(O_RDWR).err(), Some(Errno::EPERM));
    // Nothing reached the listener.
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err());
}

#[test]
fn bind_failures_leave_nothing() {
    let s = Scratch::new("sock-fail");
    std::fs::write(s.path("taken"), b"keep").unwrap();
    let fs = s.fs_with(all_on());
    let root = mount(&fs);
    let (u, g) = no_owner();
    assert_eq!(
        root.bind_at(b"taken", SOCK_STREAM, 0o755, u, g).err(),
        Some(Errno(98))
    ); // EADDRINUSE
    assert_eq!(std::fs::read(s.path("taken")).unwrap(), b"keep");
    assert_eq!(
        root.bind_at(b"s", SOCK_RAW, 0o755, u, g).err(),
        Some(Errno::ENXIO)
    );
    // The bind path is /proc/self/fd/<dir>/<name> and must fit sun_path.
    let long = vec![b'n'; 100];
    assert_eq!(
        root.bind_at(&long, SOCK_STREAM, 0o755, u, g).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        root.bind_at(b"..", SOCK_STREAM, 0o755, u, g).err(),
        Some(Errno::EINVAL)
    );
    // Giving the socket away fails without privilege, after the bind: the
    // socket file must go again.
    std::fs::set_permissions(&s.root, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let r = as_unprivileged(|| root.bind_at(b"s", SOCK_DGRAM, 0o755, Uid(0), Gid(0)).err());
    assert_eq!(r, Some(Errno::EPERM));
    assert_eq!(host_names(&s.root), ["taken"]);
    // A bound datagram socket works as well.
    let (_c, b, _d) = root.bind_at(b"dg", SOCK_DGRAM, 0o755, u, g).unwrap();
    assert!(b.listen(1).is_err(), "datagram sockets do not listen");
    let _ = fs.supported_messages();
}
