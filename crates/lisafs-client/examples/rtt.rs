//! Round-trip latency between our client and our server in one process, on
//! two threads: an empty RPC (a Walk of no components: dispatch, no
//! syscall) and FStat of the root (one statx), over the socket and over
//! flipcall channels with and without spinning; then the throughput of a
//! 1 MiB PRead (our client, one call at a time).
//!
//! `cargo run --release -p lisafs-client --example rtt [iterations]`

use std::sync::Arc;
use std::time::Instant;

use lisafs_client::Client;
use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{ConnectionOpts, Service};

fn measure(iters: usize, mut op: impl FnMut()) -> (f64, f64) {
    for _ in 0..iters / 10 {
        op();
    }
    let mut samples: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            op();
            t.elapsed().as_nanos() as f64 / 1000.0
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

/// CPU time (user + system) of this process, in seconds.
fn cpu_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("lisafs-rtt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("big"), vec![7u8; 1 << 20])?;
    let fs = Arc::new(HostFs::new(&dir, HostOptions::default())?);
    println!(
        "{:<26} {:>16} {:>10} {:>16} {:>10}",
        "transport", "empty RPC med µs", "p99", "FStat med µs", "p99"
    );
    for (name, spin) in [
        ("socket", None),
        ("channel, futex only", Some(0)),
        (
            "channel, spin then futex",
            Some(lisafs_transport::flipcall::DEFAULT_SPIN_LIMIT),
        ),
    ] {
        let service = Service::new(Arc::clone(&fs) as _, ConnectionOpts::host(false));
        let (a, b) = lisafs_transport::socket_pair()?;
        service.attach(b)?;
        let client = Client::connect(a)?;
        if let Some(spin) = spin {
            client.start_channels(spin)?;
        }
        let root = client.root().control_fd;
        let (em, ep) = measure(iters, || drop(client.walk(root, &[])));
        let (sm, sp) = measure(iters, || drop(client.fstat(root)));
        println!("{name:<26} {em:>16.2} {ep:>10.2} {sm:>16.2} {sp:>10.2}");
        let (_, inodes) = client.walk(root, &[b"big"])?;
        let file = inodes.first().ok_or("walk of big failed")?.control_fd;
        let (fd, _) = client.open_at(file, 0)?;
        let mut buf = vec![0u8; 1 << 20];
        let (pm, _) = measure(iters.clamp(1, 2000), || drop(client.pread(fd, 0, &mut buf)));
        println!(
            "{:<26} {:>16.2} GB/s 1 MiB PRead (median {pm:.1} µs)",
            "",
            (1u64 << 20) as f64 / pm / 1000.0
        );
        if spin.is_some() {
            // An idle channel must cost nothing: both sides end up asleep
            // on the futex once the spin budget runs out.
            let before = cpu_time();
            std::thread::sleep(std::time::Duration::from_secs(2));
            let used = cpu_time() - before;
            println!("{:<26} {:>16.3} ms of CPU over 2 s idle", "", used * 1000.0);
        }
        drop(client);
        service.close();
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
