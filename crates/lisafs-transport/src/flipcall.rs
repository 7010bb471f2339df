//! Flipcall: LISAFS channels over a shared-memory packet window, byte- and
//! protocol-compatible with gVisor's `pkg/flipcall` and `pkg/fdchannel`.
//!
//! A window is a page-aligned region of a memfd mapped by both sides:
//!
//! | offset | field |
//! |---|---|
//! | 0 | `u32` connection state, the futex word: 0 client active, 1 server active, 2 shut down |
//! | 4 | `u32` length of the datagram at 16 |
//! | 8 | reserved |
//! | 16 | the datagram (for LISAFS: a 4-byte [`lisafs_wire::ChannelHeader`] then the payload) |
//!
//! The side whose state it is owns the window; handing it over is a
//! compare-and-swap of the state word plus a non-private `FUTEX_WAKE` (the
//! peer is another process). FDs travel separately, one per zero-length
//! `SOCK_SEQPACKET` datagram.
//!
//! The peer is untrusted and can write any byte of the window at any time:
//! every shared value is read once, lengths are bounded by the window, and
//! data is copied out before it is parsed.
//!
//! Beyond gVisor: a waiter spins on the state word for a bounded number of
//! iterations before sleeping on the futex, which turns a cross-core round
//! trip from two futex wake-ups (~50 µs each on small VMs) into cache-line
//! transfers when both sides are busy, while an idle endpoint still sleeps.
//! An endpoint can make that spin adaptive ([`Endpoint::set_adaptive_spin`]):
//! it then spins only while the peer keeps answering within the spin.

#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use rustix::net::{
    recvmsg, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::thread::futex;

/// Bytes of the flipcall header in front of the datagram.
pub const PACKET_HEADER_LEN: usize = 16;

const CS_CLIENT_ACTIVE: u32 = 0;
const CS_SERVER_ACTIVE: u32 = 1;
const CS_SHUTDOWN: u32 = 2;

// Local (never shared) endpoint state, as gVisor's ctrl state.
const EPS_BLOCKED: u32 = 1;
const EPS_SHUTDOWN: u32 = 2;

/// The handshake both sides send: an empty JSON object and a newline, as
/// Go's `json.Encoder` writes it.
const HANDSHAKE: &[u8] = b"{}\n";

/// Why a flipcall operation failed.
#[derive(Debug)]
pub enum FlipcallError {
    /// The endpoint or its peer shut the channel down.
    Shutdown,
    /// The peer broke the protocol (bad state word, length or handshake).
    Protocol(&'static str),
    /// A syscall failed.
    Io(io::Error),
}

impl fmt::Display for FlipcallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shutdown => f.write_str("channel shut down"),
            Self::Protocol(what) => write!(f, "flipcall protocol error: {what}"),
            Self::Io(e) => write!(f, "flipcall: {e}"),
        }
    }
}

impl std::error::Error for FlipcallError {}

impl From<rustix::io::Errno> for FlipcallError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

fn round_up_to_page(n: usize) -> Option<usize> {
    let mask = page_size() - 1;
    n.checked_add(mask).map(|v| v & !mask)
}

/// The length of a window that carries datagrams of up to `data_cap` bytes.
pub fn window_len_for_data_cap(data_cap: u32) -> Option<usize> {
    round_up_to_page(data_cap as usize + PACKET_HEADER_LEN)
}

/// Where a window lies in the shared-memory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowDesc {
    /// Page-aligned offset in the file.
    pub offset: u64,
    /// Length, a page multiple.
    pub length: usize,
}

/// Carves packet windows out of one sealed memfd, as gVisor's
/// `PacketWindowAllocator`: sequentially, never reused (so every new window
/// starts zero-filled, i.e. client active), growing the file by doubling.
#[derive(Debug)]
pub struct WindowAllocator {
    fd: OwnedFd,
    next: u64,
    size: u64,
}

impl WindowAllocator {
    /// A new, empty shared-memory file.
    pub fn new() -> io::Result<Self> {
        let fd = memfd_create(
            "flipcall_packet_windows",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        // Neither side may shrink the file under the other's mappings.
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::SEAL)?;
        Ok(WindowAllocator {
            fd,
            next: 0,
            size: 0,
        })
    }

    /// The shared-memory file (to donate a `dup` of it to the client).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Allocates a window of at least `len` bytes.
    pub fn allocate(&mut self, len: usize) -> io::Result<WindowDesc> {
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "window size overflows");
        let length = round_up_to_page(len.max(1)).ok_or_else(too_big)?;
        let end = self.next.checked_add(length as u64).ok_or_else(too_big)?;
        if end > self.size {
            let mut size = self.size.max(page_size() as u64);
            while size < end {
                size = size.checked_mul(2).ok_or_else(too_big)?;
            }
            ftruncate(&self.fd, size)?;
            self.size = size;
        }
        let desc = WindowDesc {
            offset: self.next,
            length,
        };
        self.next = end;
        Ok(desc)
    }
}

/// Which end of a channel an [`Endpoint`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The LISAFS client (the sandbox).
    Client,
    /// The LISAFS server (the gofer).
    Server,
}

/// One side of a flipcall channel: a mapped packet window.
pub struct Endpoint {
    base: NonNull<u8>,
    len: usize,
    data_cap: u32,
    active: u32,
    inactive: u32,
    /// `EPS_*` bits; never shared with the peer.
    ctrl: AtomicU32,
    spin_limit: u32,
    /// Whether the spin adapts to how the peer behaves (see
    /// [`Endpoint::set_adaptive_spin`]).
    adaptive: bool,
    /// Adaptive spin: consecutive waits whose spin ran out before the peer
    /// answered.
    spin_misses: AtomicU32,
    /// Adaptive spin: waits that skipped spinning since the last probe.
    spin_skips: AtomicU32,
    /// Set while [`Endpoint::write_data_in_place`] lends out the data area,
    /// so two threads can never hold it mutably at once.
    data_lent: AtomicBool,
}

// SAFETY: the mapping is owned by the endpoint for its whole life; every
// access to shared memory goes through atomics or explicit copies, and the
// local state is atomic, so the endpoint may move and be shared across
// threads.
unsafe impl Send for Endpoint {}
// SAFETY: as above.
unsafe impl Sync for Endpoint {}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("len", &self.len)
            .field("data_cap", &self.data_cap)
            .finish()
    }
}

/// Default spin budget before sleeping: a few microseconds, enough to catch
/// a peer that answers at once from another core. Longer budgets cost more
/// than they save when the peer sleeps on the futex (gVisor's client
/// does): on 2 vCPUs a server spinning 20,000 iterations halved the
/// throughput of 8 such clients in `npm run bench`.
pub const DEFAULT_SPIN_LIMIT: u32 = 2_000;

/// How long [`Endpoint::try_recv`] spins before it sleeps: a reply from a
/// peer running on another CPU takes about a µs, one from a peer that must
/// first be woken 15-50 µs on a busy 2-vCPU VM; sleeping costs a wake-up of
/// our own (tens of µs), so spinning a while first pays.
const TRY_RECV_SPIN: std::time::Duration = std::time::Duration::from_micros(20);

/// Adaptive spin: after this many consecutive waits that the spin did not
/// catch, an endpoint stops spinning. More than one, so that a single slow
/// request (a large read, a preempted peer) does not end it.
const SPIN_MISSES_BEFORE_SLEEP: u32 = 8;

/// Adaptive spin: an endpoint that stopped spinning spins once more every
/// this many waits, to notice a peer that became fast again. The cost of a
/// futile probe is one spin budget per this many round trips.
const SPIN_PROBE_INTERVAL: u32 = 16;

/// How many iterations of the spin loop take about `d` on this machine,
/// at least 1. Measured once per process (the best of a few short trials,
/// so preemption during the measurement does not inflate the count): the
/// cost of `spin_loop` differs by an order of magnitude between CPUs
/// (about 28 ns on the AMD EPYC of the benchmarks, a few ns elsewhere).
pub fn spins_for(d: std::time::Duration) -> u32 {
    static NS_PER_SPIN: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ns = *NS_PER_SPIN.get_or_init(|| {
        const N: u32 = 256;
        let word = AtomicU32::new(0);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            for _ in 0..N {
                // What the wait loop does per iteration: a load and a pause.
                if word.load(Ordering::Acquire) == u32::MAX {
                    break;
                }
                std::hint::spin_loop();
            }
            best = best.min(t.elapsed().as_nanos() as f64 / f64::from(N));
        }
        best.max(0.1)
    });
    let n = d.as_nanos() as f64 / ns;
    if n >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        (n as u32).max(1)
    }
}

impl Endpoint {
    /// Maps the window `desc` of `fd` as `side`. The window must be at
    /// least a page and under 4 GiB, as gVisor requires.
    pub fn new(fd: BorrowedFd<'_>, desc: WindowDesc, side: Side) -> io::Result<Self> {
        let bad = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
        if desc.length < page_size() || desc.length as u64 >= u32::MAX as u64 {
            return Err(bad("packet window length out of range"));
        }
        if !desc.offset.is_multiple_of(page_size() as u64)
            || !desc.length.is_multiple_of(page_size())
        {
            return Err(bad("packet window not page aligned"));
        }
        // SAFETY: a fresh shared mapping of a file we were given; no existing
        // memory is affected, and the result is checked.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                desc.length,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                desc.offset,
            )?
        };
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| bad("mmap returned null"))?;
        let (active, inactive) = match side {
            Side::Client => (CS_CLIENT_ACTIVE, CS_SERVER_ACTIVE),
            Side::Server => (CS_SERVER_ACTIVE, CS_CLIENT_ACTIVE),
        };
        Ok(Endpoint {
            base,
            len: desc.length,
            data_cap: (desc.length - PACKET_HEADER_LEN) as u32,
            active,
            inactive,
            ctrl: AtomicU32::new(0),
            spin_limit: DEFAULT_SPIN_LIMIT,
            adaptive: false,
            spin_misses: AtomicU32::new(0),
            spin_skips: AtomicU32::new(0),
            data_lent: AtomicBool::new(false),
        })
    }

    /// Sets how many times a waiter polls the state word before sleeping
    /// (0: sleep at once, as gVisor does).
    pub fn set_spin_limit(&mut self, limit: u32) {
        self.spin_limit = limit;
    }

    /// Makes the spin adaptive (off by default): the endpoint spins (up to
    /// the spin limit) only while spinning pays off, i.e. while the peer
    /// answered within the spin in at least one of the last
    /// `SPIN_MISSES_BEFORE_SLEEP` waits. Once it stops paying off the
    /// endpoint sleeps on the futex at once, as gVisor does, and spins again
    /// only on a probe (one wait in `SPIN_PROBE_INTERVAL`) that catches the
    /// peer. (Yielding the CPU while spinning was tried: on a shared
    /// machine it hands the CPU to unrelated work for a whole time slice.)
    ///
    /// For a server facing gVisor's client, which always sleeps on the futex
    /// after waking the server and so comes back only after a futex wake-up,
    /// spinning is mostly lost CPU time that the client needs (on 2 vCPUs
    /// with 8 connections it halved throughput); a client that spins itself
    /// answers within the spin and keeps sub-microsecond round trips.
    pub fn set_adaptive_spin(&mut self, on: bool) {
        self.adaptive = on;
    }

    /// The number of iterations the next wait may spin.
    fn spin_budget(&self) -> u32 {
        if !self.adaptive
            || self.spin_limit == 0
            || self.spin_misses.load(Ordering::Relaxed) < SPIN_MISSES_BEFORE_SLEEP
        {
            return self.spin_limit;
        }
        // Only the waiting thread updates these; Relaxed is enough.
        let skips = self.spin_skips.load(Ordering::Relaxed) + 1;
        if skips >= SPIN_PROBE_INTERVAL {
            self.spin_skips.store(0, Ordering::Relaxed);
            self.spin_limit
        } else {
            self.spin_skips.store(skips, Ordering::Relaxed);
            0
        }
    }

    /// Records whether a wait that spun up to `budget` iterations saw the
    /// peer answer before the spin ran out.
    fn record_spin(&self, budget: u32, caught: bool) {
        if !self.adaptive || budget == 0 {
            return;
        }
        if caught {
            self.spin_misses.store(0, Ordering::Relaxed);
        } else {
            let misses = self.spin_misses.load(Ordering::Relaxed);
            self.spin_misses
                .store(misses.saturating_add(1), Ordering::Relaxed);
        }
    }

    /// Whether the adaptive spin currently spins (for tests).
    pub fn is_spinning(&self) -> bool {
        !self.adaptive || self.spin_misses.load(Ordering::Relaxed) < SPIN_MISSES_BEFORE_SLEEP
    }

    /// The largest datagram this window carries.
    pub fn data_cap(&self) -> u32 {
        self.data_cap
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: offsets 0 and 4 are inside the mapping (at least a page),
        // 4-byte aligned (the mapping is page aligned), and the memory lives
        // as long as `self`. Shared memory is only ever accessed atomically
        // through these references.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    fn conn_state(&self) -> &AtomicU32 {
        self.word(0)
    }

    fn data_len(&self) -> &AtomicU32 {
        self.word(4)
    }

    /// Copies the first `len` bytes of the datagram into `out` (replacing
    /// its contents). `len` must come from a receive call (bounded by the
    /// window).
    pub fn read_data(&self, len: u32, out: &mut Vec<u8>) {
        let len = len.min(self.data_cap) as usize;
        out.clear();
        out.reserve(len);
        // SAFETY: `len` is bounded by the window; the source is the mapping
        // and the destination has `len` bytes reserved. The peer may write
        // the window concurrently, which can only change the bytes copied,
        // never their bounds; the copy is the one read of those bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(PACKET_HEADER_LEN),
                out.as_mut_ptr(),
                len,
            );
            out.set_len(len);
        }
    }

    /// Writes `parts` back to back as the datagram; returns its length.
    /// Fails if they exceed [`Endpoint::data_cap`].
    pub fn write_data(&self, parts: &[&[u8]]) -> Result<u32, FlipcallError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > self.data_cap as usize {
            return Err(FlipcallError::Protocol("datagram larger than the window"));
        }
        let mut at = PACKET_HEADER_LEN;
        for p in parts {
            // SAFETY: `at + p.len()` stays within the mapping (checked total);
            // the source is a local slice that cannot overlap the mapping.
            unsafe {
                std::ptr::copy_nonoverlapping(p.as_ptr(), self.base.as_ptr().add(at), p.len())
            };
            at += p.len();
        }
        Ok(total as u32)
    }

    /// Lets `f` build the datagram in place: `f` gets the whole data area
    /// ([`Endpoint::data_cap`] bytes, holding whatever was there before) and
    /// returns the length of the datagram it wrote, which is returned
    /// (bounded by the window). This saves a copy when the payload comes from
    /// a syscall that can write into the window itself (a 1 MiB pread).
    ///
    /// Call it only while this side owns the window (between receiving a
    /// request and sending the reply). Fails if another thread is inside
    /// this method on the same endpoint.
    pub fn write_data_in_place(
        &self,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<u32, FlipcallError> {
        if self.data_lent.swap(true, Ordering::Acquire) {
            return Err(FlipcallError::Protocol(
                "datagram area lent out twice at once",
            ));
        }
        // Give the area back even if `f` unwinds.
        struct Lent<'a>(&'a AtomicBool);
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _lent = Lent(&self.data_lent);
        // SAFETY: the data area lies inside the mapping (`data_cap` bytes
        // after the header), which lives as long as `self`; it is a file
        // mapping, so every byte is initialized. `data_lent` makes this the
        // only reference into the area on our side (read_data and
        // write_data copy through raw pointers, and run on the same thread
        // as this by the caller's protocol). The peer may write the area
        // concurrently; that can only change bytes we wrote, never our
        // bounds: the length we publish is `f`'s, clamped below.
        let data = unsafe {
            std::slice::from_raw_parts_mut(
                self.base.as_ptr().add(PACKET_HEADER_LEN),
                self.data_cap as usize,
            )
        };
        let n = f(data).min(self.data_cap as usize);
        Ok(n as u32)
    }

    fn enter_wait(&self) -> Result<(), FlipcallError> {
        if self.ctrl.fetch_add(EPS_BLOCKED, Ordering::AcqRel) & EPS_SHUTDOWN != 0 {
            self.ctrl.fetch_sub(EPS_BLOCKED, Ordering::AcqRel);
            return Err(FlipcallError::Shutdown);
        }
        Ok(())
    }

    fn exit_wait(&self) {
        if self.ctrl.fetch_sub(EPS_BLOCKED, Ordering::AcqRel) - EPS_BLOCKED == EPS_SHUTDOWN {
            self.shutdown_conn();
        }
    }

    fn set_peer_active(&self) -> Result<(), FlipcallError> {
        match self.conn_state().compare_exchange(
            self.active,
            self.inactive,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(CS_SHUTDOWN) => Err(FlipcallError::Shutdown),
            Err(_) => Err(FlipcallError::Protocol(
                "unexpected state before handing over",
            )),
        }
    }

    fn wake_peer(&self) -> Result<(), FlipcallError> {
        futex::wake(self.conn_state(), futex::Flags::empty(), 1)?;
        Ok(())
    }

    fn wait_until_active(&self) -> Result<(), FlipcallError> {
        let budget = self.spin_budget();
        let mut spins = 0u32;
        let mut slept = false;
        loop {
            match self.conn_state().load(Ordering::Acquire) {
                s if s == self.active => {
                    self.record_spin(budget, !slept);
                    return Ok(());
                }
                s if s == self.inactive => {
                    if self.ctrl.load(Ordering::Acquire) & EPS_SHUTDOWN != 0 {
                        return Err(FlipcallError::Shutdown);
                    }
                    if spins < budget {
                        spins += 1;
                        std::hint::spin_loop();
                        continue;
                    }
                    slept = true;
                    match futex::wait(
                        self.conn_state(),
                        futex::Flags::empty(),
                        self.inactive,
                        None,
                    ) {
                        Ok(()) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                CS_SHUTDOWN => return Err(FlipcallError::Shutdown),
                _ => return Err(FlipcallError::Protocol("unexpected connection state")),
            }
        }
    }

    /// Reads the peer's datagram length, bounded by the window.
    fn received_len(&self) -> Result<u32, FlipcallError> {
        let len = self.data_len().load(Ordering::Acquire);
        if len > self.data_cap {
            return Err(FlipcallError::Protocol(
                "datagram length exceeds the window",
            ));
        }
        Ok(len)
    }

    /// Server side: completes the handshake and waits for the first
    /// request; returns its datagram length.
    pub fn recv_first(&self) -> Result<u32, FlipcallError> {
        self.enter_wait()?;
        let result = (|| {
            self.wait_until_active()?;
            let len = self.received_len()?;
            let mut req = Vec::new();
            self.read_data(len, &mut req);
            if !is_json_object(&req) {
                return Err(FlipcallError::Protocol("bad handshake"));
            }
            let n = self.write_data(&[HANDSHAKE])?;
            self.data_len().store(n, Ordering::Release);
            self.set_peer_active()?;
            self.wake_peer()?;
            self.wait_until_active()?;
            self.received_len()
        })();
        self.exit_wait();
        result
    }

    /// Client side: performs the handshake; the window is then ready for
    /// requests.
    pub fn connect(&self) -> Result<(), FlipcallError> {
        self.enter_wait()?;
        let result = (|| {
            let n = self.write_data(&[HANDSHAKE])?;
            self.data_len().store(n, Ordering::Release);
            self.set_peer_active()?;
            self.wake_peer()?;
            self.wait_until_active()?;
            let len = self.received_len()?;
            let mut resp = Vec::new();
            self.read_data(len, &mut resp);
            if !is_json_object(&resp) {
                return Err(FlipcallError::Protocol("bad handshake reply"));
            }
            Ok(())
        })();
        self.exit_wait();
        result
    }

    /// Hands the window to the peer with a datagram of `len` bytes (already
    /// written) and waits for it to come back; returns the peer's length.
    pub fn send_recv(&self, len: u32) -> Result<u32, FlipcallError> {
        if len > self.data_cap {
            return Err(FlipcallError::Protocol("datagram larger than the window"));
        }
        self.enter_wait()?;
        let result = (|| {
            self.data_len().store(len, Ordering::Release);
            self.set_peer_active()?;
            self.wake_peer()?;
            self.wait_until_active()?;
            self.received_len()
        })();
        self.exit_wait();
        result
    }

    /// Split-phase client call, first half: hands the window to the peer
    /// with a datagram of `len` bytes (already written) and wakes it, without
    /// waiting. The window then belongs to the peer until its reply: finish
    /// with [`Endpoint::try_recv`] and/or [`Endpoint::recv`], from this
    /// thread or another, before sending again. `send` + `recv` is
    /// [`Endpoint::send_recv`].
    pub fn send(&self, len: u32) -> Result<(), FlipcallError> {
        if len > self.data_cap {
            return Err(FlipcallError::Protocol("datagram larger than the window"));
        }
        if self.ctrl.load(Ordering::Acquire) & EPS_SHUTDOWN != 0 {
            return Err(FlipcallError::Shutdown);
        }
        self.data_len().store(len, Ordering::Release);
        self.set_peer_active()?;
        self.wake_peer()
    }

    /// Split-phase, second half with a deadline: waits at most `budget`
    /// of wall time for the peer's reply and returns its datagram length,
    /// or `None` if it did not come (the call is still in flight: call
    /// again, or [`recv`]). It spins for up to 20 µs (a peer already running
    /// on another CPU answers within a µs), then sleeps on the futex with a
    /// timeout, so the CPU is free for the peer's thread: on a busy machine
    /// the peer is often queued on this very CPU, where a longer spin
    /// starves it. A caller whose thread the peer itself needs (a server backed by
    /// code on this thread) loses at most `budget` (plus timer slack).
    ///
    /// [`recv`]: Endpoint::recv
    pub fn try_recv(&self, budget: std::time::Duration) -> Result<Option<u32>, FlipcallError> {
        self.enter_wait()?;
        let result = self.wait_until_active_for(budget);
        self.exit_wait();
        match result {
            Ok(true) => self.received_len().map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like `wait_until_active` but gives up after `budget`; whether the
    /// window came back.
    fn wait_until_active_for(&self, budget: std::time::Duration) -> Result<bool, FlipcallError> {
        let start = std::time::Instant::now();
        let spin_for = TRY_RECV_SPIN.min(budget);
        let mut spinning = true;
        let mut polls = 0u32;
        loop {
            match self.conn_state().load(Ordering::Acquire) {
                s if s == self.active => return Ok(true),
                s if s == self.inactive => {
                    if self.ctrl.load(Ordering::Acquire) & EPS_SHUTDOWN != 0 {
                        return Err(FlipcallError::Shutdown);
                    }
                    if spinning {
                        // The clock is read every 64 polls (a vDSO call).
                        polls = polls.wrapping_add(1);
                        if !polls.is_multiple_of(64) || start.elapsed() < spin_for {
                            std::hint::spin_loop();
                            continue;
                        }
                        spinning = false;
                    }
                    let Some(left) = budget.checked_sub(start.elapsed()).filter(|d| !d.is_zero())
                    else {
                        return Ok(false);
                    };
                    let timeout = rustix::thread::Timespec {
                        tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                        tv_nsec: left.subsec_nanos().into(),
                    };
                    match futex::wait(
                        self.conn_state(),
                        futex::Flags::empty(),
                        self.inactive,
                        Some(&timeout),
                    ) {
                        Ok(())
                        | Err(rustix::io::Errno::AGAIN)
                        | Err(rustix::io::Errno::INTR)
                        | Err(rustix::io::Errno::TIMEDOUT) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                CS_SHUTDOWN => return Err(FlipcallError::Shutdown),
                _ => return Err(FlipcallError::Protocol("unexpected connection state")),
            }
        }
    }

    /// Split-phase, blocking second half: waits for the reply to a
    /// [`send`](Endpoint::send) (spinning up to the spin limit, then on the
    /// futex) and returns the peer's datagram length. [`shutdown`] wakes it.
    ///
    /// [`shutdown`]: Endpoint::shutdown
    pub fn recv(&self) -> Result<u32, FlipcallError> {
        self.enter_wait()?;
        let result = self.wait_until_active().and_then(|()| self.received_len());
        self.exit_wait();
        result
    }

    /// Shuts the channel down: a thread blocked in this endpoint returns
    /// [`FlipcallError::Shutdown`], and so does the peer. Idempotent.
    pub fn shutdown(&self) {
        if self.ctrl.fetch_or(EPS_SHUTDOWN, Ordering::AcqRel) & EPS_BLOCKED != 0 {
            // A waiter is inside: wake it until it has left; it performs the
            // state swap on its way out (exit_wait).
            while self.ctrl.load(Ordering::Acquire) & EPS_BLOCKED != 0 {
                let _ = futex::wake(self.conn_state(), futex::Flags::empty(), i32::MAX as u32);
                std::thread::yield_now();
            }
        } else {
            self.shutdown_conn();
        }
    }

    fn shutdown_conn(&self) {
        if self.conn_state().swap(CS_SHUTDOWN, Ordering::AcqRel) == self.active {
            // The peer is waiting for us: let it see the shutdown.
            let _ = futex::wake(self.conn_state(), futex::Flags::empty(), 1);
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` with this address and
        // length, and no reference into it outlives `self`.
        let _ = unsafe { munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Whether `b` is a JSON object (what both handshakes carry). Only the
/// shape is checked: the content is ignored, as gVisor does.
fn is_json_object(b: &[u8]) -> bool {
    let t = b.trim_ascii();
    t.first() == Some(&b'{') && t.last() == Some(&b'}')
}

/// A connected `SOCK_SEQPACKET` pair (close-on-exec) for passing FDs on a
/// channel.
pub fn fd_socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Sends `fd` as its own zero-length datagram (gVisor's client accepts
/// exactly one FD per datagram).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(sock, &[], &mut control, SendFlags::NOSIGNAL)?;
    Ok(())
}

/// Receives one FD sent by [`send_fd`] without blocking.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    recvmsg(
        sock,
        &mut [],
        &mut control,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC,
    )?;
    let mut got = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for fd in fds {
                // Keep the first; any extra is closed by dropping it.
                if got.is_none() {
                    got = Some(fd);
                }
            }
        }
    }
    got.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram carried no FD"))
}
