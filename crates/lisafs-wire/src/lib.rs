//! The LISAFS wire codec.
//!
//! LISAFS is the protocol gVisor speaks between an untrusted sandbox (the
//! client) and a trusted file server (the gofer). This crate encodes and
//! decodes every message of upstream LISAFS (MIDs 0–33) byte-for-byte as
//! gVisor's Go code does, and does no I/O.
//!
//! * Decoding is checked and zero-copy: a short, oversized or inconsistent
//!   buffer yields a [`DecodeError`], never a panic; strings and arrays are
//!   views into the input ([`Seq`]), so decoding allocates nothing and no
//!   count can make it do more work than the buffer's length justifies.
//! * Encoding writes into a caller's buffer ([`Message::encode_to_slice`]).
//!
//! All integers are little-endian with no implicit alignment.
//!
//! ```
//! use lisafs_wire::{FdId, Message, Request, Mid, StringArray, WalkReq};
//!
//! let names: [&[u8]; 2] = [b"usr", b"lib"];
//! let req = WalkReq { dir_fd: FdId(1), path: StringArray::from_items(&names) };
//! let mut buf = [0u8; 64];
//! let n = req.encode_to_slice(&mut buf).unwrap();
//! let Request::Walk(back) = Request::decode(Mid::WALK, &buf[..n]).unwrap() else { panic!() };
//! assert_eq!(back, req);
//! assert_eq!(back.path.iter().collect::<Vec<_>>(), names);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod any;
mod buf;
pub mod errno;
mod error;
mod frame;
mod messages;
mod seq;
mod types;
mod wire;

pub use any::{Request, Response};
pub use buf::{Reader, Writer};
pub use error::{DecodeError, EncodeError};
pub use frame::{ChannelHeader, SockHeader};
pub use messages::*;
pub use seq::{Dirents, FdArray, Inodes, MidList, Seq, SeqIter, Statxs, StringArray};
pub use types::{
    statx_mask, Dirent64, FdId, Gid, Inode, Mid, Pad16, StatFs, Statx, StatxTimestamp, Timespec,
    Uid, WalkStatus, UTIME_NOW, UTIME_OMIT,
};
pub use wire::Wire;

/// gVisor's default maximum payload size on 4 KiB-page hosts:
/// `HugePageSize - PageSize` (so a channel window fits one huge page).
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 2 * 1024 * 1024 - 4096;

/// Before Mount completes, gVisor's client assumes this maximum payload size.
pub const PRE_MOUNT_MAX_MESSAGE_SIZE: u32 = 1024 * 1024;
