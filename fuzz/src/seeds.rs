//! Hand-written request sequences: seeds for `dispatch` and `dispatch_mem`
//! (written out by `examples/gen_seeds.rs`) and the warm-up of `dispatch`.
//!
//! They assume the driver's automatic Mount, so FDID 1 is the root, and
//! that FDIDs are handed out sequentially from there (they are, per
//! connection). Names refer to the fixture of `hosttree` (and the same
//! names exist in `memfs`).

use lisafs_wire::{self as w, FdId, Gid, Message, Mid, Seq, Uid};

use crate::driver::join_frames;

const O_RDONLY: u32 = 0;
const O_RDWR: u32 = 2;
const O_TRUNC: u32 = 0o1000;
const AT_REMOVEDIR: u32 = 0x200;
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const SOCK_STREAM: u32 = 1;

fn f<'a, M: Message<'a>>(m: &M) -> (Mid, Vec<u8>) {
    let mut v = Vec::new();
    m.encode_to_vec(&mut v).expect("seed encodes");
    (M::MID, v)
}

fn fd(n: u64) -> FdId {
    FdId(n)
}

fn walk(dir: u64, names: &[&[u8]]) -> (Mid, Vec<u8>) {
    f(&w::WalkReq {
        dir_fd: fd(dir),
        path: Seq::from_items(names),
    })
}

fn walk_stat(dir: u64, names: &[&[u8]]) -> (Mid, Vec<u8>) {
    f(&w::WalkStatReq {
        dir_fd: fd(dir),
        path: Seq::from_items(names),
    })
}

fn open(n: u64, flags: u32) -> (Mid, Vec<u8>) {
    f(&w::OpenAtReq { fd: fd(n), flags })
}

fn close(ids: &[u64]) -> (Mid, Vec<u8>) {
    let ids: Vec<FdId> = ids.iter().map(|&i| fd(i)).collect();
    f(&w::CloseReq {
        fds: Seq::from_items(&ids),
    })
}

fn pread(n: u64, offset: u64, count: u32) -> (Mid, Vec<u8>) {
    f(&w::PReadReq {
        offset,
        fd: fd(n),
        count,
    })
}

fn pwrite(n: u64, offset: u64, data: &[u8]) -> (Mid, Vec<u8>) {
    f(&w::PWriteReq {
        offset,
        fd: fd(n),
        data,
    })
}

fn common(dir: u64, mode: u16) -> w::CreateCommon {
    w::CreateCommon {
        dir_fd: fd(dir),
        uid: Uid::NONE,
        gid: Gid::NONE,
        mode,
    }
}

fn fstat(n: u64) -> (Mid, Vec<u8>) {
    f(&w::StatReq { fd: fd(n) })
}

fn rename(
    old_dir: u64,
    old: &'static [u8],
    new_dir: u64,
    new: &'static [u8],
) -> w::RenameAtReq<'static> {
    w::RenameAtReq {
        old_dir: fd(old_dir),
        new_dir: fd(new_dir),
        old_name: old,
        new_name: new,
    }
}

fn set_stat(n: u64, mask: u32, mode: u32, size: u64) -> (Mid, Vec<u8>) {
    f(&w::SetStatReq {
        fd: fd(n),
        mask,
        mode,
        uid: Uid::NONE,
        gid: Gid::NONE,
        size,
        atime: w::Timespec {
            sec: 1,
            nsec: w::UTIME_OMIT,
        },
        mtime: w::Timespec {
            sec: 2,
            nsec: w::UTIME_NOW,
        },
    })
}

type Frames = Vec<(Mid, Vec<u8>)>;

/// Named request sequences (frames only, no config byte).
#[allow(clippy::vec_init_then_push)]
pub fn sequences() -> Vec<(&'static str, Vec<u8>)> {
    use w::statx_mask as m;
    let mut out: Vec<(&'static str, Frames)> = Vec::new();

    out.push((
        "read-file",
        vec![
            walk(1, &[b"file"]),
            open(2, O_RDONLY),
            pread(3, 0, 100),
            pread(3, 5, 4096),
            fstat(3),
            fstat(2),
            f(&w::FlushReq { fd: fd(3) }),
            f(&w::FsyncReq {
                fds: Seq::from_items(&[fd(3)]),
            }),
            f(&w::FStatFsReq { fd: fd(2) }),
            close(&[3, 2]),
        ],
    ));
    out.push((
        "list-dir",
        vec![
            walk(1, &[b"dir"]),
            open(2, O_RDONLY),
            f(&w::Getdents64Req {
                dir_fd: fd(3),
                count: 4096,
            }),
            f(&w::Getdents64Req {
                dir_fd: fd(3),
                count: 4096,
            }),
            f(&w::Getdents64Req {
                dir_fd: fd(3),
                count: -64,
            }),
            open(1, O_RDONLY),
            f(&w::Getdents64Req {
                dir_fd: fd(4),
                count: 100,
            }),
            close(&[3]),
        ],
    ));
    out.push((
        "walk-stat",
        vec![
            walk_stat(1, &[b"", b"dir", b"sub", b"deep"]),
            walk_stat(1, &[b"link", b"x"]),
            walk_stat(1, &[b"escape", b"secret"]),
            walk_stat(1, &[b"", b"nope"]),
            walk(1, &[b"big"]),
            walk_stat(2, &[b""]),
            walk_stat(2, &[b"x"]),
        ],
    ));
    out.push((
        "walk-deep",
        vec![
            walk(1, &[b"dir", b"sub", b"deep"]),
            walk(1, &[b"dir", b"nope", b"x"]),
            walk(1, &[b"escape", b"secret"]),
            walk(1, &[b"link"]),
            walk(1, &[b"abs"]),
            open(6, O_RDONLY),
            f(&w::ReadLinkAtReq { fd: fd(6) }),
            f(&w::ReadLinkAtReq { fd: fd(2) }),
            walk(2, &[b".."]),
            walk(4, &[b"x"]),
        ],
    ));
    out.push((
        "create-write",
        vec![
            f(&w::OpenCreateAtReq {
                common: common(1, 0o644),
                flags: O_RDWR,
                name: b"new",
            }),
            pwrite(3, 0, b"some data"),
            pread(3, 0, 64),
            pwrite(3, 4096, b"sparse"),
            f(&w::FAllocateReq {
                fd: fd(3),
                mode: 0,
                offset: 0,
                length: 8192,
            }),
            set_stat(2, m::MODE | m::SIZE | m::ATIME | m::MTIME, 0o600, 3),
            fstat(3),
            open(2, O_RDWR | O_TRUNC),
            pread(5, 0, 10),
            close(&[3]),
        ],
    ));
    out.push((
        "mkdir-link-rename-unlink",
        vec![
            f(&w::MkdirAtReq {
                common: common(1, 0o755),
                name: b"d",
            }),
            f(&w::SymlinkAtReq {
                dir_fd: fd(2),
                uid: Uid::NONE,
                gid: Gid::NONE,
                name: b"s",
                target: b"../file",
            }),
            walk(1, &[b"file"]),
            f(&w::LinkAtReq {
                dir_fd: fd(2),
                target: fd(4),
                name: b"h",
            }),
            f(&rename(2, b"h", 1, b"h2")),
            f(&w::RenameAt2Req {
                rename: rename(1, b"h2", 2, b"h3"),
                flags: RENAME_NOREPLACE,
            }),
            f(&w::ReadLinkAtReq { fd: fd(3) }),
            f(&w::UnlinkAtReq {
                dir_fd: fd(2),
                flags: 0,
                name: b"s",
            }),
            f(&w::UnlinkAtReq {
                dir_fd: fd(1),
                flags: AT_REMOVEDIR,
                name: b"d",
            }),
            fstat(3),
            f(&w::MknodAtReq {
                common: common(1, 0o100644),
                minor: 0,
                major: 0,
                name: b"n",
            }),
            f(&w::MknodAtReq {
                common: common(1, 0o020000),
                minor: 0,
                major: 0,
                name: b"w",
            }),
        ],
    ));
    out.push((
        "xattrs",
        vec![
            walk(1, &[b"file"]),
            f(&w::FGetXattrReq {
                fd: fd(2),
                buf_size: 0,
                name: b"user.test",
            }),
            f(&w::FListXattrReq { fd: fd(2), size: 0 }),
            f(&w::FSetXattrReq {
                fd: fd(2),
                flags: 0,
                name: b"user.x",
                value: b"y",
            }),
            f(&w::FGetXattrReq {
                fd: fd(2),
                buf_size: 1,
                name: b"user.x",
            }),
            f(&w::FRemoveXattrReq {
                fd: fd(2),
                name: b"user.x",
            }),
            walk(1, &[b"link"]),
            f(&w::FListXattrReq { fd: fd(3), size: 0 }),
        ],
    ));
    out.push((
        "sockets",
        vec![
            f(&w::BindAtReq {
                common: common(1, 0o755),
                sock_type: SOCK_STREAM,
                name: b"s2",
            }),
            f(&w::ListenReq {
                fd: fd(3),
                backlog: 4,
            }),
            f(&w::ConnectReq {
                fd: fd(2),
                sock_type: SOCK_STREAM,
            }),
            f(&w::AcceptReq { fd: fd(3) }),
            f(&w::AcceptReq { fd: fd(3) }),
            walk(1, &[b"sock"]),
            set_stat(4, m::MODE, 0o777, 0),
            f(&w::ConnectWithCredsReq {
                connect: w::ConnectReq {
                    fd: fd(4),
                    sock_type: SOCK_STREAM,
                },
                uid: Uid(1000),
                gid: Gid(1000),
            }),
            open(4, O_RDONLY),
            fstat(3),
        ],
    ));
    out.push((
        "channels",
        vec![
            f(&w::ChannelReq),
            f(&w::ChannelReq),
            f(&w::ChannelReq),
            f(&w::MountReq),
            fstat(2),
        ],
    ));
    out.push((
        "deleted",
        vec![
            walk(1, &[b"dir", b"a"]),
            open(3, O_RDWR),
            f(&w::UnlinkAtReq {
                dir_fd: fd(2),
                flags: 0,
                name: b"a",
            }),
            pwrite(4, 0, b"after unlink"),
            fstat(3),
            set_stat(3, m::MODE, 0o600, 0),
            open(3, O_RDONLY),
            f(&w::FAllocateReq {
                fd: fd(4),
                mode: 0,
                offset: 0,
                length: 100,
            }),
            walk(2, &[b"a"]),
            f(&w::FGetXattrReq {
                fd: fd(3),
                buf_size: 0,
                name: b"user.x",
            }),
        ],
    ));
    out.push((
        "rename-tree",
        vec![
            walk(1, &[b"dir", b"sub", b"deep"]),
            open(4, O_RDONLY),
            f(&rename(1, b"dir", 1, b"dir2")),
            fstat(5),
            pread(5, 0, 10),
            walk(2, &[b"sub"]),
            f(&rename(1, b"dir2", 3, b"x")),
            f(&w::RenameAt2Req {
                rename: rename(1, b"file", 1, b"dir2"),
                flags: RENAME_EXCHANGE,
            }),
            f(&rename(1, b"emptydir", 1, b"dir2")),
            walk(1, &[b"dir2", b"sub"]),
        ],
    ));
    out.into_iter()
        .map(|(name, frames)| (name, join_frames(&frames)))
        .collect()
}

/// The warm-up inputs of `dispatch`: every sequence.
pub fn warmup() -> Vec<Vec<u8>> {
    sequences().into_iter().map(|(_, v)| v).collect()
}
