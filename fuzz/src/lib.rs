//! Shared code of the LISAFS fuzz targets (see `fuzz/README.md`).
//!
//! * [`codec`]: round-trip properties of every decoder;
//! * [`frames`]: socket-stream and channel-datagram framing checks;
//! * [`driver`]: feeds a byte string to a server `Connection` as a sequence
//!   of requests and checks the server's invariants;
//! * [`hosttree`]: the host-directory fixture of the `dispatch` target;
//! * [`memfs`]: a small in-memory backend for `dispatch_mem`;
//! * [`seeds`]: hand-written request sequences (seeds, warm-up).

pub mod codec;
pub mod driver;
pub mod frames;
pub mod hosttree;
pub mod memfs;
pub mod seeds;
