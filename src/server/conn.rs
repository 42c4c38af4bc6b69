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

use std::future::Future;
use std::io::{self, Write};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use super::App;

/// A listening socket a slot accepts on: TCP (switch mode "reload") or unix ("socket").
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<Self::Io> {
        TcpListener::accept(self).await.map(|(stream, _)| stream)
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
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
