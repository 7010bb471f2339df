//! The server core against `lisafs_fuzz::memfs`, a fresh in-memory tree per
//! input: no syscalls, so it runs much faster than `dispatch` and explores
//! the core's own logic (FD table, node tree, renames, deletion, limits).
//! Frames as in `lisafs_fuzz::driver`. Byte 0 configures the connection:
//! * bit 0: read-only connection
//! * bit 1: `ConnectionOpts::host` (backend WalkStat, ops on deleted files)
//! * bit 2: max_fds = 8
//! * bit 3: max_message_size = 4096 instead of gVisor's default
//! * bit 4: max_channels = 1
//! * bit 7: do not send Mount first (otherwise FDID 1 is the root)
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use lisafs_fuzz::{driver, memfs::MemFs};
use lisafs_server::{ConnectionOpts, Server};

fuzz_target!(|data: &[u8]| {
    static SERVER: OnceLock<Server> = OnceLock::new();
    let server = SERVER.get_or_init(Server::new);
    let Some((&cfg, frames)) = data.split_first() else {
        return;
    };
    let mut opts = if cfg & 2 != 0 {
        ConnectionOpts::host(false)
    } else {
        ConnectionOpts::default()
    };
    opts.readonly = cfg & 1 != 0;
    if cfg & 4 != 0 {
        opts.max_fds = 8;
    }
    if cfg & 0x10 != 0 {
        opts.max_channels = 1;
    }
    let max = if cfg & 8 != 0 {
        4096
    } else {
        lisafs_wire::DEFAULT_MAX_MESSAGE_SIZE
    };
    driver::run(
        server,
        Arc::new(MemFs::new(max)),
        opts,
        cfg & 0x80 == 0,
        frames,
    );
});
