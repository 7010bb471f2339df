//! `sendmsg`/`recvmsg` loops over rustix.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::{align_of, size_of, MaybeUninit};
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Linux refuses an `SCM_RIGHTS` message with more descriptors than this.
pub(crate) const SCM_MAX_FD: usize = 253;

/// `CMSG_ALIGN` on Linux: control data is aligned to `size_t`.
const fn cmsg_align(len: usize) -> usize {
    let a = size_of::<usize>();
    (len + a - 1) & !(a - 1)
}

/// `CMSG_SPACE(n * sizeof(int))`: exactly what gVisor passes for `n` FDs.
/// `struct cmsghdr` is `{ size_t len; int level; int type; }` on Linux.
pub(crate) const fn cmsg_space_fds(n: usize) -> usize {
    cmsg_align(size_of::<usize>() + 2 * size_of::<i32>()) + cmsg_align(n * size_of::<i32>())
}

/// Control-buffer bytes for the largest legal FD count, plus slack so a
/// byte array on the stack can be aligned for `cmsghdr`.
const CMSG_BUF_LEN: usize = cmsg_space_fds(SCM_MAX_FD) + align_of::<usize>();

/// A stack buffer for control messages.
pub(crate) type CmsgStorage = [MaybeUninit<u8>; CMSG_BUF_LEN];

/// A fresh [`CmsgStorage`].
pub(crate) const fn cmsg_storage() -> CmsgStorage {
    [MaybeUninit::uninit(); CMSG_BUF_LEN]
}

/// The part of `storage` that holds exactly `CMSG_SPACE(4 * n)` aligned
/// bytes. The exact size matters: it decides how many descriptors the kernel
/// installs, and anything it cannot fit is dropped without ever entering the
/// descriptor table.
fn cmsg_room(storage: &mut CmsgStorage, n: usize) -> &mut [MaybeUninit<u8>] {
    let off = storage.as_ptr().align_offset(align_of::<usize>());
    let len = cmsg_space_fds(n.min(SCM_MAX_FD));
    // `align_offset` may in theory report "cannot align"; fall back to the
    // start (rustix re-aligns, at worst leaving less room).
    let off = match off.checked_add(len) {
        Some(end) if end <= storage.len() => off,
        _ => 0,
    };
    &mut storage[off..off + len]
}

/// Blocks until `fd` is ready; only reached when the socket is non-blocking.
fn wait(fd: BorrowedFd<'_>, events: PollFlags) -> io::Result<()> {
    loop {
        let mut pfd = [PollFd::new(&fd, events)];
        match poll(&mut pfd, None) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// One successful `recvmsg` into `buf` (non-empty); 0 means end of file.
fn recv_once(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    control: &mut RecvAncillaryBuffer<'_>,
    flags: RecvFlags,
) -> io::Result<usize> {
    recv_once_into(fd, buf, &mut [], control, flags)
}

/// One successful `recvmsg` filling `head` then `tail`; 0 means end of
/// file.
fn recv_once_into(
    fd: BorrowedFd<'_>,
    head: &mut [u8],
    tail: &mut [u8],
    control: &mut RecvAncillaryBuffer<'_>,
    flags: RecvFlags,
) -> io::Result<usize> {
    loop {
        let mut iov = [IoSliceMut::new(head), IoSliceMut::new(tail)];
        let iov = if iov[1].is_empty() {
            &mut iov[..1]
        } else {
            &mut iov[..]
        };
        match recvmsg(fd, iov, control, flags | RecvFlags::CMSG_CLOEXEC) {
            Ok(r) => return Ok(r.bytes),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => wait(fd, PollFlags::IN)?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fills as much of `buf` as the stream has before end of file, without
/// control data (the kernel drops any descriptors it meets). Returns the
/// bytes read: `buf.len()` unless the peer closed.
pub(crate) fn recv_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        // WAITALL lets the kernel gather a large payload without a return to
        // user space per arriving chunk.
        let n = recv_once(
            fd,
            &mut buf[got..],
            &mut RecvAncillaryBuffer::default(),
            RecvFlags::WAITALL,
        )?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Reads the first bytes of a frame into `buf` (non-empty) and, in the
/// same `recvmsg`, whatever follows into `ahead` (may be empty), taking up
/// to `want_fds` descriptors from that read. Returns the bytes read (0 at
/// end of file); `fds` receives the descriptors.
pub(crate) fn recv_first(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    ahead: &mut [u8],
    want_fds: usize,
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut storage = cmsg_storage();
    // No buffer at all when nothing is wanted, not even a bare cmsghdr, so
    // the kernel has nowhere to put a descriptor.
    let mut control = if want_fds == 0 {
        RecvAncillaryBuffer::default()
    } else {
        RecvAncillaryBuffer::new(cmsg_room(&mut storage, want_fds))
    };
    let n = recv_once_into(fd, buf, ahead, &mut control, RecvFlags::empty())?;
    if want_fds > 0 {
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                // Dropping the iterator closes whatever is left in it.
                let room = want_fds.saturating_sub(fds.len());
                fds.extend(rights.take(room));
            }
        }
    }
    // `control` closes anything not drained when it drops.
    Ok(n)
}

/// Writes all of `bufs`, attaching `fds` to the first `sendmsg` only.
pub(crate) fn send_all(
    fd: BorrowedFd<'_>,
    mut bufs: &mut [IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > SCM_MAX_FD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} FDs exceed the {SCM_MAX_FD} one message can carry",
                fds.len()
            ),
        ));
    }
    let mut storage = cmsg_storage();
    let mut control = SendAncillaryBuffer::new(&mut storage);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("control buffer too small for the FDs"));
    }
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match sendmsg(fd, bufs, &mut control, SendFlags::NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                // The descriptors went with those bytes; a continuation must
                // not send them again.
                control.clear();
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => wait(fd, PollFlags::OUT)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmsg_space_matches_rustix() {
        // rustix's macro adds one alignment unit of slack for unaligned
        // buffers; the rest must be the kernel's CMSG_SPACE.
        for n in [0, 1, 2, 3, 64, SCM_MAX_FD] {
            assert_eq!(
                cmsg_space_fds(n) + align_of::<usize>(),
                rustix::cmsg_space!(ScmRights(n)),
                "n = {n}"
            );
        }
        #[cfg(target_pointer_width = "64")]
        assert_eq!(
            [0, 1, 2, 3].map(cmsg_space_fds),
            [16, 24, 24, 32],
            "room for an even number of FDs, as the spec says"
        );
    }

    #[test]
    fn cmsg_room_is_aligned_and_exact() {
        let mut storage = cmsg_storage();
        for n in [1, 2, 5, SCM_MAX_FD, SCM_MAX_FD + 10] {
            let room = cmsg_room(&mut storage, n);
            assert_eq!(room.len(), cmsg_space_fds(n.min(SCM_MAX_FD)));
            assert_eq!(room.as_ptr() as usize % align_of::<usize>(), 0);
        }
    }
}
