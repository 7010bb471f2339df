//! Runs one fuzz input against one server `Connection`.
//!
//! Input format (after the target's own config byte): frames back to back,
//! each `[mid: u16 LE][len: u16 LE][payload: len bytes]`; a short last
//! payload takes what is left. At most [`MAX_FRAMES`] frames are run.
//!
//! Invariants checked on every reply:
//! * `handle` returns (a panic anywhere is a crash: libfuzzer-sys's panic
//!   hook aborts even on panics the server would catch and answer with
//!   EREMOTEIO, so a backend panic is reported too, which is what we want);
//! * the payload is at most the connection's `max_message_size`;
//! * the reply's MID is the request's, or Error with a 4-byte non-zero errno
//!   other than EREMOTEIO, and an Error carries no FDs;
//! * the payload decodes *exactly* as a response of its MID and passes the
//!   codec's round-trip properties;
//! * the number of donated FDs fits the MID.
//!
//! And after the input: `conn.close()` plus dropping the last reference
//! bring `server.stats()` back to all zeros (no FD, node or connection
//! outlives its connection).

use std::sync::Arc;

use lisafs_server::{Connection, ConnectionImpl, ConnectionOpts, Reply, Server, Stats};
use lisafs_wire::{ErrorResp, Message, Mid, Response};

use crate::codec::check_response;

/// Frames run per input at most.
pub const MAX_FRAMES: usize = 64;

/// `EREMOTEIO`: the server's answer to a backend panic.
const EREMOTEIO: u32 = 121;

/// What an input did, for the caller's bookkeeping.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Frames handled.
    pub frames: usize,
    /// A request that may have changed the backing tree succeeded (or
    /// failed in a way that might have left something behind).
    pub mutated: bool,
}

/// Splits `data` into `(mid, payload)` frames.
pub fn split_frames(mut data: &[u8]) -> Vec<(Mid, &[u8])> {
    let mut out = Vec::new();
    while out.len() < MAX_FRAMES {
        let Some((h, rest)) = data.split_first_chunk::<4>() else {
            break;
        };
        let mid = Mid(u16::from_le_bytes([h[0], h[1]]));
        let len = usize::from(u16::from_le_bytes([h[2], h[3]])).min(rest.len());
        let (payload, rest) = rest.split_at(len);
        out.push((mid, payload));
        data = rest;
    }
    out
}

/// Encodes frames in the input format (for seeds and reproducers).
pub fn join_frames(frames: &[(Mid, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (mid, p) in frames {
        out.extend_from_slice(&mid.0.to_le_bytes());
        out.extend_from_slice(
            &u16::try_from(p.len())
                .expect("payload < 64 KiB")
                .to_le_bytes(),
        );
        out.extend_from_slice(p);
    }
    out
}

fn is_mutating(mid: Mid) -> bool {
    matches!(
        mid,
        Mid::SET_STAT
            | Mid::OPEN_AT // O_TRUNC
            | Mid::OPEN_CREATE_AT
            | Mid::PWRITE
            | Mid::MKDIR_AT
            | Mid::MKNOD_AT
            | Mid::SYMLINK_AT
            | Mid::LINK_AT
            | Mid::FALLOCATE
            | Mid::UNLINK_AT
            | Mid::RENAME_AT
            | Mid::RENAME_AT2
            | Mid::FSET_XATTR
            | Mid::FREMOVE_XATTR
            | Mid::BIND_AT
    )
}

/// Errnos the core returns before a backend touches anything.
fn rejected_early(errno: u32) -> bool {
    // EBADF, EIO (undecodable), EINVAL, ENOTDIR, EROFS, EMFILE, ENOTSOCK,
    // EOPNOTSUPP, ECONNRESET.
    matches!(errno, 9 | 5 | 22 | 20 | 30 | 24 | 88 | 95 | 104)
}

/// Most FDs a successful reply of `mid` may donate.
fn max_donated(mid: Mid) -> usize {
    match mid {
        Mid::CHANNEL => 2,
        Mid::MOUNT
        | Mid::OPEN_AT
        | Mid::OPEN_CREATE_AT
        | Mid::CONNECT
        | Mid::CONNECT_WITH_CREDS
        | Mid::BIND_AT
        | Mid::ACCEPT => 1,
        _ => 0,
    }
}

/// Checks one reply to a request of `mid`; returns the errno of an Error.
pub fn check_reply(conn: &Connection, mid: Mid, reply: &Reply) -> Option<u32> {
    assert!(
        reply.payload.len() <= conn.max_message_size() as usize,
        "{mid:?}: reply of {} bytes exceeds max_message_size {}",
        reply.payload.len(),
        conn.max_message_size()
    );
    if reply.mid == Mid::ERROR {
        let e = ErrorResp::decode_payload_exact(&reply.payload)
            .unwrap_or_else(|e| panic!("{mid:?}: malformed Error reply: {e:?}"));
        assert_ne!(e.errno, 0, "{mid:?}: Error reply with errno 0");
        assert_ne!(
            e.errno, EREMOTEIO,
            "{mid:?}: a backend panicked (EREMOTEIO)"
        );
        assert!(reply.fds.is_empty(), "{mid:?}: Error reply donates FDs");
        return Some(e.errno);
    }
    assert_eq!(reply.mid, mid, "reply MID differs from the request's");
    if let Err(e) = Response::decode_exact(mid, &reply.payload) {
        panic!(
            "{mid:?}: reply does not decode exactly: {e:?}; payload {:02x?}",
            reply.payload
        );
    }
    assert!(check_response(mid, &reply.payload));
    assert!(
        reply.fds.len() <= max_donated(mid),
        "{mid:?}: {} FDs donated",
        reply.fds.len()
    );
    None
}

/// Opens a connection of `imp` on `server`, mounts it first when `mount`,
/// runs the frames of `data`, then closes it and checks that the server is
/// back to zero.
pub fn run(
    server: &Server,
    imp: Arc<dyn ConnectionImpl>,
    opts: ConnectionOpts,
    mount: bool,
    data: &[u8],
) -> Outcome {
    assert_eq!(
        server.stats(),
        Stats::default(),
        "server not idle before the input"
    );
    let conn = server
        .new_connection(imp, opts)
        .expect("backend advertises messages");
    let mut out = Outcome::default();
    let mut reply = Reply::default();
    let mounted: [(Mid, &[u8]); 1] = [(Mid::MOUNT, &[])];
    let frames = split_frames(data);
    let all = mounted[..usize::from(mount)].iter().chain(frames.iter());
    for &(mid, payload) in all {
        conn.handle(mid, payload, &mut reply);
        let err = check_reply(&conn, mid, &reply);
        if trace() {
            eprintln!(
                "lisafs-fuzz: {:?} {} bytes -> {}",
                mid.name().unwrap_or("?"),
                payload.len(),
                match err {
                    Some(e) => format!("errno {e}"),
                    None => format!("ok, {} bytes, {} fds", reply.payload.len(), reply.fds.len()),
                }
            );
        }
        if is_mutating(mid) && err.is_none_or(|e| !rejected_early(e)) {
            out.mutated = true;
        }
        // Donated FDs are closed here, as after sending them.
        reply.fds.clear();
        out.frames += 1;
    }
    conn.close();
    assert_eq!(conn.fd_count(), 0, "FDIDs left after close");
    // Channel threads hold references until close joins them.
    assert_eq!(
        Arc::strong_count(&conn),
        1,
        "someone still holds the connection after close"
    );
    drop(conn);
    let stats = server.stats();
    assert_eq!(
        stats,
        Stats::default(),
        "server not back to zero after closing the connection"
    );
    out
}

/// `LISAFS_FUZZ_TRACE=1` prints every request and its result to stderr
/// (for reading a reproducer; far too slow for fuzzing).
fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var("LISAFS_FUZZ_TRACE").is_ok_and(|v| v == "1"))
}

/// Open FDs of this process (the directory read's own FD included, which
/// cancels out in comparisons).
pub fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
