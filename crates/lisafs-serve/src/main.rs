//! `lisafs-serve --root DIR (--fd N | --socket PATH) [--readonly] [--host-uds]`
//!
//! With `--fd N`, serves the one connection on the inherited socket N (one
//! end of a socketpair) and, when the client goes away, prints one JSON line
//! with the server's live counters and the process's open host FD count
//! before and after, then exits. Interop tests read that line to prove
//! that nothing leaked. With `--socket PATH`, accepts connections forever,
//! one thread each.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::sync::Arc;

use lisafs_host::{HostFs, HostOptions};
use lisafs_server::{serve_socket, ConnectionOpts, ServeEnd, Server};
use lisafs_transport::SockCommunicator;

struct Args {
    root: String,
    fd: Option<i32>,
    socket: Option<String>,
    readonly: bool,
    host_uds: bool,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("lisafs-serve: {msg}");
    eprintln!("usage: lisafs-serve --root DIR (--fd N | --socket PATH) [--readonly] [--host-uds]");
    ExitCode::from(2)
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        root: String::new(),
        fd: None,
        socket: None,
        readonly: false,
        host_uds: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => args.root = it.next().ok_or("--root needs a directory")?,
            "--fd" => {
                let v = it.next().ok_or("--fd needs a number")?;
                args.fd = Some(v.parse().map_err(|_| format!("--fd: not a number: {v}"))?);
            }
            "--socket" => args.socket = Some(it.next().ok_or("--socket needs a path")?),
            "--readonly" => args.readonly = true,
            "--host-uds" => args.host_uds = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.root.is_empty() {
        return Err("--root is required".into());
    }
    if args.fd.is_some() == args.socket.is_some() {
        return Err("exactly one of --fd and --socket is required".into());
    }
    Ok(args)
}

fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let opts = HostOptions {
        host_uds_connect: args.host_uds,
        host_uds_create: args.host_uds,
        ..HostOptions::default()
    };
    let fs = match HostFs::new(&args.root, opts) {
        Ok(fs) => Arc::new(fs),
        Err(e) => {
            eprintln!("lisafs-serve: cannot serve {}: {e}", args.root);
            return ExitCode::from(1);
        }
    };
    let server = Server::new();
    let conn_opts = ConnectionOpts::host(args.readonly);

    if let Some(raw) = args.fd {
        // SAFETY: the caller handed us this descriptor (--fd) and nothing
        // else in this process owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        let before = open_fd_count();
        // `fs` stays alive until after the count: its root and /proc FDs are
        // the server's, not the connection's.
        let end = match server.new_connection(Arc::clone(&fs) as _, conn_opts) {
            Ok(conn) => serve_socket(&conn, SockCommunicator::new(sock)),
            Err(e) => {
                eprintln!("lisafs-serve: {e}");
                return ExitCode::from(1);
            }
        };
        // The connection is gone; its socket was closed with it.
        let after = open_fd_count() + 1;
        let s = server.stats();
        let end = match end {
            ServeEnd::Closed => "closed".to_string(),
            ServeEnd::Truncated => "truncated".to_string(),
            ServeEnd::Io(e) => format!("io: {e}"),
        };
        println!(
            "{{\"end\":\"{end}\",\"connections\":{},\"controlFds\":{},\"openFds\":{},\"boundSocketFds\":{},\"nodes\":{},\"channelRequests\":{},\"hostFdsBefore\":{before},\"hostFdsAfter\":{after}}}",
            s.connections, s.control_fds, s.open_fds, s.bound_socket_fds, s.nodes, server.channel_requests()
        );
        return ExitCode::SUCCESS;
    }

    let path = args.socket.unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lisafs-serve: cannot listen on {path}: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("lisafs-serve: serving {} on {path}", args.root);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("lisafs-serve: accept: {e}");
                continue;
            }
        };
        match server.new_connection(Arc::clone(&fs) as _, conn_opts) {
            Ok(conn) => {
                std::thread::spawn(move || {
                    serve_socket(&conn, SockCommunicator::new(OwnedFd::from(stream)))
                });
            }
            Err(e) => eprintln!("lisafs-serve: {e}"),
        }
    }
    ExitCode::SUCCESS
}
