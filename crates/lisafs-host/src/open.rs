//! [`HostOpen`] (an open file) and [`HostBoundSocket`] (a bound socket).

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use lisafs_server::{BoundSocketFdImpl, Errno, FsResult, OpenFdImpl};
use lisafs_wire::{Dirent64, Statx};
use rustix::fs::{AtFlags, FallocateFlags, FileType, RawDir, SeekFrom, StatxFlags};
use rustix::net::SocketFlags;

use crate::util::{host, stat_fd};

/// Largest host buffer one getdents64 call gets.
const DIRENT_BUF: usize = 8192;

/// The largest `linux_dirent64` record (a 255-byte name, aligned). A budget
/// below this may be too small for the next record, and the host then
/// answers EINVAL, which just ends the read.
const MAX_DIRENT: usize = 280;

/// An FD opened for I/O by re-opening a control FD's file.
pub(crate) struct HostOpen {
    fd: OwnedFd,
}

impl HostOpen {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        HostOpen { fd }
    }
}

/// The getdents64 buffer; `RawDir` needs 8-byte alignment and would
/// otherwise shave the misaligned head off the buffer.
#[repr(C, align(8))]
struct DirBuf([MaybeUninit<u8>; DIRENT_BUF]);

/// The size of the host record for a name of `len` bytes:
/// `offsetof(linux_dirent64, d_name)` + name + NUL, rounded up to 8.
fn reclen(len: usize) -> usize {
    (19 + len + 1 + 7) & !7
}

/// `DT_*` of a directory entry's type.
fn dirent_type(t: FileType) -> u8 {
    match t {
        FileType::Fifo => 1,
        FileType::CharacterDevice => 2,
        FileType::Directory => 4,
        FileType::BlockDevice => 6,
        FileType::RegularFile => 8,
        FileType::Symlink => 10,
        FileType::Socket => 12,
        _ => 0,
    }
}

/// `off + done` as a file offset.
fn offset(off: u64, done: usize) -> FsResult<u64> {
    u64::try_from(done)
        .ok()
        .and_then(|d| off.checked_add(d))
        .ok_or(Errno::EINVAL)
}

impl OpenFdImpl for HostOpen {
    fn stat(&self) -> FsResult<Statx> {
        stat_fd(self.fd.as_fd())
    }

    fn sync(&self) -> FsResult<()> {
        rustix::fs::fsync(&self.fd).map_err(host)
    }

    fn write(&self, buf: &[u8], off: u64) -> FsResult<u64> {
        let mut done = 0;
        while done < buf.len() {
            match rustix::io::pwrite(&self.fd, &buf[done..], offset(off, done)?) {
                // No progress is possible; report what was written.
                Ok(0) => break,
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(host(e)),
            }
        }
        u64::try_from(done).map_err(|_| Errno::EIO)
    }

    fn read(&self, buf: &mut [u8], off: u64) -> FsResult<usize> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset(off, done)?;
            match rustix::io::pread(&self.fd, &mut buf[done..], at) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(host(e)),
            }
        }
        Ok(done)
    }

    fn allocate(&self, mode: u64, off: u64, len: u64) -> FsResult<()> {
        // Bits beyond the syscall's 32-bit mode are invalid, not ignorable.
        let mode = u32::try_from(mode).map_err(|_| Errno::EINVAL)?;
        rustix::fs::fallocate(&self.fd, FallocateFlags::from_bits_retain(mode), off, len)
            .map_err(host)
    }

    fn getdent64(
        &self,
        count: u32,
        seek0: bool,
        record: &mut dyn FnMut(Dirent64<'_>),
    ) -> FsResult<()> {
        if seek0 {
            rustix::fs::seek(&self.fd, SeekFrom::Start(0)).map_err(host)?;
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let mut buf = DirBuf([MaybeUninit::uninit(); DIRENT_BUF]);
        // Bytes of host records recorded so far; skipped entries are free.
        let mut delivered = 0usize;
        while delivered < count {
            let end = DIRENT_BUF.min(count - delivered);
            // One RawDir per getdents64 call, so every call gets a buffer
            // no larger than the budget left.
            let mut dir = RawDir::new(self.fd.as_fd(), &mut buf.0[..end]);
            loop {
                let entry = match dir.next() {
                    None => return Ok(()),
                    Some(Err(rustix::io::Errno::INVAL)) if end < MAX_DIRENT => return Ok(()),
                    Some(Err(e)) => return Err(host(e)),
                    Some(Ok(entry)) => entry,
                };
                let name = entry.file_name();
                let bytes = name.to_bytes();
                if bytes != b"." && bytes != b".." {
                    // The client wants the entry's device too; an entry
                    // that vanished or cannot be stat'ed is left out.
                    if let Ok(st) = rustix::fs::statx(
                        &self.fd,
                        name,
                        AtFlags::SYMLINK_NOFOLLOW,
                        StatxFlags::TYPE,
                    ) {
                        record(Dirent64 {
                            ino: entry.ino(),
                            dev_minor: st.stx_dev_minor,
                            dev_major: st.stx_dev_major,
                            off: entry.next_entry_cookie(),
                            ty: dirent_type(entry.file_type()),
                            name: bytes,
                        });
                        delivered += reclen(bytes.len());
                    }
                }
                if dir.is_buffer_empty() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A bound host Unix socket (BindAt). The control FD created with it holds
/// a separate descriptor on the socket file.
pub(crate) struct HostBoundSocket {
    sock: OwnedFd,
}

impl HostBoundSocket {
    pub(crate) fn new(sock: OwnedFd) -> Self {
        HostBoundSocket { sock }
    }
}

impl BoundSocketFdImpl for HostBoundSocket {
    fn listen(&self, backlog: i32) -> FsResult<()> {
        rustix::net::listen(&self.sock, backlog).map_err(host)
    }

    fn accept(&self) -> FsResult<(OwnedFd, Vec<u8>)> {
        let fd = rustix::net::accept_with(&self.sock, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
            .map_err(host)?;
        // The peer's host address is none of the client's business.
        Ok((fd, Vec::new()))
    }
}
