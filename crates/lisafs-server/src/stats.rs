//! Live counters of a server, cheap enough to keep always on.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by a server's nodes, FDs and connections.
#[derive(Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    control_fds: AtomicU64,
    open_fds: AtomicU64,
    bound_socket_fds: AtomicU64,
    nodes: AtomicU64,
    channel_requests: AtomicU64,
}

macro_rules! counter {
    ($field:ident, $inc:ident, $dec:ident) => {
        pub(crate) fn $inc(&self) {
            self.$field.fetch_add(1, Ordering::Relaxed);
        }
        pub(crate) fn $dec(&self) {
            self.$field.fetch_sub(1, Ordering::Relaxed);
        }
    };
}

impl Counters {
    counter!(connections, connections_inc, connections_dec);
    counter!(control_fds, control_inc, control_dec);
    counter!(open_fds, open_inc, open_dec);
    counter!(bound_socket_fds, bound_inc, bound_dec);
    counter!(nodes, nodes_inc, nodes_dec);

    pub(crate) fn channel_request(&self) {
        self.channel_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn channel_requests(&self) -> u64 {
        self.channel_requests.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            connections: self.connections.load(Ordering::Relaxed),
            control_fds: self.control_fds.load(Ordering::Relaxed),
            open_fds: self.open_fds.load(Ordering::Relaxed),
            bound_socket_fds: self.bound_socket_fds.load(Ordering::Relaxed),
            nodes: self.nodes.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a server's live objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections not yet closed.
    pub connections: u64,
    /// Live control FDs (including those only kept alive by open FDs).
    pub control_fds: u64,
    /// Live open FDs.
    pub open_fds: u64,
    /// Live bound-socket FDs.
    pub bound_socket_fds: u64,
    /// Nodes in the tree below the root (the root lives as long as the
    /// server).
    pub nodes: u64,
}
