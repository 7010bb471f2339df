//! The audit layer over the host backend, driven by the real server and
//! client over a socketpair.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use lisafs_audit::{under, AuditConnection, AuditOptions, Class, Event, EventSink, Policy, Rule};
use lisafs_client::{Client, Error, FdId, Gid, Uid, WalkStatus};
use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionOpts, Errno, Service};
use lisafs_wire::errno::{EACCES, EDQUOT, ENOENT, EROFS};

const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;

fn errno<T: std::fmt::Debug>(r: Result<T, Error>) -> u32 {
    match r {
        Err(e) => e.errno(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<Event>>);

impl EventSink for Collect {
    fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    /// The recorded events of `op`, as `(path, new path, errno, denied)`.
    fn of(&self, op: &str) -> Vec<(String, Option<String>, u32, bool)> {
        let text = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.op == op)
            .map(|e| {
                (
                    text(&e.path),
                    e.new_path.as_deref().map(text),
                    e.errno,
                    e.denied,
                )
            })
            .collect()
    }
}

/// A scratch directory served through the audit layer.
struct Fixture {
    client: Client,
    service: Service,
    audit: Arc<AuditConnection>,
    events: Arc<Collect>,
    dir: PathBuf,
}

impl Fixture {
    fn new(tag: &str, policy: Option<Policy>, write_quota: Option<u64>) -> Fixture {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("lisafs-audit-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let host = HostFs::new(&dir, HostOptions::default()).expect("HostFs::new");
        let events = Arc::new(Collect::default());
        let audit = Arc::new(AuditConnection::new(
            Arc::new(host),
            AuditOptions {
                policy,
                write_quota,
                donate_fds: true,
                sink: Some(Arc::clone(&events) as Arc<dyn EventSink>),
            },
        ));
        let service = Service::new(Arc::clone(&audit) as _, ConnectionOpts::host(false));
        let (client_end, server_end) = lisafs_transport::socket_pair().expect("socketpair");
        service.attach(server_end).expect("attach");
        let client = Client::connect(client_end).expect("connect");
        Fixture {
            client,
            service,
            audit,
            events,
            dir,
        }
    }

    fn root(&self) -> FdId {
        self.client.root().control_fd
    }

    /// Walks `path` (components separated by `/`) from the root.
    fn walk(&self, path: &str) -> FdId {
        let names: Vec<&[u8]> = path.split('/').map(str::as_bytes).collect();
        let (status, inodes) = self.client.walk(self.root(), &names).expect("walk");
        assert_eq!(status, WalkStatus::Success, "walk {path}");
        inodes.last().expect("an inode per component").control_fd
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.service.close();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rule(prefix: &str, classes: &[Class], allow: bool) -> Rule {
    Rule {
        prefix: prefix.as_bytes().to_vec(),
        classes: classes.iter().map(|c| c.bit()).sum(),
        allow,
    }
}

#[test]
fn prefixes_match_whole_components() {
    assert!(under(b"/a", b"/a"));
    assert!(under(b"/a/x", b"/a"));
    assert!(!under(b"/ab", b"/a"));
    assert!(!under(b"/", b"/a"));
    assert!(under(b"/anything/below", b"/"));

    let p = Policy::new(vec![rule("/a", &[Class::Write], false)], vec![], false);
    assert_eq!(p.check(Class::Write, true, b"/ab"), Ok(()));
    assert_eq!(p.check(Class::Write, true, b"/a/x"), Err(Errno::EACCES));
    assert_eq!(p.check(Class::Read, false, b"/a/x"), Ok(()), "other class");
}

#[test]
fn longest_prefix_wins_and_deny_breaks_ties() {
    let p = Policy::new(
        vec![
            rule("/", &[Class::Read], false),
            rule("/pub", &[Class::Read], true),
            rule("/pub/x", &[Class::Read], true),
            rule("/pub/x", &[Class::Read], false),
        ],
        vec![],
        false,
    );
    assert_eq!(p.check(Class::Read, false, b"/etc"), Err(Errno::EACCES));
    assert_eq!(p.check(Class::Read, false, b"/pub/y"), Ok(()));
    assert_eq!(p.check(Class::Read, false, b"/pub/x/z"), Err(Errno::EACCES));
    let closed = Policy::new(vec![rule("/open", &[Class::Read], true)], vec![], true);
    assert_eq!(closed.check(Class::Read, false, b"/open/f"), Ok(()));
    assert_eq!(
        closed.check(Class::Read, false, b"/other"),
        Err(Errno::EACCES)
    );
}

#[test]
fn deny_answers_eacces_and_the_backend_never_runs() {
    let policy = Policy::new(vec![rule("/a", &[Class::Create], false)], vec![], false);
    let f = Fixture::new("deny", Some(policy), None);
    std::fs::create_dir(f.dir.join("a")).unwrap();
    std::fs::create_dir(f.dir.join("ab")).unwrap();
    let c = &f.client;
    let a = f.walk("a");
    let ab = f.walk("ab");
    assert_eq!(
        errno(c.mkdir_at(a, b"new", 0o755, Uid::NONE, Gid::NONE)),
        EACCES
    );
    assert!(!f.dir.join("a/new").exists(), "the backend ran");
    c.mkdir_at(ab, b"new", 0o755, Uid::NONE, Gid::NONE)
        .expect("/ab is not under /a");
    assert!(f.dir.join("ab/new").is_dir());
    assert_eq!(
        f.events.of("mkdir"),
        vec![
            ("/a/new".to_owned(), None, EACCES, true),
            ("/ab/new".to_owned(), None, 0, false),
        ]
    );
}

#[test]
fn read_only_subtrees_answer_erofs() {
    let policy = Policy::new(vec![], vec![b"/p/ro".to_vec()], false);
    let f = Fixture::new("ro", Some(policy), None);
    std::fs::create_dir_all(f.dir.join("p/ro")).unwrap();
    std::fs::write(f.dir.join("p/ro/file"), b"data").unwrap();
    let c = &f.client;
    let file = f.walk("p/ro/file");
    let (rd, _) = c.open_at(file, O_RDONLY).expect("reading is allowed");
    let mut buf = [0u8; 8];
    assert_eq!(c.pread(rd, 0, &mut buf).expect("pread"), 4);
    assert_eq!(errno(c.open_at(file, O_WRONLY)), EROFS);
    let ro = f.walk("p/ro");
    assert_eq!(
        errno(c.mkdir_at(ro, b"d", 0o755, Uid::NONE, Gid::NONE)),
        EROFS
    );
    assert_eq!(errno(c.unlink_at(ro, b"file", 0)), EROFS);
    // Moving the parent would carry the subtree out from under its rule.
    assert_eq!(errno(c.rename_at(f.root(), b"p", f.root(), b"q")), EROFS);
    assert!(f.dir.join("p/ro/file").exists());
    assert!(!f.dir.join("q").exists());
}

#[test]
fn quota_answers_edquot_and_writes_nothing() {
    let f = Fixture::new("quota", None, Some(10));
    let c = &f.client;
    let (_, fd, donated) = c
        .open_create_at(f.root(), b"f", 0o644, Uid::NONE, Gid::NONE, O_RDWR)
        .expect("create");
    assert!(donated.is_none(), "a donated FD would bypass the quota");
    assert_eq!(c.pwrite(fd, 0, b"12345678").expect("within quota"), 8);
    assert_eq!(errno(c.pwrite(fd, 8, b"abcde")), EDQUOT);
    assert_eq!(std::fs::read(f.dir.join("f")).unwrap(), b"12345678");
    assert_eq!(f.audit.bytes_written(), 8);
    assert_eq!(c.pwrite(fd, 8, b"ab").expect("exactly the quota"), 2);
    assert_eq!(f.audit.bytes_written(), 10);
    assert_eq!(
        f.events.of("write"),
        vec![
            ("/f".to_owned(), None, 0, false),
            ("/f".to_owned(), None, EDQUOT, true),
            ("/f".to_owned(), None, 0, false),
        ]
    );
}

#[test]
fn renames_update_tracked_paths() {
    let f = Fixture::new("rename", None, None);
    std::fs::create_dir(f.dir.join("d")).unwrap();
    let c = &f.client;
    let d = f.walk("d");
    let (file, fd, _) = c
        .open_create_at(d, b"f", 0o644, Uid::NONE, Gid::NONE, O_RDWR)
        .expect("create");
    c.rename_at(f.root(), b"d", f.root(), b"e").expect("rename");
    c.fstat(file.control_fd).expect("fstat control");
    c.fstat(fd).expect("fstat open");
    c.pwrite(fd, 0, b"x").expect("pwrite");
    assert_eq!(
        f.events.of("renameAt"),
        vec![("/d".to_owned(), Some("/e".to_owned()), 0, false)]
    );
    assert_eq!(
        f.events.of("stat"),
        vec![("/e/f".to_owned(), None, 0, false)]
    );
    assert_eq!(
        f.events.of("fstat"),
        vec![("/e/f".to_owned(), None, 0, false)]
    );
    assert_eq!(
        f.events.of("write"),
        vec![("/e/f".to_owned(), None, 0, false)]
    );
}

#[test]
fn events_carry_op_path_and_errno() {
    let f = Fixture::new("events", None, None);
    let c = &f.client;
    let (status, _) = c.walk(f.root(), &[b"missing"]).expect("walk");
    assert_eq!(status, WalkStatus::ComponentDoesNotExist);
    assert_eq!(
        f.events.of("walk"),
        vec![("/missing".to_owned(), None, ENOENT, false)]
    );
    let events = f.events.0.lock().unwrap();
    let mount = events
        .iter()
        .find(|e| e.op == "mount")
        .expect("mount event");
    assert_eq!((mount.connection, &*mount.path), (1, &b"/"[..]));
    let walk = events.iter().find(|e| e.op == "walk").expect("walk event");
    assert_eq!(walk.class, Class::Read);
    assert!(walk.time_ms > 0.0);
}
