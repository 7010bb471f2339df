//! N-API binding for lisafs.
//!
//! This crate is deliberately thin: it converts between JavaScript and Rust
//! values and delegates all protocol logic to `lisafs-wire`. Nothing in here
//! should make decisions about the LISAFS protocol itself.

#![deny(clippy::all)]

use napi_derive::napi;

mod codec;

pub use codec::*;

/// The version of the native addon (the `lisafs-node` crate version, which is
/// kept in lockstep with the npm package version).
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
