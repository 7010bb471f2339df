//! The LISAFS server core.
//!
//! Mirrors gVisor's `pkg/lisafs` server: a [`Server`] owns one node tree and
//! one rename lock shared by many connections; each connection has its own
//! FDID namespace holding control FDs (positions in the tree), open FDs and
//! bound-socket FDs. Backends plug in through the traits of [`backend`];
//! the core validates requests, enforces each operation's concurrency
//! guarantee with the rename lock and per-node locks, and encodes replies.
//!
//! Lock order (outermost first): server rename lock → node op lock → node
//! link lock → node lists lock (children and control FDs).

#![warn(missing_docs)]

pub mod backend;
mod channel;
mod connection;
mod errno;
mod fd;
mod handlers;
mod name;
mod node;
mod serve;
mod service;
mod stats;
mod weak_list;

pub use backend::{
    BoundSocketFdImpl, ConnectionImpl, ControlFdImpl, NewControl, NewOpen, OpenFdImpl,
    SetStatResult,
};
pub use connection::{Connection, ConnectionOpts, Reply, Server};
pub use errno::{Errno, FsResult};
pub use serve::{serve_socket, ServeEnd};
pub use service::Service;
pub use stats::Stats;
