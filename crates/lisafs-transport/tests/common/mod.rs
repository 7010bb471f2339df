//! Scenarios shared by the per-behaviour tests and the FD-leak test.
//!
//! Every scenario joins the threads it starts and closes what it opens, so
//! the leak test can run them back to back and compare descriptor counts.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use lisafs_transport::{
    begin_frame, socket_pair, RecvError, SockCommunicator, SockHeader, HEADER_LEN, MAX_FDS,
};
use lisafs_wire::{Mid, DEFAULT_MAX_MESSAGE_SIZE};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{memfd_create, MemfdFlags};
use rustix::io::{fcntl_getfd, ioctl_fionbio, FdFlags};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

pub fn comm_pair() -> (SockCommunicator, SockCommunicator) {
    let (a, b) = socket_pair().unwrap();
    (SockCommunicator::new(a), SockCommunicator::new(b))
}

/// A communicator and a raw stream on the other end, for a peer that
/// misbehaves at the byte level.
pub fn raw_pair() -> (SockCommunicator, UnixStream) {
    let (a, b) = socket_pair().unwrap();
    (SockCommunicator::new(a), UnixStream::from(b))
}

pub fn header(mid: Mid, len: u32) -> [u8; HEADER_LEN] {
    SockHeader {
        payload_len: len,
        mid,
    }
    .to_bytes()
}

/// Runs `f` on its own thread; panics if it takes longer than `secs`.
pub fn with_timeout<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(_) => panic!("timed out after {secs} s (or the worker panicked)"),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().unwrap();
    (r.into(), w.into())
}

fn assert_cloexec(fd: &OwnedFd) {
    assert!(fcntl_getfd(fd).unwrap().contains(FdFlags::CLOEXEC));
}

/// Whether every write end of the pipe whose read end is `r` is closed,
/// here and in flight.
fn pipe_writers_gone(r: &OwnedFd) -> bool {
    let mut pfd = [PollFd::new(r, PollFlags::IN)];
    let t = Timespec {
        tv_sec: 2,
        tv_nsec: 0,
    };
    poll(&mut pfd, Some(&t)).unwrap();
    pfd[0].revents().contains(PollFlags::HUP)
}

// --- 1. round trips ----------------------------------------------------------

pub fn round_trip_small() {
    let (mut a, mut b) = comm_pair();
    a.send(Mid::FSYNC, &[], &[]).unwrap();
    let f = b.recv(0).unwrap();
    assert_eq!((f.mid, f.payload, f.fds.len()), (Mid::FSYNC, &[][..], 0));

    b.send(Mid::FSTAT, b"hello", &[]).unwrap();
    b.send(Mid(0xfffe), &[7; 3], &[]).unwrap();
    let f = a.recv(0).unwrap();
    assert_eq!((f.mid, f.payload), (Mid::FSTAT, &b"hello"[..]));
    let f = a.recv(0).unwrap();
    assert_eq!((f.mid, f.payload), (Mid(0xfffe), &[7u8; 3][..]));

    // In-place frames, and a buffer reused for a shorter payload.
    let mut out = Vec::new();
    begin_frame(&mut out);
    out.extend_from_slice(b"in place");
    a.send_frame(Mid::WALK, &mut out, &[]).unwrap();
    begin_frame(&mut out);
    a.send_frame(Mid::CLOSE, &mut out, &[]).unwrap();
    let f = b.recv(0).unwrap();
    assert_eq!((f.mid, f.payload), (Mid::WALK, &b"in place"[..]));
    let f = b.recv(0).unwrap();
    assert_eq!((f.mid, f.payload), (Mid::CLOSE, &[][..]));
}

/// A maximum-size payload each way; far larger than the socket buffer, so
/// both ends loop on short writes and reads.
pub fn round_trip_large() {
    let (mut a, b) = comm_pair();
    let len = DEFAULT_MAX_MESSAGE_SIZE as usize;
    let echo = thread::spawn(move || {
        let mut b = b;
        let (mid, data) = {
            let f = b.recv(0).unwrap();
            (f.mid, f.payload.to_vec())
        };
        let mut rev = data;
        rev.reverse();
        b.send(mid, &rev, &[]).unwrap();
        // A smaller frame after the big one reuses the buffer.
        let f = b.recv(0).unwrap();
        assert_eq!(f.payload, b"tail");
        b.recv_buffer_capacity()
    });
    let data = pattern(len, 3);
    a.send(Mid::PWRITE, &data, &[]).unwrap();
    a.send(Mid::PWRITE, b"tail", &[]).unwrap();
    let f = a.recv(0).unwrap();
    assert_eq!(f.mid, Mid::PWRITE);
    assert_eq!(f.payload.len(), len);
    assert!(f.payload.iter().rev().eq(data.iter()));
    let cap = echo.join().unwrap();
    assert!(cap <= len, "receive buffer {cap} > limit {len}");
}

// --- 2. FD donation ------------------------------------------------------------

pub fn donate_one_fd() {
    let (mut a, mut b) = comm_pair();
    let (r, w) = pipe();
    a.send(Mid::OPEN_AT, b"x", &[w.as_fd()]).unwrap();
    drop(w);
    let mut f = b.recv(1).unwrap();
    assert_eq!((f.mid, f.payload), (Mid::OPEN_AT, &b"x"[..]));
    assert_eq!(f.fds.len(), 1);
    assert_cloexec(&f.fds[0]);
    let got = f.fds.pop().unwrap();
    std::fs::File::from(got)
        .write_all(b"via donated fd")
        .unwrap();
    let mut s = String::new();
    std::fs::File::from(r).read_to_string(&mut s).unwrap();
    assert_eq!(s, "via donated fd");
}

pub fn donate_two_fds() {
    let (mut a, mut b) = comm_pair();
    let mem = memfd_create("lisafs-test", MemfdFlags::CLOEXEC).unwrap();
    let (r, w) = pipe();
    // An empty payload still carries FDs: the header is always sent.
    a.send(Mid::CHANNEL, &[], &[mem.as_fd(), w.as_fd()])
        .unwrap();
    drop(w);
    let f = b.recv(2).unwrap();
    assert_eq!((f.mid, f.payload.len()), (Mid::CHANNEL, 0));
    let mut fds = f.fds;
    assert_eq!(fds.len(), 2);
    fds.iter().for_each(assert_cloexec);
    let w2 = fds.pop().unwrap();
    let mem2 = fds.pop().unwrap();
    // Order kept: the first is the memfd (same file, so shared contents).
    rustix::io::pwrite(&mem2, b"shared", 0).unwrap();
    let mut buf = [0u8; 6];
    rustix::io::pread(&mem, &mut buf, 0).unwrap();
    assert_eq!(&buf, b"shared");
    std::fs::File::from(w2).write_all(b"pipe").unwrap();
    let mut s = String::new();
    std::fs::File::from(r).read_to_string(&mut s).unwrap();
    assert_eq!(s, "pipe");
}

/// Asking for fewer FDs than were sent: the extras never reach the caller
/// and are closed.
pub fn extra_fds_closed() {
    let (mut a, mut b) = comm_pair();
    let pipes: Vec<_> = (0..3).map(|_| pipe()).collect();
    let ws: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
    a.send(Mid::OPEN_AT, b"", &ws).unwrap();
    drop(ws);
    let (rs, ws): (Vec<_>, Vec<_>) = pipes.into_iter().unzip();
    drop(ws);
    let f = b.recv(1).unwrap();
    assert_eq!(f.fds.len(), 1);
    drop(f);
    for r in &rs {
        assert!(pipe_writers_gone(r));
    }
}

// --- 3. unwanted FDs -----------------------------------------------------------

/// A peer donating FDs to a receiver that wants none: the frame arrives
/// and no copy of the FDs survives anywhere (the pipe sees its writers go).
pub fn unwanted_fds_not_installed() {
    let (mut a, mut b) = comm_pair();
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    a.send(Mid::WALK, b"req", &[w1.as_fd(), w2.as_fd()])
        .unwrap();
    drop((w1, w2));
    let before = open_fd_count();
    let f = b.recv(0).unwrap();
    assert_eq!((f.mid, f.payload, f.fds.len()), (Mid::WALK, &b"req"[..], 0));
    assert!(open_fd_count() <= before);
    drop(f);
    assert!(pipe_writers_gone(&r1));
    assert!(pipe_writers_gone(&r2));
}

/// FDs riding on a later chunk of a frame (not its first read) are dropped
/// even when the receiver wants FDs, as in gVisor.
pub fn late_fds_dropped() {
    let (mut comm, raw) = raw_pair();
    let (r, w) = pipe();
    let mut raw_w = &raw;
    raw_w.write_all(&header(Mid::OPEN_AT, 4)).unwrap();
    let fds = [w.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    let n = sendmsg(
        &raw,
        &[std::io::IoSlice::new(b"body")],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();
    assert_eq!(n, 4);
    drop(w);
    let f = comm.recv(1).unwrap();
    assert_eq!((f.payload, f.fds.len()), (&b"body"[..], 0));
    drop(f);
    assert!(pipe_writers_gone(&r));
}

// --- 4. short reads ----------------------------------------------------------

pub fn byte_by_byte() {
    let (mut comm, raw) = raw_pair();
    let payload = pattern(40, 9);
    let mut bytes = header(Mid::READ_LINK_AT, 40).to_vec();
    bytes.extend_from_slice(&payload);
    let writer = thread::spawn(move || {
        let mut raw = raw;
        for b in bytes {
            raw.write_all(&[b]).unwrap();
            thread::sleep(Duration::from_micros(300));
        }
        raw
    });
    let f = comm.recv(0).unwrap();
    assert_eq!((f.mid, f.payload), (Mid::READ_LINK_AT, &payload[..]));
    drop(writer.join().unwrap());
    assert!(matches!(comm.recv(0), Err(RecvError::Closed)));
}

// --- 5. oversized --------------------------------------------------------------

pub fn oversized_skipped() {
    let (mut comm, raw) = raw_pair();
    let max = comm.max_payload();
    let (keep_r, w) = pipe();
    let writer = thread::spawn(move || {
        let mut raw = raw;
        // FDs on the oversized frame must be closed, not handed out.
        let fds = [w.as_fd()];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        let hdr = header(Mid::PWRITE, max + 1);
        let n = sendmsg(
            &raw,
            &[std::io::IoSlice::new(&hdr)],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .unwrap();
        assert_eq!(n, HEADER_LEN);
        drop(w);
        raw.write_all(&vec![0xee; max as usize + 1]).unwrap();
        raw.write_all(&header(Mid::FSTAT, 3)).unwrap();
        raw.write_all(b"ok!").unwrap();
        raw
    });
    match comm.recv(1) {
        Err(e @ RecvError::TooLarge { .. }) => {
            assert!(e.is_recoverable());
            let RecvError::TooLarge { mid, len } = e else {
                unreachable!()
            };
            assert_eq!((mid, len), (Mid::PWRITE, max + 1));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(comm.recv_buffer_capacity() <= max as usize);
    let f = comm.recv(0).unwrap();
    assert_eq!((f.mid, f.payload), (Mid::FSTAT, &b"ok!"[..]));
    drop(writer.join().unwrap());
    assert!(pipe_writers_gone(&keep_r));

    // A small limit, with a buffer that has already grown.
    let (mut a, mut b) = comm_pair();
    b.set_max_payload(100);
    a.send(Mid::PREAD, &[1; 100], &[]).unwrap();
    assert_eq!(b.recv(0).unwrap().payload.len(), 100);
    a.set_max_payload(200);
    a.send(Mid::PREAD, &[2; 101], &[]).unwrap();
    a.send(Mid::PREAD, &[3; 99], &[]).unwrap();
    assert!(matches!(
        b.recv(0),
        Err(RecvError::TooLarge {
            mid: Mid::PREAD,
            len: 101
        })
    ));
    assert_eq!(b.recv(0).unwrap().payload, &[3; 99][..]);
    assert!(b.recv_buffer_capacity() <= 100);
}

/// A header claiming 4 GiB followed by a little data and EOF: Truncated,
/// promptly, with no large allocation.
pub fn huge_claim_truncated() {
    let (mut comm, raw) = raw_pair();
    let writer = thread::spawn(move || {
        let mut raw = raw;
        raw.write_all(&header(Mid::PWRITE, u32::MAX)).unwrap();
        raw.write_all(&vec![0; 300_000]).unwrap();
    });
    let r = with_timeout(10, move || {
        let r = comm.recv(0).map(|_| ()).map_err(|e| format!("{e:?}"));
        (r, comm.recv_buffer_capacity())
    });
    writer.join().unwrap();
    assert_eq!(r.0, Err("Truncated".to_string()));
    assert!(r.1 <= DEFAULT_MAX_MESSAGE_SIZE as usize);
}

// --- 6. EOF --------------------------------------------------------------------

pub fn eof_cases() {
    // Before any header byte.
    let (mut comm, raw) = raw_pair();
    drop(raw);
    assert!(matches!(comm.recv(0), Err(RecvError::Closed)));
    assert!(matches!(comm.recv(2), Err(RecvError::Closed)));

    // Inside the header.
    let (mut comm, mut raw) = raw_pair();
    raw.write_all(&header(Mid::FSTAT, 0)[..3]).unwrap();
    drop(raw);
    assert!(matches!(comm.recv(0), Err(RecvError::Truncated)));

    // Inside the payload.
    let (mut comm, mut raw) = raw_pair();
    raw.write_all(&header(Mid::FSTAT, 10)).unwrap();
    raw.write_all(&[1, 2, 3]).unwrap();
    drop(raw);
    assert!(matches!(comm.recv(1), Err(RecvError::Truncated)));

    // Header complete, payload never started.
    let (mut comm, mut raw) = raw_pair();
    raw.write_all(&header(Mid::FSTAT, 1)).unwrap();
    drop(raw);
    assert!(matches!(comm.recv(0), Err(RecvError::Truncated)));

    // A complete frame, then EOF.
    let (mut comm, mut raw) = raw_pair();
    raw.write_all(&header(Mid::FSTAT, 0)).unwrap();
    drop(raw);
    assert_eq!(comm.recv(0).unwrap().mid, Mid::FSTAT);
    assert!(matches!(comm.recv(0), Err(RecvError::Closed)));
}

// --- 7. shutdown -------------------------------------------------------------

pub fn shutdown_unblocks_recv() {
    let (comm, peer) = comm_pair();
    let handle = comm.shutdown_handle();
    let (started_tx, started_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut comm = comm;
        started_tx.send(()).unwrap();
        let r = comm.recv(0).map(|_| ()).map_err(|e| format!("{e:?}"));
        (r, comm)
    });
    started_rx.recv().unwrap();
    thread::sleep(Duration::from_millis(50));
    handle.shutdown().unwrap();
    let (r, comm) = with_timeout(10, move || reader.join().unwrap());
    assert_eq!(r, Err("Closed".to_string()));
    // Peer sees EOF too.
    let mut peer = peer;
    assert!(matches!(peer.recv(0), Err(RecvError::Closed)));
    comm.shutdown().unwrap();
    drop(comm);
    // The handle outlives the communicator harmlessly.
    handle.shutdown().unwrap();
}

// --- send-side checks ----------------------------------------------------------

pub fn send_errors() {
    let (mut a, mut b) = comm_pair();
    a.set_max_payload(16);
    let e = a.send(Mid::PWRITE, &[0; 17], &[]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = a.send_frame(Mid::PWRITE, &mut [0; 7], &[]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = a
        .send_frame(Mid::PWRITE, &mut [0; 8 + 17], &[])
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let (_r, w) = pipe();
    let many = vec![w.as_fd(); MAX_FDS + 1];
    let e = a.send(Mid::PWRITE, &[], &many).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    // Nothing went out for any of those.
    a.send(Mid::FSYNC, &[0; 16], &many[..MAX_FDS]).unwrap();
    let f = b.recv(MAX_FDS).unwrap();
    assert_eq!(
        (f.mid, f.payload.len(), f.fds.len()),
        (Mid::FSYNC, 16, MAX_FDS)
    );
    drop(f);

    // A vanished peer is an error (EPIPE), not a signal.
    drop(b);
    let e = a.send(Mid::FSYNC, &[0; 4], &[]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
}

/// Non-blocking sockets (as a Go peer may hand over) work, waiting with poll.
pub fn nonblocking_sockets() {
    let (a, b) = socket_pair().unwrap();
    ioctl_fionbio(&a, true).unwrap();
    ioctl_fionbio(&b, true).unwrap();
    let (mut a, b) = (SockCommunicator::new(a), SockCommunicator::new(b));
    let len = DEFAULT_MAX_MESSAGE_SIZE as usize;
    let echo = thread::spawn(move || {
        let mut b = b;
        let data = b.recv(0).unwrap().payload.to_vec();
        b.send(Mid::PREAD, &data, &[]).unwrap();
    });
    let data = pattern(len, 5);
    a.send(Mid::PWRITE, &data, &[]).unwrap();
    let f = a.recv(0).unwrap();
    assert_eq!((f.mid, f.payload == &data[..]), (Mid::PREAD, true));
    echo.join().unwrap();
}

pub const ALL: &[(&str, fn())] = &[
    ("round_trip_small", round_trip_small),
    ("round_trip_large", round_trip_large),
    ("donate_one_fd", donate_one_fd),
    ("donate_two_fds", donate_two_fds),
    ("extra_fds_closed", extra_fds_closed),
    ("unwanted_fds_not_installed", unwanted_fds_not_installed),
    ("late_fds_dropped", late_fds_dropped),
    ("byte_by_byte", byte_by_byte),
    ("oversized_skipped", oversized_skipped),
    ("huge_claim_truncated", huge_claim_truncated),
    ("eof_cases", eof_cases),
    ("shutdown_unblocks_recv", shutdown_unblocks_recv),
    ("send_errors", send_errors),
    ("nonblocking_sockets", nonblocking_sockets),
    ("pipelined_frames", pipelined_frames),
    (
        "read_ahead_within_tiny_limits",
        read_ahead_within_tiny_limits,
    ),
];

// --- Read-ahead -------------------------------------------------------------------

/// A peer that pipelines: several frames, an oversized one among them, in
/// one write. The read-ahead keeps what follows each frame for the next
/// receive, also when an oversized frame is skipped and when the rest of a
/// payload is still to come.
pub fn pipelined_frames() {
    let (mut comm, raw) = raw_pair();
    comm.set_max_payload(10);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&header(Mid::FSTAT, 3));
    bytes.extend_from_slice(b"one");
    bytes.extend_from_slice(&header(Mid::PWRITE, 11));
    bytes.extend_from_slice(&[0xee; 11]);
    bytes.extend_from_slice(&header(Mid::WALK, 0));
    bytes.extend_from_slice(&header(Mid::CLOSE, 2));
    // The last frame's payload is split across the read-ahead and the
    // socket.
    bytes.extend_from_slice(b"t");
    let mut raw = raw;
    raw.write_all(&bytes).unwrap();
    let f = comm.recv(0).unwrap();
    assert_eq!((f.mid, f.payload), (Mid::FSTAT, &b"one"[..]));
    assert!(matches!(
        comm.recv(0),
        Err(RecvError::TooLarge {
            mid: Mid::PWRITE,
            len: 11
        })
    ));
    let f = comm.recv(0).unwrap();
    assert_eq!((f.mid, f.payload.len()), (Mid::WALK, 0));
    raw.write_all(b"w").unwrap();
    let f = comm.recv(1).unwrap();
    assert_eq!((f.mid, f.payload), (Mid::CLOSE, &b"tw"[..]));
    assert!(f.fds.is_empty());
    assert!(comm.recv_buffer_capacity() <= 10);
    drop(raw);
    assert!(matches!(comm.recv(0), Err(RecvError::Closed)));
}

/// The read-ahead buffer respects a payload limit below Vec's smallest
/// growth step (found by the `frames` fuzz target: a 6-byte limit got an
/// 8-byte buffer).
pub fn read_ahead_within_tiny_limits() {
    for max in 1..=16u32 {
        let (mut comm, raw) = raw_pair();
        comm.set_max_payload(max);
        let mut raw = raw;
        raw.write_all(&header(Mid::FSTAT, 1)).unwrap();
        raw.write_all(b"x").unwrap();
        let f = comm.recv(0).unwrap();
        assert_eq!((f.mid, f.payload), (Mid::FSTAT, &b"x"[..]));
        assert!(
            comm.recv_buffer_capacity() <= max as usize,
            "limit {max}: buffer {}",
            comm.recv_buffer_capacity()
        );
    }
}
