//! [`Errno`]: the error every backend operation returns.

use core::fmt;

use lisafs_wire::errno as e;

/// A Linux errno, as sent in an Error response.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub u32);

/// The result of a backend operation.
pub type FsResult<T> = Result<T, Errno>;

macro_rules! errnos {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                pub const $name: Errno = Errno(e::$name);
            )*

            /// The symbolic name (`"ENOENT"`), if it is one we know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( e::$name => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

#[rustfmt::skip]
errnos!(
    EPERM, ENOENT, EIO, ENXIO, EBADF, EAGAIN, ENOMEM, EACCES, EEXIST, EXDEV, ENOTDIR, EISDIR,
    EINVAL, EMFILE, ENOSPC, EROFS, EPIPE, ERANGE, ENAMETOOLONG, ENOSYS, ENOTEMPTY, ELOOP,
    ENODATA, ENOTSOCK, EOPNOTSUPP, EADDRINUSE, ECONNRESET, ENOBUFS, ENOTCONN, ECONNREFUSED,
    EDQUOT, EREMOTEIO,
);

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Errno {}

impl From<std::io::Error> for Errno {
    /// The OS error number, or EIO for errors that carry none.
    fn from(err: std::io::Error) -> Self {
        match err.raw_os_error() {
            Some(n) if n > 0 => Errno(n as u32),
            _ => Errno::EIO,
        }
    }
}
