//! The three FD kinds and their reference model.
//!
//! Reference model (gVisor's `fd.go`): the connection's FD table holds one
//! `Arc` per FDID (the client's reference; Close drops it); a [`ControlFd`]
//! holds its [`Node`]; an [`OpenFd`] and a [`BoundSocketFd`] hold their
//! `ControlFd`. Handlers clone the `Arc` for the duration of a request.
//! Resources (the backend impl and its host FDs) go when the last `Arc`
//! does.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::backend::{BoundSocketFdImpl, ControlFdImpl, OpenFdImpl};
use crate::node::Node;
use crate::stats::Counters;
use crate::weak_list::WeakList;

const S_IFMT: u16 = 0o170000;
pub(crate) const S_IFDIR: u16 = 0o040000;
pub(crate) const S_IFLNK: u16 = 0o120000;
pub(crate) const S_IFSOCK: u16 = 0o140000;

/// A handle on a node of the tree, used for path operations.
pub struct ControlFd {
    pub(crate) node: Arc<Node>,
    /// File type bits, fixed at creation.
    ftype: u16,
    pub(crate) imp: Box<dyn ControlFdImpl>,
    /// Open FDs made from this control FD, for rename notifications.
    open_fds: Mutex<WeakList<OpenFd>>,
}

impl ControlFd {
    /// Creates a control FD on `node` and registers it there.
    pub(crate) fn new(
        node: Arc<Node>,
        mode: u16,
        imp: Box<dyn ControlFdImpl>,
        counters: &Arc<Counters>,
    ) -> Arc<Self> {
        counters.control_inc();
        let fd = Arc::new(ControlFd {
            node,
            ftype: mode & S_IFMT,
            imp,
            open_fds: Mutex::new(WeakList::Empty),
        });
        fd.node.insert_fd(&fd);
        fd
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.ftype == S_IFDIR
    }
    pub(crate) fn is_symlink(&self) -> bool {
        self.ftype == S_IFLNK
    }
    pub(crate) fn is_socket(&self) -> bool {
        self.ftype == S_IFSOCK
    }

    /// Tells this FD's impl and its open FDs' impls that a rename moved it.
    ///
    /// Precondition: the rename lock is held exclusively.
    pub(crate) fn renamed_global(&self) {
        self.imp.renamed();
        let open: Vec<Arc<OpenFd>> = self.open_fds.lock().upgrade_all();
        for ofd in &open {
            ofd.imp.renamed();
        }
    }
}

impl Drop for ControlFd {
    fn drop(&mut self) {
        self.node.remove_fd(self);
        self.node.counters.control_dec();
        // `imp` (host resources) and `node` drop after this, outside any lock.
    }
}

/// An open file made from a control FD.
pub struct OpenFd {
    pub(crate) control: Arc<ControlFd>,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) imp: Box<dyn OpenFdImpl>,
}

impl OpenFd {
    /// Creates an open FD on `control` with access mode from `flags`.
    pub(crate) fn new(control: Arc<ControlFd>, flags: u32, imp: Box<dyn OpenFdImpl>) -> Arc<Self> {
        const O_ACCMODE: u32 = 3;
        let mode = flags & O_ACCMODE;
        control.node.counters.open_inc();
        let fd = Arc::new(OpenFd {
            readable: mode == 0 || mode == 2,
            writable: mode == 1 || mode == 2,
            control,
            imp,
        });
        fd.control
            .open_fds
            .lock()
            .push(Arc::downgrade(&fd), |w| w.strong_count() > 0);
        fd
    }
}

impl Drop for OpenFd {
    fn drop(&mut self) {
        let me: *const OpenFd = self;
        self.control
            .open_fds
            .lock()
            .retain(|w| Weak::as_ptr(w) != me && w.strong_count() > 0);
        self.control.node.counters.open_dec();
    }
}

/// A bound host socket made by BindAt.
pub struct BoundSocketFd {
    pub(crate) control: Arc<ControlFd>,
    pub(crate) imp: Box<dyn BoundSocketFdImpl>,
}

impl BoundSocketFd {
    pub(crate) fn new(control: Arc<ControlFd>, imp: Box<dyn BoundSocketFdImpl>) -> Arc<Self> {
        control.node.counters.bound_inc();
        Arc::new(BoundSocketFd { control, imp })
    }
}

impl Drop for BoundSocketFd {
    fn drop(&mut self) {
        self.control.node.counters.bound_dec();
    }
}

/// One entry of a connection's FD table.
#[derive(Clone)]
pub(crate) enum FdEntry {
    Control(Arc<ControlFd>),
    Open(Arc<OpenFd>),
    BoundSocket(Arc<BoundSocketFd>),
}

#[cfg(test)]
mod tests {
    /// What an idle control FD costs, in the structures the core owns
    /// (each lives in its own heap block; see the memory part of the
    /// benchmarks). A guard against regressions, not a timing.
    #[test]
    fn idle_fd_structures_stay_small() {
        use std::mem::size_of;
        assert!(size_of::<crate::node::Node>() <= 88, "Node grew");
        assert!(size_of::<super::ControlFd>() <= 56, "ControlFd grew");
        assert!(size_of::<super::FdEntry>() <= 16, "FdEntry grew");
    }
}
