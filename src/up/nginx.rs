//! `up`'s own NGINX: its configuration files under `state_dir/nginx`, and the child process,
//! supervised as systemd supervises `nginx.service`.
//!
//! `up` binds the public port itself and hands the socket to NGINX (see
//! [`super::listeners`]). NGINX takes listening sockets from its `NGINX` environment
//! variable, `"<fd>;<fd>;…"`: `ngx_add_inherited_sockets` in `src/core/nginx.c` reads it
//! at start, and `ngx_init_cycle` uses an inherited socket for the `listen` directive with the
//! same address instead of binding one. That is NGINX's binary-upgrade mechanism; it is not a
//! documented interface, but NGINX's own Docker image relies on it for systemd socket
//! activation (nginx/docker-nginx#703), and `tests/it/faults/nginx_crash.rs` checks it with
//! the NGINX installed here. What it buys:
//! - only the NGINX that `up` started can answer on the port, so its readiness cannot come
//!   from anyone else, and a port that something else holds stops `up` at start with a clear
//!   error (issue 8 §5: the next `up` took a dead `up`'s stray workers for its own NGINX);
//! - while NGINX restarts, connections wait in the socket's backlog instead of being refused.
//!
//! When the master dies, its workers live on (nothing tells them), still accepting on the
//! port and answering. `up` stops them gracefully (SIGQUIT: no new connections, requests in
//! flight finish) before it starts a new NGINX, and kills what is left once
//! `worker_shutdown_timeout` has passed. They are found by their process group: `up` starts
//! the master as the leader of a group of its own, and workers inherit it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::time::{sleep, Instant};

use super::child;
use super::listeners::{self, Held};
use crate::config::Config;
use crate::http;
use crate::layout::Layout;
use crate::nginx::{self, Nginx};
use crate::slot::Slot;
use tracing::{info, warn};

/// NGINX's own default `listen` backlog on Linux (NGX_LISTEN_BACKLOG; the `listen`
/// directive's docs), so the held socket queues as many connections as NGINX's would.
const PUBLIC_BACKLOG: u32 = 511;
/// How long a new NGINX has to answer on the public port.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause before a failed NGINX start is tried again; it doubles up to the maximum.
const RESTART_FIRST: Duration = Duration::from_millis(100);
const RESTART_MAX: Duration = Duration::from_secs(5);
/// How long a stopped NGINX has to finish its requests before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Fails with an install hint when the NGINX binary cannot run at all.
pub fn check_installed(nginx: &Nginx) -> anyhow::Result<()> {
    match std::process::Command::new(&nginx.binary)
        .arg("-v")
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "cannot run NGINX ({}): {e}; hint: install it with `sudo apt install nginx-light` (or nginx), or set nginx.binary in the config",
            nginx.binary.display()
        ),
    }
}

/// Writes the main configuration and the site that `up`'s NGINX runs with.
pub fn write_files(config: &Config, layout: &Layout) -> anyhow::Result<()> {
    let dir = layout.nginx_dir();
    fs_err::create_dir_all(dir.join("tmp"))?;
    let site = nginx::render_site(config, &layout.upstream_include());
    for (name, text) in [
        ("site.conf", site),
        ("nginx.conf", nginx::render_local_main(config, layout)),
    ] {
        crate::fsutil::write_atomic(&dir.join(name), text.as_bytes())
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    Ok(())
}

/// The address the site's `listen {public_port};` means to NGINX: every IPv4 address. The
/// held socket must have exactly this address, or NGINX would not take it.
pub fn public_listen_addr(config: &Config) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], config.public_port))
}

/// `up`'s NGINX: the public socket, the master process, and what it takes to restart it.
pub struct Front {
    nginx: Nginx,
    config: Config,
    listener: Held,
    child: Option<Child>,
}

impl Front {
    /// Binds the public port; fails if something else holds it.
    pub fn bind(config: &Config, nginx: Nginx) -> anyhow::Result<Front> {
        let mut listener = Held::new(
            crate::switch::Endpoint::Tcp(public_listen_addr(config)),
            PUBLIC_BACKLOG,
        );
        listener.fd().with_context(|| {
            format!(
                "cannot listen on {} (public_port); hint: another server, or NGINX workers left by a crash, hold the port: `ss -ltnp 'sport = :{}'` names them",
                listener.endpoint(),
                config.public_port
            )
        })?;
        Ok(Front {
            nginx,
            config: config.clone(),
            listener,
            child: None,
        })
    }

    /// Checks the configuration (`nginx -t`), starts NGINX on the held socket, and returns
    /// once this very NGINX answers on the public port: its pid file names the process `up`
    /// started, and an answer on the port can only come from a process that inherited the
    /// socket. With `expect`, the answer must also come from that slot.
    pub async fn start(&mut self, expect: Option<Slot>) -> anyhow::Result<()> {
        let check = Command::from(self.nginx.command())
            .arg("-t")
            .arg("-q")
            .output()
            .await;
        match check {
            Ok(out) if out.status.success() => {}
            Ok(out) => bail!(
                "NGINX refused the configuration {}:\n{}",
                self.nginx.conf.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => bail!("cannot run NGINX: {e}"),
        }
        // A pid file left by a master that was killed names a process that is gone, or by
        // now another one: nobody may signal it.
        let _ = std::fs::remove_file(&self.nginx.pid_file);
        let fd = self
            .listener
            .fd()
            .context("cannot listen on the public port")?;
        let mut cmd = Command::from(self.nginx.command());
        child::setup(&mut cmd);
        listeners::pass(&mut cmd, fd);
        cmd.env("NGINX", format!("{fd};"));
        let mut child = cmd.spawn().context("cannot start NGINX")?;
        let pid = child.id().unwrap_or(0) as i32;
        let public = SocketAddr::from(([127, 0, 0, 1], self.config.public_port));
        info!("started NGINX (pid {pid}), waiting for it on {public}");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "NGINX exited at start ({}); see {}",
                    child::describe(Some(status)),
                    self.error_log().display()
                );
            }
            if self.nginx.master_pid().ok() == Some(Pid::from_raw(pid)) {
                let probe = tokio::task::spawn_blocking(move || {
                    http::request(public, "GET", "/readyz", None, Duration::from_millis(500))
                })
                .await?;
                if let Ok(r) = probe {
                    if expect.is_none_or(|slot| r.header("x-slot") == Some(slot.as_str())) {
                        self.child = Some(child);
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                child::stop(&mut child, Signal::SIGKILL, Duration::from_secs(1)).await;
                signal_group(pid, Signal::SIGKILL);
                bail!(
                    "NGINX did not answer on {public} within {START_TIMEOUT:?}; see {}",
                    self.error_log().display()
                );
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    fn error_log(&self) -> PathBuf {
        self.nginx.local.as_ref().map_or_else(
            || PathBuf::from("the NGINX error log"),
            |(_, log)| log.clone(),
        )
    }

    /// Restarts NGINX whenever its master dies, until `stop` fires; then stops it gracefully.
    pub async fn supervise(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            let Some(child) = self.child.as_mut() else {
                return;
            };
            let pid = child.id().unwrap_or(0) as i32;
            tokio::select! {
                _ = &mut stop => {
                    child::stop(child, Signal::SIGQUIT, STOP_GRACE).await;
                    // A master killed at the end of the grace period leaves its workers.
                    signal_group(pid, Signal::SIGKILL);
                    return;
                }
                status = child.wait() => {
                    self.child = None;
                    let strays = signal_group(pid, Signal::SIGQUIT);
                    warn!(
                        "NGINX (pid {pid}) exited unexpectedly ({}); stopped its {strays} stray worker(s) gracefully; starting it again",
                        child::describe(status.ok())
                    );
                    let grace = self.config.worker_shutdown_timeout() + Duration::from_secs(1);
                    tokio::spawn(async move {
                        sleep(grace).await;
                        signal_group(pid, Signal::SIGKILL);
                    });
                    if !self.restart(&mut stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Starts NGINX again, with a growing pause between failed tries, until it answers;
    /// false if `stop` fired first.
    async fn restart(&mut self, stop: &mut oneshot::Receiver<()>) -> bool {
        let mut pause = RESTART_FIRST;
        loop {
            match self.start(None).await {
                Ok(()) => {
                    info!("NGINX is back");
                    return true;
                }
                Err(e) => warn!(
                    "NGINX did not come back: {e:#}; trying again in {} ms",
                    pause.as_millis()
                ),
            }
            tokio::select! {
                _ = &mut *stop => return false,
                _ = sleep(pause) => {}
            }
            pause = (pause * 2).min(RESTART_MAX);
        }
    }
}

/// Sends `sig` to every process in process group `pgid` (a master that `up` started, and
/// the workers it left); returns how many there were.
///
/// The members are found in `/proc`, so that `up` can say how many there were. Linux does not
/// hand out a group's number as a new pid while the group has members, so this reaches
/// NGINX's processes only.
fn signal_group(pgid: i32, sig: Signal) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_group(*pid) == Some(pgid))
        .filter(|pid| kill(Pid::from_raw(*pid), sig).is_ok())
        .count()
}

fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields after it are plain:
    // state, ppid, pgrp.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_public_socket_has_the_address_of_the_sites_listen_directive() {
        let config = Config::default();
        let site = nginx::render_site(&config, std::path::Path::new("/tmp/upstream.conf"));
        let listen: Vec<&str> = site
            .lines()
            .filter_map(|l| l.trim().strip_prefix("listen "))
            .collect();
        // `listen 8080;` is 0.0.0.0:8080 to NGINX (the `listen` directive's docs: "If only
        // address is given, the port 80 is used"; if only a port, every address).
        assert_eq!(listen, [format!("{};", config.public_port)]);
        assert_eq!(
            public_listen_addr(&config),
            SocketAddr::from(([0, 0, 0, 0], 8080))
        );
    }
}
