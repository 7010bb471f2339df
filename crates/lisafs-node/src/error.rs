//! Node-style errors: an `Error` (or `RangeError`) with a `code`.

use napi::{Env, Error, Status};

/// A failure to report to JS.
pub(crate) struct Fail {
    code: String,
    range: bool,
    message: String,
}

pub(crate) type Result<T> = std::result::Result<T, Fail>;

impl Fail {
    pub(crate) fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Fail {
            code: code.into(),
            range: false,
            message: message.into(),
        }
    }

    /// A `RangeError` with code `ERR_OUT_OF_RANGE`.
    pub(crate) fn range(message: impl Into<String>) -> Self {
        Fail {
            code: "ERR_OUT_OF_RANGE".into(),
            range: true,
            message: message.into(),
        }
    }

    /// An OS error as Node reports one: `code` is the errno name
    /// (`'EADDRINUSE'`), the message says what was being done.
    pub(crate) fn io(what: &str, err: &std::io::Error) -> Self {
        let code = err
            .raw_os_error()
            .and_then(|n| lisafs_server::Errno(n as u32).name())
            .unwrap_or("EIO");
        Fail::new(code, format!("{code}: {what}: {err}"))
    }

    /// Throws into JS; the returned error tells napi the exception is
    /// already pending.
    pub(crate) fn throw(self, env: &Env) -> Error {
        let thrown = if self.range {
            env.throw_range_error(&self.message, Some(&self.code))
        } else {
            env.throw_error(&self.message, Some(&self.code))
        };
        match thrown {
            Ok(()) => Error::from_status(Status::PendingException),
            Err(e) => e,
        }
    }
}
