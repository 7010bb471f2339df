//! A hostile client on a real socket: `Service::attach` on a socketpair, the
//! test writing raw bytes on the client end and reading raw replies. Every
//! case gets the documented errno or a clean close of that connection only;
//! after each case a second, healthy connection must still Walk.
//!
//! The one test that counts `/proc/self/fd` takes `FD_LOCK` exclusively;
//! every other test takes it shared, so no other test opens or closes
//! descriptors meanwhile.

mod support;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use lisafs_server::{ConnectionImpl, ConnectionOpts, FsResult, NewControl};
use lisafs_wire::{
    ChannelResp, CreateCommon, FdId, FlushReq, Getdents64Req, Getdents64Resp, Gid, LinkAtReq,
    Message, Mid, MkdirAtReq, MknodAtReq, MountResp, OpenCreateAtReq, PReadReq, PReadResp,
    PWriteReq, ReadLinkAtReq, StatReq, Statx, StringArray, SymlinkAtReq, Uid, WalkStatReq,
    WalkStatus,
};
use support::*;

static FD_LOCK: RwLock<()> = RwLock::new(());

fn shared_fd_lock() -> RwLockReadGuard<'static, ()> {
    FD_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

fn fstat_payload(fd: FdId) -> Vec<u8> {
    enc(&StatReq { fd })
}

/// Waits until only the harness's healthy connection (holding nothing but
/// its root) is left on the service.
fn only_healthy_left(h: &mut Harness, case: &str) {
    let want = lisafs_server::Stats {
        connections: 1,
        control_fds: 1,
        ..Default::default()
    };
    let ok = wait_until(Duration::from_secs(10), || h.service.stats() == want);
    let got = h.service.stats();
    h.check(
        &format!("{case} / that connection and its FDs are released"),
        ok,
        format!("stats {got:?}"),
    );
}

// ---------------------------------------------------------------------------
// Framing

#[test]
fn framing_errors() {
    let _g = shared_fd_lock();
    let mut h = Harness::new("framing");

    // A header cut short, then the client closes its writing side.
    {
        let case = "truncated header, then close";
        let (mut c, root) = h.conn();
        let f = frame(Mid::WALK.0, &walk_payload(root, &[b"probe"]));
        c.send_bytes(&f[..5]).unwrap();
        c.shutdown_write();
        let r = c.sees_eof_within(Duration::from_secs(5));
        h.check(case, r.is_ok(), format!("{r:?}"));
        drop(c);
        only_healthy_left(&mut h, case);
        h.check_healthy(case);
    }

    // A header, fewer payload bytes than it announces, then close.
    {
        let case = "truncated payload, then close";
        let (mut c, root) = h.conn();
        let f = frame(Mid::WALK.0, &walk_payload(root, &[b"probe"]));
        c.send_bytes(&f[..f.len() - 3]).unwrap();
        c.shutdown_write();
        let r = c.sees_eof_within(Duration::from_secs(5));
        h.check(case, r.is_ok(), format!("{r:?}"));
        drop(c);
        only_healthy_left(&mut h, case);
        h.check_healthy(case);
    }

    // Half a header and the socket vanishes entirely.
    {
        let case = "half a header, then the socket is dropped";
        let (c, _root) = h.conn();
        c.send_bytes(&[1, 0, 0]).unwrap();
        drop(c);
        only_healthy_left(&mut h, case);
        h.check_healthy(case);
    }

    // A payload one byte over the maximum: EIO, and the stream stays in
    // sync.
    {
        let case = "payload of max_message_size + 1";
        let (mut c, root) = h.conn();
        let big = vec![0u8; DEFAULT_MAX as usize + 1];
        let r = c.call(Mid::WALK.0, &big);
        h.expect_errno(case, &r, EIO);
        let r = c.walk(root, &[b"probe"]);
        h.check(
            &format!("{case} / next request on the same connection"),
            matches!(&r, Ok((WalkStatus::Success, i)) if i.len() == 1),
            format!("{:?}", r.as_ref().map(|(s, i)| (*s, i.len()))),
        );
        // The same, for an unknown MID: the size check comes first.
        let r = c.call(40_000, &big);
        h.expect_errno("oversized payload with an unknown MID", &r, EIO);
        let r = c.call(Mid::FSTAT.0, &fstat_payload(root));
        h.expect_ok("oversized payload with an unknown MID / stream in sync", &r);
        h.check_healthy(case);
    }

    // A header claiming 4 GiB: the server must not allocate it; the client
    // sends 1 MiB and goes away.
    {
        let case = "header announcing a 4 GiB payload, 1 MiB sent, then close";
        let (c, _root) = h.conn();
        let mut bytes = lisafs_wire::SockHeader {
            payload_len: u32::MAX,
            mid: Mid::PWRITE,
        }
        .to_bytes()
        .to_vec();
        bytes.extend(vec![0xAB; 1 << 20]);
        let sent = c.send_bytes(&bytes);
        h.check(
            case,
            sent.is_ok(),
            format!("the server kept reading: {sent:?}"),
        );
        drop(c);
        only_healthy_left(&mut h, case);
        h.check_healthy(case);
    }

    // Non-zero header padding is ignored, as gVisor does.
    {
        let case = "non-zero header padding";
        let (mut c, root) = h.conn();
        let mut f = frame(Mid::FSTAT.0, &fstat_payload(root));
        f[6] = 0xFF;
        f[7] = 0xFF;
        c.send_bytes(&f).unwrap();
        let r = c.reply(Mid::FSTAT.0);
        h.expect_ok(case, &r);
        h.check_healthy(case);
    }

    h.finish();
}

// ---------------------------------------------------------------------------
// MIDs

#[test]
fn unknown_unadvertised_and_empty_mids() {
    let _g = shared_fd_lock();
    let mut h = Harness::new("mids");
    let (mut c, root) = h.conn();

    for mid in [34u16, 35, 255, 256, 1000, 65535] {
        let case = format!("unknown MID {mid}");
        let r = c.call(mid, &fstat_payload(root));
        h.expect_errno(&case, &r, EOPNOTSUPP);
        let r = c.call(mid, &[]);
        h.expect_errno(&format!("{case}, empty payload"), &r, EOPNOTSUPP);
        h.check_healthy(&case);
    }

    // Flush is not in the host server's list.
    {
        let case = "Flush (20), not advertised by the host server";
        let probe = c.walk_one(root, "probe");
        let open = c.open_at(probe, O_RDONLY).expect("open probe");
        let r = c.call_msg(&FlushReq { fd: open });
        h.expect_errno(case, &r, EOPNOTSUPP);
        c.close(&[probe, open]);
        h.check_healthy(case);
    }

    // MID 0 is response-only and not advertised.
    {
        let case = "MID 0 (Error) as a request";
        let r = c.call(0, &5u32.to_le_bytes());
        h.expect_errno(case, &r, EOPNOTSUPP);
        let r = c.call(0, &[]);
        h.expect_errno(&format!("{case}, empty payload"), &r, EOPNOTSUPP);
        h.check_healthy(case);
    }

    // A zero-length payload for every MID: EIO for every request that has
    // fields, the MID's own answer for the two empty requests.
    let mut mids: Vec<u16> = (0..=40).collect();
    mids.extend([255, 256, 65535]);
    for mid in mids {
        let case = format!("zero-length payload, MID {mid}");
        let r = c.call(mid, &[]);
        match mid {
            1 => {
                let ok = matches!(&r, Outcome::Ok { payload, .. }
                    if MountResp::decode_payload_exact(payload).is_ok());
                h.check(&case, ok, format!("want a Mount reply, got {r:?}"));
            }
            2 => {
                let ok = matches!(&r, Outcome::Ok { payload, fds }
                    if fds.len() == 2 && ChannelResp::decode_payload_exact(payload).is_ok());
                h.check(
                    &case,
                    ok,
                    format!("want a Channel reply with 2 FDs, got {r:?}"),
                );
            }
            0 | 20 | 34.. => h.expect_errno(&case, &r, EOPNOTSUPP),
            _ => h.expect_errno(&case, &r, EIO),
        }
        h.check_healthy(&case);
    }
    // The connection survived all of it.
    let r = c.call(Mid::FSTAT.0, &fstat_payload(root));
    h.expect_ok("after the MID matrix, FStat on the same connection", &r);
    h.finish();
}

// ---------------------------------------------------------------------------
// FDIDs

#[test]
fn bad_fdids() {
    let _g = shared_fd_lock();
    let mut h = Harness::new("fdids");
    std::fs::create_dir(h.scratch.path("sub")).unwrap();

    // Requests before Mount: nothing exists yet.
    {
        let case = "before Mount";
        let mut c = h.raw();
        let r = c.call(Mid::WALK.0, &walk_payload(FdId(1), &[b"probe"]));
        h.expect_errno(&format!("{case}: Walk on FDID 1"), &r, EBADF);
        let r = c.call(Mid::FSTAT.0, &fstat_payload(FdId(1)));
        h.expect_errno(&format!("{case}: FStat on FDID 1"), &r, EBADF);
        let r = c.close(&[FdId(1), FdId(2)]);
        h.expect_ok(&format!("{case}: Close of unknown FDIDs is ignored"), &r);
        h.check_healthy(case);

        let case = "Mount after failed requests";
        let first = c.mount();
        h.check(
            case,
            matches!(first, Ok(FdId(1))),
            format!("root FDID {first:?} (FDIDs count from 1)"),
        );
        let case = "a second Mount";
        let second = c.mount();
        let ok = matches!((&first, &second), (Ok(a), Ok(b)) if a != b);
        h.check(case, ok, format!("roots {first:?} and {second:?}"));
        if let (Ok(a), Ok(b)) = (first, second) {
            for (n, root) in [(1, a), (2, b)] {
                let r = c.walk(root, &[b"probe"]);
                let ok = matches!(&r, Ok((WalkStatus::Success, i)) if i.len() == 1);
                h.check(
                    &format!("{case}: Walk from root #{n}"),
                    ok,
                    format!("{:?}", r.as_ref().map(|(s, i)| (*s, i.len()))),
                );
            }
        }
        h.check_healthy(case);
    }

    let (mut c, root) = h.conn();

    for (what, id) in [
        ("FDID 0", FdId(0)),
        ("unknown FDID 999999", FdId(999_999)),
        ("FDID u64::MAX", FdId(u64::MAX)),
    ] {
        let r = c.call(Mid::WALK.0, &walk_payload(id, &[b"probe"]));
        h.expect_errno(&format!("{what}: Walk"), &r, EBADF);
        let r = c.call(Mid::FSTAT.0, &fstat_payload(id));
        h.expect_errno(&format!("{what}: FStat"), &r, EBADF);
        let r = c.call_msg(&PReadReq {
            offset: 0,
            fd: id,
            count: 16,
        });
        h.expect_errno(&format!("{what}: PRead"), &r, EBADF);
        h.check_healthy(what);
    }

    // A closed FDID.
    {
        let case = "closed FDID";
        let sub = c.walk_one(root, "sub");
        c.close(&[sub]);
        let r = c.call(Mid::FSTAT.0, &fstat_payload(sub));
        h.expect_errno(&format!("{case}: FStat"), &r, EBADF);
        let r = c.call(Mid::WALK.0, &walk_payload(sub, &[b"x"]));
        h.expect_errno(&format!("{case}: Walk"), &r, EBADF);
        let r = c.close(&[sub]);
        h.expect_ok(&format!("{case}: closing it again is ignored"), &r);
        h.check_healthy(case);
    }

    // FDIDs of the wrong kind.
    {
        let case = "FDID of the wrong kind";
        let probe = c.walk_one(root, "probe");
        let open = c.open_at(probe, O_RDONLY).expect("open probe");
        let r = c.call(Mid::WALK.0, &walk_payload(open, &[b"x"]));
        h.expect_errno(&format!("{case}: Walk on an open FD"), &r, EINVAL);
        let r = c.call_msg(&lisafs_wire::OpenAtReq { fd: open, flags: 0 });
        h.expect_errno(&format!("{case}: OpenAt on an open FD"), &r, EINVAL);
        let r = c.call_msg(&PReadReq {
            offset: 0,
            fd: probe,
            count: 16,
        });
        h.expect_errno(&format!("{case}: PRead on a control FD"), &r, EINVAL);
        let r = c.call_msg(&Getdents64Req {
            dir_fd: root,
            count: 4096,
        });
        h.expect_errno(&format!("{case}: Getdents64 on a control FD"), &r, EINVAL);
        let r = c.call_msg(&ReadLinkAtReq { fd: open });
        h.expect_errno(&format!("{case}: ReadLinkAt on an open FD"), &r, EINVAL);
        let r = c.call(Mid::FSTAT.0, &fstat_payload(open));
        h.expect_ok(&format!("{case}: FStat accepts an open FD"), &r);
        c.close(&[probe, open]);
        h.check_healthy(case);
    }

    // FDIDs are per connection: another connection's FDIDs do not exist
    // here, even though both count from 1.
    {
        let case = "FDID from another connection";
        let (mut other, other_root) = h.conn();
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(other.walk_one(other_root, "probe"));
        }
        let other_dir = other.walk_one(other_root, "sub");
        let top = *ids.last().unwrap();
        let r = c.call(Mid::FSTAT.0, &fstat_payload(top));
        h.expect_errno(&format!("{case}: FStat"), &r, EBADF);
        let r = c.call(Mid::WALK.0, &walk_payload(other_dir, &[b"x"]));
        h.expect_errno(&format!("{case}: Walk"), &r, EBADF);
        let r = c.close(&[top, other_dir]);
        h.expect_ok(&format!("{case}: Close here is ignored"), &r);
        let r = other.call(Mid::FSTAT.0, &fstat_payload(top));
        h.expect_ok(&format!("{case}: still valid on its own connection"), &r);
        let r = other.walk(other_dir, &[b"x"]);
        h.check(
            &format!("{case}: its directory still walks on its own connection"),
            matches!(r, Ok((WalkStatus::ComponentDoesNotExist, _))),
            format!("{:?}", r.map(|(s, i)| (s, i.len()))),
        );
        h.check_healthy(case);
    }
    h.finish();
}

// ---------------------------------------------------------------------------
// Malformed payloads

#[test]
fn malformed_payloads() {
    let _g = shared_fd_lock();
    let mut h = Harness::new("malformed");
    std::fs::write(h.scratch.path("data"), b"0123456789").unwrap();
    let (mut c, root) = h.conn();
    let probe = c.walk_one(root, "probe");
    let control_before = h.service.stats().control_fds;

    // Array counts past the end.
    {
        let case = "Close with a count past the end";
        let mut p = 1000u16.to_le_bytes().to_vec();
        p.extend(probe.0.to_le_bytes());
        let r = c.call(Mid::CLOSE.0, &p);
        h.expect_errno(case, &r, EIO);
        let r = c.call(Mid::FSTAT.0, &fstat_payload(probe));
        h.expect_ok(&format!("{case}: the FDID it carried was not closed"), &r);
        h.check_healthy(case);
    }
    {
        let case = "FSync with a count of 65535 and no FDIDs";
        let r = c.call(Mid::FSYNC.0, &u16::MAX.to_le_bytes());
        h.expect_errno(case, &r, EIO);
        h.check_healthy(case);
    }
    {
        let case = "Walk with 5 components announced, 1 sent";
        let mut p = root.0.to_le_bytes().to_vec();
        p.extend(5u16.to_le_bytes());
        p.extend(5u16.to_le_bytes());
        p.extend(b"probe");
        let r = c.call(Mid::WALK.0, &p);
        h.expect_errno(case, &r, EIO);
        let s = h.service.stats().control_fds;
        h.check(
            &format!("{case}: no FD created"),
            s == control_before,
            format!("control FDs {s}, want {control_before}"),
        );
        h.check_healthy(case);
    }
    {
        let case = "Walk component longer than the payload";
        let mut p = root.0.to_le_bytes().to_vec();
        p.extend(1u16.to_le_bytes());
        p.extend(100u16.to_le_bytes());
        p.extend(b"abc");
        let r = c.call(Mid::WALK.0, &p);
        h.expect_errno(case, &r, EIO);
        h.check_healthy(case);
    }
    {
        let case = "WalkStat with 65535 components announced, none sent";
        let mut p = root.0.to_le_bytes().to_vec();
        p.extend(u16::MAX.to_le_bytes());
        let r = c.call(Mid::WALK_STAT.0, &p);
        h.expect_errno(case, &r, EIO);
        h.check_healthy(case);
    }
    {
        let case = "a FDID cut short";
        let r = c.call(Mid::FSTAT.0, &root.0.to_le_bytes()[..5]);
        h.expect_errno(case, &r, EIO);
        h.check_healthy(case);
    }

    // Walks that fail part-way keep none of the FDs made before the failure.
    std::fs::create_dir(h.scratch.path("sub")).unwrap();
    for (case, names, want) in [
        ("Walk [sub, ..]", vec![&b"sub"[..], b".."], EINVAL),
        ("Walk [sub, a/b]", vec![&b"sub"[..], b"a/b"], EINVAL),
        ("Walk [sub, empty name]", vec![&b"sub"[..], b""], EINVAL),
        (
            "Walk [probe, x] through a file",
            vec![&b"probe"[..], b"x"],
            ENOTDIR,
        ),
    ] {
        let before = h.service.stats();
        let r = c.call(Mid::WALK.0, &walk_payload(root, &names));
        h.expect_errno(case, &r, want);
        let after = h.service.stats();
        h.check(
            &format!("{case}: no FD or node left behind"),
            after == before,
            format!("{after:?} vs {before:?}"),
        );
        h.check_healthy(case);
    }

    // Huge strings.
    {
        let case = "MkdirAt name announcing 65535 bytes, 10 sent";
        let mut p = enc_wire(&CreateCommon {
            dir_fd: root,
            uid: Uid::NONE,
            gid: Gid::NONE,
            mode: 0o755,
        });
        p.extend(u16::MAX.to_le_bytes());
        p.extend(b"newdir0000");
        let r = c.call(Mid::MKDIR_AT.0, &p);
        h.expect_errno(case, &r, EIO);
        let created = std::fs::read_dir(&h.scratch.root).unwrap().count();
        h.check(
            &format!("{case}: nothing created"),
            created == 3,
            format!("{created} entries in the tree, want 3 (probe, data, sub)"),
        );
        h.check_healthy(case);
    }
    {
        let case = "PWrite announcing 4 GiB of data, 4 bytes sent";
        let data = c.walk_one(root, "data");
        let open = c.open_at(data, O_RDWR).expect("open data");
        let mut p = 0u64.to_le_bytes().to_vec();
        p.extend(open.0.to_le_bytes());
        p.extend(u32::MAX.to_le_bytes());
        p.extend(b"XXXX");
        let r = c.call(Mid::PWRITE.0, &p);
        h.expect_errno(case, &r, EIO);
        let content = std::fs::read(h.scratch.path("data")).unwrap();
        h.check(
            &format!("{case}: the file is untouched"),
            content == b"0123456789",
            format!("{:?}", String::from_utf8_lossy(&content)),
        );
        let r = c.call_msg(&PReadReq {
            offset: 0,
            fd: open,
            count: u32::MAX,
        });
        h.expect_errno("PRead of 4 GiB (64-bit size check)", &r, ENOBUFS);
        // The server reads into a buffer it reuses without clearing: a
        // shorter read after a longer one sends only its own bytes.
        for (offset, count, want) in [
            (0u64, 100u32, &b"0123456789"[..]),
            (8, 100, b"89"),
            (10, 100, b""),
            (3, 2, b"34"),
        ] {
            let r = c.call_msg(&PReadReq {
                offset,
                fd: open,
                count,
            });
            let got = match &r {
                Outcome::Ok { payload, .. } => PReadResp::decode_payload(payload)
                    .map(|p| p.data.to_vec())
                    .ok(),
                _ => None,
            };
            h.check(
                &format!("PRead of {count} at {offset}"),
                got.as_deref() == Some(want),
                format!("{r:?}"),
            );
        }
        c.close(&[data, open]);
        h.check_healthy(case);
    }
    let long = vec![b'n'; 65535];
    {
        let case = "Walk of one 65535-byte component";
        let r = c.call(Mid::WALK.0, &walk_payload(root, &[&long]));
        h.expect_errno(case, &r, ENAMETOOLONG);
        h.check_healthy(case);
    }
    {
        let case = "MkdirAt with a 65535-byte name";
        let r = c.call_msg(&MkdirAtReq {
            common: CreateCommon {
                dir_fd: root,
                uid: Uid::NONE,
                gid: Gid::NONE,
                mode: 0o755,
            },
            name: &long,
        });
        h.expect_errno(case, &r, ENAMETOOLONG);
        h.check_healthy(case);
    }
    {
        let case = "SymlinkAt with a 65535-byte target";
        let r = c.call_msg(&SymlinkAtReq {
            dir_fd: root,
            uid: Uid::NONE,
            gid: Gid::NONE,
            name: b"lnk",
            target: &long,
        });
        h.expect_errno(case, &r, ENAMETOOLONG);
        h.check(
            &format!("{case}: nothing created"),
            !h.scratch.exists("lnk"),
            "lnk absent",
        );
        h.check_healthy(case);
    }
    {
        // Valid encoding, but the reply (3 + 152 n bytes) cannot fit.
        let case = "Walk of 14000 components (reply over the maximum)";
        let names: Vec<&[u8]> = vec![b"d"; 14_000];
        let r = c.call(Mid::WALK.0, &walk_payload(root, &names));
        h.expect_errno(case, &r, EIO);
        let names: Vec<&[u8]> = vec![b"d"; 15_000];
        let r = c.call_msg(&WalkStatReq {
            dir_fd: root,
            path: StringArray::from_items(&names),
        });
        h.expect_errno(
            "WalkStat of 15000 components (reply over the maximum)",
            &r,
            EIO,
        );
        h.check_healthy(case);
    }
    {
        let case = "Getdents64 with count INT32_MIN";
        let dir = c.open_at(root, O_RDONLY).expect("open root");
        let r = c.call_msg(&Getdents64Req {
            dir_fd: dir,
            count: i32::MIN,
        });
        let ok = matches!(&r, Outcome::Ok { payload, .. }
            if Getdents64Resp::decode_payload_exact(payload).is_ok());
        h.check(case, ok, format!("{r:?}"));
        c.close(&[dir]);
        h.check_healthy(case);
    }
    h.finish();
}

// ---------------------------------------------------------------------------
// Donated FDs

/// `n` descriptors on /dev/null.
fn dev_nulls(n: usize) -> Vec<OwnedFd> {
    (0..n)
        .map(|_| OwnedFd::from(std::fs::File::open("/dev/null").unwrap()))
        .collect()
}

/// Whether the pipe's write end is gone everywhere in the process (the
/// read end sees EOF rather than "would block").
fn write_end_gone(read_end: &OwnedFd) -> bool {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let fl = fcntl_getfl(read_end).unwrap();
    fcntl_setfl(read_end, fl | OFlags::NONBLOCK).unwrap();
    let mut b = [0u8; 1];
    matches!(rustix::io::read(read_end, &mut b), Ok(0))
}

#[test]
fn donated_fds_are_never_installed() {
    let _g = FD_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new("donated-fds");
    let (mut c, root) = h.conn();

    let cases: [(&str, u16, Vec<u8>, usize); 4] = [
        ("FStat carrying 3 FDs", Mid::FSTAT.0, fstat_payload(root), 3),
        (
            "Walk carrying 3 FDs",
            Mid::WALK.0,
            walk_payload(root, &[b"missing"]),
            3,
        ),
        (
            "FStat carrying 200 FDs",
            Mid::FSTAT.0,
            fstat_payload(root),
            200,
        ),
        (
            "oversized frame carrying 3 FDs",
            Mid::FSTAT.0,
            vec![0u8; DEFAULT_MAX as usize + 10],
            3,
        ),
    ];
    for (case, mid, payload, n) in cases {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let extra = dev_nulls(n - 1);
        let before = open_fds();
        {
            let mut fds = vec![w.as_fd()];
            fds.extend(extra.iter().map(|f| f.as_fd()));
            c.send_bytes_with_fds(&frame(mid, &payload), &fds).unwrap();
        }
        drop(w);
        drop(extra);
        let reply = c.reply(mid);
        if payload.len() > DEFAULT_MAX as usize {
            h.expect_errno(case, &reply, EIO);
        } else if mid == Mid::WALK.0 {
            h.expect_ok(case, &reply);
        } else {
            let ok = matches!(&reply, Outcome::Ok { payload, fds }
                if fds.is_empty() && Statx::decode_payload_exact(payload).is_ok());
            h.check(case, ok, format!("answered normally: {reply:?}"));
        }
        drop(reply);
        let after = open_fds();
        h.check(
            &format!("{case}: no descriptor installed in the server process"),
            after + n == before,
            format!("{before} open before (with the {n} sent), {after} after closing ours"),
        );
        h.check(
            &format!("{case}: the pipe's write end is closed everywhere"),
            write_end_gone(&r),
            "read end sees EOF",
        );
        h.check_healthy(case);
    }

    // FDs on a frame the client never finishes.
    {
        let case = "a truncated frame carrying FDs, then close";
        let (c2, root2) = h.conn();
        let (r, w) = rustix::pipe::pipe().unwrap();
        let f = frame(Mid::WALK.0, &walk_payload(root2, &[b"probe"]));
        c2.send_bytes_with_fds(&f[..f.len() - 2], &[w.as_fd()])
            .unwrap();
        drop(w);
        drop(c2);
        let gone = wait_until(Duration::from_secs(5), || write_end_gone(&r));
        h.check(case, gone, "the pipe's write end is closed everywhere");
        only_healthy_left_plus(&mut h, case, 2);
        h.check_healthy(case);
    }
    drop(c);
    h.finish();
}

/// Like [`only_healthy_left`] with `conns` connections (each holding only
/// its root) still open.
fn only_healthy_left_plus(h: &mut Harness, case: &str, conns: u64) {
    let want = lisafs_server::Stats {
        connections: conns,
        control_fds: conns,
        ..Default::default()
    };
    let ok = wait_until(Duration::from_secs(10), || h.service.stats() == want);
    let got = h.service.stats();
    h.check(
        &format!("{case} / that connection is released"),
        ok,
        format!("stats {got:?}, want {want:?}"),
    );
}

// ---------------------------------------------------------------------------
// Garbage

/// Where the FDID sits in each request (PRead and PWrite start with the
/// offset).
fn fdid_offset(mid: u16) -> usize {
    match Mid(mid) {
        Mid::PWRITE | Mid::PREAD => 8,
        _ => 0,
    }
}

/// A valid request of every MID 1–33 on the given FDIDs, to be mutated.
fn template(mid: u16, ids: &Ids) -> Vec<u8> {
    use lisafs_wire as w;
    let cc = |dir| w::CreateCommon {
        dir_fd: dir,
        uid: Uid::NONE,
        gid: Gid::NONE,
        mode: 0o644,
    };
    let rn = w::RenameAtReq {
        old_dir: ids.sub,
        new_dir: ids.sub,
        old_name: b"a",
        new_name: b"b",
    };
    let one = [ids.open_file];
    match Mid(mid) {
        Mid::MOUNT | Mid::CHANNEL => Vec::new(),
        Mid::FSTAT => enc(&StatReq { fd: ids.file }),
        Mid::SET_STAT => enc(&w::SetStatReq {
            fd: ids.file,
            mask: 0x2,
            mode: 0o644,
            uid: Uid::NONE,
            gid: Gid::NONE,
            ..Default::default()
        }),
        Mid::WALK => walk_payload(ids.root, &[b"sub", b"x"]),
        Mid::WALK_STAT => enc(&WalkStatReq {
            dir_fd: ids.root,
            path: StringArray::from_items(&[b"", b"sub"]),
        }),
        Mid::OPEN_AT => enc(&w::OpenAtReq {
            fd: ids.file,
            flags: 0,
        }),
        Mid::OPEN_CREATE_AT => enc(&OpenCreateAtReq {
            common: cc(ids.sub),
            flags: O_RDWR,
            name: b"c",
        }),
        Mid::CLOSE => enc(&w::CloseReq {
            fds: w::FdArray::from_items(&[FdId(999)]),
        }),
        Mid::FSYNC => enc(&w::FsyncReq {
            fds: w::FdArray::from_items(&one),
        }),
        Mid::PWRITE => enc(&PWriteReq {
            offset: 0,
            fd: ids.open_file,
            data: b"abc",
        }),
        Mid::PREAD => enc(&PReadReq {
            offset: 0,
            fd: ids.open_file,
            count: 100,
        }),
        Mid::MKDIR_AT => enc(&MkdirAtReq {
            common: cc(ids.sub),
            name: b"m",
        }),
        Mid::MKNOD_AT => enc(&MknodAtReq {
            common: w::CreateCommon {
                mode: 0o100644,
                ..cc(ids.sub)
            },
            minor: 0,
            major: 0,
            name: b"n",
        }),
        Mid::SYMLINK_AT => enc(&SymlinkAtReq {
            dir_fd: ids.sub,
            uid: Uid::NONE,
            gid: Gid::NONE,
            name: b"s",
            target: b"t",
        }),
        Mid::LINK_AT => enc(&LinkAtReq {
            dir_fd: ids.sub,
            target: ids.file,
            name: b"l",
        }),
        Mid::FSTAT_FS => enc(&w::FStatFsReq { fd: ids.root }),
        Mid::FALLOCATE => enc(&w::FAllocateReq {
            fd: ids.open_file,
            mode: 0,
            offset: 0,
            length: 100,
        }),
        Mid::READ_LINK_AT => enc(&ReadLinkAtReq { fd: ids.file }),
        Mid::FLUSH => enc(&FlushReq { fd: ids.open_file }),
        Mid::CONNECT => enc(&w::ConnectReq {
            fd: ids.file,
            sock_type: 1,
        }),
        Mid::UNLINK_AT => enc(&w::UnlinkAtReq {
            dir_fd: ids.sub,
            flags: 0,
            name: b"zz",
        }),
        Mid::RENAME_AT => enc(&rn),
        Mid::GETDENTS64 => enc(&Getdents64Req {
            dir_fd: ids.open_dir,
            count: 4096,
        }),
        Mid::FGET_XATTR => enc(&w::FGetXattrReq {
            fd: ids.file,
            buf_size: 0,
            name: b"user.x",
        }),
        Mid::FSET_XATTR => enc(&w::FSetXattrReq {
            fd: ids.file,
            flags: 0,
            name: b"user.x",
            value: b"v",
        }),
        Mid::FLIST_XATTR => enc(&w::FListXattrReq {
            fd: ids.file,
            size: 0,
        }),
        Mid::FREMOVE_XATTR => enc(&w::FRemoveXattrReq {
            fd: ids.file,
            name: b"user.x",
        }),
        Mid::BIND_AT => enc(&w::BindAtReq {
            common: cc(ids.sub),
            sock_type: 1,
            name: b"sock",
        }),
        Mid::LISTEN => enc(&w::ListenReq {
            fd: ids.open_file,
            backlog: 1,
        }),
        Mid::ACCEPT => enc(&w::AcceptReq { fd: ids.file }),
        Mid::CONNECT_WITH_CREDS => enc(&w::ConnectWithCredsReq {
            connect: w::ConnectReq {
                fd: ids.file,
                sock_type: 1,
            },
            uid: Uid(0),
            gid: Gid(0),
        }),
        Mid::RENAME_AT2 => enc(&w::RenameAt2Req {
            rename: rn,
            flags: RENAME_EXCHANGE,
        }),
        other => panic!("no template for {other:?}"),
    }
}

struct Ids {
    root: FdId,
    file: FdId,
    sub: FdId,
    open_file: FdId,
    open_dir: FdId,
}

/// Flips bytes, cuts, extends or saturates a length field of `p`.
fn mutate(rng: &mut Rng, mut p: Vec<u8>) -> Vec<u8> {
    match rng.below(5) {
        0 if !p.is_empty() => {
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let i = rng.index(p.len());
                p[i] ^= 1 << rng.below(8);
            }
        }
        1 if !p.is_empty() => {
            let n = rng.index(p.len());
            p.truncate(n);
        }
        2 => {
            let n = 1 + rng.index(64);
            let extra = rng.bytes(n);
            p.extend(extra);
        }
        3 if p.len() >= 2 => {
            let i = rng.index(p.len() - 1);
            let v: u16 = [0xFFFF, 0x8000, 0, 1, 0x00FF][rng.index(5)];
            p[i..i + 2].copy_from_slice(&v.to_le_bytes());
        }
        _ if !p.is_empty() => {
            let i = rng.index(p.len());
            p[i] = rng.next_u64() as u8;
        }
        _ => p.extend(rng.bytes(8)),
    }
    p
}

/// Keeps mutated sizes and offsets small, so garbage cannot fill the disk.
fn tame(mid: u16, p: &mut [u8]) {
    let clamp = |p: &mut [u8], at: usize| {
        if p.len() >= at + 8 {
            let v = u64::from_le_bytes(p[at..at + 8].try_into().unwrap()) % (1 << 20);
            p[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
    };
    match Mid(mid) {
        Mid::PWRITE => clamp(p, 0),
        Mid::SET_STAT => clamp(p, 24),
        Mid::FALLOCATE => {
            clamp(p, 16);
            clamp(p, 24);
        }
        _ => {}
    }
}

#[test]
fn random_garbage_for_every_mid() {
    let _g = shared_fd_lock();
    let mut h = Harness::new("garbage");
    std::fs::create_dir(h.scratch.path("sub")).unwrap();
    std::fs::write(h.scratch.path("file"), vec![7u8; 5000]).unwrap();
    let (mut c, mut root) = h.conn();
    let mut rng = Rng::new(0x6a7b_a6e5);

    for mid in 1u16..=33 {
        // Valid FDIDs of every kind, so garbage reaches past the lookup.
        let file = c.walk_one(root, "file");
        let sub = c.walk_one(root, "sub");
        let open_file = c.open_at(file, O_RDWR).expect("open file");
        let open_dir = c.open_at(root, O_RDONLY).expect("open root");
        let valid = [root, file, sub, open_file, open_dir];
        let ids = Ids {
            root,
            file,
            sub,
            open_file,
            open_dir,
        };
        let tmpl = template(mid, &ids);

        let (mut replies, mut errors) = (0u32, 0u32);
        let mut broken = Vec::new();
        for i in 0..450 {
            if i >= 300 {
                // A mutated valid request gets past the decoder more often.
                let mut payload = mutate(&mut rng, tmpl.clone());
                tame(mid, &mut payload);
                match c.call(mid, &payload) {
                    Outcome::Ok { .. } => replies += 1,
                    Outcome::Errno(_) => errors += 1,
                    other => {
                        broken.push(format!("mutated payload {payload:02x?}: {other:?}"));
                        let (nc, nr) = h.conn();
                        c = nc;
                        root = nr;
                        break;
                    }
                }
                continue;
            }
            let len = match rng.below(10) {
                0 => 0,
                1..=6 => rng.index(64),
                7 | 8 => rng.index(600),
                _ => rng.index(8192),
            };
            let mut payload = rng.bytes(len);
            if i % 2 == 1 {
                // Half of them carry a valid FDID where the FDID goes.
                let off = fdid_offset(mid);
                if payload.len() < off + 8 {
                    payload.resize(off + 8 + rng.index(64), 0);
                }
                payload[off..off + 8].copy_from_slice(&rng.pick(&valid).0.to_le_bytes());
            }
            tame(mid, &mut payload);
            match c.call(mid, &payload) {
                Outcome::Ok { .. } => replies += 1,
                Outcome::Errno(_) => errors += 1,
                other => {
                    broken.push(format!(
                        "payload {:02x?}{}: {other:?}",
                        &payload[..payload.len().min(24)],
                        if payload.len() > 24 { "…" } else { "" }
                    ));
                    // The connection is gone; carry on with a new one.
                    let (nc, nr) = h.conn();
                    c = nc;
                    root = nr;
                    break;
                }
            }
        }
        let name = Mid(mid).name().unwrap_or("?");
        h.check(
            &format!("garbage for MID {mid} ({name})"),
            broken.is_empty(),
            format!("{replies} replies, {errors} errors; {}", broken.join("; ")),
        );
        // The fuzzed connection itself still works (it may have closed its
        // own FDIDs with random Close requests, so mount afresh if so).
        let r = c.walk(root, &[b"probe"]);
        let r = match r {
            Err(Outcome::Errno(EBADF)) => {
                root = c.mount().expect("remount");
                c.walk(root, &[b"probe"])
            }
            r => r,
        };
        h.check(
            &format!("garbage for MID {mid} / the same connection still walks"),
            matches!(&r, Ok((WalkStatus::Success, i)) if i.len() == 1),
            format!("{:?}", r.as_ref().map(|(s, i)| (*s, i.len()))),
        );
        if let Ok((_, inodes)) = r {
            let ids: Vec<FdId> = inodes.iter().map(|i| i.control_fd).collect();
            c.close(&ids);
        }
        c.close(&[file, sub, open_file, open_dir]);
        h.check_healthy(&format!("garbage for MID {mid}"));
    }
    h.finish();
}

// ---------------------------------------------------------------------------
// Pipelining

#[test]
fn ten_thousand_pipelined_requests() {
    let _g = shared_fd_lock();
    let mut h = Harness::new("pipeline");
    let (mut c, root) = h.conn();
    const N: usize = 10_000;

    // Room for every request in the client's send buffer, so the client
    // never has to read before it has sent them all.
    let fd = c.fd();
    if rustix::net::sockopt::set_socket_send_buffer_size_force(fd, 8 << 20).is_err() {
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, 8 << 20);
    }
    let mut bytes = Vec::with_capacity(N * 16);
    for i in 0..N {
        // Every third one fails, so replies must come back in order.
        let id = if i % 3 == 0 { FdId(0) } else { root };
        bytes.extend(frame(Mid::FSTAT.0, &fstat_payload(id)));
    }
    let start = Instant::now();
    let sent = c.send_bytes(&bytes);
    h.check(
        "10000 pipelined FStat requests sent without reading",
        sent.is_ok(),
        format!("{sent:?} after {:?}", start.elapsed()),
    );
    // The server is now blocked writing replies nobody reads; others go on.
    std::thread::sleep(Duration::from_millis(200));
    h.check_healthy("while a connection is blocked on its replies");

    let mut bad = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..N {
        if Instant::now() > deadline {
            bad.push(format!("only {i} replies drained in 30 s"));
            break;
        }
        let r = c.reply(Mid::FSTAT.0);
        let ok = if i % 3 == 0 {
            r.errno() == Some(EBADF)
        } else {
            matches!(&r, Outcome::Ok { payload, .. } if payload.len() == 144)
        };
        if !ok {
            bad.push(format!("reply {i}: {r:?}"));
            if matches!(r, Outcome::Eof | Outcome::Broken(_)) || bad.len() > 5 {
                break;
            }
        }
    }
    h.check(
        "10000 pipelined replies, in order",
        bad.is_empty(),
        format!("drained in {:?}; {}", start.elapsed(), bad.join("; ")),
    );
    let r = c.walk(root, &[b"probe"]);
    h.check(
        "after the pipeline, the same connection walks",
        matches!(&r, Ok((WalkStatus::Success, _))),
        format!("{:?}", r.map(|(s, i)| (s, i.len()))),
    );
    h.check_healthy("pipeline");
    h.finish();
}

// ---------------------------------------------------------------------------
// A client that vanishes during a large reply

#[test]
fn client_closes_during_a_large_pread_reply() {
    let _g = shared_fd_lock();
    let mut h = Harness::new("vanish");
    let size = DEFAULT_MAX as usize + 4096;
    std::fs::write(h.scratch.path("big"), vec![0x5Au8; size]).unwrap();
    let count = DEFAULT_MAX - PReadResp::HEADER_LEN as u32;

    for (case, read_first) in [
        (
            "client closes after 1 KiB of a 2 MiB PRead reply",
            1024usize,
        ),
        ("client closes right after sending a 2 MiB PRead", 0),
    ] {
        let (mut c, root) = h.conn();
        let big = c.walk_one(root, "big");
        let open = c.open_at(big, O_RDONLY).expect("open big");
        for _ in 0..4 {
            c.send_frame(
                Mid::PREAD.0,
                &enc(&PReadReq {
                    offset: 0,
                    fd: open,
                    count,
                }),
            )
            .unwrap();
        }
        if read_first > 0 {
            let got = c.recv_bytes(8 + read_first);
            h.check(
                &format!("{case}: the reply starts"),
                matches!(&got, Ok(b) if b.len() == 8 + read_first && b[4..6] == Mid::PREAD.0.to_le_bytes()),
                format!("{:?}", got.map(|b| b.len())),
            );
        }
        drop(c);
        only_healthy_left(&mut h, case);
        h.check_healthy(case);
    }
    h.finish();
}

// ---------------------------------------------------------------------------
// Limits

#[test]
fn limit_max_fds_is_emfile_and_creates_nothing() {
    let _g = shared_fd_lock();
    let opts = ConnectionOpts {
        max_fds: 4,
        ..ConnectionOpts::host(false)
    };
    let mut h = Harness::with("max-fds", |s| host_service(s, opts));
    std::fs::create_dir_all(h.scratch.path("a/b/c/d")).unwrap();
    std::fs::write(h.scratch.path("f"), b"f").unwrap();
    let (mut c, root) = h.conn();
    let stats = |h: &Harness| h.service.stats();
    let common = CreateCommon {
        dir_fd: root,
        uid: Uid::NONE,
        gid: Gid::NONE,
        mode: 0o644,
    };

    let before = stats(&h);
    let r = c.walk(root, &[b"a", b"b", b"c", b"d"]);
    h.check(
        "Walk needing 4 FDIDs with 3 free",
        matches!(r, Err(Outcome::Errno(EMFILE))),
        format!("{:?}", r.map(|(s, i)| (s, i.len()))),
    );
    h.check(
        "Walk refused with EMFILE / no FD or node created",
        stats(&h) == before,
        format!("{:?} vs {before:?}", stats(&h)),
    );
    let r = c.walk(root, &[b"a", b"b", b"c"]);
    let abc: Vec<FdId> = match r {
        Ok((WalkStatus::Success, i)) => i.iter().map(|i| i.control_fd).collect(),
        other => panic!("walk a/b/c: {:?}", other.map(|(s, i)| (s, i.len()))),
    };
    // The table is full now.
    let full = stats(&h);
    let r = c.call_msg(&MkdirAtReq {
        common,
        name: b"newdir",
    });
    h.expect_errno("MkdirAt with the table full", &r, EMFILE);
    let r = c.call_msg(&OpenCreateAtReq {
        common,
        flags: O_RDWR,
        name: b"newfile",
    });
    h.expect_errno("OpenCreateAt with the table full", &r, EMFILE);
    let r = c.call_msg(&SymlinkAtReq {
        dir_fd: root,
        uid: Uid::NONE,
        gid: Gid::NONE,
        name: b"newlink",
        target: b"f",
    });
    h.expect_errno("SymlinkAt with the table full", &r, EMFILE);
    let r = c.call_msg(&MknodAtReq {
        common: CreateCommon {
            mode: 0o100644,
            ..common
        },
        minor: 0,
        major: 0,
        name: b"newnode",
    });
    h.expect_errno("MknodAt with the table full", &r, EMFILE);
    let r = c.call_msg(&LinkAtReq {
        dir_fd: root,
        target: abc[2],
        name: b"newhard",
    });
    // c is a directory: EPERM comes before the FD check in gVisor's order.
    h.expect_errno(
        "LinkAt of a directory (checked before the limit)",
        &r,
        EPERM,
    );
    let r = c.open_at(root, O_RDONLY);
    h.check(
        "OpenAt with the table full",
        matches!(r, Err(Outcome::Errno(EMFILE))),
        format!("{r:?}"),
    );
    let r = c.mount();
    h.check(
        "Mount with the table full",
        matches!(r, Err(Outcome::Errno(EMFILE))),
        format!("{r:?}"),
    );
    let r = c.walk(root, &[]);
    h.check(
        "Walk of no components with the table full",
        matches!(r, Ok((WalkStatus::Success, ref i)) if i.is_empty()),
        format!("{:?}", r.map(|(s, i)| (s, i.len()))),
    );
    h.check(
        "refused creations / nothing half-created on the host",
        ["newdir", "newfile", "newlink", "newnode", "newhard"]
            .iter()
            .all(|n| !h.scratch.exists(n)),
        "no new host entries",
    );
    h.check(
        "refused requests / no FD or node created",
        stats(&h) == full,
        format!("{:?} vs {full:?}", stats(&h)),
    );
    h.check_healthy("table full");

    // One free slot: a one-FD create works, a two-FD create does not.
    c.close(&[abc[2]]);
    let r = c.call_msg(&OpenCreateAtReq {
        common,
        flags: O_RDWR,
        name: b"newfile",
    });
    h.expect_errno("OpenCreateAt (2 FDIDs) with 1 free", &r, EMFILE);
    h.check(
        "OpenCreateAt refused / the file was not created",
        !h.scratch.exists("newfile"),
        "newfile absent",
    );
    let r = c.call_msg(&MkdirAtReq {
        common,
        name: b"newdir",
    });
    h.expect_ok("MkdirAt with 1 free", &r);
    h.check(
        "MkdirAt with 1 free / created",
        h.scratch.exists("newdir"),
        "newdir present",
    );
    // Closing makes room again.
    c.close(&abc[..2]);
    let r = c.call_msg(&OpenCreateAtReq {
        common,
        flags: O_RDWR,
        name: b"newfile",
    });
    h.expect_ok("OpenCreateAt after closing", &r);
    h.check_healthy("limit max_fds");
    h.finish();
}

#[test]
fn limit_max_channels_is_enomem() {
    let _g = shared_fd_lock();
    let opts = ConnectionOpts {
        max_channels: 1,
        ..ConnectionOpts::host(false)
    };
    let mut h = Harness::with("max-channels", |s| host_service(s, opts));
    let (mut a, _) = h.conn();
    let r = a.call(Mid::CHANNEL.0, &[]);
    h.check(
        "first Channel under max_channels = 1",
        matches!(&r, Outcome::Ok { fds, .. } if fds.len() == 2),
        format!("{r:?}"),
    );
    drop(r);
    for n in 2..=3 {
        let r = a.call(Mid::CHANNEL.0, &[]);
        h.expect_errno(&format!("Channel #{n} under max_channels = 1"), &r, ENOMEM);
    }
    let (mut b, _) = h.conn();
    let r = b.call(Mid::CHANNEL.0, &[]);
    h.check(
        "another connection has its own channel budget",
        matches!(&r, Outcome::Ok { fds, .. } if fds.len() == 2),
        format!("{r:?}"),
    );
    drop(r);
    h.check_healthy("max_channels");

    // The typed client stops at the limit and uses what it got.
    let (cs, ss) = lisafs_transport::socket_pair().unwrap();
    h.service.attach(ss).unwrap();
    let client = lisafs_client::Client::connect(cs).expect("connect");
    let n = client.start_channels(0);
    h.check(
        "Client::start_channels under max_channels = 1",
        matches!(n, Ok(1)),
        format!("{n:?}"),
    );
    let before = h.service.channel_requests();
    let w = client.walk(client.root().control_fd, &[b"probe"]);
    h.check(
        "a request then travels on the channel",
        w.is_ok() && h.service.channel_requests() > before,
        format!("{:?}", w.map(|(s, i)| (s, i.len()))),
    );
    drop(client);

    // The default: gVisor's rule, the CPU count clamped to [2, 4].
    let mut d = Harness::new("default-channels");
    let (mut c, _) = d.conn();
    let want = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4);
    let mut granted = 0;
    let last = loop {
        match c.call(Mid::CHANNEL.0, &[]) {
            Outcome::Ok { .. } if granted < 16 => granted += 1,
            other => break other,
        }
    };
    d.check(
        "default channel limit",
        granted == want && last.errno() == Some(ENOMEM),
        format!("{granted} granted (want {want}), then {last:?}"),
    );
    d.check_healthy("default channel limit");
    d.finish();
    h.finish();
}

/// HostFs with a small maximum message size.
struct SmallMax {
    inner: lisafs_host::HostFs,
    max: u32,
}

impl ConnectionImpl for SmallMax {
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)> {
        self.inner.mount()
    }
    fn supported_messages(&self) -> &[Mid] {
        self.inner.supported_messages()
    }
    fn max_message_size(&self) -> u32 {
        self.max
    }
}

#[test]
fn limit_small_max_message_size() {
    let _g = shared_fd_lock();
    const MAX: u32 = 1024;
    let mut h = Harness::with("small-max", |s| {
        std::fs::create_dir(s.path("many")).unwrap();
        for i in 0..300 {
            // Names of 40 to 255 bytes: host records up to 280 bytes.
            let len = if i % 3 == 0 { 255 } else { 40 + i % 200 };
            let name = format!("entry-{i:04}-{}", "x".repeat(len - 11));
            std::fs::write(s.path(&format!("many/{name}")), b"").unwrap();
        }
        std::os::unix::fs::symlink("t".repeat(1500), s.path("longlink")).unwrap();
        std::fs::write(s.path("data"), vec![1u8; 8192]).unwrap();
        let inner = s.host_fs();
        service_with(
            Arc::new(SmallMax { inner, max: MAX }),
            ConnectionOpts::host(false),
        )
    });
    let (mut c, root) = h.conn();
    h.check(
        "Mount announces the backend's maximum",
        c.limit == MAX,
        format!("max_message_size {}", c.limit),
    );
    let data = c.walk_one(root, "data");
    let open = c.open_at(data, O_RDWR).expect("open data");

    let exact = vec![2u8; MAX as usize - PWriteReq::HEADER_LEN];
    let r = c.call_msg(&PWriteReq {
        offset: 0,
        fd: open,
        data: &exact,
    });
    h.expect_ok("PWrite whose payload is exactly the maximum", &r);
    let over = vec![3u8; MAX as usize - PWriteReq::HEADER_LEN + 1];
    let r = c.call_msg(&PWriteReq {
        offset: 0,
        fd: open,
        data: &over,
    });
    h.expect_errno("PWrite one byte over the maximum", &r, EIO);
    let content = std::fs::read(h.scratch.path("data")).unwrap();
    h.check(
        "the oversized PWrite wrote nothing",
        !content.contains(&3),
        "no byte 3 in the file",
    );
    let r = c.call(Mid::WALK.0, &vec![0u8; 1 << 20]);
    h.expect_errno("a 1 MiB request against a 1 KiB maximum", &r, EIO);
    let r = c.call(Mid::FSTAT.0, &fstat_payload(open));
    h.expect_ok("stream in sync after oversized requests", &r);

    let count = MAX - PReadResp::HEADER_LEN as u32;
    let r = c.call_msg(&PReadReq {
        offset: 0,
        fd: open,
        count,
    });
    h.check(
        "PRead of exactly max − 8 bytes",
        matches!(&r, Outcome::Ok { payload, .. } if payload.len() == MAX as usize),
        format!("{r:?}"),
    );
    let r = c.call_msg(&PReadReq {
        offset: 0,
        fd: open,
        count: count + 1,
    });
    h.expect_errno("PRead of max − 7 bytes", &r, ENOBUFS);

    let names: Vec<&[u8]> = vec![b"nope"; 7];
    let r = c.call(Mid::WALK.0, &walk_payload(root, &names));
    h.expect_errno("Walk of 7 components (3 + 152·7 > 1024)", &r, EIO);
    let r = c.call(Mid::WALK.0, &walk_payload(root, &names[..6]));
    h.check("Walk of 6 components fits", r.is_ok(), format!("{r:?}"));
    let names: Vec<&[u8]> = vec![b"nope"; 8];
    let r = c.call_msg(&WalkStatReq {
        dir_fd: root,
        path: StringArray::from_items(&names),
    });
    h.expect_errno("WalkStat of 8 components (2 + 144·8 > 1024)", &r, EIO);

    // A directory whose listing is far larger than one reply.
    let many = c.walk_one(root, "many");
    let dir = c.open_at(many, O_RDONLY).expect("open many");
    let mut seen = std::collections::BTreeSet::new();
    let mut rounds = 0;
    let mut problem = None;
    loop {
        rounds += 1;
        if rounds > 1000 {
            problem = Some("no end of directory after 1000 replies".to_string());
            break;
        }
        match c.call_msg(&Getdents64Req {
            dir_fd: dir,
            count: 65536,
        }) {
            Outcome::Ok { payload, .. } => {
                let resp = Getdents64Resp::decode_payload_exact(&payload).unwrap();
                if resp.dirents.is_empty() {
                    break;
                }
                for d in resp.dirents.iter() {
                    if !seen.insert(d.name.to_vec()) {
                        problem = Some(format!(
                            "{:?} listed twice",
                            String::from_utf8_lossy(d.name)
                        ));
                    }
                }
            }
            other => {
                problem = Some(format!("reply {rounds}: {other:?}"));
                break;
            }
        }
    }
    h.check(
        "Getdents64 of 300 entries under a 1 KiB maximum",
        problem.is_none() && seen.len() == 300,
        format!("{} entries in {rounds} replies; {problem:?}", seen.len()),
    );

    let link = c.walk_one(root, "longlink");
    let r = c.call_msg(&ReadLinkAtReq { fd: link });
    h.expect_errno("ReadLinkAt whose 1500-byte target cannot fit", &r, EIO);
    c.close(&[data, open, many, dir, link]);
    h.check(
        "no reply ever exceeded the maximum",
        c.max_reply_seen <= MAX as usize,
        format!("largest reply {} bytes", c.max_reply_seen),
    );
    h.check_healthy("small max_message_size");
    h.finish();
}

#[test]
fn limit_max_connections_closes_the_extra_one_at_once() {
    let _g = shared_fd_lock();
    let mut h = Harness::new("max-conns");
    // The harness's healthy connection is #1.
    h.service.set_max_connections(3);
    let (mut a, ra) = h.conn();
    let (b, _rb) = h.conn();

    let (client, server) = lisafs_transport::socket_pair().unwrap();
    let attached = h.service.attach(server);
    let mut extra = RawConn::new(client);
    let t = Instant::now();
    let eof = extra.sees_eof_within(Duration::from_secs(2));
    h.check(
        "4th connection (attach) over a limit of 3",
        attached.is_err() && eof.is_ok(),
        format!(
            "attach {:?}, client {eof:?} after {:?}",
            attached.err(),
            t.elapsed()
        ),
    );

    let sock = std::env::temp_dir().join(format!("lisafs-maxconn-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    h.service.listen(&sock).expect("listen");
    let stream = UnixStream::connect(&sock).expect("connect");
    let mut extra = RawConn::new(OwnedFd::from(stream));
    let t = Instant::now();
    let eof = extra.sees_eof_within(Duration::from_secs(2));
    h.check(
        "4th connection (listen) over a limit of 3",
        eof.is_ok(),
        format!("client {eof:?} after {:?}", t.elapsed()),
    );
    let r = a.walk(ra, &[b"probe"]);
    h.check(
        "existing connections keep working",
        matches!(r, Ok((WalkStatus::Success, _))),
        format!("{:?}", r.map(|(s, i)| (s, i.len()))),
    );
    h.check_healthy("max_connections");

    drop(b);
    h.check(
        "a closed connection frees its slot",
        wait_connections(&h.service, 2),
        format!("{:?}", h.service.stats()),
    );
    // The counter drops a moment before the service forgets the socket, so
    // a connection made in between may still be refused: retry briefly.
    let mut tries = 0;
    let (m, _c) = loop {
        tries += 1;
        let stream = UnixStream::connect(&sock).expect("connect");
        let mut c = RawConn::new(OwnedFd::from(stream));
        let m = c.mount();
        if m.is_ok() || tries == 50 {
            break (m, c);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    h.check(
        "a new connection fits after one closed",
        m.is_ok(),
        format!("{m:?} after {tries} tries"),
    );
    h.service.set_max_connections(0);
    let (_d, _) = h.conn();
    let (_e, _) = h.conn();
    h.check(
        "no limit after set_max_connections(0)",
        h.service.stats().connections == 5,
        format!("{:?}", h.service.stats()),
    );
    h.check_healthy("max_connections lifted");
    h.service.close();
    h.check(
        "close removes the socket file",
        !path_exists(&sock),
        format!("{sock:?}"),
    );
    h.finish();
}
