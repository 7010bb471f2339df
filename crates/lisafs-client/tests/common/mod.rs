//! Scaffolding shared by the integration tests: a scratch tree served
//! in-process by the real server, and a scriptable fake server.

#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lisafs_client::{Client, Error, FdId, Gid, Inode, Mid, Statx, Uid};
use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionImpl, ConnectionOpts, FsResult, NewControl, Service, Stats};
use lisafs_transport::SockCommunicator;
use lisafs_wire::{Message, MidList, MountResp};

pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFLNK: u16 = 0o120000;
pub const S_IFSOCK: u16 = 0o140000;
pub const S_IFIFO: u16 = 0o010000;

pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_TRUNC: u32 = 0o1000;
pub const AT_REMOVEDIR: u32 = 0x200;
pub const SOCK_STREAM: u32 = 1;

pub const NO_UID: Uid = Uid::NONE;
pub const NO_GID: Gid = Gid::NONE;

/// Asserts that `$e` failed with `Error::Errno($errno)`.
#[macro_export]
macro_rules! assert_errno {
    ($e:expr, $errno:expr) => {
        match $e {
            Err(lisafs_client::Error::Errno(n)) if n == $errno => {}
            other => panic!(
                "{}: expected errno {}, got {:?}",
                stringify!($e),
                $errno,
                other.map(|_| ())
            ),
        }
    };
}

/// Asserts that `$e` failed with `Error::Protocol`.
#[macro_export]
macro_rules! assert_protocol {
    ($e:expr) => {
        match $e {
            Err(ref err @ lisafs_client::Error::Protocol(_)) => {
                assert_eq!(err.errno(), lisafs_wire::errno::EIO);
            }
            other => panic!(
                "{}: expected a protocol error, got {:?}",
                stringify!($e),
                other.map(|_| ())
            ),
        }
    };
}

/// A scratch directory `<tmp>/lisafs-client-<pid>-<n>-<tag>` holding
/// `root/` (the served tree); removed on drop.
pub struct Scratch {
    pub base: PathBuf,
    pub root: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("lisafs-client-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(&root).expect("create scratch root");
        Scratch { base, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// A HostFs that advertises only `mids` (the server then enforces them).
pub struct Limited {
    pub inner: HostFs,
    pub mids: Vec<Mid>,
}

impl ConnectionImpl for Limited {
    fn mount(&self) -> FsResult<(NewControl, Option<OwnedFd>)> {
        self.inner.mount()
    }
    fn supported_messages(&self) -> &[Mid] {
        &self.mids
    }
}

/// The real server serving a scratch tree in-process, and a client on it.
pub struct Harness {
    pub service: Service,
    pub client: Client,
    pub scratch: Scratch,
}

impl Harness {
    pub fn new(tag: &str) -> Harness {
        Harness::with(tag, HostOptions::default(), false)
    }

    pub fn with(tag: &str, host: HostOptions, readonly: bool) -> Harness {
        let scratch = Scratch::new(tag);
        let fs = HostFs::new(&scratch.root, host).expect("HostFs::new");
        Harness::serve(scratch, Arc::new(fs), ConnectionOpts::host(readonly))
    }

    /// Serves the scratch tree through a [`Limited`] advertising `mids`.
    pub fn limited(tag: &str, mids: Vec<Mid>) -> Harness {
        let scratch = Scratch::new(tag);
        let inner = HostFs::new(&scratch.root, HostOptions::default()).expect("HostFs::new");
        Harness::serve(
            scratch,
            Arc::new(Limited { inner, mids }),
            ConnectionOpts::host(false),
        )
    }

    fn serve(scratch: Scratch, imp: Arc<dyn ConnectionImpl>, opts: ConnectionOpts) -> Harness {
        let service = Service::new(imp, opts);
        let (client_end, server_end) = lisafs_transport::socket_pair().expect("socketpair");
        service.attach(server_end).expect("attach");
        let client = Client::connect(client_end).expect("connect");
        Harness {
            service,
            client,
            scratch,
        }
    }

    pub fn root(&self) -> FdId {
        self.client.root().control_fd
    }

    /// Walks one component from the root, which must exist.
    pub fn walk1(&self, name: &str) -> Inode {
        self.walk_from(self.root(), name)
    }

    pub fn walk_from(&self, dir: FdId, name: &str) -> Inode {
        let (status, inodes) = self
            .client
            .walk(dir, &[name.as_bytes()])
            .unwrap_or_else(|e| panic!("walk {name}: {e}"));
        assert_eq!(status, lisafs_client::WalkStatus::Success, "walk {name}");
        inodes[0]
    }

    pub fn stats(&self) -> Stats {
        self.service.stats()
    }

    /// Closes the root control FD and `fds`, checks that the server holds
    /// nothing for this client any more, then disconnects and checks that
    /// the connection is gone too.
    pub fn finish(self, fds: &[FdId]) {
        let mut all = fds.to_vec();
        all.push(self.root());
        self.client.close(&all).expect("close everything");
        let idle = Stats {
            connections: 1,
            ..Stats::default()
        };
        wait_for(|| self.stats() == idle, || format!("{:?}", self.stats()));
        drop(self.client);
        wait_for(
            || self.service.stats() == Stats::default(),
            || format!("{:?}", self.service.stats()),
        );
        self.service.close();
    }
}

/// Polls `cond` for up to five seconds.
pub fn wait_for(cond: impl Fn() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {}", what());
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn ftype(st: &Statx) -> u16 {
    st.mode & S_IFMT
}

pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// Every standard MID except Error and Flush (what the host server lists).
pub fn host_mids() -> Vec<Mid> {
    (1..=Mid::MAX_STANDARD.0)
        .map(Mid)
        .filter(|&m| m != Mid::FLUSH)
        .collect()
}

/// A directory Inode for a fake server's Mount reply.
pub fn fake_root() -> Inode {
    let mut root = Inode {
        control_fd: FdId(1),
        ..Inode::default()
    };
    root.stat.mode = S_IFDIR | 0o755;
    root
}

/// Answers the Mount request on `comm` with `max` and `mids`.
pub fn answer_mount(comm: &mut SockCommunicator, max: u32, mids: &[Mid]) {
    let frame = comm.recv(0).expect("mount request");
    assert_eq!(frame.mid, Mid::MOUNT);
    let mut out = Vec::new();
    MountResp {
        root: fake_root(),
        max_message_size: max,
        supported_mids: MidList::from_items(mids),
    }
    .encode_to_vec(&mut out)
    .unwrap();
    comm.send(Mid::MOUNT, &out, &[]).expect("send mount reply");
}

/// A fake server on a socketpair: it answers Mount with `max` and `mids`,
/// then runs `script`. Returns the connected client and the server thread
/// (join it to see the script's assertions).
pub fn fake_server(
    max: u32,
    mids: Vec<Mid>,
    script: impl FnOnce(&mut SockCommunicator) + Send + 'static,
) -> (Client, JoinHandle<()>) {
    let (client_end, server_end) = lisafs_transport::socket_pair().expect("socketpair");
    let server = std::thread::spawn(move || {
        let mut comm = SockCommunicator::new(server_end);
        answer_mount(&mut comm, max, &mids);
        script(&mut comm);
    });
    let client = Client::connect(client_end).expect("connect to the fake server");
    (client, server)
}

/// A fake server whose Mount reply is whatever `reply` sends; returns what
/// `Client::connect` made of it.
pub fn fake_mount(
    reply: impl FnOnce(&mut SockCommunicator) + Send + 'static,
) -> Result<Client, Error> {
    let (client_end, server_end) = lisafs_transport::socket_pair().expect("socketpair");
    let server = std::thread::spawn(move || {
        let mut comm = SockCommunicator::new(server_end);
        let frame = comm.recv(0).expect("mount request");
        assert_eq!(frame.mid, Mid::MOUNT);
        reply(&mut comm);
    });
    let result = Client::connect(client_end);
    server.join().expect("fake server");
    result
}

/// Receives one request on a fake server and checks its MID.
pub fn expect_request(comm: &mut SockCommunicator, mid: Mid) -> Vec<u8> {
    let frame = comm.recv(0).expect("request");
    assert_eq!(frame.mid, mid, "unexpected request MID");
    frame.payload.to_vec()
}

/// Sends a successful reply for `M` on a fake server.
pub fn reply<'a, M: Message<'a>>(comm: &mut SockCommunicator, msg: &M) {
    let mut out = Vec::new();
    msg.encode_to_vec(&mut out).unwrap();
    comm.send(M::MID, &out, &[]).expect("send reply");
}
