//! Fuzz-style property test: random and mutated bytes into every decoder.
//!
//! For every MID (standard and not) in both directions: decoding never
//! panics; whatever decodes re-encodes to a canonical form that decodes
//! exactly, to an equal value, from the same number of input bytes.
//! `LISAFS_FUZZ_ITERS` scales the run (default keeps `cargo test` quick).

use lisafs_wire::*;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn iterations() -> u64 {
    std::env::var("LISAFS_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// Bytes biased toward the shapes decoders care about: small lengths and
/// counts, valid-looking prefixes, and the occasional huge value.
fn random_payload(rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    let len = match rng.below(4) {
        0 => rng.below(8),
        1 => rng.below(64),
        2 => rng.below(400),
        _ => rng.below(3000),
    } as usize;
    for _ in 0..len {
        let b = match rng.below(8) {
            0..=3 => 0,
            4 => 0xff,
            5 => rng.below(4) as u8,
            _ => rng.next() as u8,
        };
        out.push(b);
    }
}

/// Whatever decodes re-encodes to a canonical form that decodes exactly,
/// to an equal value, from the same number of input bytes.
macro_rules! check {
    ($ty:ident, $mid:expr, $input:expr) => {{
        let (mid, input): (Mid, &[u8]) = ($mid, $input);
        if let Ok(msg) = $ty::decode(mid, input) {
            assert_eq!(msg.mid(), mid);
            let mut enc = Vec::new();
            msg.encode_to_vec(&mut enc)
                .expect("a decoded message re-encodes");
            assert_eq!(enc.len(), msg.encoded_len());
            assert!(enc.len() <= input.len() || input.is_empty() && enc.is_empty());
            let again = $ty::decode_exact(mid, &enc).expect("canonical form decodes exactly");
            assert_eq!(again, msg);
            let prefix = $ty::decode_exact(mid, &input[..enc.len()])
                .expect("same input prefix decodes exactly");
            assert_eq!(prefix, msg);
        }
    }};
}

fn check_request(mid: Mid, input: &[u8]) {
    check!(Request, mid, input)
}

fn check_response(mid: Mid, input: &[u8]) {
    check!(Response, mid, input)
}

#[test]
fn random_bytes_into_every_decoder() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::new();
    let per_mid = iterations() / 40;
    for mid in 0..40u16 {
        for _ in 0..per_mid {
            random_payload(&mut rng, &mut buf);
            check_request(Mid(mid), &buf);
            check_response(Mid(mid), &buf);
        }
    }
}

#[test]
fn mutated_valid_messages_into_every_decoder() {
    // Start from valid encodings and flip, cut and splice bytes.
    let names: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
    let inode = Inode {
        control_fd: FdId(1),
        ..Default::default()
    };
    let inodes = [inode; 3];
    let dirents = [
        Dirent64 {
            name: b"x",
            ..Default::default()
        },
        Dirent64 {
            name: b"yz",
            ..Default::default()
        },
    ];
    let mids: Vec<Mid> = (1..=33).map(Mid).collect();
    let seeds: Vec<(Mid, bool, Vec<u8>)> = {
        let mut v = Vec::new();
        let mut push = |mid: Mid, req: bool, f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = Vec::new();
            f(&mut b);
            v.push((mid, req, b));
        };
        push(Mid::WALK, true, &|b| {
            WalkReq {
                dir_fd: FdId(1),
                path: Seq::from_items(&names),
            }
            .encode_to_vec(b)
            .unwrap()
        });
        push(Mid::WALK, false, &|b| {
            WalkResp {
                status: WalkStatus::Success,
                inodes: Seq::from_items(&inodes),
            }
            .encode_to_vec(b)
            .unwrap()
        });
        push(Mid::GETDENTS64, false, &|b| {
            Getdents64Resp {
                dirents: Seq::from_items(&dirents),
            }
            .encode_to_vec(b)
            .unwrap()
        });
        push(Mid::MOUNT, false, &|b| {
            MountResp {
                root: inode,
                max_message_size: 1,
                supported_mids: Seq::from_items(&mids),
            }
            .encode_to_vec(b)
            .unwrap()
        });
        push(Mid::FSET_XATTR, true, &|b| {
            FSetXattrReq {
                fd: FdId(1),
                flags: 0,
                name: b"n",
                value: b"v",
            }
            .encode_to_vec(b)
            .unwrap()
        });
        push(Mid::RENAME_AT2, true, &|b| {
            RenameAt2Req {
                rename: RenameAtReq {
                    old_dir: FdId(1),
                    new_dir: FdId(2),
                    old_name: b"o",
                    new_name: b"n",
                },
                flags: 1,
            }
            .encode_to_vec(b)
            .unwrap()
        });
        push(Mid::PWRITE, true, &|b| {
            PWriteReq {
                offset: 0,
                fd: FdId(1),
                data: b"data",
            }
            .encode_to_vec(b)
            .unwrap()
        });
        push(Mid::PREAD, false, &|b| {
            PReadResp { data: b"data" }.encode_to_vec(b).unwrap()
        });
        push(Mid::FLIST_XATTR, false, &|b| {
            FListXattrResp {
                xattrs: Seq::from_items(&names),
            }
            .encode_to_vec(b)
            .unwrap()
        });
        push(Mid::CLOSE, true, &|b| {
            CloseReq {
                fds: Seq::from_items(&[FdId(1), FdId(2)]),
            }
            .encode_to_vec(b)
            .unwrap()
        });
        v
    };
    let mut rng = Rng(42);
    let rounds = iterations() / 4;
    let mut buf = Vec::new();
    for i in 0..rounds {
        let (mid, req, seed) = &seeds[(i as usize) % seeds.len()];
        buf.clear();
        buf.extend_from_slice(seed);
        for _ in 0..=rng.below(3) {
            match rng.below(4) {
                0 if !buf.is_empty() => {
                    let at = rng.below(buf.len() as u64) as usize;
                    buf[at] = rng.next() as u8;
                }
                1 if !buf.is_empty() => {
                    let at = rng.below(buf.len() as u64) as usize;
                    buf.truncate(at);
                }
                2 => buf.push(rng.next() as u8),
                _ if !buf.is_empty() => {
                    let at = rng.below(buf.len() as u64) as usize;
                    buf[at] ^= 1 << rng.below(8);
                }
                _ => {}
            }
        }
        if *req {
            check_request(*mid, &buf);
        } else {
            check_response(*mid, &buf);
        }
    }
}
