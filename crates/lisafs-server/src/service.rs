//! [`Service`]: a server's connections and their threads — an accept loop
//! on a Unix socket path, pre-connected sockets, and an orderly close.
//!
//! Every connection runs on its own thread (blocking I/O, one request at a
//! time, as gVisor's socket communicator does); nothing runs on a caller's
//! event loop or thread pool.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use lisafs_transport::{ShutdownHandle, SockCommunicator};
use parking_lot::Mutex;

use crate::backend::ConnectionImpl;
use crate::connection::{ConnectionOpts, Server};
use crate::serve::serve_socket;
use crate::stats::Stats;

/// Serves one backend to many connections.
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    server: Server,
    imp: Arc<dyn ConnectionImpl>,
    opts: ConnectionOpts,
    closed: AtomicBool,
    next_conn: AtomicU64,
    /// 0: unlimited.
    max_connections: AtomicUsize,
    /// Sockets of live connections, to shut them down on close.
    conns: Mutex<HashMap<u64, ShutdownHandle>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    listeners: Mutex<Vec<(Arc<UnixListener>, PathBuf)>>,
}

impl Service {
    /// A service with its own [`Server`] (node tree) serving `imp` with
    /// `opts` to every connection.
    pub fn new(imp: Arc<dyn ConnectionImpl>, opts: ConnectionOpts) -> Self {
        Service {
            inner: Arc::new(Inner {
                server: Server::new(),
                imp,
                opts,
                closed: AtomicBool::new(false),
                next_conn: AtomicU64::new(1),
                max_connections: AtomicUsize::new(0),
                conns: Mutex::new(HashMap::new()),
                threads: Mutex::new(Vec::new()),
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Live connections, FDs and nodes.
    pub fn stats(&self) -> Stats {
        self.inner.server.stats()
    }

    /// Requests served over flipcall channels since the service started.
    pub fn channel_requests(&self) -> u64 {
        self.inner.server.channel_requests()
    }

    /// Limits live connections (0: no limit). A connection over the limit
    /// is closed at once, so its client sees the socket end.
    pub fn set_max_connections(&self, max: usize) {
        self.inner.max_connections.store(max, Ordering::Relaxed);
    }

    /// Serves the pre-connected stream socket `sock` (for example one end of
    /// a socketpair handed to a sandbox) on a new thread.
    pub fn attach(&self, sock: OwnedFd) -> io::Result<()> {
        Inner::attach(&self.inner, sock)
    }

    /// Listens on the Unix socket `path` and serves every accepted
    /// connection. Fails if `path` exists (the caller decides whether a
    /// stale socket may be removed).
    pub fn listen(&self, path: &Path) -> io::Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        let listener = Arc::new(UnixListener::bind(path)?);
        self.inner
            .listeners
            .lock()
            .push((Arc::clone(&listener), path.to_path_buf()));
        let inner = Arc::clone(&self.inner);
        let thread = std::thread::Builder::new()
            .name("lisafs-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if inner.closed.load(Ordering::Acquire) {
                        break;
                    }
                    match stream {
                        Ok(s) => {
                            let _ = Inner::attach(&inner, OwnedFd::from(s));
                        }
                        // Out of FDs or an aborted handshake: keep accepting.
                        Err(e) if e.raw_os_error() != Some(22) => continue,
                        Err(_) => break,
                    }
                }
            })?;
        self.inner.threads.lock().push(thread);
        Ok(())
    }

    /// Stops accepting, shuts every connection's socket down, waits for
    /// their threads (in-flight requests finish), releases every FD and
    /// removes the socket files this service created. Idempotent.
    pub fn close(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        for (listener, path) in inner.listeners.lock().drain(..) {
            // Wakes the accept loop (accept fails with EINVAL).
            let _ = rustix::net::shutdown(listener.as_fd(), rustix::net::Shutdown::Both);
            let _ = std::fs::remove_file(path);
        }
        for handle in inner.conns.lock().values() {
            let _ = handle.shutdown();
        }
        let threads: Vec<JoinHandle<()>> = inner.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    fn attach(inner: &Arc<Inner>, sock: OwnedFd) -> io::Result<()> {
        if inner.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        let max = inner.max_connections.load(Ordering::Relaxed);
        if max != 0 && inner.conns.lock().len() >= max {
            // `sock` is dropped (closed) here.
            return Err(io::Error::from_raw_os_error(24));
        }
        let conn = inner
            .server
            .new_connection(Arc::clone(&inner.imp), inner.opts)
            .map_err(|e| io::Error::from_raw_os_error(e.0 as i32))?;
        let comm = SockCommunicator::new(sock);
        let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
        inner.conns.lock().insert(id, comm.shutdown_handle());
        let me = Arc::clone(inner);
        let thread = std::thread::Builder::new()
            .name(format!("lisafs-conn-{id}"))
            .spawn(move || {
                serve_socket(&conn, comm);
                drop(conn);
                me.conns.lock().remove(&id);
            })?;
        let mut threads = inner.threads.lock();
        threads.retain(|t| !t.is_finished());
        threads.push(thread);
        // A close that raced with this attach may have missed the socket.
        if inner.closed.load(Ordering::Acquire) {
            if let Some(h) = inner.conns.lock().get(&id) {
                let _ = h.shutdown();
            }
        }
        Ok(())
    }
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the server is closed")
}
