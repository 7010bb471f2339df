//! Framing checks for the `frames` target.
//!
//! * Socket stream: the bytes go through a real Unix socketpair into
//!   `lisafs_transport::SockCommunicator::recv`, whose frames and errors
//!   must match a ten-line reference parser of the 8-byte `SockHeader`
//!   format; the receive buffer never grows beyond the payload limit; and
//!   every payload is checked under its MID as a request and a response.
//! * Channel datagram: the bytes are written into a real flipcall packet
//!   window and read back with a hostile length, as a channel's server loop
//!   does; then the 4-byte `ChannelHeader` is parsed and the payload checked.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, OnceLock};

use lisafs_transport::flipcall::{Endpoint, Side, WindowAllocator};
use lisafs_transport::{RecvError, SockCommunicator, HEADER_LEN};
use lisafs_wire::{ChannelHeader, Mid, Reader, SockHeader, Wire, DEFAULT_MAX_MESSAGE_SIZE};

use crate::codec::{check_request, check_response};

/// Bytes written into the socket at most (stays far below the socket
/// buffer, so the single-threaded write never blocks).
const MAX_STREAM: usize = 64 * 1024;

/// What the reference parser expects from one `recv`.
#[derive(Debug, PartialEq, Eq)]
enum Event<'a> {
    Frame(Mid, &'a [u8]),
    TooLarge(Mid, u32),
    Truncated,
    Closed,
}

/// The reference parser: header, then exactly `payload_len` bytes; a
/// payload over `max` is skipped.
fn model(mut s: &[u8], max: u32) -> Vec<Event<'_>> {
    let mut out = Vec::new();
    loop {
        if s.is_empty() {
            out.push(Event::Closed);
            return out;
        }
        let Some((h, rest)) = s.split_first_chunk::<HEADER_LEN>() else {
            out.push(Event::Truncated);
            return out;
        };
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let mid = Mid(u16::from_le_bytes([h[4], h[5]]));
        if rest.len() < len as usize {
            out.push(Event::Truncated);
            return out;
        }
        let (payload, rest) = rest.split_at(len as usize);
        out.push(if len > max {
            Event::TooLarge(mid, len)
        } else {
            Event::Frame(mid, payload)
        });
        s = rest;
    }
}

/// Checks the 8-byte header codec on `b`.
fn check_sock_header(b: &[u8; SockHeader::LEN]) {
    let h = SockHeader::from_bytes(b);
    let mut canon = *b;
    canon[6] = 0;
    canon[7] = 0;
    assert_eq!(h.to_bytes(), canon);
    let mut r = Reader::new(b);
    let w = SockHeader::decode(&mut r).expect("8 bytes hold a header");
    assert_eq!(w, h);
    assert_eq!(r.remaining(), 0);
    let mut enc = Vec::new();
    w.append_to(&mut enc).expect("encodes");
    assert_eq!(enc, canon);
}

/// Checks the 4-byte channel header codec on `b`.
fn check_channel_header(b: &[u8; ChannelHeader::LEN]) -> ChannelHeader {
    let h = ChannelHeader::from_bytes(b);
    assert_eq!(h.to_bytes(), [b[0], b[1], b[2], 0]);
    let mut r = Reader::new(b);
    let w = ChannelHeader::decode(&mut r).expect("4 bytes hold a header");
    assert_eq!(w, h);
    let mut enc = Vec::new();
    w.append_to(&mut enc).expect("encodes");
    assert_eq!(enc, h.to_bytes());
    h
}

fn check_payload(mid: Mid, payload: &[u8]) {
    check_request(mid, payload);
    check_response(mid, payload);
}

/// The socket-stream half. `sel` picks the communicator's payload limit.
pub fn stream(sel: u8, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(MAX_STREAM)];
    let max = match sel % 8 {
        0 => 0,
        1 => 8,
        2 => 24,
        3 => 64,
        4 => 256,
        5 => 4096,
        6 => u32::from(sel),
        _ => DEFAULT_MAX_MESSAGE_SIZE,
    };
    for chunk in bytes.chunks(HEADER_LEN) {
        if let Ok(h) = <&[u8; HEADER_LEN]>::try_from(chunk) {
            check_sock_header(h);
        }
    }
    let expected = model(bytes, max);

    let (a, b) = UnixStream::pair().expect("socketpair");
    {
        let mut a = a;
        a.write_all(bytes).expect("write into the socket buffer");
        // Dropping `a` closes the write side: the reader then sees EOF.
    }
    let mut comm = SockCommunicator::with_max_payload(OwnedFd::from(b), max);
    for (i, want) in expected.iter().enumerate() {
        let got = comm.recv(0);
        match (want, got) {
            (Event::Frame(mid, payload), Ok(f)) => {
                assert_eq!(f.mid, *mid, "frame {i}: MID");
                assert_eq!(f.payload, *payload, "frame {i}: payload");
                assert!(f.fds.is_empty());
                check_payload(f.mid, f.payload);
            }
            (Event::TooLarge(mid, len), Err(RecvError::TooLarge { mid: m, len: l })) => {
                assert_eq!((m, l), (*mid, *len), "frame {i}: TooLarge");
            }
            (Event::Truncated, Err(RecvError::Truncated)) => {}
            (Event::Closed, Err(RecvError::Closed)) => {}
            (want, got) => panic!("frame {i}: expected {want:?}, got {got:?}"),
        }
        assert!(
            comm.recv_buffer_capacity() <= max as usize,
            "receive buffer {} exceeds the limit {max}",
            comm.recv_buffer_capacity()
        );
    }
}

struct Window {
    ep: Endpoint,
    zeros: Vec<u8>,
    // Keeps the memfd alive as long as the mapping (not strictly needed).
    _alloc: WindowAllocator,
}

fn window() -> &'static Mutex<Window> {
    static W: OnceLock<Mutex<Window>> = OnceLock::new();
    W.get_or_init(|| {
        let mut alloc = WindowAllocator::new().expect("memfd");
        // One page: a 4080-byte datagram capacity.
        let desc = alloc.allocate(1).expect("window");
        let ep = Endpoint::new(alloc.fd(), desc, Side::Server).expect("mmap");
        let zeros = vec![0u8; ep.data_cap() as usize];
        Mutex::new(Window {
            ep,
            zeros,
            _alloc: alloc,
        })
    })
}

/// The channel half: `len` is the datagram length the (hostile) peer
/// announces, `datagram` what it wrote into the window.
pub fn channel(len: u32, datagram: &[u8]) {
    let w = window().lock().unwrap_or_else(|e| e.into_inner());
    let cap = w.ep.data_cap() as usize;
    // Deterministic window contents: clear what earlier inputs left.
    w.ep.write_data(&[&w.zeros]).expect("clearing fits");
    match w.ep.write_data(&[datagram]) {
        Ok(n) => {
            assert!(datagram.len() <= cap);
            assert_eq!(n as usize, datagram.len());
        }
        Err(_) => assert!(
            datagram.len() > cap,
            "write_data refused a fitting datagram"
        ),
    }
    let mut req = Vec::new();
    w.ep.read_data(len, &mut req);
    let n = (len as usize).min(cap);
    assert_eq!(req.len(), n, "read_data is not bounded by the window");
    if datagram.len() <= cap {
        let k = n.min(datagram.len());
        assert_eq!(&req[..k], &datagram[..k]);
        assert!(req[k..].iter().all(|&b| b == 0));
    }
    drop(w);
    // As the channel server loop: a datagram without a header ends the
    // channel; otherwise header, then payload.
    let Some((hdr, payload)) = req.split_first_chunk::<{ ChannelHeader::LEN }>() else {
        return;
    };
    let h = check_channel_header(hdr);
    check_payload(h.mid, payload);
}

/// Entry point: byte 0 picks the half (bit 0) and parameters.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 1 == 0 {
        stream(sel >> 1, rest);
    } else {
        let Some((l, dg)) = rest.split_first_chunk::<4>() else {
            return;
        };
        channel(u32::from_le_bytes(*l), dg);
    }
}
