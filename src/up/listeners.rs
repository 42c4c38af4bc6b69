//! Listening sockets that `up` binds once and hands to every incarnation of their server,
//! as systemd's socket units do (`bluegreen@.socket`).
//!
//! While a slot restarts, or after it crashed, its socket stays open in `up`: connections
//! wait in the kernel's backlog for the next incarnation instead of being refused, and NGINX
//! resends a request that a dying slot dropped before answering (issue 8 §4). The public
//! socket is held the same way for NGINX, so an NGINX restart refuses no connection either,
//! and nothing else can take the port while `up` runs (issue 8 §5).
//!
//! In switch mode "socket" a slot's socket is a unix socket (`crate::switch`), held the same
//! way; its file is removed when `up` lets go of it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use tokio::net::TcpSocket;
use tokio::process::Command;

use crate::switch::Endpoint;

/// One listening socket, bound on first use and then kept for the life of `up`.
pub struct Held {
    endpoint: Endpoint,
    backlog: u32,
    socket: Option<OwnedFd>,
}

impl Held {
    /// A socket on `endpoint` with room for `backlog` pending connections; not bound yet.
    pub fn new(endpoint: Endpoint, backlog: u32) -> Held {
        Held {
            endpoint,
            backlog,
            socket: None,
        }
    }

    /// Where it listens (or will, once bound).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The socket's descriptor, binding it first if that has not succeeded yet. A bind that
    /// fails (the port is taken) is tried again at the next call, so a server whose port was
    /// busy at `up`'s start can still come up later.
    pub fn fd(&mut self) -> io::Result<RawFd> {
        if let Some(socket) = &self.socket {
            return Ok(socket.as_raw_fd());
        }
        // Out of tokio's reactor: `up` never accepts on it, its children do. The descriptor
        // stays close-on-exec; `pass` lets one child inherit it.
        let socket: OwnedFd = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let socket = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                // As every server here does: a restarted `up` rebinds at once despite
                // TIME_WAIT.
                socket.set_reuseaddr(true)?;
                socket.bind(*addr)?;
                socket.listen(self.backlog)?.into_std()?.into()
            }
            Endpoint::Unix(path) => crate::cmd::serve::listen_unix(path, self.backlog)?
                .into_std()?
                .into(),
        };
        let fd = socket.as_raw_fd();
        self.socket = Some(socket);
        Ok(fd)
    }
}

impl Drop for Held {
    /// A unix socket's file would outlive the socket, naming nothing.
    fn drop(&mut self) {
        if let (Some(_), Endpoint::Unix(path)) = (&self.socket, &self.endpoint) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Lets the process `cmd` starts inherit `fd` under the same number, by clearing its
/// close-on-exec flag in the child between fork and exec. `up`'s own copy keeps the flag, so
/// no other child gets the socket.
pub fn pass(cmd: &mut Command, fd: RawFd) {
    // SAFETY: the closure runs between fork and exec and makes one async-signal-safe system
    // call (fcntl) on a descriptor number; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
