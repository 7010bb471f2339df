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
    assert!(s.len() % 2 == 0, "odd hex length");
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
