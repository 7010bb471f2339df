//! Scaffolding shared by the hostile-client test binaries: scratch trees,
//! a raw frame-level client with timeouts, process measurements, a seeded
//! PRNG and a soft-assertion harness that reports every failing case.

#![allow(dead_code)]

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionImpl, ConnectionOpts, Errno, Service};
use lisafs_wire::{
    CloseReq, FdArray, FdId, Inode, Message, Mid, MountResp, OpenAtReq, OpenAtResp, SockHeader,
    StringArray, WalkReq, WalkResp, WalkStatus,
};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

#[allow(unused_imports)]
pub use lisafs_wire::errno::*;

/// How long any single raw receive or send may block before the test calls
/// it a hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// The server's default maximum payload (gVisor's).
pub const DEFAULT_MAX: u32 = lisafs_wire::DEFAULT_MAX_MESSAGE_SIZE;

pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const AT_REMOVEDIR: u32 = 0x200;
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

/// The symbolic name of an errno, for messages.
pub fn ename(errno: u32) -> String {
    match Errno(errno).name() {
        Some(n) => n.to_string(),
        None => format!("errno {errno}"),
    }
}

// ---------------------------------------------------------------------------
// Scratch trees

/// A fresh directory under the system temp dir, removed on drop.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("lisafs-server-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create scratch dir");
        Scratch { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path(rel)).is_ok()
    }

    pub fn host_fs(&self) -> HostFs {
        HostFs::new(&self.root, HostOptions::default()).expect("HostFs::new")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// ---------------------------------------------------------------------------
// Process measurements

/// Open descriptors of this process (the server runs in it).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
        // read_dir's own descriptor.
        .saturating_sub(1)
}

/// VmRSS of this process, in KiB.
pub fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A thread-dump-ish picture of this process: every thread's name, state
/// and kernel wait channel (what a deadlock looks like from outside).
pub fn thread_dump() -> String {
    let mut out = String::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return "(no /proc/self/task)".into();
    };
    for t in tasks.flatten() {
        let p = t.path();
        let read = |f: &str| {
            std::fs::read_to_string(p.join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let stat = read("stat");
        // The state letter follows the parenthesised command name.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        out.push_str(&format!(
            "  tid {:>7} {:<24} state {} wchan {}\n",
            t.file_name().to_string_lossy(),
            read("comm"),
            state,
            read("wchan")
        ));
    }
    out.push_str(&format!(
        "  (for stacks: gdb -p {} -batch -ex 'thread apply all bt')\n",
        std::process::id()
    ));
    out
}

// ---------------------------------------------------------------------------
// PRNG

/// SplitMix64: small, seedable, good enough for choosing operations.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

// ---------------------------------------------------------------------------
// Encoding

/// A message's payload bytes.
pub fn enc<'a, M: Message<'a>>(msg: &M) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode_to_vec(&mut out).expect("encode");
    out
}

/// Any wire structure's bytes.
pub fn enc_wire<'a, W: lisafs_wire::Wire<'a>>(w: &W) -> Vec<u8> {
    let mut out = Vec::new();
    w.append_to(&mut out).expect("encode");
    out
}

/// Header + payload, as raw bytes.
pub fn frame(mid: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = SockHeader {
        payload_len: payload.len() as u32,
        mid: Mid(mid),
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(payload);
    out
}

pub fn walk_payload(dir: FdId, names: &[&[u8]]) -> Vec<u8> {
    enc(&WalkReq {
        dir_fd: dir,
        path: StringArray::from_items(names),
    })
}

// ---------------------------------------------------------------------------
// The raw client

/// What one request got.
pub enum Outcome {
    /// A reply with the request's MID.
    Ok { payload: Vec<u8>, fds: Vec<OwnedFd> },
    /// A well-formed Error reply.
    Errno(u32),
    /// The server closed the connection instead of answering.
    Eof,
    /// A protocol violation, a transport failure or a timeout.
    Broken(String),
}

impl Outcome {
    pub fn errno(&self) -> Option<u32> {
        match self {
            Outcome::Errno(e) => Some(*e),
            _ => None,
        }
    }
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }
    pub fn payload(&self) -> Option<&[u8]> {
        match self {
            Outcome::Ok { payload, .. } => Some(payload),
            _ => None,
        }
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok { payload, fds } => {
                write!(f, "Ok({} bytes, {} fds)", payload.len(), fds.len())
            }
            Outcome::Errno(e) => write!(f, "Error({})", ename(*e)),
            Outcome::Eof => f.write_str("EOF"),
            Outcome::Broken(m) => write!(f, "Broken({m})"),
        }
    }
}

/// A received frame.
pub struct RawFrame {
    pub mid: u16,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Why no frame was received.
#[derive(Debug)]
pub enum RawRecvError {
    /// End of file before the first byte of a frame.
    Eof,
    /// End of file inside a frame.
    Truncated,
    Timeout,
    Io(io::Error),
    /// A header announcing an absurd length (never allocated).
    Absurd(u32),
}

/// The client end of a connection, spoken to byte by byte: the test builds
/// every frame itself and reads replies with its own timeout-bounded reader
/// (which accepts and closes any FDs that come along).
pub struct RawConn {
    fd: OwnedFd,
    /// The limit replies are checked against (the server's, once known).
    pub limit: u32,
    /// The largest reply payload seen.
    pub max_reply_seen: usize,
}

impl RawConn {
    pub fn new(fd: OwnedFd) -> RawConn {
        let t = Some(IO_TIMEOUT);
        rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Send, t)
            .expect("SO_SNDTIMEO");
        RawConn {
            fd,
            limit: DEFAULT_MAX,
            max_reply_seen: 0,
        }
    }

    /// A new connection to `service` over a socketpair (not mounted).
    pub fn attach(service: &Service) -> RawConn {
        let (client, server) = lisafs_transport::socket_pair().expect("socketpair");
        service.attach(server).expect("attach");
        RawConn::new(client)
    }

    /// A new mounted connection; returns its root FDID too.
    pub fn mounted(service: &Service) -> (RawConn, FdId) {
        let mut c = RawConn::attach(service);
        let root = c.mount().unwrap_or_else(|o| panic!("mount: {o:?}"));
        (c, root)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Writes raw bytes (no framing), all of them or an error.
    pub fn send_bytes(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match rustix::net::send(&self.fd, bytes, SendFlags::NOSIGNAL) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "send blocked past the timeout: the server stopped reading",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes `bytes` with `fds` attached (SCM_RIGHTS) to the first chunk.
    pub fn send_bytes_with_fds(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let mut space =
            vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
        let n = sendmsg(
            &self.fd,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        self.send_bytes(&bytes[n..])
    }

    pub fn send_frame(&self, mid: u16, payload: &[u8]) -> io::Result<()> {
        self.send_bytes(&frame(mid, payload))
    }

    pub fn shutdown_write(&self) {
        let _ = rustix::net::shutdown(&self.fd, rustix::net::Shutdown::Write);
    }

    pub fn shutdown_both(&self) {
        let _ = rustix::net::shutdown(&self.fd, rustix::net::Shutdown::Both);
    }

    /// Waits up to the deadline for the socket to be readable (or hung up).
    fn wait_readable(&self, deadline: Instant) -> Result<(), RawRecvError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RawRecvError::Timeout);
            }
            let ts = Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut pfd = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut pfd, Some(&ts)) {
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(RawRecvError::Io(e.into())),
            }
        }
    }

    /// Fills `buf` (stopping early only at end of file), accepting any FDs
    /// that come along; returns the bytes read.
    fn read_full(
        &self,
        buf: &mut [u8],
        fds: &mut Vec<OwnedFd>,
        deadline: Instant,
    ) -> Result<usize, RawRecvError> {
        let mut got = 0;
        while got < buf.len() {
            self.wait_readable(deadline)?;
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut buf[got..])];
            let r = recvmsg(
                &self.fd,
                &mut iov,
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            );
            match r {
                Ok(r) => {
                    for msg in control.drain() {
                        if let RecvAncillaryMessage::ScmRights(rights) = msg {
                            fds.extend(rights);
                        }
                    }
                    if r.bytes == 0 {
                        return Ok(got);
                    }
                    got += r.bytes;
                }
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                // A peer that vanished with unread data resets the stream.
                Err(rustix::io::Errno::CONNRESET) => return Ok(got),
                Err(e) => return Err(RawRecvError::Io(e.into())),
            }
        }
        Ok(got)
    }

    /// Receives one frame within `timeout`.
    pub fn recv_frame_within(&mut self, timeout: Duration) -> Result<RawFrame, RawRecvError> {
        let deadline = Instant::now() + timeout;
        let mut fds = Vec::new();
        let mut hdr = [0u8; SockHeader::LEN];
        match self.read_full(&mut hdr, &mut fds, deadline)? {
            0 => return Err(RawRecvError::Eof),
            SockHeader::LEN => {}
            _ => return Err(RawRecvError::Truncated),
        }
        let h = SockHeader::from_bytes(&hdr);
        if h.payload_len > 64 << 20 {
            return Err(RawRecvError::Absurd(h.payload_len));
        }
        let mut payload = vec![0u8; h.payload_len as usize];
        if self.read_full(&mut payload, &mut fds, deadline)? < payload.len() {
            return Err(RawRecvError::Truncated);
        }
        self.max_reply_seen = self.max_reply_seen.max(payload.len());
        Ok(RawFrame {
            mid: h.mid.0,
            payload,
            fds,
        })
    }

    /// Reads exactly `n` raw bytes (fewer only at end of file).
    pub fn recv_bytes(&mut self, n: usize) -> Result<Vec<u8>, RawRecvError> {
        let mut buf = vec![0u8; n];
        let mut fds = Vec::new();
        let got = self.read_full(&mut buf, &mut fds, Instant::now() + IO_TIMEOUT)?;
        buf.truncate(got);
        Ok(buf)
    }

    pub fn recv_frame(&mut self) -> Result<RawFrame, RawRecvError> {
        self.recv_frame_within(IO_TIMEOUT)
    }

    /// Reads the reply to a request of `mid` and checks the protocol's
    /// discipline: same MID or a 4-byte Error with a non-zero errno and no
    /// FDs, never over the limit.
    pub fn reply(&mut self, mid: u16) -> Outcome {
        let f = match self.recv_frame() {
            Ok(f) => f,
            Err(RawRecvError::Eof) => return Outcome::Eof,
            Err(e) => return Outcome::Broken(format!("receive: {e:?}")),
        };
        if f.payload.len() > self.limit as usize {
            return Outcome::Broken(format!(
                "reply of {} bytes exceeds max_message_size {}",
                f.payload.len(),
                self.limit
            ));
        }
        if f.mid == 0 {
            if f.payload.len() != 4 {
                return Outcome::Broken(format!("Error payload of {} bytes", f.payload.len()));
            }
            if !f.fds.is_empty() {
                return Outcome::Broken(format!("Error reply carries {} FDs", f.fds.len()));
            }
            let errno = u32::from_le_bytes(f.payload[..4].try_into().unwrap());
            if errno == 0 {
                return Outcome::Broken("Error reply with errno 0".into());
            }
            return Outcome::Errno(errno);
        }
        if f.mid != mid {
            return Outcome::Broken(format!("reply MID {} to a request of MID {mid}", f.mid));
        }
        Outcome::Ok {
            payload: f.payload,
            fds: f.fds,
        }
    }

    /// One round trip with a raw payload.
    pub fn call(&mut self, mid: u16, payload: &[u8]) -> Outcome {
        if let Err(e) = self.send_frame(mid, payload) {
            return Outcome::Broken(format!("send: {e}"));
        }
        self.reply(mid)
    }

    pub fn call_msg<'a, M: Message<'a>>(&mut self, msg: &M) -> Outcome {
        self.call(M::MID.0, &enc(msg))
    }

    pub fn mount(&mut self) -> Result<FdId, Outcome> {
        match self.call(Mid::MOUNT.0, &[]) {
            Outcome::Ok { payload, .. } => {
                let resp = MountResp::decode_payload(&payload)
                    .map_err(|e| Outcome::Broken(format!("MountResp: {e}")))?;
                self.limit = resp.max_message_size;
                Ok(resp.root.control_fd)
            }
            other => Err(other),
        }
    }

    pub fn walk(
        &mut self,
        dir: FdId,
        names: &[&[u8]],
    ) -> Result<(WalkStatus, Vec<Inode>), Outcome> {
        match self.call(Mid::WALK.0, &walk_payload(dir, names)) {
            Outcome::Ok { payload, .. } => {
                let resp = WalkResp::decode_payload(&payload)
                    .map_err(|e| Outcome::Broken(format!("WalkResp: {e}")))?;
                Ok((resp.status, resp.inodes.iter().collect()))
            }
            other => Err(other),
        }
    }

    /// Walks one name that must exist; returns its control FDID.
    pub fn walk_one(&mut self, dir: FdId, name: &str) -> FdId {
        match self.walk(dir, &[name.as_bytes()]) {
            Ok((WalkStatus::Success, inodes)) if inodes.len() == 1 => inodes[0].control_fd,
            other => panic!("walk {name}: {:?}", other.map(|(s, i)| (s, i.len()))),
        }
    }

    pub fn open_at(&mut self, fd: FdId, flags: u32) -> Result<FdId, Outcome> {
        match self.call_msg(&OpenAtReq { fd, flags }) {
            Outcome::Ok { payload, .. } => OpenAtResp::decode_payload(&payload)
                .map(|r| r.open_fd)
                .map_err(|e| Outcome::Broken(format!("OpenAtResp: {e}"))),
            other => Err(other),
        }
    }

    pub fn close(&mut self, ids: &[FdId]) -> Outcome {
        self.call_msg(&CloseReq {
            fds: FdArray::from_items(ids),
        })
    }

    /// Whether the server closed the connection (EOF, or a reset) within
    /// `timeout` without sending anything.
    pub fn sees_eof_within(&mut self, timeout: Duration) -> Result<(), String> {
        match self.recv_frame_within(timeout) {
            Err(RawRecvError::Eof) => Ok(()),
            Ok(f) => Err(format!("got a frame (MID {}) instead of EOF", f.mid)),
            Err(e) => Err(format!("{e:?} instead of EOF")),
        }
    }
}

// ---------------------------------------------------------------------------
// Services

pub fn host_service(scratch: &Scratch, opts: ConnectionOpts) -> Service {
    Service::new(Arc::new(scratch.host_fs()), opts)
}

pub fn service_with(imp: Arc<dyn ConnectionImpl>, opts: ConnectionOpts) -> Service {
    Service::new(imp, opts)
}

/// Waits until the service has exactly `n` live connections.
pub fn wait_connections(service: &Service, n: u64) -> bool {
    wait_until(Duration::from_secs(10), || service.stats().connections == n)
}

// ---------------------------------------------------------------------------
// Soft assertions

/// Runs cases against one service while a second, healthy connection stays
/// open; after every case that connection must still Walk. Failures are
/// collected so one run reports every failing case.
pub struct Harness {
    pub name: &'static str,
    pub service: Service,
    pub scratch: Scratch,
    healthy: RawConn,
    healthy_root: FdId,
    failures: Vec<String>,
    cases: usize,
}

impl Harness {
    pub fn new(name: &'static str) -> Harness {
        Self::with(name, |s| host_service(s, ConnectionOpts::host(false)))
    }

    pub fn with(name: &'static str, make: impl FnOnce(&Scratch) -> Service) -> Harness {
        let scratch = Scratch::new(name);
        std::fs::write(scratch.path("probe"), b"probe").unwrap();
        let service = make(&scratch);
        let (healthy, healthy_root) = RawConn::mounted(&service);
        Harness {
            name,
            service,
            scratch,
            healthy,
            healthy_root,
            failures: Vec::new(),
            cases: 0,
        }
    }

    /// Records the result of one check of case `case`.
    pub fn check(&mut self, case: &str, ok: bool, detail: impl fmt::Display) {
        self.cases += 1;
        if ok {
            println!("[{}] PASS {case}: {detail}", self.name);
        } else {
            println!("[{}] FAIL {case}: {detail}", self.name);
            self.failures.push(format!("{case}: {detail}"));
        }
    }

    pub fn expect_errno(&mut self, case: &str, got: &Outcome, want: u32) {
        let ok = got.errno() == Some(want);
        self.check(case, ok, format!("want {}, got {got:?}", ename(want)));
    }

    pub fn expect_ok(&mut self, case: &str, got: &Outcome) {
        self.check(
            case,
            got.is_ok(),
            format!("want a success reply, got {got:?}"),
        );
    }

    /// The healthy connection still walks, and the process still runs.
    pub fn check_healthy(&mut self, after: &str) {
        let root = self.healthy_root;
        let res = self.healthy.walk(root, &[b"probe"]);
        let detail = match res {
            Ok((WalkStatus::Success, inodes)) if inodes.len() == 1 => {
                let ids: Vec<FdId> = inodes.iter().map(|i| i.control_fd).collect();
                let closed = self.healthy.close(&ids);
                if closed.is_ok() {
                    None
                } else {
                    Some(format!("Close on the healthy connection: {closed:?}"))
                }
            }
            Ok((s, i)) => Some(format!("Walk status {s:?} with {} inodes", i.len())),
            Err(o) => Some(format!("Walk: {o:?}")),
        };
        let case = format!("{after} / other connection still walks");
        match detail {
            None => self.check(&case, true, "ok"),
            Some(d) => self.check(&case, false, d),
        }
    }

    /// A new mounted connection to this harness's service.
    pub fn conn(&self) -> (RawConn, FdId) {
        RawConn::mounted(&self.service)
    }

    pub fn raw(&self) -> RawConn {
        RawConn::attach(&self.service)
    }

    /// Panics with every failure, if there were any.
    pub fn finish(self) {
        let Harness {
            name,
            failures,
            cases,
            ..
        } = self;
        assert!(
            failures.is_empty(),
            "{name}: {} of {cases} checks failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------
// Panic log

/// Every panic message seen in this process, with its thread's name.
pub static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Installs (once) a panic hook that records every panic and then runs the
/// previous hook, which prints it: a backend panic must be logged.
pub fn record_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                String::from("(non-string panic)")
            };
            let thread = std::thread::current()
                .name()
                .unwrap_or("(unnamed)")
                .to_string();
            PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((thread, msg));
            prev(info);
        }));
    });
}

/// Panics recorded whose message contains `marker`.
pub fn panics_with(marker: &str) -> Vec<(String, String)> {
    PANICS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(_, m)| m.contains(marker))
        .cloned()
        .collect()
}

pub fn path_exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
