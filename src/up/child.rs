//! How `up` starts and stops its children: the same executable for `serve`, `train` and
//! `deploy`, and NGINX.
//!
//! Every child gets a process group of its own, so Ctrl-C in the terminal reaches only `up`,
//! which then stops them in order; and `PR_SET_PDEATHSIG`, so a child dies with `up` even
//! when `up` is killed with `kill -9`.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::timeout;

use crate::config::Config;

/// How `up` runs a `bluegreen` subcommand: this same executable and the same config file.
#[derive(Clone)]
pub struct SelfCommand {
    exe: PathBuf,
    config: Option<PathBuf>,
}

impl SelfCommand {
    /// This executable (resolved once: a later upgrade replaces the file at that path, and
    /// the next child runs the new one) and the config file `up` was started with.
    pub fn new(config: &Config) -> anyhow::Result<SelfCommand> {
        Ok(SelfCommand {
            exe: std::env::current_exe().context("cannot find the bluegreen executable")?,
            config: config.source.clone(),
        })
    }

    /// `bluegreen [--config PATH] <args>`, set up as a child of `up` (see [`setup`]).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        if let Some(path) = &self.config {
            cmd.arg("--config").arg(path);
        }
        cmd.args(args);
        setup(&mut cmd);
        cmd
    }
}

/// Own process group (Ctrl-C reaches only `up`), and death with `up` if it is killed.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, which is why `up`
/// runs a single-threaded runtime (see `cmd::up`).
pub fn setup(cmd: &mut Command) {
    cmd.process_group(0).kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only makes one async-signal-safe
    // system call (prctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
}

/// An exit status for messages.
pub fn describe(status: Option<ExitStatus>) -> String {
    status.map_or("status unknown".to_string(), |s| s.to_string())
}

/// Sends `sig`, waits up to `grace`, then kills.
pub async fn stop(child: &mut Child, sig: Signal, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
    if timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}
