//! Linux errno values used on the wire (identical on x86-64 and arm64).

#![allow(missing_docs)]

pub const EPERM: u32 = 1;
pub const ENOENT: u32 = 2;
pub const EIO: u32 = 5;
pub const ENXIO: u32 = 6;
pub const EBADF: u32 = 9;
pub const EAGAIN: u32 = 11;
pub const ENOMEM: u32 = 12;
pub const EACCES: u32 = 13;
pub const EEXIST: u32 = 17;
pub const EXDEV: u32 = 18;
pub const ENOTDIR: u32 = 20;
pub const EISDIR: u32 = 21;
pub const EINVAL: u32 = 22;
pub const EMFILE: u32 = 24;
pub const ENOSPC: u32 = 28;
pub const EROFS: u32 = 30;
pub const EPIPE: u32 = 32;
pub const ERANGE: u32 = 34;
pub const ENAMETOOLONG: u32 = 36;
pub const ENOSYS: u32 = 38;
pub const ENOTEMPTY: u32 = 39;
pub const ELOOP: u32 = 40;
pub const ENODATA: u32 = 61;
pub const ENOTSOCK: u32 = 88;
pub const EOPNOTSUPP: u32 = 95;
pub const EADDRINUSE: u32 = 98;
pub const ECONNRESET: u32 = 104;
pub const ENOBUFS: u32 = 105;
pub const ENOTCONN: u32 = 107;
pub const ECONNREFUSED: u32 = 111;
pub const EDQUOT: u32 = 122;
pub const EREMOTEIO: u32 = 121;
