//! The HTTP client bluegreen talks to its slots and NGINX with (deploy probes, `status`,
//! `up`'s readiness, the tests): one request on a fresh connection, over TCP or a unix
//! socket (a slot in switch mode "socket"), through `ureq` (issue 12).
//!
//! ureq reads the answer: chunked bodies with or without chunk extensions (RFC 9112 §7.1.1),
//! `Content-Length`, or a body that ends with the connection. Every limit is explicit, so a
//! broken or hostile peer can neither hold a deploy nor make it allocate what it announces:
//! the whole exchange must end within the caller's timeout, the head may be at most
//! [`MAX_HEAD_BYTES`] and the body at most [`MAX_BODY_BYTES`], whatever `Content-Length`
//! says. No redirect is followed, and a 4xx or 5xx is an answer like any other.
//!
//! ureq has no unix-socket transport; [`UnixConnector`] is one, on ureq's `unversioned`
//! transport API (which is why the version of ureq is pinned in Cargo.toml), with
//! [`Unresolved`], which looks no name up for it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};
use ureq::Agent;

use crate::switch::Endpoint;

/// The most an answer's body may hold: far above anything a slot or NGINX answers (a
/// prediction for `limits.max_rows` rows is about 250 KB), far below what would hurt.
pub const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// The most an answer's status line and headers may hold.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// An answer: status, headers (names lowercased) and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends one request on a new TCP connection and reads the whole answer within `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Response> {
    request_to(&Endpoint::Tcp(addr), method, path, body, timeout)
}

/// Sends one request on a new connection to `endpoint` and reads the whole answer within
/// `timeout` (connecting included). A body is sent as `application/json`; an empty body
/// with a method that takes none (GET) is no body. Errors are I/O errors: a timeout is
/// [`io::ErrorKind::TimedOut`], a refused connection keeps its kind, an answer over a limit
/// is [`io::ErrorKind::InvalidData`].
pub fn request_to(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Response> {
    let config = Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_response_header_size(MAX_HEAD_BYTES)
        .max_idle_connections(0)
        .no_delay(true)
        .user_agent(concat!("bluegreen/", env!("CARGO_PKG_VERSION")))
        .build();
    let (agent, authority) = match endpoint {
        Endpoint::Tcp(addr) => (Agent::new_with_config(config), addr.to_string()),
        // The Host header, as curl --unix-socket sends it; never looked up.
        Endpoint::Unix(path) => (unix_agent(config, path), "localhost".to_string()),
    };
    let uri = format!("http://{authority}{path}");
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(&uri)
        .header("content-type", "application/json");
    let body = body.filter(|b| !b.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE"));
    let answer = match body {
        Some(bytes) => agent.run(request.body(bytes).map_err(io::Error::other)?),
        None => agent.run(request.body(()).map_err(io::Error::other)?),
    };
    let mut answer = answer.map_err(|e| into_io(e, timeout))?;
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Refused before reading a byte of it, rather than after MAX_BODY_BYTES of it.
    let announced = answer.body().content_length();
    if let Some(length) = announced.filter(|n| *n > MAX_BODY_BYTES) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the answer announces {length} bytes, more than {MAX_BODY_BYTES}"),
        ));
    }
    let body = answer
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
        .map_err(|e| into_io(e, timeout))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// ureq's error as the I/O error callers tell apart by kind (`status` says "no answer within
/// …", "nothing listens on …").
fn into_io(error: ureq::Error, timeout: Duration) -> io::Error {
    match error {
        ureq::Error::Io(e) => e,
        ureq::Error::Timeout(what) => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} ms ({what})", timeout.as_millis()),
        ),
        ureq::Error::BodyExceedsLimit(limit) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the answer's body is larger than {limit} bytes"),
        ),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

/// An agent whose every request goes to the unix socket at `path`, whatever the URL's host.
fn unix_agent(config: ureq::config::Config, path: &Path) -> Agent {
    Agent::with_parts(
        config,
        UnixConnector {
            path: path.to_path_buf(),
        },
        Unresolved,
    )
}

/// The unix transport's resolver: [`UnixConnector`] ignores the address, so none is looked
/// up. ureq's default resolver would ask for the URL's host even so, and a host without
/// `localhost` in `/etc/hosts` (a minimal container: the VM test's) then fails every probe.
#[derive(Debug)]
struct Unresolved;

impl Resolver for Unresolved {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        // ureq wants at least one address; the connector never uses it.
        let mut addrs = self.empty();
        addrs.push(SocketAddr::from(([127, 0, 0, 1], 80)));
        Ok(addrs)
    }
}

/// Connects every request of its agent to one unix socket, whatever the URL's host.
struct UnixConnector {
    path: PathBuf,
}

impl fmt::Debug for UnixConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnixConnector({})", self.path.display())
    }
}

impl Connector for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<UnixTransport>, ureq::Error> {
        // A connect() to a unix socket does not wait: it succeeds into the backlog or fails
        // at once, so it needs no timeout of its own.
        let stream = UnixStream::connect(&self.path)?;
        let config = details.config;
        Ok(Some(UnixTransport {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
        }))
    }
}

/// A connection to a unix socket, for ureq.
struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

impl fmt::Debug for UnixTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnixTransport")
    }
}

/// The socket's timeout for the next read or write: what is left of the exchange's.
fn left(timeout: &NextTimeout) -> Option<Duration> {
    timeout.not_zero().map(|d| *d)
}

/// An I/O error of the stream, a timeout (the socket's timeout shows as `WouldBlock`) as
/// ureq's.
fn stream_error(e: io::Error, timeout: &NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(left(&timeout))?;
        let output = &self.buffers.output()[..amount];
        self.stream
            .write_all(output)
            .map_err(|e| stream_error(e, &timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.set_read_timeout(left(&timeout))?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match self.stream.read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(|e| stream_error(e, &timeout))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // Never reused: every agent makes one request (max_idle_connections is 0).
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    /// Reads one request (head, and a `Content-Length` body) from `stream`.
    fn read_request(stream: &mut impl Read) {
        let mut reader = BufReader::new(stream);
        let (mut line, mut length) = (String::new(), 0);
        while reader.read_line(&mut line).unwrap() > 2 {
            if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = n.trim().parse().unwrap();
            }
            line.clear();
        }
        reader.read_exact(&mut vec![0; length]).unwrap();
    }

    /// A server that reads one request, then writes `answer` and closes.
    fn answering(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_request(&mut stream);
            let _ = stream.write_all(answer);
        });
        addr
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn reads_chunked_answers_with_chunk_extensions() {
        let addr = answering(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6;x\r\n world\r\n0\r\n\r\n",
        );
        let r = request(addr, "GET", "/", None, SECOND).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    }

    #[test]
    fn refuses_a_body_larger_than_the_limit_whatever_it_announces() {
        let addr = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\nabc");
        let err = request(addr, "GET", "/", None, SECOND).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(
            err.to_string().contains("announces 1000000000000 bytes"),
            "{err}"
        );

        // Announced as nothing (read to the end of the connection), and larger.
        let big: &'static [u8] = Box::leak(
            [
                &b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"[..],
                &vec![b'x'; MAX_BODY_BYTES as usize + 1024],
            ]
            .concat()
            .into_boxed_slice(),
        );
        let err = request(answering(big), "GET", "/", None, 10 * SECOND).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn a_silent_server_is_a_timeout_and_an_error_status_an_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let err = request(addr, "GET", "/", None, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        drop(listener);
        let addr = answering(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}");
        let r = request(addr, "POST", "/x", Some(b"{}"), SECOND).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.json(), Some(serde_json::json!({})));
    }

    #[test]
    fn talks_over_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_request(&mut stream);
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\nX-Slot: blue\r\nContent-Length: 2\r\n\r\nok");
        });
        let r = request_to(&Endpoint::Unix(path), "GET", "/readyz", None, SECOND).unwrap();
        assert_eq!((r.status, r.header("X-Slot")), (200, Some("blue")));
        assert_eq!(r.body, b"ok");
    }

    #[test]
    fn a_unix_socket_needs_no_name_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_request(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        });
        // `.invalid` never resolves (RFC 6761 §6.4): only an agent that looks nothing up
        // reaches the socket.
        let config = Agent::config_builder().timeout_global(Some(SECOND)).build();
        let answer = unix_agent(config, &path)
            .get("http://bluegreen.invalid/readyz")
            .call()
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
}
