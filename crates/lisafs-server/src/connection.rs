//! [`Server`] and [`Connection`]: the FD table and the request dispatcher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use lisafs_wire::{ErrorResp, FdId, Message, Mid};
use parking_lot::{Mutex, RwLock};

use crate::backend::ConnectionImpl;
use crate::channel::Channels;
use crate::errno::Errno;
use crate::fd::{BoundSocketFd, ControlFd, FdEntry, OpenFd};
use crate::node::Node;
use crate::stats::{Counters, Stats};

/// Per-connection options (gVisor's `ConnectionOpts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOpts {
    /// Refuse every mutating message with EROFS.
    pub readonly: bool,
    /// Hand whole WalkStat requests to [`crate::ControlFdImpl::walk_stat`].
    pub walk_stat_supported: bool,
    /// Allow SetStat on deleted nodes.
    pub set_attr_on_deleted: bool,
    /// Allow FAllocate on deleted nodes.
    pub allocate_on_deleted: bool,
    /// Allow OpenAt on deleted nodes.
    pub open_on_deleted: bool,
    /// Most FDIDs the client may hold at once; requests that would create
    /// more fail with EMFILE. 0: no limit (gVisor has none).
    pub max_fds: usize,
    /// Most channels the client may create; then ENOMEM. 0: gVisor's rule
    /// (the CPU count clamped to [2, 4]).
    pub max_channels: usize,
}

impl ConnectionOpts {
    /// The options gVisor's host-backed server uses.
    pub fn host(readonly: bool) -> Self {
        ConnectionOpts {
            readonly,
            walk_stat_supported: true,
            set_attr_on_deleted: true,
            allocate_on_deleted: true,
            open_on_deleted: true,
            ..ConnectionOpts::default()
        }
    }
}

pub(crate) struct Shared {
    /// The server's rename lock: shared for "read" and "write" guarantees,
    /// exclusive for "global".
    pub(crate) rename_mu: RwLock<()>,
    pub(crate) root: Arc<Node>,
    pub(crate) counters: Arc<Counters>,
}

/// One served tree: a node tree and a rename lock shared by many
/// connections.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with an empty tree.
    pub fn new() -> Self {
        let counters = Arc::new(Counters::default());
        Server {
            shared: Arc::new(Shared {
                rename_mu: RwLock::new(()),
                root: Node::new_root(Arc::clone(&counters)),
                counters,
            }),
        }
    }

    /// A new connection serving `imp` at the root of this server's tree.
    /// Fails with EINVAL if `imp` advertises no message or a zero maximum
    /// message size.
    pub fn new_connection(
        &self,
        imp: Arc<dyn ConnectionImpl>,
        opts: ConnectionOpts,
    ) -> Result<Arc<Connection>, Errno> {
        let max_message_size = imp.max_message_size();
        let mids = imp.supported_messages();
        if max_message_size == 0 || mids.is_empty() {
            return Err(Errno::EINVAL);
        }
        let mut supported = vec![false; usize::from(Mid::MAX_STANDARD.0) + 1];
        for m in mids {
            if let Some(slot) = supported.get_mut(usize::from(m.0)) {
                *slot = true;
            }
        }
        self.shared.counters.connections_inc();
        Ok(Arc::new_cyclic(|me| Connection {
            me: me.clone(),
            shared: Arc::clone(&self.shared),
            imp,
            opts,
            max_message_size,
            supported: supported.into_boxed_slice(),
            table: Mutex::new(FdTable::default()),
            closing: AtomicBool::new(false),
            channels: Mutex::new(Channels::default()),
        }))
    }

    /// Live connections, FDs and nodes.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Requests served over flipcall channels since the server started.
    pub fn channel_requests(&self) -> u64 {
        self.shared.counters.channel_requests()
    }
}

/// Multiplicative hashing for FDIDs: they are sequential, so SipHash buys
/// nothing, and the identity would leave hashbrown's top bits empty.
#[derive(Default)]
pub(crate) struct FdIdHasher(u64);

impl Hasher for FdIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Default)]
pub(crate) struct FdTable {
    map: HashMap<u64, FdEntry, BuildHasherDefault<FdIdHasher>>,
    /// The last FDID handed out; never reused.
    last: u64,
}

/// A reply being built: MID, payload, and host FDs to donate with it.
#[derive(Default)]
pub struct Reply {
    /// The response MID: the request's, or [`Mid::ERROR`].
    pub mid: Mid,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Host FDs to send with the reply, in order.
    pub fds: Vec<OwnedFd>,
}

impl Reply {
    pub(crate) fn error(&mut self, errno: Errno) {
        self.mid = Mid::ERROR;
        self.payload.clear();
        self.fds.clear();
        // A 4-byte fixed message always encodes.
        let _ = ErrorResp { errno: errno.0 }.encode_to_vec(&mut self.payload);
    }
}

/// One client's view of a server: its own FDID namespace over the shared
/// tree. Requests may be handled from several threads at once (channels).
pub struct Connection {
    /// Channel threads need an owning reference to the connection.
    pub(crate) me: Weak<Connection>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) imp: Arc<dyn ConnectionImpl>,
    pub(crate) opts: ConnectionOpts,
    pub(crate) max_message_size: u32,
    supported: Box<[bool]>,
    table: Mutex<FdTable>,
    closing: AtomicBool,
    pub(crate) channels: Mutex<Channels>,
}

impl Connection {
    /// The negotiated maximum payload size.
    pub fn max_message_size(&self) -> u32 {
        self.max_message_size
    }

    /// Handles one request and fills `reply`. Never fails: every error,
    /// including a panic in a backend, becomes an Error reply, and the
    /// connection stays usable.
    pub fn handle(&self, mid: Mid, payload: &[u8], reply: &mut Reply) {
        reply.mid = mid;
        reply.payload.clear();
        reply.fds.clear();
        let result = if self.closing.load(Ordering::Acquire) {
            Err(Errno::ECONNRESET)
        } else if !self.is_supported(mid) {
            Err(Errno::EOPNOTSUPP)
        } else {
            catch_unwind(AssertUnwindSafe(|| self.dispatch(mid, payload, reply)))
                .unwrap_or(Err(Errno::EREMOTEIO))
        };
        match result {
            Ok(()) if reply.payload.len() <= self.max_message_size as usize => {}
            Ok(()) => reply.error(Errno::EIO),
            Err(errno) => reply.error(errno),
        }
    }

    /// Answers a request whose payload exceeded the maximum (the transport
    /// discarded it): EIO, as gVisor does.
    pub fn reply_too_large(&self, reply: &mut Reply) {
        reply.error(Errno::EIO);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn is_supported(&self, mid: Mid) -> bool {
        self.supported
            .get(usize::from(mid.0))
            .copied()
            .unwrap_or(false)
    }

    /// Stops serving: later requests get ECONNRESET, and every FD still
    /// registered is released (with its host resources, unless a request in
    /// flight still holds it).
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.close_channels();
        let entries: Vec<FdEntry> = {
            let mut table = self.table.lock();
            table.map.drain().map(|(_, e)| e).collect()
        };
        // Dropped here, outside the table lock.
        drop(entries);
    }

    /// Number of FDIDs registered on this connection.
    pub fn fd_count(&self) -> usize {
        self.table.lock().map.len()
    }

    /// Fails with EMFILE unless `n` more FDIDs fit under `max_fds`. Checked
    /// before the backend runs, so a refused request leaves nothing behind.
    /// Concurrent requests on channels may overshoot by a few: a soft limit.
    pub(crate) fn reserve_fds(&self, n: usize) -> Result<(), Errno> {
        let max = self.opts.max_fds;
        if max != 0 && self.table.lock().map.len() + n > max {
            return Err(Errno::EMFILE);
        }
        Ok(())
    }

    pub(crate) fn insert(&self, entry: FdEntry) -> FdId {
        let mut table = self.table.lock();
        table.last += 1;
        let id = table.last;
        table.map.insert(id, entry);
        FdId(id)
    }

    /// Removes an FDID; the caller drops the entry outside every lock.
    pub(crate) fn remove(&self, id: FdId) -> Option<FdEntry> {
        self.table.lock().map.remove(&id.0)
    }

    pub(crate) fn lookup(&self, id: FdId) -> Result<FdEntry, Errno> {
        self.table
            .lock()
            .map
            .get(&id.0)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    pub(crate) fn lookup_control(&self, id: FdId) -> Result<Arc<ControlFd>, Errno> {
        match self.lookup(id)? {
            FdEntry::Control(fd) => Ok(fd),
            _ => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn lookup_open(&self, id: FdId) -> Result<Arc<OpenFd>, Errno> {
        match self.lookup(id)? {
            FdEntry::Open(fd) => Ok(fd),
            _ => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn lookup_bound_socket(&self, id: FdId) -> Result<Arc<BoundSocketFd>, Errno> {
        match self.lookup(id)? {
            FdEntry::BoundSocket(fd) => Ok(fd),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Runs `f` with the "read" guarantee on `fd`'s node.
    pub(crate) fn safely_read<T>(&self, fd: &ControlFd, f: impl FnOnce() -> T) -> T {
        let _rename = self.shared.rename_mu.read();
        let _op = fd.node.op_mu.read();
        f()
    }

    /// Runs `f` with the "write" guarantee on `fd`'s node.
    pub(crate) fn safely_write<T>(&self, fd: &ControlFd, f: impl FnOnce() -> T) -> T {
        let _rename = self.shared.rename_mu.read();
        let _op = fd.node.op_mu.write();
        f()
    }

    /// Runs `f` with the "global" guarantee.
    pub(crate) fn safely_global<T>(&self, f: impl FnOnce() -> T) -> T {
        let _rename = self.shared.rename_mu.write();
        f()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
        self.shared.counters.connections_dec();
    }
}
