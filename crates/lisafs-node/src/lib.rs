//! N-API binding for lisafs.
//!
//! This crate is deliberately thin: it converts between JavaScript and Rust
//! values and delegates all protocol and serving logic to the `lisafs-*`
//! crates. Nothing in here makes decisions about the protocol itself.

#![deny(clippy::all)]

use napi_derive::napi;

mod backend;
mod client;
mod codec;
mod error;
mod server;

pub use backend::*;
pub use client::*;
pub use codec::*;
pub use server::*;

/// The version of the native addon (the `lisafs-node` crate version, which is
/// kept in lockstep with the npm package version).
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
