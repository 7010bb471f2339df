//! Writes the committed seed corpora under `fuzz/seeds/<target>/` from
//! `interop/vectors/messages.json` (bytes produced by gVisor's Go code) and
//! the hand-written sequences of `lisafs_fuzz::seeds`. Deterministic: run
//! it again after changing either, from `fuzz/`:
//!
//!     cargo run --example gen_seeds
//!
//! Seeds found by fuzzing are added by hand (`crash-*`, `find-*` files) and
//! are left alone.

use std::fs;
use std::path::{Path, PathBuf};

use lisafs_wire::{ChannelHeader, Mid, SockHeader};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn clean(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn put(dir: &Path, name: &str, data: &[u8]) {
    fs::create_dir_all(dir).expect("mkdir seeds");
    fs::write(dir.join(format!("gen-{}", clean(name))), data).expect("write seed");
}

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let seeds = fuzz.join("seeds");
    // Regenerate only our own files.
    for t in [
        "decode_request",
        "decode_response",
        "frames",
        "dispatch",
        "dispatch_mem",
    ] {
        if let Ok(rd) = fs::read_dir(seeds.join(t)) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("gen-") {
                    fs::remove_file(e.path()).expect("remove old seed");
                }
            }
        }
    }
    let json: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(fuzz.join("../interop/vectors/messages.json")).expect("vectors"),
    )
    .expect("vectors parse");

    let mut stream = Vec::new();
    let mut requests = Vec::new();
    for v in json["vectors"].as_array().expect("vectors array") {
        let name = v["name"].as_str().expect("name");
        let mid = v["mid"].as_u64().expect("mid") as u16;
        let payload = hex(v["hex"].as_str().expect("hex"));
        let mut d = mid.to_le_bytes().to_vec();
        d.extend_from_slice(&payload);
        let target = match v["dir"].as_str() {
            Some("request") => "decode_request",
            _ => "decode_response",
        };
        put(&seeds.join(target), name, &d);

        // frames: the payload as a channel datagram (odd selector).
        let mut c = vec![0x01];
        let hdr = ChannelHeader {
            mid: Mid(mid),
            num_fds: 0,
        }
        .to_bytes();
        c.extend_from_slice(&((hdr.len() + payload.len()) as u32).to_le_bytes());
        c.extend_from_slice(&hdr);
        c.extend_from_slice(&payload);
        put(&seeds.join("frames"), &format!("chan-{name}"), &c);
        let sock = SockHeader {
            payload_len: payload.len() as u32,
            mid: Mid(mid),
        };
        stream.extend_from_slice(&sock.to_bytes());
        stream.extend_from_slice(&payload);

        if target == "decode_request" && payload.len() < 65536 {
            // dispatch: config 0x10 (host options), automatic Mount, then
            // this one request.
            let mut d = vec![0x10];
            d.extend_from_slice(&mid.to_le_bytes());
            d.extend_from_slice(&(payload.len() as u16).to_le_bytes());
            d.extend_from_slice(&payload);
            requests.push((name.to_string(), d));
        }
    }
    // frames: every vector back to back on a socket (selector 0x0a: 4 KiB
    // limit), with a tight limit (0x06: 64 bytes), and the captured frames.
    for (sel, tag) in [(0x0au8, "4k"), (0x06, "64")] {
        let mut s = vec![sel];
        s.extend_from_slice(&stream);
        put(&seeds.join("frames"), &format!("stream-all-{tag}"), &s);
    }
    for fr in json["frames"].as_array().expect("frames array") {
        let mut s = vec![0x0e];
        s.extend_from_slice(&hex(fr["hex"].as_str().expect("hex")));
        put(
            &seeds.join("frames"),
            &format!("frame-{}", fr["name"].as_str().unwrap_or("x")),
            &s,
        );
    }
    for (name, d) in &requests {
        put(&seeds.join("dispatch"), &format!("vec-{name}"), d);
        put(
            &seeds.join("dispatch_mem"),
            &format!("vec-{name}"),
            &[&[0x02][..], &d[1..]].concat(),
        );
    }
    for (name, frames) in lisafs_fuzz::seeds::sequences() {
        // dispatch: default host options, and every policy on (0x17).
        for cfg in [0x00u8, 0x17] {
            let mut d = vec![cfg];
            d.extend_from_slice(&frames);
            put(
                &seeds.join("dispatch"),
                &format!("seq-{name}-{cfg:02x}"),
                &d,
            );
        }
        for cfg in [0x00u8, 0x0a] {
            let mut d = vec![cfg];
            d.extend_from_slice(&frames);
            put(
                &seeds.join("dispatch_mem"),
                &format!("seq-{name}-{cfg:02x}"),
                &d,
            );
        }
    }
}
