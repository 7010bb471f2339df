//! Round-trip latency of an empty-payload frame over a socket pair, between
//! two threads: the cost floor of one LISAFS RPC on the socket transport.
//!
//! `cargo run --release -p lisafs-transport --example sock_rtt [ROUNDS]`

use std::thread;
use std::time::{Duration, Instant};

use lisafs_transport::{socket_pair, RecvError, SockCommunicator};
use lisafs_wire::Mid;

const WARMUP: usize = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 10_000,
    };
    let (a, b) = socket_pair()?;
    let mut client = SockCommunicator::new(a);
    let server = SockCommunicator::new(b);

    let echo = thread::spawn(move || -> Result<(), RecvError> {
        let mut server = server;
        loop {
            let mid = match server.recv(0) {
                Ok(f) => f.mid,
                Err(RecvError::Closed) => return Ok(()),
                Err(e) => return Err(e),
            };
            server.send(mid, &[], &[])?;
        }
    });

    let mut samples = Vec::with_capacity(rounds);
    for i in 0..WARMUP + rounds {
        let start = Instant::now();
        client.send(Mid::FSYNC, &[], &[])?;
        let f = client.recv(0)?;
        let took = start.elapsed();
        if f.mid != Mid::FSYNC || !f.payload.is_empty() {
            return Err("echo returned the wrong frame".into());
        }
        if i >= WARMUP {
            samples.push(took);
        }
    }
    client.shutdown()?;
    drop(client);
    echo.join().map_err(|_| "echo thread panicked")??;

    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let total: Duration = samples.iter().sum();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    println!("sock_rtt: {rounds} empty-payload round trips, two threads, AF_UNIX SOCK_STREAM pair");
    println!(
        "  median {:.2} µs, mean {:.2} µs, p99 {:.2} µs, min {:.2} µs per round trip",
        us(pct(0.5)),
        us(total) / samples.len() as f64,
        us(pct(0.99)),
        us(samples[0]),
    );
    Ok(())
}
