//! Round-trip properties of the wire codec, shared by the decoder targets
//! (`decode_request`, `decode_response`) and by `frames` and `dispatch`.
//!
//! For a payload `p` that decodes under MID `m` to a message `x`:
//! * `x.mid() == m`;
//! * `x` re-encodes (to a Vec and into an exact-size slice, identically) to
//!   `e` with `e.len() == x.encoded_len() <= p.len()`;
//! * `e` decodes exactly to `x`, and re-encoding that gives `e` again
//!   (the canonical form is a fixed point);
//! * `p[..e.len()]` also decodes exactly to `x` (decoding consumed exactly
//!   the bytes the encoding needs; padding is ignored on receipt);
//! * a destination one byte short fails with an error, never a panic;
//! * every array iterates exactly `len()` items whose own encodings add up
//!   to the array's length and re-encode to the array's exact canonical
//!   bytes, padding included (the equality above would not see an iterator
//!   that stops early on both sides);
//! * `Debug` formatting works (it iterates arrays too).
//!
//! And whatever the payload: `decode_exact` succeeds only if `decode` does,
//! to the same value, when the whole payload was consumed.

use core::fmt::Debug;

use lisafs_wire::{DecodeError, Mid, Request, Response, Seq, Wire, Writer};

/// Checks that a decoded array iterates `len()` items whose encodings fill
/// exactly the array's bytes. Returns the items and their re-encoding (the
/// array's own encoding is `orig`).
fn seq_items<'a, T: Wire<'a> + Copy + PartialEq + Debug>(
    s: Seq<'a, T>,
) -> (Vec<T>, Vec<u8>, Vec<u8>) {
    let items: Vec<T> = s.iter().collect();
    assert_eq!(
        items.len(),
        s.len(),
        "array iterates fewer items than its count"
    );
    let mut orig = Vec::new();
    s.append_to(&mut orig).expect("a decoded array re-encodes");
    let mut buf = vec![0u8; orig.len()];
    let mut w = Writer::new(&mut buf);
    w.u16(u16::try_from(items.len()).expect("count fits u16"))
        .expect("count fits");
    for it in &items {
        it.encode(&mut w).expect("item fits");
    }
    assert_eq!(w.written(), orig.len(), "items do not fill the array bytes");
    (items, buf, orig)
}

/// A decoded array re-encodes to what its items encode to one by one, so
/// padding a peer filled in comes out as zeros either way.
fn check_seq<'a, T: Wire<'a> + Copy + PartialEq + Debug>(s: Seq<'a, T>) {
    let (_, buf, orig) = seq_items(s);
    assert_eq!(buf, orig, "items re-encode to different bytes");
}

fn check_request_seqs(msg: &Request<'_>) {
    match msg {
        Request::Walk(r) => check_seq(r.path),
        Request::WalkStat(r) => check_seq(r.path),
        Request::Close(r) => check_seq(r.fds),
        Request::FSync(r) => check_seq(r.fds),
        _ => {}
    }
}

fn check_response_seqs(msg: &Response<'_>) {
    match msg {
        Response::Mount(r) => check_seq(r.supported_mids),
        Response::Walk(r) => check_seq(r.inodes),
        Response::WalkStat(r) => check_seq(r.stats),
        Response::Getdents64(r) => check_seq(r.dirents),
        Response::FListXattr(r) => check_seq(r.xattrs),
        _ => {}
    }
}

macro_rules! roundtrip {
    ($name:ident, $ty:ident, $seqs:ident) => {
        /// Checks every round-trip property for `payload` under `mid`;
        /// returns whether it decoded.
        pub fn $name(mid: Mid, payload: &[u8]) -> bool {
            let decoded = $ty::decode(mid, payload);
            let exact = $ty::decode_exact(mid, payload);
            let msg = match decoded {
                Ok(msg) => msg,
                Err(e) => {
                    assert!(exact.is_err(), "decode_exact accepts what decode refuses");
                    if let DecodeError::UnknownMid(m) = e {
                        assert_eq!(m, mid.0);
                    }
                    // Display must never panic either.
                    let _ = e.to_string();
                    return false;
                }
            };
            assert_eq!(msg.mid(), mid);
            let _ = format!("{msg:?}");
            $seqs(&msg);

            let mut enc = Vec::new();
            msg.encode_to_vec(&mut enc)
                .expect("a decoded message re-encodes");
            assert_eq!(enc.len(), msg.encoded_len());
            assert!(enc.len() <= payload.len(), "encoding longer than its input");

            let mut slice = vec![0xAAu8; enc.len()];
            assert_eq!(msg.encode_to_slice(&mut slice), Ok(enc.len()));
            assert_eq!(slice, enc, "encode_to_slice and encode_to_vec differ");
            if !enc.is_empty() {
                assert!(msg.encode_to_slice(&mut slice[..enc.len() - 1]).is_err());
            }

            let again = $ty::decode_exact(mid, &enc).expect("canonical form decodes exactly");
            assert_eq!(again, msg);
            let mut enc2 = Vec::new();
            again.encode_to_vec(&mut enc2).expect("re-encodes");
            assert_eq!(enc2, enc, "canonical form is not a fixed point");

            let prefix = $ty::decode_exact(mid, &payload[..enc.len()])
                .expect("the consumed prefix decodes exactly");
            assert_eq!(prefix, msg);

            match exact {
                Ok(x) => {
                    assert_eq!(x, msg);
                    assert_eq!(enc.len(), payload.len());
                }
                Err(DecodeError::TrailingBytes { extra }) => {
                    assert_eq!(extra, payload.len() - enc.len());
                }
                Err(e) => panic!("decode ok but decode_exact failed with {e:?}"),
            }
            true
        }
    };
}

roundtrip!(check_request, Request, check_request_seqs);
roundtrip!(check_response, Response, check_response_seqs);
