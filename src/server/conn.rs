//! The slot's connections: accepting them, HTTP/1.1 on each, the timeouts that keep a slow
//! client from holding one, and closing them all gracefully on shutdown.
//!
//! `axum::serve` does none of the timeouts (it sets no timer, so hyper's header timeout stays
//! off), hence this loop over hyper's own connection builder (issue 8, §9).
//!
//! On shutdown (SIGTERM from systemd or `bluegreen up`), as hyper's `graceful_shutdown`
//! defines it: the listener is dropped (under systemd the socket itself stays open, so new
//! connections wait for the next process), a connection idle between requests is closed
//! at once (a FIN, not a reset), and one with a request in flight finishes that request,
//! answers it with `Connection: close`, then closes. NGINX sends a request again if it went out
//! on an idle connection at the very instant the slot closed it (`proxy_next_upstream` in
//! the site), so no client sees that race.
//!
//! The listener is TCP, or in switch mode "socket" a unix socket (`crate::switch`).
//!
//! **On a unix socket the slot lets NGINX close its connections first.** Writing a request
//! to a cached unix connection that the slot closed fails at once (EPIPE), so NGINX tries the
//! next `server` line within the same turn of its event loop, takes the next cached
//! connection, just as dead, and after [`crate::nginx::ATTEMPTS`] of them answers 502 (the
//! VM test saw 2–3 per `systemctl restart bluegreen.target` under load: "writev() failed (32:
//! Broken pipe)" seven times, then "no live upstreams"). Over TCP the write succeeds and the
//! failure shows up later, after NGINX's event loop has dropped the other closed connections
//! from its cache. So on shutdown on a unix socket the slot first answers every request with
//! `Connection: close` (NGINX uses each connection at most once more) and waits until NGINX
//! has closed its connections, idle ones after its `keepalive_timeout`
//! ([`crate::nginx::UPSTREAM_IDLE_SECS`]), at most [`DRAIN_LIMIT`]; new connections meanwhile
//! wait in the held socket for the next process.

use std::future::Future;
use std::io::{self, Write};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use super::App;

/// How long a slot on a unix socket waits on shutdown for NGINX to close its connections
/// (see the module doc): NGINX's idle limit on them, and a second to spare.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(crate::nginx::UPSTREAM_IDLE_SECS + 1);

/// A listening socket a slot accepts on: TCP (switch mode "reload") or unix ("socket").
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Whether to let NGINX close the connections before shutting down (see the module doc).
    const DRAIN: bool;
    fn accept(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    const DRAIN: bool = false;
    async fn accept(&self) -> io::Result<Self::Io> {
        TcpListener::accept(self).await.map(|(stream, _)| stream)
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    const DRAIN: bool = true;
    async fn accept(&self) -> io::Result<Self::Io> {
        UnixListener::accept(self).await.map(|(stream, _)| stream)
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight
/// finish before returning.
pub async fn run<L: Accept>(
    listener: L,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    // Counted from the moment a connection opens or its previous answer was sent, so it also
    // bounds how long an idle keep-alive connection stays open. A client that has not sent a
    // whole request head by then gets no answer, only the connection closed, as NGINX does
    // with `client_header_timeout`.
    http.timer(TokioTimer::new())
        .header_read_timeout(app.timeouts.header);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), app.clone()));
        tokio::spawn(async move {
            // A client that breaks its connection is that client's business.
            let _ = connection.await;
        });
    }
    drop(listener);
    if L::DRAIN {
        app.state.set_closing(true);
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        while graceful.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    graceful.shutdown().await;
    Ok(())
}

/// After a failed accept: go on at once when only that connection failed; otherwise (out of
/// file descriptors, most likely) say so and wait a second, instead of spinning, for
/// connections to close.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    // Best effort: a closed stderr must not stop the slot.
    let _ = writeln!(
        io::stderr().lock(),
        "cannot accept a connection: {e}; retrying in 1 s"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
}
