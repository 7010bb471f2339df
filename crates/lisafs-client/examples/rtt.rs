//! Round-trip latency between our client and our server in one process, on
//! two threads: an empty RPC (a Walk of no components: dispatch, no
//! syscall) and FStat of the root (one statx), over the socket and over
//! flipcall channels with and without spinning.
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("lisafs-rtt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
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
        drop(client);
        service.close();
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
