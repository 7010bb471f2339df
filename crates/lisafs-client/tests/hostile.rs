//! A fake server that breaks the protocol, and one that checks what the
//! client puts on the wire. Nothing here may make the client panic.

mod common;

use std::os::fd::AsFd;
use std::time::Duration;

use common::*;
use lisafs_client::{Error, FdId, Gid, Inode, Mid, Statx, Uid, WalkStatus};
use lisafs_transport::SockCommunicator;
use lisafs_wire::errno::*;
use lisafs_wire::{
    BindAtResp, CloseReq, ErrorResp, FsyncReq, Getdents64Resp, Inodes, Message, MidList, MountResp,
    PReadReq, PWriteReq, PWriteResp, SockHeader, WalkResp, WalkStatResp,
};

const MAX: u32 = 4096;

fn send_raw(comm: &SockCommunicator, bytes: &[u8]) {
    let mut left = bytes;
    while !left.is_empty() {
        let n = rustix::io::write(comm.as_fd(), left).expect("raw write");
        left = &left[n..];
    }
}

fn encode<'a, M: lisafs_wire::Wire<'a>>(msg: &M) -> Vec<u8> {
    let mut out = Vec::new();
    msg.append_to(&mut out).unwrap();
    out
}

#[test]
fn wrong_mid() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        expect_request(comm, Mid::FSTAT);
        reply_as(comm, Mid::WALK, &encode(&Statx::default()));
        // Still in step: the next request is answered properly.
        expect_request(comm, Mid::FSTAT);
        reply(comm, &Statx::default());
    });
    assert_protocol!(c.fstat(FdId(1)));
    c.fstat(FdId(1)).unwrap();
    server.join().unwrap();
}

fn reply_as(comm: &mut SockCommunicator, mid: Mid, payload: &[u8]) {
    comm.send(mid, payload, &[]).expect("send");
}

#[test]
fn truncated_payloads() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        expect_request(comm, Mid::FSTAT);
        reply_as(comm, Mid::FSTAT, &[0u8; 10]);
        expect_request(comm, Mid::WALK);
        // Claims two inodes, carries one.
        let mut walk = vec![0u8, 2, 0];
        walk.extend(encode(&Inode::default()));
        reply_as(comm, Mid::WALK, &walk);
        expect_request(comm, Mid::READ_LINK_AT);
        reply_as(comm, Mid::READ_LINK_AT, &[200, 0, b'x']);
        expect_request(comm, Mid::GETDENTS64);
        reply_as(comm, Mid::GETDENTS64, &[1, 0, 1, 2, 3]);
        expect_request(comm, Mid::OPEN_AT);
        reply_as(comm, Mid::OPEN_AT, &[]);
    });
    assert_protocol!(c.fstat(FdId(1)));
    assert_protocol!(c.walk(FdId(1), &[b"a", b"b"]));
    assert_protocol!(c.readlink_at(FdId(1)));
    assert_protocol!(c.getdents64(FdId(1), 100));
    assert_protocol!(c.open_at(FdId(1), 0));
    server.join().unwrap();
}

#[test]
fn bad_error_replies() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        expect_request(comm, Mid::FSTAT);
        reply_as(comm, Mid::ERROR, &[2, 0]);
        expect_request(comm, Mid::FSTAT);
        reply_as(comm, Mid::ERROR, &[]);
        expect_request(comm, Mid::FSTAT);
        reply(comm, &ErrorResp { errno: 0 });
        // Trailing bytes are ignored, as gVisor does.
        expect_request(comm, Mid::FSTAT);
        reply_as(comm, Mid::ERROR, &[2, 0, 0, 0, 9, 9]);
    });
    assert_protocol!(c.fstat(FdId(1)));
    assert_protocol!(c.fstat(FdId(1)));
    assert_protocol!(c.fstat(FdId(1)));
    assert_errno!(c.fstat(FdId(1)), ENOENT);
    server.join().unwrap();
}

#[test]
fn pread_reply_longer_than_asked() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        let req = expect_request(comm, Mid::PREAD);
        let req = PReadReq::decode_payload(&req).unwrap();
        assert_eq!(req.count, 4);
        let mut resp = 100u64.to_le_bytes().to_vec();
        resp.extend([7u8; 100]);
        reply_as(comm, Mid::PREAD, &resp);
        // num_bytes beyond the payload.
        expect_request(comm, Mid::PREAD);
        let mut resp = 4u64.to_le_bytes().to_vec();
        resp.extend([7u8; 2]);
        reply_as(comm, Mid::PREAD, &resp);
        // A PWrite that claims more than it was given.
        let req = expect_request(comm, Mid::PWRITE);
        let req = PWriteReq::decode_payload(&req).unwrap();
        reply(
            comm,
            &PWriteResp {
                count: req.data.len() as u64 + 1,
            },
        );
        // Getxattr larger than the buffer.
        expect_request(comm, Mid::FGET_XATTR);
        reply_as(comm, Mid::FGET_XATTR, &[5, 0, 1, 2, 3, 4, 5]);
    });
    let mut buf = [0u8; 4];
    assert_protocol!(c.pread(FdId(2), 0, &mut buf));
    assert_eq!(buf, [0; 4], "nothing copied from a rejected reply");
    assert_protocol!(c.pread(FdId(2), 0, &mut buf));
    assert_protocol!(c.pwrite(FdId(2), 0, b"abc"));
    assert_protocol!(c.fget_xattr(FdId(2), b"user.x", 4));
    server.join().unwrap();
}

#[test]
fn oversized_reply_is_skipped() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        expect_request(comm, Mid::READ_LINK_AT);
        reply_as(comm, Mid::READ_LINK_AT, &vec![0u8; MAX as usize + 1]);
        expect_request(comm, Mid::READ_LINK_AT);
        reply_as(comm, Mid::READ_LINK_AT, &[2, 0, b'o', b'k']);
    });
    // The fake server's own limit is the default, so it can send this.
    assert_protocol!(c.readlink_at(FdId(3)));
    assert_eq!(c.readlink_at(FdId(3)).unwrap(), b"ok");
    server.join().unwrap();
}

#[test]
fn walk_replies_that_contradict_the_request() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        expect_request(comm, Mid::WALK);
        let inodes = [
            Inode {
                control_fd: FdId(10),
                ..Inode::default()
            },
            Inode {
                control_fd: FdId(11),
                ..Inode::default()
            },
        ];
        reply(
            comm,
            &WalkResp {
                status: WalkStatus::Success,
                inodes: Inodes::from_items(&inodes),
            },
        );
        // The client gives back what it was handed.
        let close = expect_request(comm, Mid::CLOSE);
        let close = CloseReq::decode_payload(&close).unwrap();
        assert_eq!(close.fds.iter().collect::<Vec<_>>(), [FdId(10), FdId(11)]);
        reply_as(comm, Mid::CLOSE, &[]);
        // Success with fewer inodes than components.
        expect_request(comm, Mid::WALK);
        reply(
            comm,
            &WalkResp {
                status: WalkStatus::Success,
                inodes: Inodes::from_items(&[]),
            },
        );
        // An unknown status byte.
        expect_request(comm, Mid::WALK);
        reply_as(comm, Mid::WALK, &[7, 0, 0]);
        // More stats than components.
        expect_request(comm, Mid::WALK_STAT);
        let stats = [Statx::default(); 2];
        reply(
            comm,
            &WalkStatResp {
                stats: lisafs_wire::Statxs::from_items(&stats),
            },
        );
    });
    assert_protocol!(c.walk(FdId(1), &[b"only"]));
    assert_protocol!(c.walk(FdId(1), &[b"only"]));
    assert_protocol!(c.walk(FdId(1), &[b"only"]));
    assert_protocol!(c.walk_stat(FdId(1), &[b"only"]));
    server.join().unwrap();
}

#[test]
fn missing_fds_in_replies() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        expect_request(comm, Mid::BIND_AT);
        reply(
            comm,
            &BindAtResp {
                child: Inode {
                    control_fd: FdId(20),
                    ..Inode::default()
                },
                bound_socket_fd: FdId(21),
            },
        );
        let close = expect_request(comm, Mid::CLOSE);
        let close = CloseReq::decode_payload(&close).unwrap();
        assert_eq!(close.fds.iter().collect::<Vec<_>>(), [FdId(20), FdId(21)]);
        reply_as(comm, Mid::CLOSE, &[]);
        expect_request(comm, Mid::CONNECT);
        reply_as(comm, Mid::CONNECT, &[]);
        expect_request(comm, Mid::CONNECT_WITH_CREDS);
        reply_as(comm, Mid::CONNECT_WITH_CREDS, &[]);
        expect_request(comm, Mid::ACCEPT);
        reply_as(comm, Mid::ACCEPT, &[0, 0]);
        expect_request(comm, Mid::CHANNEL);
        reply_as(comm, Mid::CHANNEL, &[0u8; 16]);
        // OpenAt may omit its FD.
        expect_request(comm, Mid::OPEN_AT);
        reply_as(comm, Mid::OPEN_AT, &5u64.to_le_bytes());
    });
    assert_errno!(c.bind_at(FdId(1), b"s", 1, 0o600, NO_UID, NO_GID), EBADF);
    assert_errno!(c.connect_socket(FdId(1), 1), EBADF);
    assert_errno!(
        c.connect_socket_with_creds(FdId(1), 1, Uid(0), Gid(0)),
        EBADF
    );
    assert_errno!(c.accept(FdId(1)), EBADF);
    assert_protocol!(c.channel());
    let (fd, donated) = c.open_at(FdId(1), 0).unwrap();
    assert_eq!(fd, FdId(5));
    assert!(donated.is_none());
    server.join().unwrap();
}

#[test]
fn donated_fds_come_through() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        let (a, b) = lisafs_transport::socket_pair().unwrap();
        expect_request(comm, Mid::ACCEPT);
        comm.send(Mid::ACCEPT, &[3, 0, b'p', b'e', b'r'], &[a.as_fd()])
            .unwrap();
        // A Channel grant with both FDs is handed over as is.
        expect_request(comm, Mid::CHANNEL);
        let mut grant = 4096i64.to_le_bytes().to_vec();
        grant.extend(8192u64.to_le_bytes());
        comm.send(Mid::CHANNEL, &grant, &[a.as_fd(), b.as_fd()])
            .unwrap();
        // FDs on an Error reply are dropped.
        expect_request(comm, Mid::OPEN_AT);
        comm.send(
            Mid::ERROR,
            &encode(&ErrorResp { errno: EACCES }),
            &[a.as_fd()],
        )
        .unwrap();
    });
    let (sock, peer) = c.accept(FdId(1)).unwrap();
    assert_eq!(peer, b"per");
    assert!(rustix::fs::fstat(&sock).is_ok());
    let grant = c.channel().unwrap();
    assert_eq!((grant.data_offset, grant.data_length), (4096, 8192));
    assert_errno!(c.open_at(FdId(1), 0), EACCES);
    server.join().unwrap();
}

#[test]
fn local_refusals_send_nothing() {
    let mids = vec![Mid::FSTAT, Mid::RENAME_AT, Mid::CONNECT, Mid::CLOSE];
    let (c, server) = fake_server(MAX, mids, |comm| {
        // The only requests that reach the server, in order.
        expect_request(comm, Mid::RENAME_AT);
        reply_as(comm, Mid::RENAME_AT, &[]);
        expect_request(comm, Mid::CONNECT);
        reply_as(comm, Mid::CONNECT, &[]);
        expect_request(comm, Mid::FSTAT);
        reply(comm, &Statx::default());
    });
    assert_errno!(c.mkdir_at(FdId(1), b"d", 0o755, NO_UID, NO_GID), EOPNOTSUPP);
    assert_errno!(c.walk(FdId(1), &[b"d"]), EOPNOTSUPP);
    assert_errno!(c.pread(FdId(1), 0, &mut [0u8; 8]), EOPNOTSUPP);
    assert_errno!(c.fsync(&[FdId(1)]), EOPNOTSUPP);
    c.flush(FdId(1)).unwrap();
    assert_errno!(c.rename_at2(FdId(1), b"a", FdId(1), b"b", 2), EINVAL);
    c.rename_at2(FdId(1), b"a", FdId(1), b"b", 0).unwrap();
    // Falls back to Connect (which then lacks its FD).
    assert_errno!(
        c.connect_socket_with_creds(FdId(1), 1, Uid(0), Gid(0)),
        EBADF
    );
    // Over-long names and oversized requests are refused locally too.
    let long = vec![b'x'; 65_536];
    assert_errno!(c.rename_at(FdId(1), &long, FdId(1), b"b"), EINVAL);
    let big = vec![b'x'; 3000];
    assert_errno!(c.rename_at(FdId(1), &big, FdId(1), &big), EIO);
    c.fstat(FdId(1)).unwrap();
    assert_errno!(c.channel(), EOPNOTSUPP);
    c.close(&[]).unwrap();
    drop(c);
    server.join().unwrap();
}

#[test]
fn chunking_follows_max_message_size() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        // PRead: chunks of MAX - 8, the last one short (EOF).
        let mut offsets = Vec::new();
        for want in [MAX - 8, MAX - 8, 1000] {
            let req = expect_request(comm, Mid::PREAD);
            let req = PReadReq::decode_payload(&req).unwrap();
            assert_eq!(req.count, want);
            offsets.push(req.offset);
            let give = if want == 1000 { 10 } else { want };
            let mut resp = u64::from(give).to_le_bytes().to_vec();
            resp.extend(vec![(offsets.len()) as u8; give as usize]);
            reply_as(comm, Mid::PREAD, &resp);
        }
        assert_eq!(
            offsets,
            [100, 100 + u64::from(MAX - 8), 100 + 2 * u64::from(MAX - 8)]
        );
        // PWrite: chunks of MAX - 20; a short write ends it.
        for (i, want) in [MAX - 20, MAX - 20].into_iter().enumerate() {
            let req = expect_request(comm, Mid::PWRITE);
            let req = PWriteReq::decode_payload(&req).unwrap();
            assert_eq!(req.data.len() as u32, want);
            assert_eq!(req.offset, 7 + i as u64 * u64::from(MAX - 20));
            let count = if i == 1 { 5 } else { u64::from(want) };
            reply(comm, &PWriteResp { count });
        }
        // PRead: an error after progress reports the short count.
        expect_request(comm, Mid::PREAD);
        let mut resp = u64::from(MAX - 8).to_le_bytes().to_vec();
        resp.extend(vec![1u8; (MAX - 8) as usize]);
        reply_as(comm, Mid::PREAD, &resp);
        expect_request(comm, Mid::PREAD);
        reply(comm, &ErrorResp { errno: EIO });
        // Close: batches of at most 100.
        for n in [100, 100, 50] {
            let req = expect_request(comm, Mid::CLOSE);
            assert_eq!(CloseReq::decode_payload(&req).unwrap().fds.len(), n);
            reply_as(comm, Mid::CLOSE, &[]);
        }
        // FSync: as many as fit one message, (MAX - 2) / 8 = 511.
        for n in [511, 511, 78] {
            let req = expect_request(comm, Mid::FSYNC);
            assert_eq!(FsyncReq::decode_payload(&req).unwrap().fds.len(), n);
            reply_as(comm, Mid::FSYNC, &[]);
        }
    });
    let total = 2 * (MAX - 8) as usize + 1000;
    let mut buf = vec![0u8; total];
    assert_eq!(
        c.pread(FdId(2), 100, &mut buf).unwrap(),
        2 * (MAX - 8) as usize + 10
    );
    assert!(buf[..(MAX - 8) as usize].iter().all(|&b| b == 1));
    assert!(buf[(MAX - 8) as usize..2 * (MAX - 8) as usize]
        .iter()
        .all(|&b| b == 2));
    let data = vec![9u8; 3 * MAX as usize];
    assert_eq!(
        c.pwrite(FdId(2), 7, &data).unwrap(),
        u64::from(MAX - 20) + 5
    );
    let mut buf = vec![0u8; 2 * MAX as usize];
    assert_eq!(c.pread(FdId(2), 0, &mut buf).unwrap(), (MAX - 8) as usize);
    let ids: Vec<FdId> = (1..=250).map(FdId).collect();
    c.close(&ids).unwrap();
    let ids: Vec<FdId> = (1..=1100).map(FdId).collect();
    c.fsync(&ids).unwrap();
    server.join().unwrap();
}

#[test]
fn broken_mount_replies() {
    // Truncated.
    let r = fake_mount(|comm| reply_as(comm, Mid::MOUNT, &[0u8; 100]));
    assert_protocol!(r);
    // A max_message_size too small to work with.
    let r = fake_mount(|comm| {
        let mids = host_mids();
        reply(
            comm,
            &MountResp {
                root: fake_root(),
                max_message_size: 20,
                supported_mids: MidList::from_items(&mids),
            },
        )
    });
    assert_protocol!(r);
    // No supported MIDs.
    let r = fake_mount(|comm| {
        reply(
            comm,
            &MountResp {
                root: fake_root(),
                max_message_size: MAX,
                supported_mids: MidList::from_items(&[]),
            },
        )
    });
    assert_protocol!(r);
    // An Error reply to Mount.
    let r = fake_mount(|comm| reply(comm, &ErrorResp { errno: EACCES }));
    assert_errno!(r, EACCES);
    // Over the pre-mount limit of 1 MiB.
    let r = fake_mount(|comm| {
        reply_as(
            comm,
            Mid::MOUNT,
            &vec![0u8; lisafs_wire::PRE_MOUNT_MAX_MESSAGE_SIZE as usize + 1],
        )
    });
    assert_protocol!(r);
    // The connection closes instead.
    let r = fake_mount(|_| {});
    assert!(matches!(r, Err(Error::Io(_))), "{:?}", r.map(|_| ()));
    // Odd but valid: vendor MIDs far above the standard ones.
    let r = fake_mount(|comm| {
        reply(
            comm,
            &MountResp {
                root: fake_root(),
                max_message_size: MAX,
                supported_mids: MidList::from_items(&[Mid(65535), Mid::FSTAT]),
            },
        )
    });
    let c = r.unwrap();
    assert!(c.supports(Mid(65535)) && c.supports(Mid::FSTAT));
    assert!(!c.supports(Mid::WALK) && !c.supports(Mid(65534)));
    assert_eq!(c.root().control_fd, FdId(1));
}

#[test]
fn connection_dropped_mid_frame() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        expect_request(comm, Mid::FSTAT);
        let header = SockHeader {
            payload_len: 144,
            mid: Mid::FSTAT,
        };
        send_raw(comm, &header.to_bytes());
        send_raw(comm, &[0u8; 10]);
    });
    let err = c.fstat(FdId(1)).unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert_eq!(err.errno(), EIO);
    // Later calls fail at once.
    assert!(matches!(c.fstat(FdId(1)), Err(Error::Io(_))));
}

#[test]
fn shutdown_wakes_a_blocked_caller() {
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (c, server) = fake_server(MAX, host_mids(), move |comm| {
        expect_request(comm, Mid::FSTAT);
        // Never answer; wait until the client gave up.
        let _ = done_rx.recv();
    });
    std::thread::scope(|s| {
        let caller = s.spawn(|| c.fstat(FdId(1)));
        std::thread::sleep(Duration::from_millis(100));
        c.shutdown().unwrap();
        let res = caller.join().unwrap();
        assert!(matches!(res, Err(Error::Io(_))), "{:?}", res.map(|_| ()));
    });
    done_tx.send(()).unwrap();
    server.join().unwrap();
    assert!(matches!(c.fstat(FdId(1)), Err(Error::Io(_))));
}

#[test]
fn getdents_reply_is_copied_out() {
    let (c, server) = fake_server(MAX, host_mids(), |comm| {
        let req = expect_request(comm, Mid::GETDENTS64);
        let req = lisafs_wire::Getdents64Req::decode_payload(&req).unwrap();
        assert_eq!(req.count, -65536);
        let dirents = [lisafs_wire::Dirent64 {
            ino: 5,
            dev_minor: 1,
            dev_major: 2,
            off: 77,
            ty: 4,
            name: b"\xffodd",
        }];
        reply(
            comm,
            &Getdents64Resp {
                dirents: lisafs_wire::Dirents::from_items(&dirents),
            },
        );
    });
    let d = c.getdents64(FdId(9), -65536).unwrap();
    assert_eq!(
        d,
        [lisafs_client::Dirent {
            ino: 5,
            dev_minor: 1,
            dev_major: 2,
            off: 77,
            ty: 4,
            name: b"\xffodd".to_vec(),
        }]
    );
    server.join().unwrap();
}
