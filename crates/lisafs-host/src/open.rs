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

/// Reads of at least this many bytes avoid the kernel's slow copy case.
const BOUNCE_MIN: usize = 2048;
/// Bounce buffer size: large reads go through it in chunks of this size,
/// so a server thread keeps at most this much, and a chunk stays in the
/// CPU's cache between the kernel's copy and ours.
const BOUNCE_CHUNK: usize = 256 << 10;

thread_local! {
    static BOUNCE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether the kernel's page-cache-to-user copy into `dst` for file offset
/// `off` hits the slow case of x86 `rep movsb`: a destination 1 to 31 bytes
/// past the source modulo 4 KiB runs about 10x slower (1.6 against 20 GB/s
/// for a 1 MiB pread on the benchmark machine), while glibc's memcpy has no
/// such penalty. LISAFS fixes where a PRead's data sits in its reply, a few
/// bytes into a page-aligned channel window, so the common page-aligned
/// read lands exactly there.
fn slow_kernel_copy(dst: *const u8, off: u64) -> bool {
    let rel = (dst as usize).wrapping_sub(off as usize) & 4095;
    (1..32).contains(&rel)
}

/// pread until `buf` is full or end of file.
fn pread_full(fd: &OwnedFd, buf: &mut [u8], off: u64) -> FsResult<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset(off, done)?;
        match rustix::io::pread(fd, &mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(host(e)),
        }
    }
    Ok(done)
}

/// [`pread_full`] through `bounce`, then memcpy into `buf`. The chunk sits
/// 64 bytes past the file offset's page position, which keeps both copies
/// out of the slow case: the kernel's (64 bytes past its source) and
/// memcpy's (glibc also uses `rep movsb` for mid-sized copies, and `buf`
/// lies 1 to 31 bytes past the source's page position, so it is 33 to 63
/// bytes *before* the chunk's).
fn read_bounced(fd: &OwnedFd, buf: &mut [u8], off: u64, bounce: &mut Vec<u8>) -> FsResult<usize> {
    if bounce.len() < BOUNCE_CHUNK + 4096 {
        // Zeroed once per thread; later reads overwrite what they use.
        bounce.resize(BOUNCE_CHUNK + 4096, 0);
    }
    let mut done = 0;
    while done < buf.len() {
        let at = offset(off, done)?;
        let start = (at as usize + 64).wrapping_sub(bounce.as_ptr() as usize) & 4095;
        let want = (buf.len() - done).min(BOUNCE_CHUNK);
        let chunk = &mut bounce[start..start + want];
        let n = pread_full(fd, chunk, at)?;
        buf[done..done + n].copy_from_slice(&chunk[..n]);
        done += n;
        if n < want {
            break;
        }
    }
    Ok(done)
}

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
        if buf.len() >= BOUNCE_MIN && slow_kernel_copy(buf.as_ptr(), off) {
            return BOUNCE.with(|b| read_bounced(&self.fd, buf, off, &mut b.borrow_mut()));
        }
        pread_full(&self.fd, buf, off)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `len` bytes whose byte `i` is `i * 7 mod 251`.
    fn file(len: usize) -> OwnedFd {
        let fd =
            rustix::fs::memfd_create("bounce", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut done = 0;
        while done < data.len() {
            done += rustix::io::write(&fd, &data[done..]).expect("write");
        }
        fd
    }

    #[test]
    fn reads_that_take_the_bounce_path_return_the_same_bytes() {
        let len = BOUNCE_CHUNK * 2 + 5000;
        let f = HostOpen::new(file(len));
        let mut backing = vec![0u8; len + 8192];
        for off in [0u64, 1, 4095, 4096, 12_345, (len - 3000) as u64] {
            for want in [BOUNCE_MIN, 4096, BOUNCE_CHUNK + 17, len] {
                // Place the destination 8 bytes past the file offset's page
                // position: the slow case, so the bounce path runs.
                let base = backing.as_ptr() as usize;
                let start = (off as usize + 8).wrapping_sub(base) & 4095;
                let buf = &mut backing[start..start + want];
                assert!(slow_kernel_copy(buf.as_ptr(), off));
                buf.fill(0xee);
                let n = f.read(buf, off).expect("read");
                let expect = want.min(len - off as usize);
                assert_eq!(n, expect, "off {off} want {want}");
                for (i, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, ((off as usize + i) * 7 % 251) as u8, "byte {i}");
                }
                assert!(buf[n..].iter().all(|b| *b == 0xee), "nothing past EOF");
            }
        }
    }

    #[test]
    fn only_destinations_just_past_the_source_page_offset_are_slow() {
        let page = 0x10_0000usize;
        assert!(!slow_kernel_copy(page as *const u8, 0));
        assert!(slow_kernel_copy((page + 1) as *const u8, 0));
        assert!(slow_kernel_copy((page + 31) as *const u8, 0));
        assert!(!slow_kernel_copy((page + 32) as *const u8, 0));
        assert!(!slow_kernel_copy((page + 4095) as *const u8, 0));
        assert!(slow_kernel_copy((page + 28) as *const u8, 4096 + 4));
    }
}
