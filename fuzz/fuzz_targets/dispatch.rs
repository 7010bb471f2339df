//! The server core plus the host backend: one `Connection` per input over a
//! `HostFs` serving a fixed temporary tree (see `lisafs_fuzz::hosttree`),
//! fed a sequence of frames (see `lisafs_fuzz::driver`).
//!
//! Byte 0 configures the connection:
//! * bit 0: HostOptions host_uds_connect + host_uds_create
//! * bit 1: HostOptions donate_mount_fd
//! * bit 2: HostOptions host_fifo_open
//! * bit 3: read-only connection
//! * bit 4: `ConnectionOpts::host` (WalkStat by the backend, operations on
//!   deleted files allowed) instead of the defaults
//! * bit 5: max_fds = 8
//! * bit 6: max_channels = 1
//! * bit 7: do not send Mount first (otherwise FDID 1 is the root)
//!
//! After every input: no host FD leaked (counted in /proc/self/fd), the
//! directory outside the served root is untouched, and the tree is reset if
//! the input may have changed it.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use lisafs_fuzz::{driver, hosttree::HostTree};
use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionImpl, ConnectionOpts, Server};

struct Ctx {
    server: Server,
    hosts: Vec<Arc<dyn ConnectionImpl>>,
    tree: HostTree,
}

fn ctx() -> &'static Mutex<Ctx> {
    static CTX: OnceLock<Mutex<Ctx>> = OnceLock::new();
    CTX.get_or_init(|| {
        lisafs_fuzz::hosttree::limit_file_size();
        let tree = HostTree::create();
        let hosts = (0..8u8)
            .map(|b| {
                let opts = HostOptions {
                    host_uds_connect: b & 1 != 0,
                    host_uds_create: b & 1 != 0,
                    donate_mount_fd: b & 2 != 0,
                    host_fifo_open: b & 4 != 0,
                };
                Arc::new(HostFs::new(&tree.root, opts).expect("HostFs::new"))
                    as Arc<dyn ConnectionImpl>
            })
            .collect();
        let server = Server::new();
        let mut c = Ctx {
            server,
            hosts,
            tree,
        };
        // Warm-up: lets anything lazily initialised (thread-locals, the
        // allocator's caches of FDs, ...) settle before FDs are counted.
        let warm = lisafs_fuzz::seeds::warmup();
        for cfg in [0u8, 0x17] {
            for input in &warm {
                run(&mut c, cfg, input);
            }
        }
        Mutex::new(c)
    })
}

fn run(c: &mut Ctx, cfg: u8, frames: &[u8]) {
    let imp = Arc::clone(&c.hosts[usize::from(cfg & 7)]);
    let mut opts = if cfg & 0x10 != 0 {
        ConnectionOpts::host(false)
    } else {
        ConnectionOpts::default()
    };
    opts.readonly = cfg & 0x08 != 0;
    if cfg & 0x20 != 0 {
        opts.max_fds = 8;
    }
    if cfg & 0x40 != 0 {
        opts.max_channels = 1;
    }
    let out = driver::run(&c.server, imp, opts, cfg & 0x80 == 0, frames);
    c.tree.after_input(out.mutated);
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, frames)) = data.split_first() else {
        return;
    };
    let mut c = ctx().lock().unwrap_or_else(|e| e.into_inner());
    let before = driver::count_fds();
    run(&mut c, cfg, frames);
    let after = driver::count_fds();
    assert_eq!(
        after, before,
        "host FDs leaked: {before} before the input, {after} after"
    );
});
