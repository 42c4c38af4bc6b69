//! A load generator for the flip tests: client threads that POST the example row through
//! NGINX until stopped, counting answers by status and every failed request.
//!
//! Three kinds of client:
//! - `Fresh`: a new connection per request, as the original's clients did;
//! - `KeepAlive`: reuses its connection until the server closes it, and counts a request
//!   that dies on a connection the server closed as a failure;
//! - `Careful`: the same, but before reusing an idle connection it checks whether the server
//!   has already closed it (as pooled HTTP clients do), and opens a new one if so;
//! - `Retrying`: careful, and when a *reused* connection dies before any answer, it sends the
//!   request once more on a new connection. A prediction has no side effect, so this is safe
//!   (RFC 9112 §9.3.1 allows it for idempotent requests); it is what a client of bluegreen
//!   should do, since NGINX closes idle keep-alive connections when it reloads.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bluegreen::http;

use crate::util::EXAMPLE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Fresh,
    KeepAlive,
    Careful,
    Retrying,
}

#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: u64,
    /// Answers that were not 200, with their status.
    pub bad_status: Vec<u16>,
    /// Requests that got no answer at all, with when (since the start) and why.
    pub failed: Vec<(Duration, String)>,
    /// Model versions seen in answers, in order of first appearance.
    pub versions: Vec<String>,
}

impl Tally {
    pub fn failures(&self) -> usize {
        self.bad_status.len() + self.failed.len()
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<(Client, JoinHandle<Tally>)>,
}

impl Load {
    /// Starts `n` clients of each kind in `kinds` against `addr`, all posting to `/`.
    pub fn start(addr: SocketAddr, kinds: &[Client], n: usize) -> Load {
        Load::start_paths(addr, kinds, n, &["/"])
    }

    /// Starts `n` clients of each kind in `kinds` against `addr`; each one posts to every
    /// path of `paths` in turn, starting at a different one.
    pub fn start_paths(addr: SocketAddr, kinds: &[Client], n: usize, paths: &[&str]) -> Load {
        let kinds = kinds.iter().flat_map(|kind| std::iter::repeat_n(*kind, n));
        Load::spawn(addr, kinds, paths)
    }

    /// The load issue 8 measures with: 16 plain keep-alive clients and 8 that open a
    /// connection per request (`Connection: close`), all posting to `/`.
    pub fn issue8(addr: SocketAddr) -> Load {
        Load::mixed(addr, &[(Client::KeepAlive, 16), (Client::Fresh, 8)])
    }

    /// Starts, for each `(kind, n)`, `n` clients of that kind against `addr`, all posting
    /// to `/`.
    pub fn mixed(addr: SocketAddr, mix: &[(Client, usize)]) -> Load {
        let kinds = mix
            .iter()
            .flat_map(|(kind, n)| std::iter::repeat_n(*kind, *n));
        Load::spawn(addr, kinds, &["/"])
    }

    fn spawn(addr: SocketAddr, kinds: impl Iterator<Item = Client>, paths: &[&str]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let paths: Arc<Vec<String>> = Arc::new(paths.iter().map(|p| p.to_string()).collect());
        let threads = kinds
            .enumerate()
            .map(|(i, kind)| {
                let stop = stop.clone();
                let paths = paths.clone();
                (
                    kind,
                    std::thread::spawn(move || run(addr, kind, &paths, i, &stop, started)),
                )
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the clients and returns the tallies summed per kind.
    pub fn finish(self) -> Vec<(Client, Tally)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out: Vec<(Client, Tally)> = Vec::new();
        for (kind, handle) in self.threads {
            let tally = handle.join().unwrap();
            match out.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, sum)) => {
                    sum.ok += tally.ok;
                    sum.bad_status.extend(tally.bad_status);
                    sum.failed.extend(tally.failed);
                    for v in tally.versions {
                        if !sum.versions.contains(&v) {
                            sum.versions.push(v);
                        }
                    }
                }
                None => out.push((kind, tally)),
            }
        }
        out
    }
}

/// The error-free load that every failure test runs beside the operation it tests.
pub fn assert_no_failures(results: &[(Client, Tally)]) {
    for (kind, tally) in results {
        assert!(tally.ok > 0, "{kind:?} clients got no answer at all");
        assert_eq!(tally.failures(), 0, "{kind:?}: {tally:?}");
    }
}

fn request_bytes(keep_alive: bool, path: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{EXAMPLE}",
        EXAMPLE.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes()
}

fn run(
    addr: SocketAddr,
    kind: Client,
    paths: &[String],
    first: usize,
    stop: &AtomicBool,
    started: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let keep_alive = kind != Client::Fresh;
    let requests: Vec<Vec<u8>> = paths
        .iter()
        .map(|path| request_bytes(keep_alive, path))
        .collect();
    let mut next = first;
    while !stop.load(Ordering::Relaxed) {
        let request = &requests[next % requests.len()];
        next += 1;
        if kind != Client::KeepAlive && conn.as_ref().is_some_and(|c| closed_by_server(c.get_ref()))
        {
            conn = None;
        }
        let reused = conn.is_some();
        let mut result = send(addr, &mut conn, request);
        if result.is_err() && reused && kind == Client::Retrying {
            conn = None;
            result = send(addr, &mut conn, request);
        }
        match result {
            Ok(r) => {
                if r.status == 200 {
                    tally.ok += 1;
                } else {
                    tally.bad_status.push(r.status);
                }
                if let Some(v) = r.header("x-model-version") {
                    if !tally.versions.iter().any(|s| s == v) {
                        tally.versions.push(v.to_string());
                    }
                }
                if !keep_alive
                    || r.header("connection")
                        .is_some_and(|c| c.eq_ignore_ascii_case("close"))
                {
                    conn = None;
                }
            }
            Err(e) => {
                tally.failed.push((started.elapsed(), e.to_string()));
                conn = None;
            }
        }
    }
    tally
}

/// Sends one request on `conn`, connecting first if there is none.
fn send(
    addr: SocketAddr,
    conn: &mut Option<BufReader<TcpStream>>,
    request: &[u8],
) -> std::io::Result<http::Response> {
    if conn.is_none() {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        *conn = Some(BufReader::new(stream));
    }
    let c = conn.as_mut().expect("connected above");
    c.get_mut().write_all(request)?;
    crate::util::read_response(c)
}

/// True when the peer has closed an idle connection: a non-blocking peek sees end of file.
fn closed_by_server(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    closed
}
