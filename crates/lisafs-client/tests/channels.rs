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

#[test]
fn split_phase_calls_complete_inline_elsewhere_or_unsent() {
    use std::time::Duration;
    let h = Harness::new("split");
    std::fs::write(h.scratch.path("f"), b"hello").unwrap();

    // Without channels nothing is sent: the call comes back to run blocking.
    let call = h.client.walk_stat_call(h.root(), &[b"f"]).unwrap();
    let Started::NotSent(call) = h.client.start(call, Duration::from_secs(1)) else {
        panic!("sent without channels");
    };
    let via_socket = h.client.exec(call).unwrap();

    let n = h.client.start_channels(1000).unwrap();
    // A generous budget: the reply comes back on this thread.
    let call = h.client.walk_stat_call(h.root(), &[b"f"]).unwrap();
    let inline = match h.client.start(call, Duration::from_secs(5)) {
        Started::Done(r) => r.unwrap(),
        other => panic!("not done inline: {other:?}"),
    };
    // No budget: the reply is (almost always) left pending; finish it on
    // another thread. Either way the result is the same.
    let call = h.client.walk_stat_call(h.root(), &[b"f"]).unwrap();
    let waited = match h.client.start(call, Duration::ZERO) {
        Started::Done(r) => r.unwrap(),
        Started::Pending(p) => std::thread::scope(|s| s.spawn(|| p.wait(&h.client)).join())
            .unwrap()
            .unwrap(),
        Started::NotSent(_) => panic!("a channel was idle"),
    };
    assert_eq!(inline, via_socket);
    assert_eq!(waited, via_socket);
    assert_eq!(inline[0].size, 5);

    // Every channel held by a pending call: the next call is not sent.
    let mut held = Vec::new();
    for _ in 0..n {
        match h
            .client
            .start(h.client.fstat_call(h.root()).unwrap(), Duration::ZERO)
        {
            Started::Pending(p) => held.push(p),
            Started::Done(r) => {
                r.unwrap();
            }
            Started::NotSent(_) => panic!("channels left idle"),
        }
    }
    if held.len() == n {
        let call = h.client.fstat_call(h.root()).unwrap();
        assert!(matches!(
            h.client.start(call, Duration::ZERO),
            Started::NotSent(_)
        ));
    }
    for p in held {
        p.wait(&h.client).unwrap();
    }

    // Errors arrive through both halves.
    let bad = || h.client.walk_stat_call(FdId(999), &[b"f"]).unwrap();
    let err = match h.client.start(bad(), Duration::from_secs(5)) {
        Started::Done(r) => r.unwrap_err(),
        other => panic!("not done inline: {other:?}"),
    };
    assert!(matches!(err, Error::Errno(errno::EBADF)), "{err:?}");
    if let Started::Pending(p) = h.client.start(bad(), Duration::ZERO) {
        assert!(matches!(p.wait(&h.client), Err(Error::Errno(errno::EBADF))));
    }

    // One PRead message; more than a message is refused locally.
    let (walked, ino) = h.client.walk(h.root(), &[b"f"]).unwrap();
    assert_eq!(walked, WalkStatus::Success);
    let (fd, _) = h.client.open_at(ino[0].control_fd, 0).unwrap();
    let data = h
        .client
        .exec(h.client.pread_call(fd, 0, 64).unwrap())
        .unwrap();
    assert_eq!(data, b"hello");
    assert!(matches!(
        h.client.pread_call(fd, 0, h.client.pread_chunk() + 1),
        Err(Error::Errno(errno::EINVAL))
    ));
    let close = h.client.close_call(&[fd, ino[0].control_fd]).unwrap();
    h.client.exec(close).unwrap();
    h.finish(&[]);
}
