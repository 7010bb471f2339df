//! Every LISAFS request and response payload (upstream MIDs 0–33).
//!
//! Field order and sizes follow gVisor's `pkg/lisafs/message.go` and its
//! generated marshalling code; `interop/vectors/messages.json` holds bytes
//! produced by that Go code, and the tests decode and re-encode every one.

use crate::buf::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::seq::{Dirents, FdArray, Inodes, MidList, Statxs, StringArray};
use crate::types::{FdId, Gid, Inode, Mid, StatFs, Statx, Timespec, Uid, WalkStatus};
use crate::wire::{wire_struct, Wire};

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}

/// A complete message payload (the bytes after the transport header).
pub trait Message<'a>: Wire<'a> {
    /// The MID this payload travels under.
    const MID: Mid;
    /// Request or response.
    const DIRECTION: Direction;

    /// Decodes a payload the way gVisor's Go decoders do: bytes after a
    /// complete message are ignored.
    fn decode_payload(payload: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(payload))
    }

    /// Decodes a payload and rejects trailing bytes.
    fn decode_payload_exact(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let msg = Self::decode(&mut r)?;
        match r.remaining() {
            0 => Ok(msg),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }

    /// Encodes into the start of `dst`; returns the number of bytes written.
    fn encode_to_slice(&self, dst: &mut [u8]) -> Result<usize, EncodeError> {
        let needed = self.encoded_len();
        if needed > dst.len() {
            return Err(EncodeError::BufferTooSmall {
                needed,
                available: dst.len(),
            });
        }
        let mut w = Writer::new(dst);
        self.encode(&mut w)?;
        Ok(w.written())
    }

    /// Appends the encoding to `out` (allocates only to grow `out`); on
    /// failure `out` is left as it was.
    fn encode_to_vec(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.append_to(out)
    }
}

macro_rules! message {
    ($($ty:ident $(<$lt:lifetime>)? => $mid:ident, $dir:ident;)*) => {$(
        impl<'a> Message<'a> for $ty $(<$lt>)? {
            const MID: Mid = Mid::$mid;
            const DIRECTION: Direction = Direction::$dir;
        }
    )*};
}

macro_rules! empty_messages {
    ($($(#[$meta:meta])* $ty:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $ty;

        impl<'a> Wire<'a> for $ty {
            const MIN_LEN: usize = 0;
            const FIXED_LEN: Option<usize> = Some(0);
            fn encoded_len(&self) -> usize {
                0
            }
            fn encode(&self, _: &mut Writer<'_>) -> Result<(), EncodeError> {
                Ok(())
            }
            /// Any payload is accepted and ignored, as gVisor does.
            fn decode(_: &mut Reader<'a>) -> Result<Self, DecodeError> {
                Ok($ty)
            }
        }
    )*};
}

empty_messages! {
    /// Mount request: empty.
    MountReq;
    /// Channel request: empty.
    ChannelReq;
    /// Close response: empty.
    CloseResp;
    /// FSync response: empty.
    FsyncResp;
    /// FAllocate response: empty.
    FAllocateResp;
    /// Flush response: empty.
    FlushResp;
    /// Connect response: empty (the socket travels as a donated FD).
    ConnectResp;
    /// UnlinkAt response: empty.
    UnlinkAtResp;
    /// RenameAt response: empty.
    RenameAtResp;
    /// FSetXattr response: empty.
    FSetXattrResp;
    /// FRemoveXattr response: empty.
    FRemoveXattrResp;
    /// Listen response: empty.
    ListenResp;
    /// ConnectWithCreds response: empty (the socket travels as a donated FD).
    ConnectWithCredsResp;
    /// RenameAt2 response: empty.
    RenameAt2Resp;
}

wire_struct! {
    /// Mount response: the root control FD, the negotiated maximum payload
    /// size and the MIDs this connection serves.
    pub struct MountResp<'a> {
        pub root: Inode,
        /// Largest payload (header excluded) either side may send.
        pub max_message_size: u32,
        pub supported_mids: MidList<'a>,
    }
}

wire_struct! {
    /// Channel response: the packet window inside the donated memfd.
    pub struct ChannelResp {
        /// Page-aligned window start in the shared-memory file.
        pub data_offset: i64,
        /// Window length (a page multiple).
        pub data_length: u64,
    }
}

wire_struct! {
    /// The Error response (MID 0): always exactly 4 bytes.
    pub struct ErrorResp {
        /// A Linux errno.
        pub errno: u32,
    }
}

wire_struct! {
    /// FStat request: any FD kind except a bound socket.
    pub struct StatReq {
        pub fd: FdId,
    }
}

wire_struct! {
    /// SetStat request on a control FD. Only the bits of
    /// [`crate::statx_mask::SETTABLE`] may be set.
    pub struct SetStatReq {
        pub fd: FdId,
        pub mask: u32,
        /// Only permission (and set-id, sticky) bits are applied.
        pub mode: u32,
        pub uid: Uid,
        pub gid: Gid,
        pub size: u64,
        pub atime: Timespec,
        pub mtime: Timespec,
    }
}

wire_struct! {
    /// SetStat response: which requested changes failed (a partial failure
    /// is still a successful RPC).
    pub struct SetStatResp {
        pub failure_mask: u32,
        pub failure_errno: u32,
    }
}

wire_struct! {
    /// Walk request: walk `path` one component at a time from `dir_fd`.
    pub struct WalkReq<'a> {
        pub dir_fd: FdId,
        pub path: StringArray<'a>,
    }
}

wire_struct! {
    /// Walk response: one Inode per walked component.
    pub struct WalkResp<'a> {
        pub status: WalkStatus,
        pub inodes: Inodes<'a>,
    }
}

wire_struct! {
    /// WalkStat request (same layout as Walk). A first component of `""`
    /// asks for the start directory's own stat.
    pub struct WalkStatReq<'a> {
        pub dir_fd: FdId,
        pub path: StringArray<'a>,
    }
}

wire_struct! {
    /// WalkStat response: one Statx per component walked.
    pub struct WalkStatResp<'a> {
        pub stats: Statxs<'a>,
    }
}

wire_struct! {
    /// OpenAt request. The server keeps only `O_ACCMODE | O_TRUNC` of `flags`.
    pub struct OpenAtReq {
        pub fd: FdId,
        pub flags: u32,
    }
    pad = 4;
}

wire_struct! {
    /// OpenAt response: the new open FD (a host FD may be donated with it).
    pub struct OpenAtResp {
        pub open_fd: FdId,
    }
}

wire_struct! {
    /// The 24-byte prefix shared by OpenCreateAt, MkdirAt, MknodAt, BindAt.
    pub struct CreateCommon {
        /// Control FD of the parent directory.
        pub dir_fd: FdId,
        pub uid: Uid,
        pub gid: Gid,
        pub mode: u16,
    }
    pad = 6;
}

wire_struct! {
    /// OpenCreateAt request: create a regular file exclusively and open it.
    pub struct OpenCreateAtReq<'a> {
        pub common: CreateCommon,
        pub flags: u32,
        pub name: &'a [u8],
    }
}

wire_struct! {
    /// OpenCreateAt response: the new file's control FD and the open FD.
    pub struct OpenCreateAtResp {
        pub child: Inode,
        pub new_fd: FdId,
    }
}

wire_struct! {
    /// Close request: drop the client's reference on each FDID.
    pub struct CloseReq<'a> {
        pub fds: FdArray<'a>,
    }
}

wire_struct! {
    /// FSync request: sync each open FD.
    pub struct FsyncReq<'a> {
        pub fds: FdArray<'a>,
    }
}

/// PWrite request: `offset` u64, `fd` u64, `num_bytes` u32, then the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct PWriteReq<'a> {
    pub offset: u64,
    pub fd: FdId,
    pub data: &'a [u8],
}

impl PWriteReq<'_> {
    /// Bytes before the data.
    pub const HEADER_LEN: usize = 20;
}

impl<'a> Wire<'a> for PWriteReq<'a> {
    const MIN_LEN: usize = Self::HEADER_LEN;
    const FIXED_LEN: Option<usize> = None;
    fn encoded_len(&self) -> usize {
        Self::HEADER_LEN + self.data.len()
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let len = u32::try_from(self.data.len()).map_err(|_| EncodeError::LengthOverflow {
            what: "PWrite data",
            len: self.data.len(),
        })?;
        w.u64(self.offset)?;
        self.fd.encode(w)?;
        w.u32(len)?;
        w.put(self.data)
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        r.need("PWriteReq", Self::HEADER_LEN)?;
        let offset = r.u64("offset")?;
        let fd = FdId::decode(r)?;
        let len = r.u32("num_bytes")?;
        let data = r.take("PWrite data", len as usize)?;
        Ok(Self { offset, fd, data })
    }
}

wire_struct! {
    /// PWrite response: bytes written.
    pub struct PWriteResp {
        pub count: u64,
    }
}

wire_struct! {
    /// PRead request.
    pub struct PReadReq {
        pub offset: u64,
        pub fd: FdId,
        pub count: u32,
    }
    pad = 4;
}

/// PRead response: `num_bytes` u64 then the data. Empty data means EOF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PReadResp<'a> {
    /// The bytes read.
    pub data: &'a [u8],
}

impl PReadResp<'_> {
    /// Bytes before the data. A server can read from the host straight into
    /// its reply buffer at this offset.
    pub const HEADER_LEN: usize = 8;
}

impl<'a> Wire<'a> for PReadResp<'a> {
    const MIN_LEN: usize = Self::HEADER_LEN;
    const FIXED_LEN: Option<usize> = None;
    fn encoded_len(&self) -> usize {
        Self::HEADER_LEN + self.data.len()
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.data.len() as u64)?;
        w.put(self.data)
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let len = r.u64("num_bytes")?;
        // Compare in 64 bits: gVisor truncates to 32 here, we do not.
        if len > r.remaining() as u64 {
            return Err(DecodeError::Truncated {
                what: "PRead data",
                needed: usize::try_from(len).unwrap_or(usize::MAX),
                remaining: r.remaining(),
            });
        }
        let data = r.take("PRead data", len as usize)?;
        Ok(Self { data })
    }
}

wire_struct! {
    /// MkdirAt request.
    pub struct MkdirAtReq<'a> {
        pub common: CreateCommon,
        pub name: &'a [u8],
    }
}

wire_struct! {
    /// MkdirAt response: the new directory.
    pub struct MkdirAtResp {
        pub child_dir: Inode,
    }
}

wire_struct! {
    /// MknodAt request. `common.mode` carries the file type bits.
    pub struct MknodAtReq<'a> {
        pub common: CreateCommon,
        pub minor: u32,
        pub major: u32,
        pub name: &'a [u8],
    }
}

wire_struct! {
    /// MknodAt response: the new node.
    pub struct MknodAtResp {
        pub child: Inode,
    }
}

wire_struct! {
    /// SymlinkAt request. `target` is arbitrary bytes, never interpreted by
    /// the server.
    pub struct SymlinkAtReq<'a> {
        pub dir_fd: FdId,
        pub uid: Uid,
        pub gid: Gid,
        pub name: &'a [u8],
        pub target: &'a [u8],
    }
}

wire_struct! {
    /// SymlinkAt response: the new symlink.
    pub struct SymlinkAtResp {
        pub symlink: Inode,
    }
}

wire_struct! {
    /// LinkAt request: hard-link the non-directory `target` as `dir_fd/name`.
    pub struct LinkAtReq<'a> {
        pub dir_fd: FdId,
        pub target: FdId,
        pub name: &'a [u8],
    }
}

wire_struct! {
    /// LinkAt response: a control FD on the new link.
    pub struct LinkAtResp {
        pub link: Inode,
    }
}

wire_struct! {
    /// FStatFS request on a control FD.
    pub struct FStatFsReq {
        pub fd: FdId,
    }
}

wire_struct! {
    /// FAllocate request on a writable open FD.
    pub struct FAllocateReq {
        pub fd: FdId,
        pub mode: u64,
        pub offset: u64,
        pub length: u64,
    }
}

wire_struct! {
    /// ReadLinkAt request on a symlink's control FD.
    pub struct ReadLinkAtReq {
        pub fd: FdId,
    }
}

wire_struct! {
    /// ReadLinkAt response.
    pub struct ReadLinkAtResp<'a> {
        pub target: &'a [u8],
    }
}

wire_struct! {
    /// Flush request on an open FD.
    pub struct FlushReq {
        pub fd: FdId,
    }
}

wire_struct! {
    /// Connect request on a socket file's control FD. `sock_type` is
    /// `SOCK_STREAM` (1), `SOCK_DGRAM` (2) or `SOCK_SEQPACKET` (5).
    pub struct ConnectReq {
        pub fd: FdId,
        pub sock_type: u32,
    }
    pad = 4;
}

wire_struct! {
    /// ConnectWithCreds request: Connect performed as `uid`/`gid`.
    pub struct ConnectWithCredsReq {
        pub connect: ConnectReq,
        pub uid: Uid,
        pub gid: Gid,
    }
}

wire_struct! {
    /// UnlinkAt request. `flags` are `unlinkat(2)` flags (`AT_REMOVEDIR`).
    pub struct UnlinkAtReq<'a> {
        pub dir_fd: FdId,
        pub flags: u32,
        pub name: &'a [u8],
    }
}

wire_struct! {
    /// RenameAt request: `old_dir/old_name` → `new_dir/new_name`.
    pub struct RenameAtReq<'a> {
        pub old_dir: FdId,
        pub new_dir: FdId,
        pub old_name: &'a [u8],
        pub new_name: &'a [u8],
    }
}

wire_struct! {
    /// RenameAt2 request: RenameAt plus `renameat2(2)` flags
    /// (`RENAME_NOREPLACE` 1, `RENAME_EXCHANGE` 2, `RENAME_WHITEOUT` 4).
    pub struct RenameAt2Req<'a> {
        pub rename: RenameAtReq<'a>,
        pub flags: u32,
    }
}

wire_struct! {
    /// Getdents64 request. `|count|` is the byte budget of host records; a
    /// negative count asks to seek the directory to 0 first.
    pub struct Getdents64Req {
        pub dir_fd: FdId,
        pub count: i32,
    }
    pad = 4;
}

wire_struct! {
    /// Getdents64 response. No entries means end of directory.
    pub struct Getdents64Resp<'a> {
        pub dirents: Dirents<'a>,
    }
}

wire_struct! {
    /// FGetXattr request. `buf_size` 0 asks for the whole value.
    pub struct FGetXattrReq<'a> {
        pub fd: FdId,
        pub buf_size: u32,
        pub name: &'a [u8],
    }
}

wire_struct! {
    /// FGetXattr response.
    pub struct FGetXattrResp<'a> {
        pub value: &'a [u8],
    }
}

wire_struct! {
    /// FSetXattr request. `flags`: `XATTR_CREATE` 1, `XATTR_REPLACE` 2.
    pub struct FSetXattrReq<'a> {
        pub fd: FdId,
        pub flags: u32,
        pub name: &'a [u8],
        pub value: &'a [u8],
    }
}

wire_struct! {
    /// FListXattr request. `size` is the caller's buffer hint (0 = all).
    pub struct FListXattrReq {
        pub fd: FdId,
        pub size: u64,
    }
}

wire_struct! {
    /// FListXattr response: attribute names, without NUL terminators.
    pub struct FListXattrResp<'a> {
        pub xattrs: StringArray<'a>,
    }
}

wire_struct! {
    /// FRemoveXattr request.
    pub struct FRemoveXattrReq<'a> {
        pub fd: FdId,
        pub name: &'a [u8],
    }
}

wire_struct! {
    /// BindAt request: create and bind a host `AF_UNIX` socket at
    /// `common.dir_fd/name`.
    pub struct BindAtReq<'a> {
        pub common: CreateCommon,
        pub sock_type: u32,
        pub name: &'a [u8],
    }
}

wire_struct! {
    /// BindAt response: the socket file's control FD and the bound-socket FD.
    pub struct BindAtResp {
        pub child: Inode,
        pub bound_socket_fd: FdId,
    }
}

wire_struct! {
    /// Listen request on a bound-socket FD.
    pub struct ListenReq {
        pub fd: FdId,
        pub backlog: i32,
    }
    pad = 4;
}

wire_struct! {
    /// Accept request on a bound-socket FD.
    pub struct AcceptReq {
        pub fd: FdId,
    }
}

wire_struct! {
    /// Accept response: the peer address (servers usually send it empty).
    pub struct AcceptResp<'a> {
        pub peer_addr: &'a [u8],
    }
}

message! {
    ErrorResp => ERROR, Response;
    MountReq => MOUNT, Request;
    MountResp<'a> => MOUNT, Response;
    ChannelReq => CHANNEL, Request;
    ChannelResp => CHANNEL, Response;
    StatReq => FSTAT, Request;
    Statx => FSTAT, Response;
    SetStatReq => SET_STAT, Request;
    SetStatResp => SET_STAT, Response;
    WalkReq<'a> => WALK, Request;
    WalkResp<'a> => WALK, Response;
    WalkStatReq<'a> => WALK_STAT, Request;
    WalkStatResp<'a> => WALK_STAT, Response;
    OpenAtReq => OPEN_AT, Request;
    OpenAtResp => OPEN_AT, Response;
    OpenCreateAtReq<'a> => OPEN_CREATE_AT, Request;
    OpenCreateAtResp => OPEN_CREATE_AT, Response;
    CloseReq<'a> => CLOSE, Request;
    CloseResp => CLOSE, Response;
    FsyncReq<'a> => FSYNC, Request;
    FsyncResp => FSYNC, Response;
    PWriteReq<'a> => PWRITE, Request;
    PWriteResp => PWRITE, Response;
    PReadReq => PREAD, Request;
    PReadResp<'a> => PREAD, Response;
    MkdirAtReq<'a> => MKDIR_AT, Request;
    MkdirAtResp => MKDIR_AT, Response;
    MknodAtReq<'a> => MKNOD_AT, Request;
    MknodAtResp => MKNOD_AT, Response;
    SymlinkAtReq<'a> => SYMLINK_AT, Request;
    SymlinkAtResp => SYMLINK_AT, Response;
    LinkAtReq<'a> => LINK_AT, Request;
    LinkAtResp => LINK_AT, Response;
    FStatFsReq => FSTAT_FS, Request;
    StatFs => FSTAT_FS, Response;
    FAllocateReq => FALLOCATE, Request;
    FAllocateResp => FALLOCATE, Response;
    ReadLinkAtReq => READ_LINK_AT, Request;
    ReadLinkAtResp<'a> => READ_LINK_AT, Response;
    FlushReq => FLUSH, Request;
    FlushResp => FLUSH, Response;
    ConnectReq => CONNECT, Request;
    ConnectResp => CONNECT, Response;
    UnlinkAtReq<'a> => UNLINK_AT, Request;
    UnlinkAtResp => UNLINK_AT, Response;
    RenameAtReq<'a> => RENAME_AT, Request;
    RenameAtResp => RENAME_AT, Response;
    Getdents64Req => GETDENTS64, Request;
    Getdents64Resp<'a> => GETDENTS64, Response;
    FGetXattrReq<'a> => FGET_XATTR, Request;
    FGetXattrResp<'a> => FGET_XATTR, Response;
    FSetXattrReq<'a> => FSET_XATTR, Request;
    FSetXattrResp => FSET_XATTR, Response;
    FListXattrReq => FLIST_XATTR, Request;
    FListXattrResp<'a> => FLIST_XATTR, Response;
    FRemoveXattrReq<'a> => FREMOVE_XATTR, Request;
    FRemoveXattrResp => FREMOVE_XATTR, Response;
    BindAtReq<'a> => BIND_AT, Request;
    BindAtResp => BIND_AT, Response;
    ListenReq => LISTEN, Request;
    ListenResp => LISTEN, Response;
    AcceptReq => ACCEPT, Request;
    AcceptResp<'a> => ACCEPT, Response;
    ConnectWithCredsReq => CONNECT_WITH_CREDS, Request;
    ConnectWithCredsResp => CONNECT_WITH_CREDS, Response;
    RenameAt2Req<'a> => RENAME_AT2, Request;
    RenameAt2Resp => RENAME_AT2, Response;
}
