//! [`Request`] and [`Response`]: one variant per MID, for code that routes by
//! MID at run time (a server's dispatcher, a frame inspector, the JS API).

use crate::error::{DecodeError, EncodeError};
use crate::messages::*;
use crate::types::{Mid, StatFs, Statx};
use crate::wire::Wire;

macro_rules! message_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $variant:ident($ty:ty) = $mid:ident, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        #[allow(missing_docs)]
        pub enum $name<'a> {
            $( $variant($ty), )*
        }

        impl<'a> $name<'a> {
            /// Decodes the payload of a message with this MID, ignoring
            /// trailing bytes as gVisor does. An unknown MID is an error.
            pub fn decode(mid: Mid, payload: &'a [u8]) -> Result<Self, DecodeError> {
                match mid {
                    $( Mid::$mid => <$ty as Message>::decode_payload(payload).map(Self::$variant), )*
                    _ => Err(DecodeError::UnknownMid(mid.0)),
                }
            }

            /// Like [`Self::decode`], but trailing bytes are an error.
            pub fn decode_exact(mid: Mid, payload: &'a [u8]) -> Result<Self, DecodeError> {
                match mid {
                    $( Mid::$mid => <$ty as Message>::decode_payload_exact(payload).map(Self::$variant), )*
                    _ => Err(DecodeError::UnknownMid(mid.0)),
                }
            }

            /// The MID this message travels under.
            pub fn mid(&self) -> Mid {
                match self {
                    $( Self::$variant(_) => Mid::$mid, )*
                }
            }

            /// Exact payload size.
            pub fn encoded_len(&self) -> usize {
                match self {
                    $( Self::$variant(m) => m.encoded_len(), )*
                }
            }

            /// Encodes the payload into the start of `dst`.
            pub fn encode_to_slice(&self, dst: &mut [u8]) -> Result<usize, EncodeError> {
                match self {
                    $( Self::$variant(m) => m.encode_to_slice(dst), )*
                }
            }

            /// Appends the payload to `out`.
            pub fn encode_to_vec(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                match self {
                    $( Self::$variant(m) => m.encode_to_vec(out), )*
                }
            }
        }
    };
}

message_enum! {
    /// Any request payload.
    Request {
        Mount(MountReq) = MOUNT,
        Channel(ChannelReq) = CHANNEL,
        FStat(StatReq) = FSTAT,
        SetStat(SetStatReq) = SET_STAT,
        Walk(WalkReq<'a>) = WALK,
        WalkStat(WalkStatReq<'a>) = WALK_STAT,
        OpenAt(OpenAtReq) = OPEN_AT,
        OpenCreateAt(OpenCreateAtReq<'a>) = OPEN_CREATE_AT,
        Close(CloseReq<'a>) = CLOSE,
        FSync(FsyncReq<'a>) = FSYNC,
        PWrite(PWriteReq<'a>) = PWRITE,
        PRead(PReadReq) = PREAD,
        MkdirAt(MkdirAtReq<'a>) = MKDIR_AT,
        MknodAt(MknodAtReq<'a>) = MKNOD_AT,
        SymlinkAt(SymlinkAtReq<'a>) = SYMLINK_AT,
        LinkAt(LinkAtReq<'a>) = LINK_AT,
        FStatFs(FStatFsReq) = FSTAT_FS,
        FAllocate(FAllocateReq) = FALLOCATE,
        ReadLinkAt(ReadLinkAtReq) = READ_LINK_AT,
        Flush(FlushReq) = FLUSH,
        Connect(ConnectReq) = CONNECT,
        UnlinkAt(UnlinkAtReq<'a>) = UNLINK_AT,
        RenameAt(RenameAtReq<'a>) = RENAME_AT,
        Getdents64(Getdents64Req) = GETDENTS64,
        FGetXattr(FGetXattrReq<'a>) = FGET_XATTR,
        FSetXattr(FSetXattrReq<'a>) = FSET_XATTR,
        FListXattr(FListXattrReq) = FLIST_XATTR,
        FRemoveXattr(FRemoveXattrReq<'a>) = FREMOVE_XATTR,
        BindAt(BindAtReq<'a>) = BIND_AT,
        Listen(ListenReq) = LISTEN,
        Accept(AcceptReq) = ACCEPT,
        ConnectWithCreds(ConnectWithCredsReq) = CONNECT_WITH_CREDS,
        RenameAt2(RenameAt2Req<'a>) = RENAME_AT2,
    }
}

message_enum! {
    /// Any response payload, including Error (MID 0).
    Response {
        Error(ErrorResp) = ERROR,
        Mount(MountResp<'a>) = MOUNT,
        Channel(ChannelResp) = CHANNEL,
        FStat(Statx) = FSTAT,
        SetStat(SetStatResp) = SET_STAT,
        Walk(WalkResp<'a>) = WALK,
        WalkStat(WalkStatResp<'a>) = WALK_STAT,
        OpenAt(OpenAtResp) = OPEN_AT,
        OpenCreateAt(OpenCreateAtResp) = OPEN_CREATE_AT,
        Close(CloseResp) = CLOSE,
        FSync(FsyncResp) = FSYNC,
        PWrite(PWriteResp) = PWRITE,
        PRead(PReadResp<'a>) = PREAD,
        MkdirAt(MkdirAtResp) = MKDIR_AT,
        MknodAt(MknodAtResp) = MKNOD_AT,
        SymlinkAt(SymlinkAtResp) = SYMLINK_AT,
        LinkAt(LinkAtResp) = LINK_AT,
        FStatFs(StatFs) = FSTAT_FS,
        FAllocate(FAllocateResp) = FALLOCATE,
        ReadLinkAt(ReadLinkAtResp<'a>) = READ_LINK_AT,
        Flush(FlushResp) = FLUSH,
        Connect(ConnectResp) = CONNECT,
        UnlinkAt(UnlinkAtResp) = UNLINK_AT,
        RenameAt(RenameAtResp) = RENAME_AT,
        Getdents64(Getdents64Resp<'a>) = GETDENTS64,
        FGetXattr(FGetXattrResp<'a>) = FGET_XATTR,
        FSetXattr(FSetXattrResp) = FSET_XATTR,
        FListXattr(FListXattrResp<'a>) = FLIST_XATTR,
        FRemoveXattr(FRemoveXattrResp) = FREMOVE_XATTR,
        BindAt(BindAtResp) = BIND_AT,
        Listen(ListenResp) = LISTEN,
        Accept(AcceptResp<'a>) = ACCEPT,
        ConnectWithCreds(ConnectWithCredsResp) = CONNECT_WITH_CREDS,
        RenameAt2(RenameAt2Resp) = RENAME_AT2,
    }
}
