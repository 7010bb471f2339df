//! Byte compatibility with gVisor: `interop/vectors/messages.json` holds
//! payloads and socket frames produced by gVisor's own Go code (see
//! `interop/`). Every one must decode exactly and re-encode to the same bytes.

use std::collections::BTreeSet;

use lisafs_wire::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct VectorFile {
    source: String,
    vectors: Vec<Vector>,
    frames: Vec<Frame>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    mid: u16,
    dir: String,
    hex: String,
}

#[derive(Deserialize)]
struct Frame {
    name: String,
    dir: String,
    hex: String,
}

fn load() -> VectorFile {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../interop/vectors/messages.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).expect("vectors file parses")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Decodes `payload` exactly and re-encodes it.
fn reencode(mid: Mid, dir: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match dir {
        "request" => Request::decode_exact(mid, payload)
            .map_err(|e| e.to_string())?
            .encode_to_vec(&mut out),
        "response" => Response::decode_exact(mid, payload)
            .map_err(|e| e.to_string())?
            .encode_to_vec(&mut out),
        other => return Err(format!("unknown dir {other}")),
    }
    .map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn every_vector_decodes_and_reencodes_to_the_same_bytes() {
    let file = load();
    assert!(
        file.source.contains("gvisor.dev/gvisor"),
        "vectors come from gVisor"
    );
    let mut failures = Vec::new();
    for v in &file.vectors {
        let bytes = unhex(&v.hex);
        match reencode(Mid(v.mid), &v.dir, &bytes) {
            Ok(out) if out == bytes => {}
            Ok(out) => failures.push(format!(
                "{}: re-encoded to {} bytes, differs",
                v.name,
                out.len()
            )),
            Err(e) => failures.push(format!("{}: {e}", v.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn vectors_cover_every_request_and_response() {
    let file = load();
    let have: BTreeSet<(u16, &str)> = file
        .vectors
        .iter()
        .map(|v| (v.mid, v.dir.as_str()))
        .collect();
    for mid in 0..=Mid::MAX_STANDARD.0 {
        if mid != 0 {
            assert!(
                have.contains(&(mid, "request")),
                "no request vector for MID {mid}"
            );
        }
        assert!(
            have.contains(&(mid, "response")),
            "no response vector for MID {mid}"
        );
    }
}

#[test]
fn every_frame_captured_from_gvisor_parses() {
    let file = load();
    assert!(!file.frames.is_empty());
    for f in &file.frames {
        let bytes = unhex(&f.hex);
        let (hdr, payload) = bytes
            .split_first_chunk::<{ SockHeader::LEN }>()
            .expect("frame has a header");
        let hdr = SockHeader::from_bytes(hdr);
        assert_eq!(
            hdr.payload_len as usize,
            payload.len(),
            "{}: header length",
            f.name
        );
        let out = reencode(hdr.mid, &f.dir, payload).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(out, payload, "{}", f.name);
        let mut frame = hdr.to_bytes().to_vec();
        frame.extend_from_slice(&out);
        assert_eq!(frame, bytes, "{}: whole frame", f.name);
    }
}

fn vector(file: &VectorFile, name: &str) -> Vec<u8> {
    let v = file
        .vectors
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vector {name}"));
    unhex(&v.hex)
}

/// Field values written by the Go side (`interop/vectors.go`) come out of
/// our decoder in the right fields, not merely as the same bytes.
#[test]
fn decoded_values_match_the_go_values() {
    let file = load();

    let b = vector(&file, "WalkReq/three-components");
    let walk = WalkReq::decode_payload_exact(&b).unwrap();
    let names: Vec<&[u8]> = walk.path.iter().collect();
    assert_eq!(names, [&b"usr"[..], b"lib", b"x86_64-linux-gnu"]);

    let b = vector(&file, "Statx/regular-file");
    let st = Statx::decode_payload_exact(&b).unwrap();
    assert_eq!(st.mask, statx_mask::BASIC_STATS);
    assert_eq!(st.blksize, 65536);
    assert_eq!(st.attributes, 0x0000_0100_0000_0004);
    assert_eq!((st.nlink, st.uid, st.gid), (2, 0xfffe, 0x1_0001));
    assert_eq!(st.mode, 0o100000 | 0o4755);
    assert_eq!(st.ino, 0x7fff_ffff_ffff_fff1);
    assert_eq!(st.size, 0x0000_0123_4567_89ac);
    assert_eq!(st.blocks, 0x9999_0001);
    assert_eq!(st.attributes_mask, 0x8000_0000);
    assert_eq!(
        st.atime,
        StatxTimestamp {
            sec: 86_400,
            nsec: 1
        }
    );
    assert_eq!(
        st.btime,
        StatxTimestamp {
            sec: 1_234_567_890,
            nsec: 200_000_002
        }
    );
    assert_eq!(
        st.ctime,
        StatxTimestamp {
            sec: 0x7_ffff_ffff,
            nsec: 3
        }
    );
    assert_eq!(
        st.mtime,
        StatxTimestamp {
            sec: 4_102_444_800,
            nsec: 456_000_000
        }
    );
    assert_eq!(
        (st.rdev_major, st.rdev_minor, st.dev_major, st.dev_minor),
        (21, 22, 8, 23)
    );

    let b = vector(&file, "Getdents64Req/seek0-negative-count");
    assert_eq!(
        Getdents64Req::decode_payload_exact(&b).unwrap().count,
        -65536
    );

    let b = vector(&file, "Getdents64Resp/five-dirents");
    let resp = Getdents64Resp::decode_payload_exact(&b).unwrap();
    let first = resp.dirents.iter().next().unwrap();
    assert_eq!(
        (
            first.ino,
            first.dev_minor,
            first.dev_major,
            first.off,
            first.ty
        ),
        (0x0123_4567_89ab, 13, 259, 1, 4)
    );
    assert_eq!(first.name, b".");
    assert_eq!(resp.dirents.len(), 5);

    let b = vector(&file, "RenameAt2Req/exchange");
    assert_eq!(RenameAt2Req::decode_payload_exact(&b).unwrap().flags, 2);

    let b = vector(&file, "ErrorResp/enoent");
    assert_eq!(
        ErrorResp::decode_payload_exact(&b).unwrap().errno,
        errno::ENOENT
    );

    let b = vector(&file, "MountResp/host-gofer");
    let mount = MountResp::decode_payload_exact(&b).unwrap();
    assert_eq!(mount.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
    let mids: Vec<u16> = mount.supported_mids.iter().map(|m| m.0).collect();
    assert_eq!(mids, (1..=33).filter(|&m| m != 20).collect::<Vec<_>>());
}
