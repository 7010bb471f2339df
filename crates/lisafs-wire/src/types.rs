//! Scalars and fixed structures shared by many messages.

use crate::buf::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{wire_struct, Wire};

macro_rules! newtype_wire {
    ($name:ident($inner:ty)) => {
        impl<'a> Wire<'a> for $name {
            const MIN_LEN: usize = core::mem::size_of::<$inner>();
            const FIXED_LEN: Option<usize> = Some(core::mem::size_of::<$inner>());
            #[inline]
            fn encoded_len(&self) -> usize {
                core::mem::size_of::<$inner>()
            }
            #[inline]
            fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                self.0.encode(w)
            }
            #[inline]
            fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                <$inner>::decode(r).map($name)
            }
        }
    };
}

/// A message ID. Kept open (a newtype, not an enum) because unknown IDs must
/// be representable: a server answers them with EOPNOTSUPP, and 256 and up
/// are reserved for vendor extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mid(pub u16);
newtype_wire!(Mid(u16));

macro_rules! mids {
    ($($konst:ident = $v:literal => $name:literal,)*) => {
        impl Mid {
            $(
                #[doc = concat!("`", $name, "` (MID ", stringify!($v), ").")]
                pub const $konst: Mid = Mid($v);
            )*

            /// Every standard MID in ascending order, `ERROR` first.
            pub const STANDARD: &'static [Mid] = &[$(Mid($v)),*];

            /// The protocol name of a standard MID (as gVisor spells it).
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $v => Some($name), )*
                    _ => None,
                }
            }
        }
    };
}

mids! {
    ERROR = 0 => "Error",
    MOUNT = 1 => "Mount",
    CHANNEL = 2 => "Channel",
    FSTAT = 3 => "FStat",
    SET_STAT = 4 => "SetStat",
    WALK = 5 => "Walk",
    WALK_STAT = 6 => "WalkStat",
    OPEN_AT = 7 => "OpenAt",
    OPEN_CREATE_AT = 8 => "OpenCreateAt",
    CLOSE = 9 => "Close",
    FSYNC = 10 => "FSync",
    PWRITE = 11 => "PWrite",
    PREAD = 12 => "PRead",
    MKDIR_AT = 13 => "MkdirAt",
    MKNOD_AT = 14 => "MknodAt",
    SYMLINK_AT = 15 => "SymlinkAt",
    LINK_AT = 16 => "LinkAt",
    FSTAT_FS = 17 => "FStatFS",
    FALLOCATE = 18 => "FAllocate",
    READ_LINK_AT = 19 => "ReadLinkAt",
    FLUSH = 20 => "Flush",
    CONNECT = 21 => "Connect",
    UNLINK_AT = 22 => "UnlinkAt",
    RENAME_AT = 23 => "RenameAt",
    GETDENTS64 = 24 => "Getdents64",
    FGET_XATTR = 25 => "FGetXattr",
    FSET_XATTR = 26 => "FSetXattr",
    FLIST_XATTR = 27 => "FListXattr",
    FREMOVE_XATTR = 28 => "FRemoveXattr",
    BIND_AT = 29 => "BindAt",
    LISTEN = 30 => "Listen",
    ACCEPT = 31 => "Accept",
    CONNECT_WITH_CREDS = 32 => "ConnectWithCreds",
    RENAME_AT2 = 33 => "RenameAt2",
}

impl Mid {
    /// The highest standard MID of upstream LISAFS.
    pub const MAX_STANDARD: Mid = Mid::RENAME_AT2;

    /// Every standard request MID (all of [`Mid::STANDARD`] but `ERROR`):
    /// what a server that answers every message advertises.
    pub const REQUESTS: &'static [Mid] = match Mid::STANDARD.split_first() {
        Some((_, rest)) => rest,
        None => &[],
    };
}

/// An FD identifier, private to one connection. `0` is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FdId(pub u64);
newtype_wire!(FdId(u64));

impl FdId {
    /// The invalid FDID.
    pub const INVALID: FdId = FdId(0);
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $sentinel:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub u32);
        newtype_wire!($name(u32));

        impl $name {
            #[doc = concat!("gVisor's `", $sentinel, "` sentinel.")]
            pub const NONE: $name = $name(u32::MAX);
            /// Whether this is a real ID rather than the sentinel.
            pub const fn is_some(self) -> bool {
                self.0 != u32::MAX
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::NONE
            }
        }
    };
}

id_type!(
    /// A user ID. [`Uid::NONE`] means "no UID / leave unchanged".
    Uid,
    "NoUID"
);
id_type!(
    /// A group ID. [`Gid::NONE`] means "no GID / leave unchanged".
    Gid,
    "NoGID"
);

/// Outcome of a Walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalkStatus {
    /// Every component was walked.
    #[default]
    Success = 0,
    /// A component does not exist; the inodes walked so far are returned.
    ComponentDoesNotExist = 1,
    /// A component is a symlink and components remained after it.
    ComponentSymlink = 2,
}

impl<'a> Wire<'a> for WalkStatus {
    const MIN_LEN: usize = 1;
    const FIXED_LEN: Option<usize> = Some(1);
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(*self as u8)
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        match r.u8("WalkStatus")? {
            0 => Ok(Self::Success),
            1 => Ok(Self::ComponentDoesNotExist),
            2 => Ok(Self::ComponentSymlink),
            v => Err(DecodeError::InvalidValue {
                what: "WalkStatus",
                value: u64::from(v),
            }),
        }
    }
}

wire_struct! {
    /// A statx timestamp (16 bytes: i64 seconds, u32 nanoseconds, 4 pad).
    pub struct StatxTimestamp {
        pub sec: i64,
        pub nsec: u32,
    }
    pad = 4;
}

wire_struct! {
    /// The protocol's frozen 144-byte statx: the first 144 bytes of Linux
    /// `struct statx`. Later kernel fields (`stx_mnt_id`...) are not part of
    /// the wire format.
    pub struct Statx {
        /// `STATX_*` bits saying which fields are valid.
        pub mask: u32,
        pub blksize: u32,
        pub attributes: u64,
        pub nlink: u32,
        pub uid: u32,
        pub gid: u32,
        /// Type and permission bits.
        pub mode: u16,
        /// Two bytes of padding on the wire (between mode and ino).
        pub pad_mode: Pad16,
        pub ino: u64,
        pub size: u64,
        /// In 512-byte units.
        pub blocks: u64,
        pub attributes_mask: u64,
        pub atime: StatxTimestamp,
        pub btime: StatxTimestamp,
        pub ctime: StatxTimestamp,
        pub mtime: StatxTimestamp,
        pub rdev_major: u32,
        pub rdev_minor: u32,
        pub dev_major: u32,
        pub dev_minor: u32,
    }
}

/// Two bytes of padding inside a struct: written as zero, ignored on receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pad16;

impl<'a> Wire<'a> for Pad16 {
    const MIN_LEN: usize = 2;
    const FIXED_LEN: Option<usize> = Some(2);
    const HAS_PADDING: bool = true;
    fn encoded_len(&self) -> usize {
        2
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.zeros(2)
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        r.take("padding", 2).map(|_| Pad16)
    }
}

wire_struct! {
    /// A node on the server: a new control FD the receiver now owns, and its
    /// stat (152 bytes).
    pub struct Inode {
        pub control_fd: FdId,
        pub stat: Statx,
    }
}

wire_struct! {
    /// Filesystem statistics (64 bytes; a protocol subset, not `struct statfs`).
    pub struct StatFs {
        /// Filesystem magic.
        pub fs_type: u64,
        pub block_size: i64,
        pub blocks: u64,
        pub blocks_free: u64,
        pub blocks_available: u64,
        pub files: u64,
        pub files_free: u64,
        pub name_length: u64,
    }
}

wire_struct! {
    /// A Linux `timespec` (i64 seconds, i64 nanoseconds). `nsec` may be
    /// [`UTIME_NOW`] or [`UTIME_OMIT`] in SetStat.
    pub struct Timespec {
        pub sec: i64,
        pub nsec: i64,
    }
}

wire_struct! {
    /// One directory entry of a Getdents64 response (27 + name bytes).
    pub struct Dirent64<'a> {
        pub ino: u64,
        pub dev_minor: u32,
        pub dev_major: u32,
        /// Opaque directory cookie (the host's `d_off`).
        pub off: u64,
        /// A `DT_*` value.
        pub ty: u8,
        pub name: &'a [u8],
    }
}

/// `timespec.nsec` value meaning "set to the current time".
pub const UTIME_NOW: i64 = 0x3FFF_FFFF;
/// `timespec.nsec` value meaning "leave unchanged".
pub const UTIME_OMIT: i64 = 0x3FFF_FFFE;

/// `STATX_*` mask bits.
pub mod statx_mask {
    /// File type.
    pub const TYPE: u32 = 0x1;
    /// Permission bits (settable).
    pub const MODE: u32 = 0x2;
    /// Link count.
    pub const NLINK: u32 = 0x4;
    /// Owner (settable).
    pub const UID: u32 = 0x8;
    /// Group (settable).
    pub const GID: u32 = 0x10;
    /// Access time (settable).
    pub const ATIME: u32 = 0x20;
    /// Modification time (settable).
    pub const MTIME: u32 = 0x40;
    /// Change time.
    pub const CTIME: u32 = 0x80;
    /// Inode number.
    pub const INO: u32 = 0x100;
    /// Size (settable).
    pub const SIZE: u32 = 0x200;
    /// Block count.
    pub const BLOCKS: u32 = 0x400;
    /// Everything above.
    pub const BASIC_STATS: u32 = 0x7FF;
    /// Birth time.
    pub const BTIME: u32 = 0x800;
    /// The bits SetStat may carry; any other bit gets EPERM.
    pub const SETTABLE: u32 = MODE | UID | GID | ATIME | MTIME | SIZE;
}
