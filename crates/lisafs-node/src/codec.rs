//! JS views of `lisafs-wire` messages: plain objects with a `type`
//! discriminant. Conversions only; every rule lives in `lisafs-wire`.
//!
//! 64-bit wire fields are `bigint` (FDIDs, offsets, sizes and times must
//! round-trip exactly); narrower ones are `number`; names and data are
//! `Buffer` (the protocol carries bytes, not text).

use lisafs_wire as w;
use lisafs_wire::{Message, Seq};
use napi::bindgen_prelude::{BigInt, Buffer, Uint8Array};
use napi::Env;
use napi_derive::napi;

use crate::error::{Fail, Result};

fn decode_error(e: w::DecodeError) -> Fail {
    Fail::new("ERR_LISAFS_DECODE", e.to_string())
}

fn encode_error(e: w::EncodeError) -> Fail {
    Fail::new("ERR_LISAFS_ENCODE", e.to_string())
}

fn range_error(what: &str, bits: u32) -> Fail {
    Fail::range(format!(
        "{what} must be an unsigned value that fits in {bits} bits"
    ))
}

pub(crate) fn u64_of(what: &str, b: &BigInt) -> Result<u64> {
    if b.words.is_empty() {
        return Ok(0);
    }
    match b.get_u64() {
        (false, v, true) => Ok(v),
        _ => Err(range_error(what, 64)),
    }
}

pub(crate) fn i64_of(what: &str, b: &BigInt) -> Result<i64> {
    if b.words.is_empty() {
        return Ok(0);
    }
    match b.get_i64() {
        (v, true) => Ok(v),
        // get_i64 reports i64::MIN as lossy when it is exact.
        (i64::MIN, _) if b.words.len() == 1 => Ok(i64::MIN),
        _ => Err(Fail::range(format!(
            "{what} must fit in a signed 64-bit integer"
        ))),
    }
}

pub(crate) fn fd_of(what: &str, b: &BigInt) -> Result<w::FdId> {
    u64_of(what, b).map(w::FdId)
}

pub(crate) fn u16_of(what: &str, v: u32) -> Result<u16> {
    u16::try_from(v).map_err(|_| range_error(what, 16))
}

fn u8_of(what: &str, v: u32) -> Result<u8> {
    u8::try_from(v).map_err(|_| range_error(what, 8))
}

pub(crate) fn buf(b: &[u8]) -> Buffer {
    b.to_vec().into()
}

pub(crate) fn fd(f: w::FdId) -> BigInt {
    BigInt::from(f.0)
}

fn encode<'a, M: Message<'a>>(m: &M) -> Result<Buffer> {
    let mut out = Vec::with_capacity(m.encoded_len());
    m.encode_to_vec(&mut out).map_err(encode_error)?;
    Ok(out.into())
}

/// A statx timestamp.
#[napi(object)]
pub struct StatxTimestamp {
    pub sec: BigInt,
    pub nsec: u32,
}

/// The protocol's 144-byte statx.
#[napi(object)]
pub struct Statx {
    pub mask: u32,
    pub blksize: u32,
    pub attributes: BigInt,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub ino: BigInt,
    pub size: BigInt,
    pub blocks: BigInt,
    pub attributes_mask: BigInt,
    pub atime: StatxTimestamp,
    pub btime: StatxTimestamp,
    pub ctime: StatxTimestamp,
    pub mtime: StatxTimestamp,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
}

/// A new control FD and its stat.
#[napi(object)]
pub struct Inode {
    pub control_fd: BigInt,
    pub stat: Statx,
}

/// Filesystem statistics.
#[napi(object)]
pub struct StatFs {
    pub fs_type: BigInt,
    pub block_size: BigInt,
    pub blocks: BigInt,
    pub blocks_free: BigInt,
    pub blocks_available: BigInt,
    pub files: BigInt,
    pub files_free: BigInt,
    pub name_length: BigInt,
}

/// A Linux timespec (SetStat times; `nsec` may be UTIME_NOW or UTIME_OMIT).
#[napi(object)]
pub struct Timespec {
    pub sec: BigInt,
    pub nsec: BigInt,
}

/// A directory entry.
#[napi(object)]
pub struct Dirent64 {
    pub ino: BigInt,
    pub dev_minor: u32,
    pub dev_major: u32,
    pub off: BigInt,
    /// A `DT_*` value.
    #[napi(js_name = "type")]
    pub ty: u32,
    pub name: Buffer,
}

/// The prefix shared by OpenCreateAt, MkdirAt, MknodAt and BindAt.
#[napi(object)]
pub struct CreateCommon {
    pub dir_fd: BigInt,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Outcome of a Walk.
#[napi(string_enum)]
#[derive(Clone, Copy)]
pub enum WalkStatus {
    Success,
    ComponentDoesNotExist,
    ComponentSymlink,
}

impl From<w::StatxTimestamp> for StatxTimestamp {
    fn from(t: w::StatxTimestamp) -> Self {
        Self {
            sec: t.sec.into(),
            nsec: t.nsec,
        }
    }
}

impl StatxTimestamp {
    fn to_wire(&self) -> Result<w::StatxTimestamp> {
        Ok(w::StatxTimestamp {
            sec: i64_of("sec", &self.sec)?,
            nsec: self.nsec,
        })
    }
}

impl From<w::Statx> for Statx {
    fn from(s: w::Statx) -> Self {
        Self {
            mask: s.mask,
            blksize: s.blksize,
            attributes: s.attributes.into(),
            nlink: s.nlink,
            uid: s.uid,
            gid: s.gid,
            mode: s.mode.into(),
            ino: s.ino.into(),
            size: s.size.into(),
            blocks: s.blocks.into(),
            attributes_mask: s.attributes_mask.into(),
            atime: s.atime.into(),
            btime: s.btime.into(),
            ctime: s.ctime.into(),
            mtime: s.mtime.into(),
            rdev_major: s.rdev_major,
            rdev_minor: s.rdev_minor,
            dev_major: s.dev_major,
            dev_minor: s.dev_minor,
        }
    }
}

impl Statx {
    fn to_wire(&self) -> Result<w::Statx> {
        Ok(w::Statx {
            mask: self.mask,
            blksize: self.blksize,
            attributes: u64_of("attributes", &self.attributes)?,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            mode: u16_of("mode", self.mode)?,
            pad_mode: w::Pad16,
            ino: u64_of("ino", &self.ino)?,
            size: u64_of("size", &self.size)?,
            blocks: u64_of("blocks", &self.blocks)?,
            attributes_mask: u64_of("attributesMask", &self.attributes_mask)?,
            atime: self.atime.to_wire()?,
            btime: self.btime.to_wire()?,
            ctime: self.ctime.to_wire()?,
            mtime: self.mtime.to_wire()?,
            rdev_major: self.rdev_major,
            rdev_minor: self.rdev_minor,
            dev_major: self.dev_major,
            dev_minor: self.dev_minor,
        })
    }
}

impl From<w::Inode> for Inode {
    fn from(i: w::Inode) -> Self {
        Self {
            control_fd: fd(i.control_fd),
            stat: i.stat.into(),
        }
    }
}

impl Inode {
    fn to_wire(&self) -> Result<w::Inode> {
        Ok(w::Inode {
            control_fd: fd_of("controlFd", &self.control_fd)?,
            stat: self.stat.to_wire()?,
        })
    }
}

impl From<w::StatFs> for StatFs {
    fn from(s: w::StatFs) -> Self {
        Self {
            fs_type: s.fs_type.into(),
            block_size: s.block_size.into(),
            blocks: s.blocks.into(),
            blocks_free: s.blocks_free.into(),
            blocks_available: s.blocks_available.into(),
            files: s.files.into(),
            files_free: s.files_free.into(),
            name_length: s.name_length.into(),
        }
    }
}

impl StatFs {
    fn to_wire(&self) -> Result<w::StatFs> {
        Ok(w::StatFs {
            fs_type: u64_of("fsType", &self.fs_type)?,
            block_size: i64_of("blockSize", &self.block_size)?,
            blocks: u64_of("blocks", &self.blocks)?,
            blocks_free: u64_of("blocksFree", &self.blocks_free)?,
            blocks_available: u64_of("blocksAvailable", &self.blocks_available)?,
            files: u64_of("files", &self.files)?,
            files_free: u64_of("filesFree", &self.files_free)?,
            name_length: u64_of("nameLength", &self.name_length)?,
        })
    }
}

impl From<w::Timespec> for Timespec {
    fn from(t: w::Timespec) -> Self {
        Self {
            sec: t.sec.into(),
            nsec: t.nsec.into(),
        }
    }
}

impl Timespec {
    pub(crate) fn to_wire(&self) -> Result<w::Timespec> {
        Ok(w::Timespec {
            sec: i64_of("sec", &self.sec)?,
            nsec: i64_of("nsec", &self.nsec)?,
        })
    }
}

impl From<w::Dirent64<'_>> for Dirent64 {
    fn from(d: w::Dirent64<'_>) -> Self {
        Self {
            ino: d.ino.into(),
            dev_minor: d.dev_minor,
            dev_major: d.dev_major,
            off: d.off.into(),
            ty: d.ty.into(),
            name: buf(d.name),
        }
    }
}

impl Dirent64 {
    fn to_wire(&self) -> Result<w::Dirent64<'_>> {
        Ok(w::Dirent64 {
            ino: u64_of("ino", &self.ino)?,
            dev_minor: self.dev_minor,
            dev_major: self.dev_major,
            off: u64_of("off", &self.off)?,
            ty: u8_of("ty", self.ty)?,
            name: &self.name,
        })
    }
}

impl From<w::CreateCommon> for CreateCommon {
    fn from(c: w::CreateCommon) -> Self {
        Self {
            dir_fd: fd(c.dir_fd),
            uid: c.uid.0,
            gid: c.gid.0,
            mode: c.mode.into(),
        }
    }
}

impl CreateCommon {
    fn to_wire(&self) -> Result<w::CreateCommon> {
        Ok(w::CreateCommon {
            dir_fd: fd_of("dirFd", &self.dir_fd)?,
            uid: w::Uid(self.uid),
            gid: w::Gid(self.gid),
            mode: u16_of("mode", self.mode)?,
        })
    }
}

impl From<w::WalkStatus> for WalkStatus {
    fn from(s: w::WalkStatus) -> Self {
        match s {
            w::WalkStatus::Success => Self::Success,
            w::WalkStatus::ComponentDoesNotExist => Self::ComponentDoesNotExist,
            w::WalkStatus::ComponentSymlink => Self::ComponentSymlink,
        }
    }
}

impl From<WalkStatus> for w::WalkStatus {
    fn from(s: WalkStatus) -> Self {
        match s {
            WalkStatus::Success => Self::Success,
            WalkStatus::ComponentDoesNotExist => Self::ComponentDoesNotExist,
            WalkStatus::ComponentSymlink => Self::ComponentSymlink,
        }
    }
}

pub(crate) fn bufs<'a>(items: impl Iterator<Item = &'a [u8]>) -> Vec<Buffer> {
    items.map(buf).collect()
}

pub(crate) fn slices(items: &[Buffer]) -> Vec<&[u8]> {
    items.iter().map(|b| &b[..]).collect()
}

pub(crate) fn fds(items: &[BigInt]) -> Result<Vec<w::FdId>> {
    items.iter().map(|b| fd_of("fd", b)).collect()
}

fn mid_of(mid: u32) -> Result<w::Mid> {
    u16_of("mid", mid).map(w::Mid)
}

/// Any LISAFS request, discriminated by `type` (the protocol's message name).
#[napi(discriminant = "type")]
pub enum Request {
    Mount,
    Channel,
    FStat {
        fd: BigInt,
    },
    SetStat {
        fd: BigInt,
        mask: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        size: BigInt,
        atime: Timespec,
        mtime: Timespec,
    },
    Walk {
        dir_fd: BigInt,
        path: Vec<Buffer>,
    },
    WalkStat {
        dir_fd: BigInt,
        path: Vec<Buffer>,
    },
    OpenAt {
        fd: BigInt,
        flags: u32,
    },
    OpenCreateAt {
        common: CreateCommon,
        flags: u32,
        name: Buffer,
    },
    Close {
        fds: Vec<BigInt>,
    },
    FSync {
        fds: Vec<BigInt>,
    },
    PWrite {
        offset: BigInt,
        fd: BigInt,
        data: Buffer,
    },
    PRead {
        offset: BigInt,
        fd: BigInt,
        count: u32,
    },
    MkdirAt {
        common: CreateCommon,
        name: Buffer,
    },
    MknodAt {
        common: CreateCommon,
        minor: u32,
        major: u32,
        name: Buffer,
    },
    SymlinkAt {
        dir_fd: BigInt,
        uid: u32,
        gid: u32,
        name: Buffer,
        target: Buffer,
    },
    LinkAt {
        dir_fd: BigInt,
        target: BigInt,
        name: Buffer,
    },
    FStatFS {
        fd: BigInt,
    },
    FAllocate {
        fd: BigInt,
        mode: BigInt,
        offset: BigInt,
        length: BigInt,
    },
    ReadLinkAt {
        fd: BigInt,
    },
    Flush {
        fd: BigInt,
    },
    Connect {
        fd: BigInt,
        sock_type: u32,
    },
    UnlinkAt {
        dir_fd: BigInt,
        flags: u32,
        name: Buffer,
    },
    RenameAt {
        old_dir: BigInt,
        new_dir: BigInt,
        old_name: Buffer,
        new_name: Buffer,
    },
    Getdents64 {
        dir_fd: BigInt,
        count: i32,
    },
    FGetXattr {
        fd: BigInt,
        buf_size: u32,
        name: Buffer,
    },
    FSetXattr {
        fd: BigInt,
        flags: u32,
        name: Buffer,
        value: Buffer,
    },
    FListXattr {
        fd: BigInt,
        size: BigInt,
    },
    FRemoveXattr {
        fd: BigInt,
        name: Buffer,
    },
    BindAt {
        common: CreateCommon,
        sock_type: u32,
        name: Buffer,
    },
    Listen {
        fd: BigInt,
        backlog: i32,
    },
    Accept {
        fd: BigInt,
    },
    ConnectWithCreds {
        fd: BigInt,
        sock_type: u32,
        uid: u32,
        gid: u32,
    },
    RenameAt2 {
        old_dir: BigInt,
        new_dir: BigInt,
        old_name: Buffer,
        new_name: Buffer,
        flags: u32,
    },
}

/// Any LISAFS response, discriminated by `type`; `Error` carries an errno.
#[napi(discriminant = "type")]
pub enum Response {
    Error {
        errno: u32,
    },
    Mount {
        root: Inode,
        max_message_size: u32,
        supported_mids: Vec<u32>,
    },
    Channel {
        data_offset: BigInt,
        data_length: BigInt,
    },
    FStat {
        stat: Statx,
    },
    SetStat {
        failure_mask: u32,
        failure_errno: u32,
    },
    Walk {
        status: WalkStatus,
        inodes: Vec<Inode>,
    },
    WalkStat {
        stats: Vec<Statx>,
    },
    OpenAt {
        open_fd: BigInt,
    },
    OpenCreateAt {
        child: Inode,
        new_fd: BigInt,
    },
    Close,
    FSync,
    PWrite {
        count: BigInt,
    },
    PRead {
        data: Buffer,
    },
    MkdirAt {
        child_dir: Inode,
    },
    MknodAt {
        child: Inode,
    },
    SymlinkAt {
        symlink: Inode,
    },
    LinkAt {
        link: Inode,
    },
    FStatFS {
        stat_fs: StatFs,
    },
    FAllocate,
    ReadLinkAt {
        target: Buffer,
    },
    Flush,
    Connect,
    UnlinkAt,
    RenameAt,
    Getdents64 {
        dirents: Vec<Dirent64>,
    },
    FGetXattr {
        value: Buffer,
    },
    FSetXattr,
    FListXattr {
        xattrs: Vec<Buffer>,
    },
    FRemoveXattr,
    BindAt {
        child: Inode,
        bound_socket_fd: BigInt,
    },
    Listen,
    Accept {
        peer_addr: Buffer,
    },
    ConnectWithCreds,
    RenameAt2,
}

impl From<w::Request<'_>> for Request {
    fn from(r: w::Request<'_>) -> Self {
        use w::Request as R;
        match r {
            R::Mount(_) => Self::Mount,
            R::Channel(_) => Self::Channel,
            R::FStat(m) => Self::FStat { fd: fd(m.fd) },
            R::SetStat(m) => Self::SetStat {
                fd: fd(m.fd),
                mask: m.mask,
                mode: m.mode,
                uid: m.uid.0,
                gid: m.gid.0,
                size: m.size.into(),
                atime: m.atime.into(),
                mtime: m.mtime.into(),
            },
            R::Walk(m) => Self::Walk {
                dir_fd: fd(m.dir_fd),
                path: bufs(m.path.iter()),
            },
            R::WalkStat(m) => Self::WalkStat {
                dir_fd: fd(m.dir_fd),
                path: bufs(m.path.iter()),
            },
            R::OpenAt(m) => Self::OpenAt {
                fd: fd(m.fd),
                flags: m.flags,
            },
            R::OpenCreateAt(m) => Self::OpenCreateAt {
                common: m.common.into(),
                flags: m.flags,
                name: buf(m.name),
            },
            R::Close(m) => Self::Close {
                fds: m.fds.iter().map(fd).collect(),
            },
            R::FSync(m) => Self::FSync {
                fds: m.fds.iter().map(fd).collect(),
            },
            R::PWrite(m) => Self::PWrite {
                offset: m.offset.into(),
                fd: fd(m.fd),
                data: buf(m.data),
            },
            R::PRead(m) => Self::PRead {
                offset: m.offset.into(),
                fd: fd(m.fd),
                count: m.count,
            },
            R::MkdirAt(m) => Self::MkdirAt {
                common: m.common.into(),
                name: buf(m.name),
            },
            R::MknodAt(m) => Self::MknodAt {
                common: m.common.into(),
                minor: m.minor,
                major: m.major,
                name: buf(m.name),
            },
            R::SymlinkAt(m) => Self::SymlinkAt {
                dir_fd: fd(m.dir_fd),
                uid: m.uid.0,
                gid: m.gid.0,
                name: buf(m.name),
                target: buf(m.target),
            },
            R::LinkAt(m) => Self::LinkAt {
                dir_fd: fd(m.dir_fd),
                target: fd(m.target),
                name: buf(m.name),
            },
            R::FStatFs(m) => Self::FStatFS { fd: fd(m.fd) },
            R::FAllocate(m) => Self::FAllocate {
                fd: fd(m.fd),
                mode: m.mode.into(),
                offset: m.offset.into(),
                length: m.length.into(),
            },
            R::ReadLinkAt(m) => Self::ReadLinkAt { fd: fd(m.fd) },
            R::Flush(m) => Self::Flush { fd: fd(m.fd) },
            R::Connect(m) => Self::Connect {
                fd: fd(m.fd),
                sock_type: m.sock_type,
            },
            R::UnlinkAt(m) => Self::UnlinkAt {
                dir_fd: fd(m.dir_fd),
                flags: m.flags,
                name: buf(m.name),
            },
            R::RenameAt(m) => Self::RenameAt {
                old_dir: fd(m.old_dir),
                new_dir: fd(m.new_dir),
                old_name: buf(m.old_name),
                new_name: buf(m.new_name),
            },
            R::Getdents64(m) => Self::Getdents64 {
                dir_fd: fd(m.dir_fd),
                count: m.count,
            },
            R::FGetXattr(m) => Self::FGetXattr {
                fd: fd(m.fd),
                buf_size: m.buf_size,
                name: buf(m.name),
            },
            R::FSetXattr(m) => Self::FSetXattr {
                fd: fd(m.fd),
                flags: m.flags,
                name: buf(m.name),
                value: buf(m.value),
            },
            R::FListXattr(m) => Self::FListXattr {
                fd: fd(m.fd),
                size: m.size.into(),
            },
            R::FRemoveXattr(m) => Self::FRemoveXattr {
                fd: fd(m.fd),
                name: buf(m.name),
            },
            R::BindAt(m) => Self::BindAt {
                common: m.common.into(),
                sock_type: m.sock_type,
                name: buf(m.name),
            },
            R::Listen(m) => Self::Listen {
                fd: fd(m.fd),
                backlog: m.backlog,
            },
            R::Accept(m) => Self::Accept { fd: fd(m.fd) },
            R::ConnectWithCreds(m) => Self::ConnectWithCreds {
                fd: fd(m.connect.fd),
                sock_type: m.connect.sock_type,
                uid: m.uid.0,
                gid: m.gid.0,
            },
            R::RenameAt2(m) => Self::RenameAt2 {
                old_dir: fd(m.rename.old_dir),
                new_dir: fd(m.rename.new_dir),
                old_name: buf(m.rename.old_name),
                new_name: buf(m.rename.new_name),
                flags: m.flags,
            },
        }
    }
}

impl From<w::Response<'_>> for Response {
    fn from(r: w::Response<'_>) -> Self {
        use w::Response as R;
        match r {
            R::Error(m) => Self::Error { errno: m.errno },
            R::Mount(m) => Self::Mount {
                root: m.root.into(),
                max_message_size: m.max_message_size,
                supported_mids: m.supported_mids.iter().map(|m| u32::from(m.0)).collect(),
            },
            R::Channel(m) => Self::Channel {
                data_offset: m.data_offset.into(),
                data_length: m.data_length.into(),
            },
            R::FStat(m) => Self::FStat { stat: m.into() },
            R::SetStat(m) => Self::SetStat {
                failure_mask: m.failure_mask,
                failure_errno: m.failure_errno,
            },
            R::Walk(m) => Self::Walk {
                status: m.status.into(),
                inodes: m.inodes.iter().map(Into::into).collect(),
            },
            R::WalkStat(m) => Self::WalkStat {
                stats: m.stats.iter().map(Into::into).collect(),
            },
            R::OpenAt(m) => Self::OpenAt {
                open_fd: fd(m.open_fd),
            },
            R::OpenCreateAt(m) => Self::OpenCreateAt {
                child: m.child.into(),
                new_fd: fd(m.new_fd),
            },
            R::Close(_) => Self::Close,
            R::FSync(_) => Self::FSync,
            R::PWrite(m) => Self::PWrite {
                count: m.count.into(),
            },
            R::PRead(m) => Self::PRead { data: buf(m.data) },
            R::MkdirAt(m) => Self::MkdirAt {
                child_dir: m.child_dir.into(),
            },
            R::MknodAt(m) => Self::MknodAt {
                child: m.child.into(),
            },
            R::SymlinkAt(m) => Self::SymlinkAt {
                symlink: m.symlink.into(),
            },
            R::LinkAt(m) => Self::LinkAt {
                link: m.link.into(),
            },
            R::FStatFs(m) => Self::FStatFS { stat_fs: m.into() },
            R::FAllocate(_) => Self::FAllocate,
            R::ReadLinkAt(m) => Self::ReadLinkAt {
                target: buf(m.target),
            },
            R::Flush(_) => Self::Flush,
            R::Connect(_) => Self::Connect,
            R::UnlinkAt(_) => Self::UnlinkAt,
            R::RenameAt(_) => Self::RenameAt,
            R::Getdents64(m) => Self::Getdents64 {
                dirents: m.dirents.iter().map(Into::into).collect(),
            },
            R::FGetXattr(m) => Self::FGetXattr {
                value: buf(m.value),
            },
            R::FSetXattr(_) => Self::FSetXattr,
            R::FListXattr(m) => Self::FListXattr {
                xattrs: bufs(m.xattrs.iter()),
            },
            R::FRemoveXattr(_) => Self::FRemoveXattr,
            R::BindAt(m) => Self::BindAt {
                child: m.child.into(),
                bound_socket_fd: fd(m.bound_socket_fd),
            },
            R::Listen(_) => Self::Listen,
            R::Accept(m) => Self::Accept {
                peer_addr: buf(m.peer_addr),
            },
            R::ConnectWithCreds(_) => Self::ConnectWithCreds,
            R::RenameAt2(_) => Self::RenameAt2,
        }
    }
}

fn encode_request_inner(r: &Request) -> Result<Buffer> {
    use Request as R;
    match r {
        R::Mount => encode(&w::MountReq),
        R::Channel => encode(&w::ChannelReq),
        R::FStat { fd } => encode(&w::StatReq {
            fd: fd_of("fd", fd)?,
        }),
        R::SetStat {
            fd,
            mask,
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        } => encode(&w::SetStatReq {
            fd: fd_of("fd", fd)?,
            mask: *mask,
            mode: *mode,
            uid: w::Uid(*uid),
            gid: w::Gid(*gid),
            size: u64_of("size", size)?,
            atime: atime.to_wire()?,
            mtime: mtime.to_wire()?,
        }),
        R::Walk { dir_fd, path } => {
            let names = slices(path);
            encode(&w::WalkReq {
                dir_fd: fd_of("dirFd", dir_fd)?,
                path: Seq::from_items(&names),
            })
        }
        R::WalkStat { dir_fd, path } => {
            let names = slices(path);
            encode(&w::WalkStatReq {
                dir_fd: fd_of("dirFd", dir_fd)?,
                path: Seq::from_items(&names),
            })
        }
        R::OpenAt { fd, flags } => encode(&w::OpenAtReq {
            fd: fd_of("fd", fd)?,
            flags: *flags,
        }),
        R::OpenCreateAt {
            common,
            flags,
            name,
        } => encode(&w::OpenCreateAtReq {
            common: common.to_wire()?,
            flags: *flags,
            name,
        }),
        R::Close { fds: list } => {
            let ids = fds(list)?;
            encode(&w::CloseReq {
                fds: Seq::from_items(&ids),
            })
        }
        R::FSync { fds: list } => {
            let ids = fds(list)?;
            encode(&w::FsyncReq {
                fds: Seq::from_items(&ids),
            })
        }
        R::PWrite { offset, fd, data } => encode(&w::PWriteReq {
            offset: u64_of("offset", offset)?,
            fd: fd_of("fd", fd)?,
            data,
        }),
        R::PRead { offset, fd, count } => encode(&w::PReadReq {
            offset: u64_of("offset", offset)?,
            fd: fd_of("fd", fd)?,
            count: *count,
        }),
        R::MkdirAt { common, name } => encode(&w::MkdirAtReq {
            common: common.to_wire()?,
            name,
        }),
        R::MknodAt {
            common,
            minor,
            major,
            name,
        } => encode(&w::MknodAtReq {
            common: common.to_wire()?,
            minor: *minor,
            major: *major,
            name,
        }),
        R::SymlinkAt {
            dir_fd,
            uid,
            gid,
            name,
            target,
        } => encode(&w::SymlinkAtReq {
            dir_fd: fd_of("dirFd", dir_fd)?,
            uid: w::Uid(*uid),
            gid: w::Gid(*gid),
            name,
            target,
        }),
        R::LinkAt {
            dir_fd,
            target,
            name,
        } => encode(&w::LinkAtReq {
            dir_fd: fd_of("dirFd", dir_fd)?,
            target: fd_of("target", target)?,
            name,
        }),
        R::FStatFS { fd } => encode(&w::FStatFsReq {
            fd: fd_of("fd", fd)?,
        }),
        R::FAllocate {
            fd,
            mode,
            offset,
            length,
        } => encode(&w::FAllocateReq {
            fd: fd_of("fd", fd)?,
            mode: u64_of("mode", mode)?,
            offset: u64_of("offset", offset)?,
            length: u64_of("length", length)?,
        }),
        R::ReadLinkAt { fd } => encode(&w::ReadLinkAtReq {
            fd: fd_of("fd", fd)?,
        }),
        R::Flush { fd } => encode(&w::FlushReq {
            fd: fd_of("fd", fd)?,
        }),
        R::Connect { fd, sock_type } => encode(&w::ConnectReq {
            fd: fd_of("fd", fd)?,
            sock_type: *sock_type,
        }),
        R::UnlinkAt {
            dir_fd,
            flags,
            name,
        } => encode(&w::UnlinkAtReq {
            dir_fd: fd_of("dirFd", dir_fd)?,
            flags: *flags,
            name,
        }),
        R::RenameAt {
            old_dir,
            new_dir,
            old_name,
            new_name,
        } => encode(&w::RenameAtReq {
            old_dir: fd_of("oldDir", old_dir)?,
            new_dir: fd_of("newDir", new_dir)?,
            old_name,
            new_name,
        }),
        R::Getdents64 { dir_fd, count } => encode(&w::Getdents64Req {
            dir_fd: fd_of("dirFd", dir_fd)?,
            count: *count,
        }),
        R::FGetXattr { fd, buf_size, name } => encode(&w::FGetXattrReq {
            fd: fd_of("fd", fd)?,
            buf_size: *buf_size,
            name,
        }),
        R::FSetXattr {
            fd,
            flags,
            name,
            value,
        } => encode(&w::FSetXattrReq {
            fd: fd_of("fd", fd)?,
            flags: *flags,
            name,
            value,
        }),
        R::FListXattr { fd, size } => encode(&w::FListXattrReq {
            fd: fd_of("fd", fd)?,
            size: u64_of("size", size)?,
        }),
        R::FRemoveXattr { fd, name } => encode(&w::FRemoveXattrReq {
            fd: fd_of("fd", fd)?,
            name,
        }),
        R::BindAt {
            common,
            sock_type,
            name,
        } => encode(&w::BindAtReq {
            common: common.to_wire()?,
            sock_type: *sock_type,
            name,
        }),
        R::Listen { fd, backlog } => encode(&w::ListenReq {
            fd: fd_of("fd", fd)?,
            backlog: *backlog,
        }),
        R::Accept { fd } => encode(&w::AcceptReq {
            fd: fd_of("fd", fd)?,
        }),
        R::ConnectWithCreds {
            fd,
            sock_type,
            uid,
            gid,
        } => encode(&w::ConnectWithCredsReq {
            connect: w::ConnectReq {
                fd: fd_of("fd", fd)?,
                sock_type: *sock_type,
            },
            uid: w::Uid(*uid),
            gid: w::Gid(*gid),
        }),
        R::RenameAt2 {
            old_dir,
            new_dir,
            old_name,
            new_name,
            flags,
        } => encode(&w::RenameAt2Req {
            rename: w::RenameAtReq {
                old_dir: fd_of("oldDir", old_dir)?,
                new_dir: fd_of("newDir", new_dir)?,
                old_name,
                new_name,
            },
            flags: *flags,
        }),
    }
}

fn encode_response_inner(r: &Response) -> Result<Buffer> {
    use Response as R;
    match r {
        R::Error { errno } => encode(&w::ErrorResp { errno: *errno }),
        R::Mount {
            root,
            max_message_size,
            supported_mids,
        } => {
            let mids = supported_mids
                .iter()
                .map(|&m| mid_of(m))
                .collect::<Result<Vec<_>>>()?;
            encode(&w::MountResp {
                root: root.to_wire()?,
                max_message_size: *max_message_size,
                supported_mids: Seq::from_items(&mids),
            })
        }
        R::Channel {
            data_offset,
            data_length,
        } => encode(&w::ChannelResp {
            data_offset: i64_of("dataOffset", data_offset)?,
            data_length: u64_of("dataLength", data_length)?,
        }),
        R::FStat { stat } => encode(&stat.to_wire()?),
        R::SetStat {
            failure_mask,
            failure_errno,
        } => encode(&w::SetStatResp {
            failure_mask: *failure_mask,
            failure_errno: *failure_errno,
        }),
        R::Walk { status, inodes } => {
            let list = inodes
                .iter()
                .map(Inode::to_wire)
                .collect::<Result<Vec<_>>>()?;
            encode(&w::WalkResp {
                status: (*status).into(),
                inodes: Seq::from_items(&list),
            })
        }
        R::WalkStat { stats } => {
            let list = stats
                .iter()
                .map(Statx::to_wire)
                .collect::<Result<Vec<_>>>()?;
            encode(&w::WalkStatResp {
                stats: Seq::from_items(&list),
            })
        }
        R::OpenAt { open_fd } => encode(&w::OpenAtResp {
            open_fd: fd_of("openFd", open_fd)?,
        }),
        R::OpenCreateAt { child, new_fd } => encode(&w::OpenCreateAtResp {
            child: child.to_wire()?,
            new_fd: fd_of("newFd", new_fd)?,
        }),
        R::Close => encode(&w::CloseResp),
        R::FSync => encode(&w::FsyncResp),
        R::PWrite { count } => encode(&w::PWriteResp {
            count: u64_of("count", count)?,
        }),
        R::PRead { data } => encode(&w::PReadResp { data }),
        R::MkdirAt { child_dir } => encode(&w::MkdirAtResp {
            child_dir: child_dir.to_wire()?,
        }),
        R::MknodAt { child } => encode(&w::MknodAtResp {
            child: child.to_wire()?,
        }),
        R::SymlinkAt { symlink } => encode(&w::SymlinkAtResp {
            symlink: symlink.to_wire()?,
        }),
        R::LinkAt { link } => encode(&w::LinkAtResp {
            link: link.to_wire()?,
        }),
        R::FStatFS { stat_fs } => encode(&stat_fs.to_wire()?),
        R::FAllocate => encode(&w::FAllocateResp),
        R::ReadLinkAt { target } => encode(&w::ReadLinkAtResp { target }),
        R::Flush => encode(&w::FlushResp),
        R::Connect => encode(&w::ConnectResp),
        R::UnlinkAt => encode(&w::UnlinkAtResp),
        R::RenameAt => encode(&w::RenameAtResp),
        R::Getdents64 { dirents } => {
            let list = dirents
                .iter()
                .map(Dirent64::to_wire)
                .collect::<Result<Vec<_>>>()?;
            encode(&w::Getdents64Resp {
                dirents: Seq::from_items(&list),
            })
        }
        R::FGetXattr { value } => encode(&w::FGetXattrResp { value }),
        R::FSetXattr => encode(&w::FSetXattrResp),
        R::FListXattr { xattrs } => {
            let names = slices(xattrs);
            encode(&w::FListXattrResp {
                xattrs: Seq::from_items(&names),
            })
        }
        R::FRemoveXattr => encode(&w::FRemoveXattrResp),
        R::BindAt {
            child,
            bound_socket_fd,
        } => encode(&w::BindAtResp {
            child: child.to_wire()?,
            bound_socket_fd: fd_of("boundSocketFd", bound_socket_fd)?,
        }),
        R::Listen => encode(&w::ListenResp),
        R::Accept { peer_addr } => encode(&w::AcceptResp { peer_addr }),
        R::ConnectWithCreds => encode(&w::ConnectWithCredsResp),
        R::RenameAt2 => encode(&w::RenameAt2Resp),
    }
}

/// Decodes a request payload (the bytes after the transport header) sent
/// under `mid`. Trailing bytes are ignored, as gVisor's server does, unless
/// `exact` is true. Throws `ERR_LISAFS_DECODE` on a malformed payload or an
/// unknown MID.
#[napi]
pub fn decode_request(
    env: Env,
    mid: u32,
    payload: Uint8Array,
    exact: Option<bool>,
) -> napi::Result<Request> {
    let run = || -> Result<Request> {
        let mid = mid_of(mid)?;
        let decoded = if exact.unwrap_or(false) {
            w::Request::decode_exact(mid, &payload)
        } else {
            w::Request::decode(mid, &payload)
        };
        decoded.map(Into::into).map_err(decode_error)
    };
    run().map_err(|f| f.throw(&env))
}

/// Decodes a response payload received for a request with MID `mid` (pass
/// 0 for an Error payload). Trailing bytes are ignored unless `exact`.
/// Throws `ERR_LISAFS_DECODE` on a malformed payload or an unknown MID.
#[napi]
pub fn decode_response(
    env: Env,
    mid: u32,
    payload: Uint8Array,
    exact: Option<bool>,
) -> napi::Result<Response> {
    let run = || -> Result<Response> {
        let mid = mid_of(mid)?;
        let decoded = if exact.unwrap_or(false) {
            w::Response::decode_exact(mid, &payload)
        } else {
            w::Response::decode(mid, &payload)
        };
        decoded.map(Into::into).map_err(decode_error)
    };
    run().map_err(|f| f.throw(&env))
}

/// Encodes a request payload. Throws `ERR_LISAFS_ENCODE` if a value does
/// not fit the wire (a name over 65,535 bytes) and `ERR_OUT_OF_RANGE` for a
/// number or bigint outside its field.
#[napi]
pub fn encode_request(env: Env, request: Request) -> napi::Result<Buffer> {
    encode_request_inner(&request).map_err(|f| f.throw(&env))
}

/// Encodes a response payload. Errors as for [`encode_request`].
#[napi]
pub fn encode_response(env: Env, response: Response) -> napi::Result<Buffer> {
    encode_response_inner(&response).map_err(|f| f.throw(&env))
}

/// The protocol name of a standard MID (`"Walk"` for 5), or `null`.
#[napi]
pub fn message_name(mid: u32) -> Option<String> {
    u16::try_from(mid)
        .ok()
        .and_then(|m| w::Mid(m).name())
        .map(str::to_owned)
}

/// Message IDs of upstream LISAFS. Each name is also the `type` of the
/// matching [`Request`] and [`Response`] variant.
#[napi]
pub enum Mid {
    Error = 0,
    Mount = 1,
    Channel = 2,
    FStat = 3,
    SetStat = 4,
    Walk = 5,
    WalkStat = 6,
    OpenAt = 7,
    OpenCreateAt = 8,
    Close = 9,
    FSync = 10,
    PWrite = 11,
    PRead = 12,
    MkdirAt = 13,
    MknodAt = 14,
    SymlinkAt = 15,
    LinkAt = 16,
    FStatFS = 17,
    FAllocate = 18,
    ReadLinkAt = 19,
    Flush = 20,
    Connect = 21,
    UnlinkAt = 22,
    RenameAt = 23,
    Getdents64 = 24,
    FGetXattr = 25,
    FSetXattr = 26,
    FListXattr = 27,
    FRemoveXattr = 28,
    BindAt = 29,
    Listen = 30,
    Accept = 31,
    ConnectWithCreds = 32,
    RenameAt2 = 33,
}
