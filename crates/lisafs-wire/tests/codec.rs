//! Behaviour of the codec that callers rely on: sizes match the protocol,
//! values survive a round trip, and bad input gives typed errors.

use lisafs_wire::*;

fn statx(seed: u64) -> Statx {
    Statx {
        mask: statx_mask::BASIC_STATS | statx_mask::BTIME,
        blksize: 4096,
        attributes: seed << 1,
        nlink: 3,
        uid: 1000,
        gid: 100,
        mode: 0o100644,
        ino: seed,
        size: 1 << 41,
        blocks: 9,
        attributes_mask: 0x30,
        atime: StatxTimestamp { sec: 1, nsec: 2 },
        btime: StatxTimestamp { sec: -3, nsec: 4 },
        ctime: StatxTimestamp {
            sec: 5,
            nsec: 999_999_999,
        },
        mtime: StatxTimestamp { sec: 7, nsec: 8 },
        rdev_major: 10,
        rdev_minor: 11,
        dev_major: 12,
        dev_minor: 13,
        ..Default::default()
    }
}

fn round_trip<'a, M: Message<'a> + PartialEq + core::fmt::Debug>(
    msg: &M,
    buf: &'a mut Vec<u8>,
) -> M {
    buf.clear();
    msg.encode_to_vec(buf).expect("encode");
    assert_eq!(buf.len(), msg.encoded_len());
    let back = M::decode_payload_exact(buf).expect("decode");
    assert_eq!(&back, msg);
    back
}

#[test]
fn fixed_sizes_match_the_protocol() {
    assert_eq!(Statx::FIXED_LEN, Some(144));
    assert_eq!(Inode::FIXED_LEN, Some(152));
    assert_eq!(StatFs::FIXED_LEN, Some(64));
    assert_eq!(SetStatReq::FIXED_LEN, Some(64));
    assert_eq!(SetStatResp::FIXED_LEN, Some(8));
    assert_eq!(OpenAtReq::FIXED_LEN, Some(16));
    assert_eq!(CreateCommon::FIXED_LEN, Some(24));
    assert_eq!(OpenCreateAtResp::FIXED_LEN, Some(160));
    assert_eq!(BindAtResp::FIXED_LEN, Some(160));
    assert_eq!(PReadReq::FIXED_LEN, Some(24));
    assert_eq!(FAllocateReq::FIXED_LEN, Some(32));
    assert_eq!(ConnectReq::FIXED_LEN, Some(16));
    assert_eq!(ConnectWithCredsReq::FIXED_LEN, Some(24));
    assert_eq!(Getdents64Req::FIXED_LEN, Some(16));
    assert_eq!(ListenReq::FIXED_LEN, Some(16));
    assert_eq!(ChannelResp::FIXED_LEN, Some(16));
    assert_eq!(ErrorResp::FIXED_LEN, Some(4));
    assert_eq!(SockHeader::FIXED_LEN, Some(SockHeader::LEN));
    assert_eq!(ChannelHeader::FIXED_LEN, Some(ChannelHeader::LEN));
    // Variable messages: the fixed part before the first variable field.
    assert_eq!(OpenCreateAtReq::MIN_LEN, 30);
    assert_eq!(MkdirAtReq::MIN_LEN, 26);
    assert_eq!(MknodAtReq::MIN_LEN, 34);
    assert_eq!(SymlinkAtReq::MIN_LEN, 20);
    assert_eq!(LinkAtReq::MIN_LEN, 18);
    assert_eq!(UnlinkAtReq::MIN_LEN, 14);
    assert_eq!(RenameAtReq::MIN_LEN, 20);
    assert_eq!(RenameAt2Req::MIN_LEN, 24);
    assert_eq!(FGetXattrReq::MIN_LEN, 14);
    assert_eq!(FSetXattrReq::MIN_LEN, 16);
    assert_eq!(FRemoveXattrReq::MIN_LEN, 10);
    assert_eq!(BindAtReq::MIN_LEN, 30);
    assert_eq!(WalkReq::MIN_LEN, 10);
    assert_eq!(MountResp::MIN_LEN, 158);
    assert_eq!(Dirent64::MIN_LEN, 27);
}

#[test]
fn mount_response_with_host_server_mid_list_is_222_bytes() {
    let mids: Vec<Mid> = (1..=33).filter(|&m| m != 20).map(Mid).collect();
    let resp = MountResp {
        root: Inode {
            control_fd: FdId(1),
            stat: statx(2),
        },
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        supported_mids: Seq::from_items(&mids),
    };
    assert_eq!(resp.encoded_len(), 222);
    let mut buf = Vec::new();
    let back = round_trip(&resp, &mut buf);
    assert_eq!(back.supported_mids.iter().collect::<Vec<_>>(), mids);
}

#[test]
fn variable_messages_round_trip() {
    let mut buf = Vec::new();
    let names: [&[u8]; 3] = [b"usr", b"lib", "x86_64-\u{e9}".as_bytes()];
    round_trip(
        &WalkReq {
            dir_fd: FdId(7),
            path: Seq::from_items(&names),
        },
        &mut buf,
    );
    let inodes = [
        Inode {
            control_fd: FdId(2),
            stat: statx(1),
        },
        Inode {
            control_fd: FdId(3),
            stat: statx(2),
        },
    ];
    round_trip(
        &WalkResp {
            status: WalkStatus::ComponentSymlink,
            inodes: Seq::from_items(&inodes),
        },
        &mut buf,
    );
    let dirents = [
        Dirent64 {
            ino: 1,
            dev_minor: 2,
            dev_major: 3,
            off: 4,
            ty: 4,
            name: b"a",
        },
        Dirent64 {
            ino: u64::MAX,
            dev_minor: 0,
            dev_major: 0,
            off: 1 << 62,
            ty: 8,
            name: b"file with spaces",
        },
    ];
    round_trip(
        &Getdents64Resp {
            dirents: Seq::from_items(&dirents),
        },
        &mut buf,
    );
    round_trip(
        &RenameAt2Req {
            rename: RenameAtReq {
                old_dir: FdId(1),
                new_dir: FdId(2),
                old_name: b"a",
                new_name: b"b\0c",
            },
            flags: 2,
        },
        &mut buf,
    );
    round_trip(
        &PWriteReq {
            offset: 1 << 40,
            fd: FdId(9),
            data: &[1, 2, 3],
        },
        &mut buf,
    );
    round_trip(&PReadResp { data: &[0xff; 100] }, &mut buf);
    round_trip(
        &SymlinkAtReq {
            dir_fd: FdId(1),
            uid: Uid::NONE,
            gid: Gid(5),
            name: b"l",
            target: b"/etc/passwd",
        },
        &mut buf,
    );
}

#[test]
fn encode_writes_into_a_caller_buffer_and_checks_its_size() {
    let req = PReadReq {
        offset: 1,
        fd: FdId(2),
        count: 3,
    };
    let mut small = [0u8; 23];
    assert_eq!(
        req.encode_to_slice(&mut small),
        Err(EncodeError::BufferTooSmall {
            needed: 24,
            available: 23
        })
    );
    let mut exact = [0xAAu8; 24];
    assert_eq!(req.encode_to_slice(&mut exact), Ok(24));
    assert_eq!(&exact[20..], &[0, 0, 0, 0], "padding is written as zero");
}

#[test]
fn oversized_strings_and_arrays_are_refused() {
    let long = vec![b'x'; 65_536];
    let req = MkdirAtReq {
        common: CreateCommon::default(),
        name: &long,
    };
    let mut out = Vec::new();
    assert_eq!(
        req.encode_to_vec(&mut out),
        Err(EncodeError::StringTooLong { len: 65_536 })
    );
    assert!(
        out.is_empty(),
        "a failed encode leaves the buffer as it was"
    );
    let fds = vec![FdId(1); 65_536];
    assert_eq!(
        CloseReq {
            fds: Seq::from_items(&fds)
        }
        .encode_to_vec(&mut out),
        Err(EncodeError::TooManyItems { count: 65_536 })
    );
    let just_fits = vec![b'y'; 65_535];
    round_trip(&FGetXattrResp { value: &just_fits }, &mut out);
}

#[test]
fn every_truncation_of_a_message_is_an_error() {
    let names: [&[u8]; 2] = [b"one", b"two"];
    let mut full = Vec::new();
    FSetXattrReq {
        fd: FdId(3),
        flags: 1,
        name: b"user.k",
        value: b"value",
    }
    .encode_to_vec(&mut full)
    .unwrap();
    for cut in 0..full.len() {
        assert!(
            matches!(
                FSetXattrReq::decode_payload(&full[..cut]),
                Err(DecodeError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
    full.clear();
    WalkReq {
        dir_fd: FdId(1),
        path: Seq::from_items(&names),
    }
    .encode_to_vec(&mut full)
    .unwrap();
    for cut in 0..full.len() {
        assert!(
            Request::decode(Mid::WALK, &full[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn string_longer_than_the_rest_is_truncated() {
    // ReadLinkAtResp claiming 10 bytes with 3 present.
    let buf = [10, 0, b'a', b'b', b'c'];
    assert_eq!(
        ReadLinkAtResp::decode_payload(&buf),
        Err(DecodeError::Truncated {
            what: "SizedString",
            needed: 10,
            remaining: 3
        })
    );
}

#[test]
fn hostile_counts_are_bounded_by_the_buffer_before_any_work() {
    // 65535 strings claimed, 2 bytes present: rejected on the count alone.
    let mut buf = vec![0u8; 10];
    buf[8] = 0xff;
    buf[9] = 0xff;
    assert_eq!(
        WalkReq::decode_payload(&buf),
        Err(DecodeError::Truncated {
            what: "array items",
            needed: 65_535 * 2,
            remaining: 0
        })
    );
    // 65535 inodes claimed in a WalkResp with a few bytes.
    let buf = [0u8, 0xff, 0xff, 1, 2, 3];
    assert!(matches!(
        WalkResp::decode_payload(&buf),
        Err(DecodeError::Truncated { .. })
    ));
    // PRead claiming 2^64-1 bytes.
    let mut buf = vec![0xffu8; 8];
    buf.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(
        PReadResp::decode_payload(&buf),
        Err(DecodeError::Truncated { .. })
    ));
    // PWrite claiming more data than present.
    let mut buf = vec![0u8; 20];
    buf[16..20].copy_from_slice(&100u32.to_le_bytes());
    assert!(matches!(
        PWriteReq::decode_payload(&buf),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn trailing_bytes_are_ignored_like_go_unless_exact() {
    let mut buf = Vec::new();
    StatReq { fd: FdId(5) }.encode_to_vec(&mut buf).unwrap();
    buf.push(0xee);
    assert_eq!(StatReq::decode_payload(&buf), Ok(StatReq { fd: FdId(5) }));
    assert_eq!(
        StatReq::decode_payload_exact(&buf),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
    assert_eq!(
        Request::decode_exact(Mid::MOUNT, &[1]),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
    assert_eq!(
        Request::decode(Mid::MOUNT, &[1]),
        Ok(Request::Mount(MountReq))
    );
}

#[test]
fn unknown_mids_and_invalid_values_are_typed_errors() {
    assert_eq!(
        Request::decode(Mid(0), &[]),
        Err(DecodeError::UnknownMid(0))
    );
    assert_eq!(
        Request::decode(Mid(34), &[]),
        Err(DecodeError::UnknownMid(34))
    );
    assert_eq!(
        Response::decode(Mid(300), &[]),
        Err(DecodeError::UnknownMid(300))
    );
    assert_eq!(
        WalkResp::decode_payload(&[3, 0, 0]),
        Err(DecodeError::InvalidValue {
            what: "WalkStatus",
            value: 3
        })
    );
    assert_eq!(Mid::RENAME_AT2.name(), Some("RenameAt2"));
    assert_eq!(Mid(99).name(), None);
}

#[test]
fn padding_is_ignored_on_receipt() {
    let mut buf = Vec::new();
    OpenAtReq {
        fd: FdId(4),
        flags: 2,
    }
    .encode_to_vec(&mut buf)
    .unwrap();
    buf[12..16].copy_from_slice(&[9, 9, 9, 9]);
    assert_eq!(
        OpenAtReq::decode_payload_exact(&buf),
        Ok(OpenAtReq {
            fd: FdId(4),
            flags: 2
        })
    );
}

#[test]
fn headers() {
    let h = SockHeader {
        payload_len: 0x0102_0304,
        mid: Mid::WALK,
    };
    assert_eq!(h.to_bytes(), [4, 3, 2, 1, 5, 0, 0, 0]);
    assert_eq!(SockHeader::from_bytes(&[4, 3, 2, 1, 5, 0, 0xff, 0xff]), h);
    let c = ChannelHeader {
        mid: Mid::PREAD,
        num_fds: 2,
    };
    assert_eq!(c.to_bytes(), [12, 0, 2, 0]);
    assert_eq!(ChannelHeader::from_bytes(&[12, 0, 2, 7]), c);
}

#[test]
fn decoded_arrays_re_encode_padding_as_zeros() {
    // A peer may put anything in padding; relaying a decoded array must
    // write the canonical zeros, as encoding the same items does.
    let items = [statx(1), statx(2)];
    let canonical = WalkStatResp {
        stats: Seq::from_items(&items),
    };
    let mut clean = Vec::new();
    canonical.encode_to_vec(&mut clean).expect("encode");
    let mut dirty = clean.clone();
    let (first, second) = (2, 2 + 144);
    for item in [first, second] {
        // pad_mode sits at offset 30, then each timestamp's 4 pad bytes.
        dirty[item + 30] = 0xaa;
        dirty[item + 31] = 0x55;
        for ts in [64, 80, 96, 112] {
            dirty[item + ts + 12..item + ts + 16].copy_from_slice(&[1, 2, 3, 4]);
        }
    }
    let decoded = WalkStatResp::decode_payload_exact(&dirty).expect("padding is ignored");
    assert_eq!(decoded, canonical);
    let mut again = Vec::new();
    decoded.encode_to_vec(&mut again).expect("re-encode");
    assert_eq!(again, clean, "padding must re-encode as zeros");

    // Arrays without padding still copy their bytes verbatim.
    let names: [&[u8]; 2] = [b"a", b"bc"];
    let walk = WalkReq {
        dir_fd: FdId(7),
        path: Seq::from_items(&names),
    };
    let mut w1 = Vec::new();
    walk.encode_to_vec(&mut w1).expect("encode");
    let back = WalkReq::decode_payload_exact(&w1).expect("decode");
    let mut w2 = Vec::new();
    back.encode_to_vec(&mut w2).expect("re-encode");
    assert_eq!(w1, w2);
}

#[test]
fn the_standard_mid_lists_cover_every_named_mid() {
    assert_eq!(Mid::STANDARD.len(), usize::from(Mid::MAX_STANDARD.0) + 1);
    assert!(Mid::STANDARD
        .iter()
        .enumerate()
        .all(|(i, m)| usize::from(m.0) == i && m.name().is_some()));
    assert_eq!(Mid::REQUESTS, &Mid::STANDARD[1..]);
}
