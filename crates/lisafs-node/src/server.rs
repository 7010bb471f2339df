//! `Server`: serving a host directory over LISAFS from Node. The service,
//! its accept loop and its connection threads live in `lisafs-server`;
//! none of them runs on Node's event loop or libuv's thread pool.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionOpts, Service};
use napi::bindgen_prelude::Object;
use napi::Env;
use napi_derive::napi;

use crate::error::Fail;

/// Options of a {@link Server}.
#[napi(object)]
pub struct ServerOptions {
    /// The directory to serve. Clients can reach nothing outside it.
    pub root: String,
    /// Refuse every mutation with EROFS. Default false.
    pub readonly: Option<bool>,
    /// Let clients connect to, create and accept on host Unix sockets inside
    /// the root. Default false (EPERM).
    pub host_uds: Option<bool>,
    /// Let clients open host FIFOs inside the root. Default false (EPERM).
    pub host_fifo: Option<bool>,
}

/// Live objects of a server.
#[napi(object)]
pub struct ServerStats {
    /// Connections being served.
    pub connections: u32,
    /// Control FDs (handles on tree positions) across all connections.
    pub control_fds: u32,
    /// Open FDs across all connections.
    pub open_fds: u32,
    /// Bound-socket FDs across all connections.
    pub bound_socket_fds: u32,
    /// Nodes of the tree below the root.
    pub nodes: u32,
}

/// Services that listen or serve a connection, kept alive until closed: like
/// a listening `net.Server`, a server must not stop because its JS object
/// became unreachable and was collected.
static LIVE: Mutex<Vec<Arc<Service>>> = Mutex::new(Vec::new());

fn keep_alive(service: &Arc<Service>) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    if !live.iter().any(|s| Arc::ptr_eq(s, service)) {
        live.push(Arc::clone(service));
    }
}

fn release(service: &Arc<Service>) {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|s| !Arc::ptr_eq(s, service));
}

/// A LISAFS server of one host directory. Each connection mounts the root.
#[napi]
pub struct Server {
    service: Arc<Service>,
}

/// A count for JavaScript, saturated at `u32::MAX`.
pub(crate) fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl From<lisafs_server::Stats> for ServerStats {
    fn from(s: lisafs_server::Stats) -> Self {
        ServerStats {
            connections: clamp(s.connections),
            control_fds: clamp(s.control_fds),
            open_fds: clamp(s.open_fds),
            bound_socket_fds: clamp(s.bound_socket_fds),
            nodes: clamp(s.nodes),
        }
    }
}

#[napi]
impl Server {
    /// Opens `options.root` (which must be a directory) for serving. Throws
    /// with the errno as `code` (`'ENOENT'`, `'ENOTDIR'`...) if it cannot.
    #[napi(constructor)]
    pub fn new(env: Env, options: ServerOptions) -> napi::Result<Self> {
        let opts = HostOptions {
            host_uds_connect: options.host_uds.unwrap_or(false),
            host_uds_create: options.host_uds.unwrap_or(false),
            host_fifo_open: options.host_fifo.unwrap_or(false),
            ..HostOptions::default()
        };
        let fs = HostFs::new(&options.root, opts)
            .map_err(|e| Fail::io(&format!("serve {}", options.root), &e).throw(&env))?;
        let conn_opts = ConnectionOpts::host(options.readonly.unwrap_or(false));
        Ok(Server {
            service: Arc::new(Service::new(Arc::new(fs), conn_opts)),
        })
    }

    /// Listens on the Unix socket `socketPath`; every accepted connection is
    /// served on its own thread. Throws `EADDRINUSE` if the path exists.
    /// The socket file is removed by {@link Server.close}.
    #[napi]
    pub fn listen(&self, env: Env, socket_path: String) -> napi::Result<()> {
        self.service
            .listen(Path::new(&socket_path))
            .map_err(|e| Fail::io(&format!("listen {socket_path}"), &e).throw(&env))?;
        keep_alive(&self.service);
        Ok(())
    }

    /// Serves an already connected stream socket, for example one end of
    /// {@link socketPair} handed to a sandbox. The server takes ownership of
    /// `fd` and closes it when the connection ends.
    #[napi]
    pub fn attach(&self, env: Env, fd: i32) -> napi::Result<()> {
        if fd < 0 {
            return Err(Fail::range("fd must be a non-negative file descriptor").throw(&env));
        }
        // SAFETY: the caller hands this descriptor over (documented above);
        // from here on the service is its only owner.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        self.service
            .attach(sock)
            .map_err(|e| Fail::io("attach", &e).throw(&env))
    }

    /// Stops accepting, disconnects every client, waits for requests in
    /// flight, releases every FD and removes the socket files. Resolves when
    /// done; idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred::<(), _>()?;
        let service = Arc::clone(&self.service);
        std::thread::Builder::new()
            .name("lisafs-close".into())
            .spawn(move || {
                service.close();
                release(&service);
                deferred.resolve(|_| Ok(()));
            })
            .map_err(|e| napi::Error::from_reason(format!("close: {e}")))?;
        Ok(promise)
    }

    /// Live connections, FDs and nodes.
    #[napi]
    pub fn stats(&self) -> ServerStats {
        self.service.stats().into()
    }
}

/// A connected pair of Unix stream sockets (close-on-exec), as raw file
/// descriptors: give one to {@link Server.attach} and the other to a
/// client (for example as a child process's stdio).
#[napi(ts_return_type = "[number, number]")]
pub fn socket_pair(env: Env) -> napi::Result<Vec<i32>> {
    let (a, b) =
        lisafs_transport::socket_pair().map_err(|e| Fail::io("socketpair", &e).throw(&env))?;
    Ok(vec![a.into_raw_fd(), b.into_raw_fd()])
}
