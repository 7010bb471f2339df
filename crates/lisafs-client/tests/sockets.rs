//! Host Unix domain sockets through the client: BindAt, Listen, Accept,
//! Connect and ConnectWithCreds.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};

use common::*;
use lisafs_client::{FdId, Gid, Uid};
use lisafs_host::HostOptions;
use lisafs_wire::errno::*;

fn uds_on() -> HostOptions {
    HostOptions {
        host_uds_connect: true,
        host_uds_create: true,
        ..HostOptions::default()
    }
}

fn blocking(fd: OwnedFd) -> UnixStream {
    let s = UnixStream::from(fd);
    s.set_nonblocking(false).unwrap();
    s
}

fn ping_pong(a: &mut UnixStream, b: &mut UnixStream) {
    a.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    b.write_all(b"pong").unwrap();
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

#[test]
fn bind_listen_accept() {
    let h = Harness::with("bind", uds_on(), false);
    let c = &h.client;
    let root = h.root();
    let (ino, bound, notify) = c
        .bind_at(root, b"srv.sock", SOCK_STREAM, 0o700, NO_UID, NO_GID)
        .unwrap();
    assert_eq!(ino.stat.mode, S_IFSOCK | 0o700);
    assert_errno!(
        c.bind_at(root, b"srv.sock", SOCK_STREAM, 0o700, NO_UID, NO_GID),
        EADDRINUSE
    );
    assert_errno!(
        c.bind_at(root, b"..", SOCK_STREAM, 0o700, NO_UID, NO_GID),
        EINVAL
    );
    c.listen(bound, 4).unwrap();
    assert_errno!(c.accept(bound), EAGAIN);
    // A bound socket has no stat; a control FD is the wrong kind here.
    assert_errno!(c.fstat(bound), EINVAL);
    assert_errno!(c.listen(ino.control_fd, 4), EINVAL);
    assert_errno!(c.accept(FdId(777)), EBADF);

    let mut outside = UnixStream::connect(h.scratch.path("srv.sock")).unwrap();
    // The donated socket is the listening one: it polls readable now.
    let mut pfd = [rustix::event::PollFd::new(
        &notify,
        rustix::event::PollFlags::IN,
    )];
    let ready = rustix::event::poll(&mut pfd, None).unwrap();
    assert_eq!(ready, 1);
    let (accepted, peer) = c.accept(bound).unwrap();
    assert!(peer.is_empty());
    let mut accepted = blocking(accepted);
    ping_pong(&mut outside, &mut accepted);

    // The socket file is an ordinary node for Connect as well.
    let again = h.walk1("srv.sock");
    let mut client_side = blocking(c.connect_socket(again.control_fd, SOCK_STREAM).unwrap());
    let (second, _) = c.accept(bound).unwrap();
    let mut second = blocking(second);
    ping_pong(&mut client_side, &mut second);

    drop(notify);
    h.finish(&[ino.control_fd, bound, again.control_fd]);
}

#[test]
fn connect_to_a_host_listener() {
    let h = Harness::with("connect", uds_on(), false);
    let c = &h.client;
    let listener = UnixListener::bind(h.scratch.path("host.sock")).unwrap();
    let sock = h.walk1("host.sock");
    assert_eq!(ftype(&sock.stat), S_IFSOCK);

    let mut ours = blocking(c.connect_socket(sock.control_fd, SOCK_STREAM).unwrap());
    let (mut theirs, _) = listener.accept().unwrap();
    ping_pong(&mut ours, &mut theirs);

    // With real ids and server support: ConnectWithCreds.
    let mut ours = blocking(
        c.connect_socket_with_creds(sock.control_fd, SOCK_STREAM, Uid(euid()), Gid(egid()))
            .unwrap(),
    );
    let (mut theirs, _) = listener.accept().unwrap();
    ping_pong(&mut ours, &mut theirs);
    // A sentinel id falls back to a plain Connect.
    let mut ours = blocking(
        c.connect_socket_with_creds(sock.control_fd, SOCK_STREAM, NO_UID, Gid(egid()))
            .unwrap(),
    );
    let (mut theirs, _) = listener.accept().unwrap();
    ping_pong(&mut ours, &mut theirs);

    std::fs::write(h.scratch.path("plain"), b"").unwrap();
    let plain = h.walk1("plain");
    assert_errno!(c.connect_socket(plain.control_fd, SOCK_STREAM), ENOTSOCK);
    assert_errno!(c.connect_socket(FdId(1234), SOCK_STREAM), EBADF);
    // runsc answers an unsupported socket type with ENXIO.
    assert_errno!(c.connect_socket(sock.control_fd, 0), ENXIO);
    h.finish(&[sock.control_fd, plain.control_fd]);
}

#[test]
fn sockets_refused_by_policy() {
    let h = Harness::new("policy");
    let c = &h.client;
    let _listener = UnixListener::bind(h.scratch.path("host.sock")).unwrap();
    let sock = h.walk1("host.sock");
    assert_errno!(c.connect_socket(sock.control_fd, SOCK_STREAM), EPERM);
    assert_errno!(
        c.connect_socket_with_creds(sock.control_fd, SOCK_STREAM, Uid(euid()), Gid(egid())),
        EPERM
    );
    assert_errno!(
        c.bind_at(h.root(), b"new.sock", SOCK_STREAM, 0o700, NO_UID, NO_GID),
        EPERM
    );
    h.finish(&[sock.control_fd]);
}
