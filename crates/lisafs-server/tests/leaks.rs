//! 10,000 connect → random operations → disconnect cycles against one
//! service, many of them ending abruptly (half a frame then shutdown, a
//! request sent and the socket dropped unread, FDs never closed). Then the
//! process must be back where it started: host descriptors, the service's
//! counters, and memory within a generous bound.
//!
//! This binary holds a single test: it counts `/proc/self/fd`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lisafs_client::{Client, Error, FdId, Gid, Uid};
use lisafs_server::{ConnectionOpts, Service, Stats};
use lisafs_wire::{Mid, PReadReq, StatReq};
use support::*;

const CYCLES: usize = 10_000;
const SEED: u64 = 0x1EA4_5EED;
const RSS_BOUND_KIB: u64 = 20 * 1024;
const STALL_LIMIT: Duration = Duration::from_secs(20);

const DIRS: [&str; 4] = ["d0", "d1", "d2", "d3"];
const FILES: [&str; 8] = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"];

#[derive(Default)]
struct Totals {
    client_sessions: u64,
    channel_sessions: u64,
    raw_sessions: [u64; 7],
    ops: u64,
    op_errors: u64,
    failures: Vec<String>,
}

impl Totals {
    fn fail(&mut self, cycle: usize, what: String) {
        if self.failures.len() < 30 {
            self.failures.push(format!("cycle {cycle}: {what}"));
        }
    }
}

fn connect(service: &Service) -> std::io::Result<Client> {
    let (c, s) = lisafs_transport::socket_pair()?;
    service.attach(s)?;
    Client::connect(c).map_err(std::io::Error::from)
}

/// A well-behaved client doing a few random things, then leaving in one of
/// several ways (often with FDs still open).
fn client_session(service: &Service, rng: &mut Rng, cycle: usize, t: &mut Totals) {
    t.client_sessions += 1;
    let client = match connect(service) {
        Ok(c) => c,
        Err(e) => return t.fail(cycle, format!("connect: {e}")),
    };
    if rng.chance(5) {
        t.channel_sessions += 1;
        match client.start_channels(0) {
            Ok(n) if n >= 1 => {}
            other => t.fail(cycle, format!("start_channels: {other:?}")),
        }
    }
    let root = client.root().control_fd;
    let mut controls: Vec<FdId> = vec![root];
    let mut opens: Vec<FdId> = Vec::new();
    let n_ops = rng.below(8);
    for _ in 0..n_ops {
        t.ops += 1;
        let r: Result<(), Error> = match rng.below(11) {
            0 | 1 => {
                let d = *rng.pick(&DIRS);
                let name = if rng.chance(50) {
                    *rng.pick(&FILES)
                } else {
                    *rng.pick(&DIRS)
                };
                client
                    .walk(root, &[d.as_bytes(), name.as_bytes()])
                    .map(|(_, inodes)| {
                        controls.extend(inodes.iter().map(|i| i.control_fd));
                    })
            }
            2 => {
                let f = *rng.pick(&FILES);
                client
                    .open_create_at(root, f.as_bytes(), 0o644, Uid::NONE, Gid::NONE, O_RDWR)
                    .map(|(inode, open, donated)| {
                        drop(donated);
                        controls.push(inode.control_fd);
                        opens.push(open);
                    })
            }
            3 => match client.walk(root, &[rng.pick(&FILES).as_bytes()]) {
                Ok((_, inodes)) if !inodes.is_empty() => {
                    controls.push(inodes[0].control_fd);
                    client
                        .open_at(inodes[0].control_fd, O_RDWR)
                        .map(|(open, donated)| {
                            drop(donated);
                            opens.push(open);
                        })
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            },
            4 if !opens.is_empty() => {
                let fd = *rng.pick(&opens);
                let len = rng.index(16 * 1024);
                let off = rng.below(16 * 1024);
                client.pwrite(fd, off, &vec![b'x'; len]).map(drop)
            }
            5 if !opens.is_empty() => {
                let fd = *rng.pick(&opens);
                let mut buf = vec![0u8; rng.index(64 * 1024)];
                client.pread(fd, 0, &mut buf).map(drop)
            }
            6 => client.open_at(root, O_RDONLY).and_then(|(dir, _)| {
                opens.push(dir);
                client.getdents64(dir, 65536).map(drop)
            }),
            7 => {
                let (a, b) = (*rng.pick(&FILES), *rng.pick(&FILES));
                let to = if rng.chance(50) {
                    root
                } else {
                    match client.walk(root, &[rng.pick(&DIRS).as_bytes()]) {
                        Ok((_, i)) if !i.is_empty() => {
                            controls.push(i[0].control_fd);
                            i[0].control_fd
                        }
                        _ => root,
                    }
                };
                // Move it and (usually) back, so the tree stays populated.
                let r = client.rename_at(root, a.as_bytes(), to, b.as_bytes());
                if r.is_ok() && to != root {
                    let _ = client.rename_at(to, b.as_bytes(), root, a.as_bytes());
                }
                r
            }
            8 => {
                let f = *rng.pick(&FILES);
                client.unlink_at(root, f.as_bytes(), 0)
            }
            9 => {
                // Close some FDIDs, plus some that never existed.
                let mut ids = vec![FdId(rng.below(1000) + 100)];
                for v in [&mut controls, &mut opens] {
                    if !v.is_empty() {
                        ids.push(v.swap_remove(rng.index(v.len())));
                    }
                }
                client.close(&ids)
            }
            _ => {
                let all: Vec<FdId> = controls.iter().chain(&opens).copied().collect();
                match all.is_empty() {
                    true => Ok(()),
                    false => client.fstat(*rng.pick(&all)).map(drop),
                }
            }
        };
        match r {
            Ok(()) => {}
            Err(Error::Errno(_)) => t.op_errors += 1,
            Err(e) => t.fail(cycle, format!("client operation: {e}")),
        }
    }
    match rng.below(5) {
        0 => {
            let mut all = controls;
            all.extend(opens);
            if let Err(e) = client.close(&all) {
                t.fail(cycle, format!("close all: {e}"));
            }
        }
        1 => {
            let _ = client.shutdown();
        }
        // Leave with everything still open.
        _ => {}
    }
    drop(client);
}

/// A raw client that leaves abruptly.
fn raw_session(service: &Service, rng: &mut Rng, cycle: usize, t: &mut Totals) {
    let kind = rng.index(7);
    t.raw_sessions[kind] += 1;
    let mut c = RawConn::attach(service);
    match kind {
        // Half a header, then shutdown.
        0 => {
            let _ = c.send_bytes(&frame(Mid::MOUNT.0, &[])[..4]);
            c.shutdown_both();
        }
        // A mount, a walk, then a header and half its payload, then
        // shutdown.
        1 => {
            let root = match c.mount() {
                Ok(r) => r,
                Err(o) => return t.fail(cycle, format!("raw mount: {o:?}")),
            };
            let _ = c.walk(root, &[rng.pick(&DIRS).as_bytes()]);
            let f = frame(Mid::WALK.0, &walk_payload(root, &[b"d0", b"f0"]));
            let cut = 8 + rng.index(f.len() - 9);
            let _ = c.send_bytes(&f[..cut]);
            c.shutdown_both();
        }
        // A large read requested, then the socket dropped unread.
        2 => {
            let root = match c.mount() {
                Ok(r) => r,
                Err(o) => return t.fail(cycle, format!("raw mount: {o:?}")),
            };
            if let Ok((_, inodes)) = c.walk(root, &[b"big"]) {
                if let Some(i) = inodes.first() {
                    if let Ok(open) = c.open_at(i.control_fd, O_RDONLY) {
                        let req = enc(&PReadReq {
                            offset: 0,
                            fd: open,
                            count: 1 << 20,
                        });
                        let _ = c.send_frame(Mid::PREAD.0, &req);
                    }
                }
            }
        }
        // A request, the writing side shut, the reply still read.
        3 => {
            let root = match c.mount() {
                Ok(r) => r,
                Err(o) => return t.fail(cycle, format!("raw mount: {o:?}")),
            };
            let _ = c.send_frame(Mid::FSTAT.0, &enc(&StatReq { fd: root }));
            c.shutdown_write();
            let r = c.reply(Mid::FSTAT.0);
            if !r.is_ok() {
                t.fail(cycle, format!("reply after a half-close: {r:?}"));
            }
        }
        // Connect and go before saying anything.
        4 => {}
        // Walk a lot and leave it all open.
        5 => {
            let root = match c.mount() {
                Ok(r) => r,
                Err(o) => return t.fail(cycle, format!("raw mount: {o:?}")),
            };
            for _ in 0..rng.below(6) {
                let _ = c.walk(
                    root,
                    &[rng.pick(&DIRS).as_bytes(), rng.pick(&FILES).as_bytes()],
                );
            }
        }
        // Ask for a channel and vanish without reading the reply.
        _ => {
            if c.mount().is_ok() {
                let _ = c.send_frame(Mid::CHANNEL.0, &[]);
            }
        }
    }
    drop(c);
}

#[test]
fn ten_thousand_connections_leave_nothing_behind() {
    let scratch = Scratch::new("leaks");
    for d in DIRS {
        std::fs::create_dir(scratch.path(d)).unwrap();
        for f in &FILES[..4] {
            std::fs::write(scratch.path(&format!("{d}/{f}")), vec![b'd'; 4096]).unwrap();
        }
    }
    for f in FILES {
        std::fs::write(scratch.path(f), vec![b'f'; 4096]).unwrap();
    }
    std::fs::write(scratch.path("big"), vec![b'b'; 2 << 20]).unwrap();

    let fds_before_service = open_fds();
    let service = Service::new(Arc::new(scratch.host_fs()), ConnectionOpts::host(false));
    let fd_baseline = open_fds();
    let rss_baseline = vm_rss_kib();

    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (progress, done) = (Arc::clone(&progress), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut last = 0;
            let mut since = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = progress.load(Ordering::Relaxed);
                if now != last {
                    (last, since) = (now, Instant::now());
                } else if since.elapsed() > STALL_LIMIT {
                    eprintln!(
                        "HANG: cycle {now} made no progress for {STALL_LIMIT:?}.\nThreads:\n{}",
                        thread_dump()
                    );
                    std::process::exit(101);
                }
            }
        })
    };

    let started = Instant::now();
    let mut rng = Rng::new(SEED);
    let mut t = Totals::default();
    // LEAKS_CYCLES overrides the count, for hunting slow growth by hand.
    let cycles = std::env::var("LEAKS_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CYCLES);
    let mut rss_samples = Vec::new();
    for cycle in 0..cycles {
        if cycle % (cycles / 10).max(1) == 0 {
            rss_samples.push(vm_rss_kib());
        }
        if rng.chance(75) {
            client_session(&service, &mut rng, cycle, &mut t);
        } else {
            raw_session(&service, &mut rng, cycle, &mut t);
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    let cycles_took = started.elapsed();

    // Let the last connection threads finish.
    let settled = wait_until(Duration::from_secs(20), || {
        service.stats() == Stats::default() && open_fds() == fd_baseline
    });
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    let stats = service.stats();
    let fds_after = open_fds();
    let rss_after = vm_rss_kib();
    let rss_delta = rss_after as i64 - rss_baseline as i64;
    println!("VmRSS (KiB) every tenth of the run: {rss_samples:?}");
    println!(
        "{cycles} cycles in {cycles_took:?} ({} client sessions, {} with channels, \
         raw abrupt sessions by kind {:?}); {} operations, {} answered with an errno",
        t.client_sessions, t.channel_sessions, t.raw_sessions, t.ops, t.op_errors
    );
    println!(
        "settled: {settled}; host FDs {fd_baseline} before, {fds_after} after; stats {stats:?}; \
         VmRSS {rss_baseline} KiB before, {rss_after} KiB after (delta {rss_delta} KiB)"
    );

    assert!(
        t.failures.is_empty(),
        "unexpected failures:\n  {}",
        t.failures.join("\n  ")
    );
    assert_eq!(
        stats,
        Stats::default(),
        "the service still counts connections, FDs or nodes"
    );
    assert_eq!(
        fds_after, fd_baseline,
        "host FDs leaked: {fd_baseline} open before the first cycle, {fds_after} after"
    );
    assert!(
        rss_delta < RSS_BOUND_KIB as i64,
        "VmRSS grew by {rss_delta} KiB over {cycles} cycles (bound {RSS_BOUND_KIB} KiB)"
    );

    service.close();
    drop(service);
    assert_eq!(
        open_fds(),
        fds_before_service,
        "closing the service releases its own descriptors"
    );
}
