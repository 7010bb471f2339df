//! Descriptor accounting. This binary holds a single test so that nothing
//! else opens or closes descriptors while it counts them.

mod common;

use std::os::fd::AsFd;

use common::{comm_pair, open_fd_count, ALL};
use lisafs_wire::Mid;

#[test]
fn no_fd_leaks() {
    let baseline = open_fd_count();

    // A receiver that wants no FDs never gets any installed: with the
    // sender's copies closed, the count is what it was before they existed.
    {
        let (mut a, mut b) = comm_pair();
        let with_pair = open_fd_count();
        let (r, w) = std::io::pipe().unwrap();
        let mem = rustix::fs::memfd_create("leak", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        a.send(Mid::WALK, b"w", &[r.as_fd(), w.as_fd(), mem.as_fd()])
            .unwrap();
        drop((r, w, mem));
        assert_eq!(open_fd_count(), with_pair);
        let f = b.recv(0).unwrap();
        assert_eq!((f.mid, f.fds.len()), (Mid::WALK, 0));
        assert_eq!(open_fd_count(), with_pair, "unwanted FDs were installed");
    }
    assert_eq!(open_fd_count(), baseline);

    for (name, scenario) in ALL {
        scenario();
        assert_eq!(open_fd_count(), baseline, "descriptors leaked by {name}");
    }
}
