//! Our client over flipcall channels against our server.

mod common;

use common::*;
use lisafs_client::*;

#[test]
fn requests_travel_over_channels_with_fds() {
    let h = Harness::new("channels");
    let n = h.client.start_channels(1000).unwrap();
    assert!((2..=4).contains(&n), "{n} channels");
    assert!(
        matches!(h.client.start_channels(0), Err(Error::Errno(_))),
        "only once"
    );
    let before = h.service.channel_requests();

    let (file, open_fd, donated) = h
        .client
        .open_create_at(h.root(), b"f", 0o644, Uid::NONE, Gid::NONE, 2)
        .unwrap();
    assert!(donated.is_some(), "FDs arrive on the channel's FD socket");
    let data = vec![0x5au8; 3 << 20];
    assert_eq!(
        h.client.pwrite(open_fd, 0, &data).unwrap(),
        data.len() as u64
    );
    let mut back = vec![0u8; data.len()];
    assert_eq!(h.client.pread(open_fd, 0, &mut back).unwrap(), data.len());
    assert_eq!(back, data);
    // PRead is answered in place in the window: short reads, end of file
    // and errors too.
    let mut small = [0u8; 10];
    assert_eq!(
        h.client
            .pread(open_fd, data.len() as u64 - 4, &mut small)
            .unwrap(),
        4
    );
    assert_eq!(small[..4], [0x5a; 4]);
    assert_eq!(
        h.client
            .pread(open_fd, data.len() as u64, &mut small)
            .unwrap(),
        0
    );
    assert!(matches!(
        h.client.pread(file.control_fd, 0, &mut small),
        Err(Error::Errno(errno::EINVAL))
    ));
    // Errors come back over the channel too.
    assert!(matches!(
        h.client.walk(FdId(999), &[b"x"]),
        Err(Error::Errno(errno::EBADF))
    ));
    assert!(h.service.channel_requests() > before + 3);

    // Many threads share the channels (and the socket when all are busy).
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                for _ in 0..200 {
                    h.client.fstat(h.root()).unwrap();
                }
            });
        }
    });
    h.finish(&[file.control_fd, open_fd]);
}
