//! Flipcall endpoints on one window, client and server on two threads.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use lisafs_transport::flipcall::*;

fn pair(spin: u32) -> (Arc<Endpoint>, Arc<Endpoint>, WindowDesc) {
    let mut alloc = WindowAllocator::new().unwrap();
    let desc = alloc
        .allocate(window_len_for_data_cap(4 + (1 << 20)).unwrap())
        .unwrap();
    let mut c = Endpoint::new(alloc.fd(), desc, Side::Client).unwrap();
    let mut s = Endpoint::new(alloc.fd(), desc, Side::Server).unwrap();
    c.set_spin_limit(spin);
    s.set_spin_limit(spin);
    (Arc::new(c), Arc::new(s), desc)
}

fn echo_server(s: Arc<Endpoint>) -> std::thread::JoinHandle<Result<u32, FlipcallError>> {
    std::thread::spawn(move || {
        let mut len = s.recv_first()?;
        let mut buf = Vec::new();
        let mut served = 0;
        loop {
            s.read_data(len, &mut buf);
            buf.reverse();
            let n = s.write_data(&[&buf])?;
            served += 1;
            len = match s.send_recv(n) {
                Ok(l) => l,
                Err(FlipcallError::Shutdown) => return Ok(served),
                Err(e) => return Err(e),
            };
        }
    })
}

#[test]
fn handshake_round_trips_and_shutdown() {
    for spin in [0, DEFAULT_SPIN_LIMIT] {
        let (c, s, desc) = pair(spin);
        assert_eq!(desc.offset, 0);
        assert_eq!(c.data_cap() as usize, desc.length - PACKET_HEADER_LEN);
        let server = echo_server(Arc::clone(&s));
        c.connect().unwrap();
        let mut out = Vec::new();
        for i in 0..1000u32 {
            let msg = i.to_le_bytes();
            let n = c.write_data(&[&[1, 2], &msg]).unwrap();
            let len = c.send_recv(n).unwrap();
            c.read_data(len, &mut out);
            let mut want = vec![1, 2];
            want.extend_from_slice(&msg);
            want.reverse();
            assert_eq!(out, want);
        }
        // A big datagram, the largest the window carries.
        let big = vec![7u8; c.data_cap() as usize];
        let n = c.write_data(&[&big]).unwrap();
        assert_eq!(c.send_recv(n).unwrap(), n);
        assert!(
            c.write_data(&[&big, &[0]]).is_err(),
            "over capacity is refused"
        );
        c.shutdown();
        assert_eq!(server.join().unwrap().unwrap(), 1001);
        assert!(matches!(c.send_recv(0), Err(FlipcallError::Shutdown)));
    }
}

#[test]
fn shutdown_wakes_a_blocked_server() {
    let (c, s, _) = pair(0);
    let server = echo_server(Arc::clone(&s));
    c.connect().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // The server sleeps in the futex waiting for a request.
    s.shutdown();
    assert!(server.join().unwrap().is_err());
    assert!(matches!(c.send_recv(0), Err(FlipcallError::Shutdown)));
}

/// A raw view of a window, as a hostile peer has it.
struct Raw {
    base: *mut u32,
    len: usize,
}

impl Raw {
    fn map(alloc: &WindowAllocator, desc: WindowDesc) -> Raw {
        // SAFETY: a fresh shared mapping of the test's own memfd.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                desc.length,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                alloc.fd(),
                desc.offset,
            )
            .unwrap()
        };
        Raw {
            base: p.cast(),
            len: desc.length,
        }
    }
    fn word(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: words 0 and 1 lie in the mapping, which outlives `self`.
        unsafe { &*(self.base.add(i) as *const std::sync::atomic::AtomicU32) }
    }
    /// Plays the client: sets the datagram length and hands over.
    fn hand_over(&self, data_len: u32, state: u32) {
        self.word(1)
            .store(data_len, std::sync::atomic::Ordering::SeqCst);
        self.word(0)
            .store(state, std::sync::atomic::Ordering::SeqCst);
        let _ = rustix::thread::futex::wake(self.word(0), rustix::thread::futex::Flags::empty(), 1);
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

#[test]
fn hostile_peer_lengths_states_and_handshakes_are_errors() {
    let mut alloc = WindowAllocator::new().unwrap();
    let desc = alloc.allocate(8192).unwrap();
    let raw = Raw::map(&alloc, desc);

    // A handshake that is not JSON.
    let s = Arc::new(Endpoint::new(alloc.fd(), desc, Side::Server).unwrap());
    let s2 = Arc::clone(&s);
    let server = std::thread::spawn(move || s2.recv_first());
    raw.hand_over(0, 1);
    assert!(matches!(
        server.join().unwrap(),
        Err(FlipcallError::Protocol(_))
    ));

    // A datagram length larger than the window.
    let desc = alloc.allocate(8192).unwrap();
    let raw = Raw::map(&alloc, desc);
    let s = Arc::new(Endpoint::new(alloc.fd(), desc, Side::Server).unwrap());
    let s2 = Arc::clone(&s);
    let server = std::thread::spawn(move || s2.recv_first());
    raw.hand_over(u32::MAX, 1);
    assert!(matches!(
        server.join().unwrap(),
        Err(FlipcallError::Protocol(_))
    ));

    // A state word the protocol does not define.
    let desc = alloc.allocate(8192).unwrap();
    let raw = Raw::map(&alloc, desc);
    let s = Arc::new(Endpoint::new(alloc.fd(), desc, Side::Server).unwrap());
    let s2 = Arc::clone(&s);
    let server = std::thread::spawn(move || s2.recv_first());
    raw.hand_over(0, 77);
    assert!(matches!(
        server.join().unwrap(),
        Err(FlipcallError::Protocol(_))
    ));
}

#[test]
fn windows_are_sequential_and_the_file_sealed() {
    let mut alloc = WindowAllocator::new().unwrap();
    let a = alloc.allocate(100).unwrap();
    let b = alloc.allocate(3 * 4096 + 1).unwrap();
    assert_eq!((a.offset, a.length), (0, 4096));
    assert_eq!((b.offset, b.length), (4096, 4 * 4096));
    // Sealed against shrinking.
    assert!(rustix::fs::ftruncate(alloc.fd(), 0).is_err());
    let seals = rustix::fs::fcntl_get_seals(alloc.fd().as_fd()).unwrap();
    assert!(seals.contains(rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::SEAL));
}

#[test]
fn fds_travel_one_per_datagram() {
    let (a, b) = fd_socket_pair().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    send_fd(a.as_fd(), r.as_fd()).unwrap();
    send_fd(a.as_fd(), w.as_fd()).unwrap();
    let r2 = recv_fd(b.as_fd()).unwrap();
    let w2 = recv_fd(b.as_fd()).unwrap();
    rustix::io::write(&w2, b"x").unwrap();
    let mut buf = [0u8; 1];
    rustix::io::read(&r2, &mut buf).unwrap();
    assert_eq!(&buf, b"x");
    assert!(recv_fd(b.as_fd()).is_err(), "nothing pending: no block");
}

/// An adaptive server facing a client that is slow to send its next
/// request stops spinning, and round trips keep working through the futex
/// (and through the occasional probe).
#[test]
fn adaptive_spin_stops_for_a_slow_peer() {
    let mut alloc = WindowAllocator::new().unwrap();
    let desc = alloc
        .allocate(window_len_for_data_cap(64).unwrap())
        .unwrap();
    let c = Arc::new(Endpoint::new(alloc.fd(), desc, Side::Client).unwrap());
    let mut s = Endpoint::new(alloc.fd(), desc, Side::Server).unwrap();
    // One iteration: far shorter than the client's pause below.
    s.set_spin_limit(1);
    s.set_adaptive_spin(true);
    let s = Arc::new(s);
    assert!(s.is_spinning());
    let server = echo_server(Arc::clone(&s));
    c.connect().unwrap();
    let mut out = Vec::new();
    for i in 0..130u8 {
        // Gives the server time to reach its wait before the request.
        std::thread::sleep(Duration::from_millis(1));
        let n = c.write_data(&[&[i, 0]]).unwrap();
        let len = c.send_recv(n).unwrap();
        c.read_data(len, &mut out);
        assert_eq!(out, [0, i]);
    }
    assert!(!s.is_spinning(), "spinning never paid off");
    c.shutdown();
    assert_eq!(server.join().unwrap().unwrap(), 130);
}

/// A datagram built in place is what the peer receives, and its length is
/// bounded by the window whatever the builder claims.
#[test]
fn write_data_in_place() {
    let (c, s, _) = pair(0);
    let server = std::thread::spawn(move || {
        let len = s.recv_first()?;
        let mut buf = Vec::new();
        s.read_data(len, &mut buf);
        let n = s.write_data_in_place(|data| {
            data[..buf.len()].copy_from_slice(&buf);
            data[buf.len()] = 9;
            buf.len() + 1
        })?;
        assert_eq!(s.send_recv(n)?, 0);
        // A builder claiming more than the window gets the window.
        let n = s.write_data_in_place(|_| usize::MAX)?;
        assert_eq!(n, s.data_cap());
        s.send_recv(n)
    });
    c.connect().unwrap();
    let n = c.write_data(&[b"abc"]).unwrap();
    let len = c.send_recv(n).unwrap();
    let mut out = Vec::new();
    c.read_data(len, &mut out);
    assert_eq!(out, b"abc\x09");
    assert_eq!(c.send_recv(0).unwrap(), c.data_cap());
    c.shutdown();
    assert!(matches!(
        server.join().unwrap(),
        Err(FlipcallError::Shutdown)
    ));
}

#[test]
fn split_phase_send_then_poll_or_wait_on_another_thread() {
    let (c, s, _) = pair(DEFAULT_SPIN_LIMIT);
    // A server that holds every request for a while before answering: the
    // client's bounded poll must give up, and a blocking recv elsewhere
    // must then get the reply.
    let slow = std::thread::spawn(move || -> Result<(), FlipcallError> {
        let mut len = s.recv_first()?;
        let mut buf = Vec::new();
        loop {
            s.read_data(len, &mut buf);
            if buf == b"slow" {
                std::thread::sleep(Duration::from_millis(30));
            }
            buf.reverse();
            let n = s.write_data(&[&buf])?;
            len = match s.send_recv(n) {
                Ok(l) => l,
                Err(FlipcallError::Shutdown) => return Ok(()),
                Err(e) => return Err(e),
            };
        }
    });
    c.connect().unwrap();
    let mut out = Vec::new();

    // Answered at once: polling with a generous budget finds the reply.
    let n = c.write_data(&[b"fast"]).unwrap();
    c.send(n).unwrap();
    let len = c
        .try_recv(Duration::from_secs(5))
        .unwrap()
        .expect("reply within the budget");
    c.read_data(len, &mut out);
    assert_eq!(out, b"tsaf");

    // Held back: a short poll returns None, another thread finishes.
    let n = c.write_data(&[b"slow"]).unwrap();
    c.send(n).unwrap();
    assert!(c.try_recv(Duration::from_micros(10)).unwrap().is_none());
    let c2 = Arc::clone(&c);
    let len = std::thread::spawn(move || c2.recv())
        .join()
        .unwrap()
        .unwrap();
    c.read_data(len, &mut out);
    assert_eq!(out, b"wols");

    // Shutdown ends a pending poll and a pending recv.
    let n = c.write_data(&[b"slow"]).unwrap();
    c.send(n).unwrap();
    let c2 = Arc::clone(&c);
    let waiter = std::thread::spawn(move || c2.recv());
    std::thread::sleep(Duration::from_millis(5));
    c.shutdown();
    assert!(matches!(
        waiter.join().unwrap(),
        Err(FlipcallError::Shutdown) | Ok(_)
    ));
    assert!(matches!(c.send(0), Err(FlipcallError::Shutdown)));
    assert!(matches!(
        c.try_recv(Duration::ZERO),
        Err(FlipcallError::Shutdown)
    ));
    slow.join().unwrap().unwrap();
}
