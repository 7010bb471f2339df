//! The bridge against an in-Rust dispatcher answering from another thread.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use lisafs_audit::{Class, Event, EventSink};
use lisafs_bridge::{Args, Bridge, Call, Dispatcher, PlainReply};
use lisafs_server::{ConnectionImpl, ConnectionOpts, Errno, NewControl, Service};
use lisafs_wire as w;

enum Msg {
    Call(Call),
    Notify,
}

/// Queues everything on a channel for the answering thread.
struct Fake {
    tx: Mutex<Sender<Msg>>,
    notices: Arc<AtomicU32>,
    refuse: bool,
}

impl Dispatcher for Fake {
    fn call(&self, call: Call) -> bool {
        !self.refuse && self.tx.lock().unwrap().send(Msg::Call(call)).is_ok()
    }

    fn notify(&self) -> bool {
        self.notices.fetch_add(1, Ordering::SeqCst);
        self.tx.lock().unwrap().send(Msg::Notify).is_ok()
    }
}

/// What the answering thread does with a call.
enum Answer {
    Reply(Box<PlainReply>),
    Fail(u32),
    /// Drop the call without delivering it.
    Drop,
    /// Deliver it and never answer (its id goes to `Remote::kept`).
    Keep,
}

/// `(op, handle, args)` of a call.
type Seen = (&'static str, u32, Option<Args>);

struct Remote {
    bridge: Arc<Bridge<Fake>>,
    /// `(op, handle, args)` of every call, in order.
    seen: Arc<Mutex<Vec<Seen>>>,
    /// What `Bridge::complete` answered, in order.
    completions: Arc<Mutex<Vec<Result<bool, String>>>>,
    kept: Receiver<u32>,
    notices: Arc<AtomicU32>,
}

fn remote(
    timeout: Option<Duration>,
    refuse: bool,
    script: impl Fn(&Call) -> Answer + Send + 'static,
) -> Remote {
    let (tx, rx) = channel();
    let notices = Arc::new(AtomicU32::new(0));
    let bridge = Bridge::new(
        Fake {
            tx: Mutex::new(tx),
            notices: Arc::clone(&notices),
            refuse,
        },
        timeout,
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let completions = Arc::new(Mutex::new(Vec::new()));
    let (kept_tx, kept) = channel();
    // A weak reference: the thread ends when the bridge (which holds the
    // sending end) goes.
    let weak: Weak<Bridge<Fake>> = Arc::downgrade(&bridge);
    let (seen2, completions2) = (Arc::clone(&seen), Arc::clone(&completions));
    std::thread::spawn(move || {
        for msg in rx {
            let Msg::Call(call) = msg else { continue };
            let Some(bridge) = weak.upgrade() else { return };
            seen2
                .lock()
                .unwrap()
                .push((call.op(), call.handle(), call.args().cloned()));
            match script(&call) {
                Answer::Reply(r) => {
                    let (id, ..) = call.deliver();
                    let done = bridge.complete(id, &*r);
                    completions2.lock().unwrap().push(done);
                }
                Answer::Fail(errno) => {
                    let (id, ..) = call.deliver();
                    bridge.fail(id, errno);
                }
                Answer::Drop => drop(call),
                Answer::Keep => {
                    let (id, ..) = call.deliver();
                    let _ = kept_tx.send(id);
                }
            }
        }
    });
    Remote {
        bridge,
        seen,
        completions,
        kept,
        notices,
    }
}

fn reply(r: PlainReply) -> Answer {
    Answer::Reply(Box::new(r))
}

fn dir_stat(ino: u64) -> w::Statx {
    w::Statx {
        mode: 0o040755,
        ino,
        nlink: 2,
        ..w::Statx::default()
    }
}

fn control(handle: u32, ino: u64) -> Answer {
    reply(PlainReply {
        handle: Some(handle),
        stat: Some(dir_stat(ino)),
        ..PlainReply::default()
    })
}

fn mount(r: &Remote) -> NewControl {
    let conn = r.bridge.connection(None);
    let (nc, donated) = conn.mount().expect("mount");
    assert!(donated.is_none());
    nc
}

#[test]
fn calls_complete_with_their_reply() {
    let r = remote(None, false, |call| match call.op() {
        "mount" => control(1, 10),
        "walk" => control(2, 11),
        "write" => reply(PlainReply {
            count: Some(3),
            ..PlainReply::default()
        }),
        "open" => reply(PlainReply {
            handle: Some(3),
            ..PlainReply::default()
        }),
        _ => Answer::Fail(38),
    });
    let root = mount(&r);
    assert_eq!(root.stat, dir_stat(10));
    let child = root.imp.walk(b"x").expect("walk");
    assert_eq!(child.stat, dir_stat(11));
    let open = child.imp.open(2).expect("open");
    assert_eq!(open.imp.write(b"abcdef", 9).expect("write"), 3);
    let seen = r.seen.lock().unwrap().clone();
    let ops: Vec<(&str, u32)> = seen.iter().map(|(op, h, _)| (*op, *h)).collect();
    assert_eq!(ops, [("mount", 0), ("walk", 1), ("open", 2), ("write", 3)]);
    assert_eq!(
        seen[1].2.as_ref().and_then(|a| a.name.clone()),
        Some(b"x".to_vec())
    );
    let write = seen[3].2.as_ref().expect("write args");
    assert_eq!(
        (write.data.as_deref(), write.offset),
        (Some(&b"abcdef"[..]), Some(9))
    );
    assert_eq!(
        root.imp.stat_fs().unwrap_err(),
        Errno(38),
        "unanswered = ENOSYS"
    );
    assert_eq!(r.bridge.pending_calls(), 0);
    assert!(r.completions.lock().unwrap().iter().all(|c| c == &Ok(true)));
}

#[test]
fn failures_carry_their_errno() {
    let r = remote(None, false, |call| match call.op() {
        "mount" => control(1, 10),
        "walk" => Answer::Fail(2),
        "mkdir" => Answer::Fail(0),
        _ => Answer::Fail(99_999),
    });
    let root = mount(&r);
    assert_eq!(
        root.imp.walk(b"nope").err().map(|e| e.0),
        Some(Errno::ENOENT.0)
    );
    let none = (w::Uid::NONE, w::Gid::NONE);
    assert_eq!(
        root.imp
            .mkdir(0o755, none.0, none.1, b"d")
            .err()
            .map(|e| e.0),
        Some(Errno::EIO.0),
        "errno 0 is no answer"
    );
    assert_eq!(
        root.imp.unlink(b"f", 0).unwrap_err(),
        Errno::EIO,
        "out of range"
    );
}

#[test]
fn a_dropped_call_fails_with_eio() {
    let r = remote(None, false, |_| Answer::Drop);
    let conn = r.bridge.connection(None);
    assert_eq!(conn.mount().err().map(|e| e.0), Some(Errno::EIO.0));
    assert_eq!(r.bridge.pending_calls(), 0);
}

#[test]
fn a_refused_call_fails_with_eio() {
    let r = remote(None, true, |_| control(1, 10));
    let conn = r.bridge.connection(None);
    assert_eq!(conn.mount().err().map(|e| e.0), Some(Errno::EIO.0));
    assert_eq!(r.bridge.pending_calls(), 0);
    assert!(r.seen.lock().unwrap().is_empty());
}

#[test]
fn dropping_a_handle_releases_it() {
    let r = remote(None, false, |call| match call.op() {
        "mount" => control(7, 10),
        _ => control(8, 11),
    });
    let root = mount(&r);
    let child = root.imp.walk(b"a").expect("walk");
    assert!(r.bridge.drain().releases.is_empty());
    drop(child);
    drop(root);
    let drained = r.bridge.drain();
    assert_eq!(drained.releases, [8, 7]);
    assert_eq!(r.notices.load(Ordering::SeqCst), 1, "one notice per batch");
    drop(mount(&r));
    assert_eq!(r.bridge.drain().releases, [7]);
    assert_eq!(
        r.notices.load(Ordering::SeqCst),
        2,
        "a drain re-arms the notice"
    );
}

#[test]
fn a_malformed_reply_fails_the_call_and_releases_its_handles() {
    let r = remote(None, false, |_| {
        reply(PlainReply {
            handle: Some(5),
            ..PlainReply::default()
        })
    });
    let conn = r.bridge.connection(None);
    assert_eq!(conn.mount().err().map(|e| e.0), Some(Errno::EIO.0));
    // The failed call wakes the server thread inside `complete`, before the
    // answering thread records what `complete` returned: wait for that.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while r.completions.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let done = r.completions.lock().unwrap().clone();
    assert_eq!(done.len(), 1);
    let msg = done[0].clone().unwrap_err();
    assert!(msg.contains("lacks `stat`"), "{msg}");
    assert_eq!(r.bridge.drain().releases, [5]);
}

#[test]
fn a_late_reply_is_released() {
    let r = remote(Some(Duration::from_millis(1)), false, |_| Answer::Keep);
    let conn = r.bridge.connection(None);
    assert_eq!(conn.mount().err().map(|e| e.0), Some(Errno::EIO.0));
    let id = r.kept.recv().expect("the call was delivered");
    let (a, b) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair");
    let late = PlainReply {
        handle: Some(9),
        fd: Some(std::os::fd::IntoRawFd::into_raw_fd(a)),
        ..PlainReply::default()
    };
    assert_eq!(r.bridge.complete(id, &late), Ok(false));
    assert_eq!(r.bridge.drain().releases, [9]);
    // The FD was closed: its peer sees end of file.
    let mut buf = [0u8; 1];
    assert_eq!(rustix::io::read(&b, &mut buf).expect("read"), 0);
}

#[test]
fn abort_wakes_waiting_calls_and_fails_later_ones() {
    let r = remote(None, false, |_| Answer::Keep);
    let bridge = Arc::clone(&r.bridge);
    let waiter = std::thread::spawn(move || bridge.connection(None).mount().err());
    r.kept.recv().expect("the call was delivered");
    r.bridge.abort();
    let err = waiter.join().expect("the waiter ends");
    assert_eq!(err.map(|e| e.0), Some(Errno::EIO.0));
    let conn = r.bridge.connection(None);
    assert_eq!(conn.mount().err().map(|e| e.0), Some(Errno::EIO.0));
    assert_eq!(r.seen.lock().unwrap().len(), 1, "no call after the abort");
    assert!(
        r.bridge.with_dispatcher(|_| ()).is_none(),
        "dispatcher dropped"
    );
}

#[test]
fn events_travel_in_the_outbox() {
    let r = remote(None, false, |_| Answer::Fail(5));
    let ev = Event {
        op: "walk",
        class: Class::Read,
        connection: 1,
        path: Arc::from(&b"/x"[..]),
        new_path: None,
        flags: 0,
        errno: 2,
        denied: false,
        duration_ns: 1,
        bytes: None,
        time_ms: 1.0,
    };
    r.bridge.record(ev.clone());
    r.bridge.record(ev.clone());
    // Events alone are not urgent: one notice comes after a short delay,
    // with nothing else happening on the bridge.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while r.notices.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        r.notices.load(Ordering::SeqCst),
        1,
        "deferred events are announced once"
    );
    let drained = r.bridge.drain();
    assert_eq!(drained.events.len(), 2);
    assert_eq!(&*drained.events[0].path, b"/x");
    assert_eq!(drained.dropped_events, 0);

    // A full batch is announced at once, and only once.
    for _ in 0..lisafs_bridge::EVENT_BATCH {
        r.bridge.record(ev.clone());
    }
    assert_eq!(r.notices.load(Ordering::SeqCst), 2);
    std::thread::sleep(lisafs_bridge::EVENT_DELAY * 3);
    assert_eq!(
        r.notices.load(Ordering::SeqCst),
        2,
        "no second notice before a drain"
    );
    assert_eq!(r.bridge.drain().events.len(), lisafs_bridge::EVENT_BATCH);
}

#[test]
fn the_event_flusher_does_not_keep_the_bridge_alive() {
    let r = remote(None, false, |_| Answer::Fail(5));
    let weak = Arc::downgrade(&r.bridge);
    r.bridge.record(Event {
        op: "fstat",
        class: Class::Read,
        connection: 1,
        path: Arc::from(&b"/"[..]),
        new_path: None,
        flags: 0,
        errno: 0,
        denied: false,
        duration_ns: 1,
        bytes: None,
        time_ms: 1.0,
    });
    drop(r);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while weak.upgrade().is_some() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        weak.upgrade().is_none(),
        "the bridge is freed once its owners drop it"
    );
}

#[test]
fn serves_a_client_end_to_end() {
    let r = remote(None, false, |call| match call.op() {
        "mount" => control(1, 10),
        "stat" => reply(PlainReply {
            stat: Some(dir_stat(77)),
            ..PlainReply::default()
        }),
        _ => Answer::Fail(38),
    });
    let conn: Arc<dyn ConnectionImpl> = Arc::new(r.bridge.connection(Some(1 << 16)));
    let service = Service::new(conn, ConnectionOpts::host(false));
    let (client_end, server_end): (OwnedFd, OwnedFd) =
        lisafs_transport::socket_pair().expect("socketpair");
    service.attach(server_end).expect("attach");
    let client = lisafs_client::Client::connect(client_end).expect("connect");
    assert_eq!(client.max_message_size(), 1 << 16);
    let root = client.root();
    assert_eq!(root.stat.ino, 10);
    assert_eq!(client.fstat(root.control_fd).expect("fstat").ino, 77);
    assert_eq!(
        client
            .fstatfs(root.control_fd)
            .map_err(|e| e.errno())
            .unwrap_err(),
        38
    );
    drop(client);
    service.close();
    assert_eq!(
        r.bridge.drain().releases,
        [1],
        "the root went with the connection"
    );
}
