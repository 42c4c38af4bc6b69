//! The slot supervisor: one task per slot that owns its `bluegreen serve` process.
//!
//! It starts and restarts the slot on request (a deploy, over the control socket), and
//! restarts it when it dies, as `Restart=on-failure` would. A start counts only once the slot
//! sent `READY=1` on the notify socket `up` gave it, the very sd_notify path that systemd's
//! `Type=notify` uses.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;
use tokio::net::UnixDatagram;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep;

use super::child::{self, SelfCommand};
use super::say;
use crate::config::Config;
use crate::layout::Layout;
use crate::slot::Slot;

/// The handle to both slots' supervisors.
#[derive(Clone)]
pub struct Slots(Arc<HashMap<Slot, mpsc::Sender<SlotCmd>>>);

impl Slots {
    /// Binds each slot's notify socket and starts its supervisor; no slot runs yet.
    pub fn spawn(config: &Config, layout: &Layout, me: &SelfCommand) -> anyhow::Result<Slots> {
        let mut slots = HashMap::new();
        for slot in Slot::ALL {
            let path = layout.notify_socket(slot);
            let _ = std::fs::remove_file(&path);
            let socket = UnixDatagram::bind(&path)
                .with_context(|| format!("cannot bind the notify socket {}", path.display()))?;
            let (tx, rx) = mpsc::channel(4);
            let actor = SlotActor {
                slot,
                me: me.clone(),
                notify_path: path,
                socket,
                ready_timeout: config.ready_timeout(),
            };
            tokio::spawn(actor.run(rx));
            slots.insert(slot, tx);
        }
        Ok(Slots(Arc::new(slots)))
    }

    /// Stops `slot` if it runs, starts it again, and returns once it sent `READY=1`.
    pub async fn restart(&self, slot: Slot) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.0[&slot]
            .send(SlotCmd::Restart(reply))
            .await
            .map_err(|_| "the slot's supervisor has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the slot's supervisor has stopped".to_string())?
    }

    /// Stops both slots (SIGTERM: requests in flight finish) and their supervisors.
    pub async fn stop(&self) {
        for tx in self.0.values() {
            let (reply, done) = oneshot::channel();
            if tx.send(SlotCmd::Stop(reply)).await.is_ok() {
                let _ = done.await;
            }
        }
    }
}

enum SlotCmd {
    Restart(oneshot::Sender<Result<(), String>>),
    Stop(oneshot::Sender<()>),
}

/// Owns one slot's process: starts and restarts it on request, restarts it when it dies.
struct SlotActor {
    slot: Slot,
    me: SelfCommand,
    notify_path: PathBuf,
    socket: UnixDatagram,
    ready_timeout: Duration,
}

impl SlotActor {
    async fn run(self, mut commands: mpsc::Receiver<SlotCmd>) {
        let mut child: Option<Child> = None;
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(SlotCmd::Restart(reply)) => {
                        let result = self.start(&mut child).await;
                        let _ = reply.send(result);
                    }
                    Some(SlotCmd::Stop(reply)) => {
                        if let Some(c) = child.as_mut() {
                            child::stop(c, Signal::SIGTERM, Duration::from_secs(10)).await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                status = wait(&mut child) => {
                    say(&format!("{} exited unexpectedly ({}); restarting it in 200 ms", self.slot, child::describe(status)));
                    child = None;
                    // As systemd's RestartSec: a pause, so a slot that dies at once does
                    // not spin.
                    sleep(Duration::from_millis(200)).await;
                    if let Err(why) = self.start(&mut child).await {
                        say(&format!("{} did not come back: {why}", self.slot));
                    }
                }
                // Drain STATUS=, STOPPING=1 and the like between starts.
                _ = self.socket.recv(&mut buf) => {}
            }
        }
    }

    /// Stops the running process, if any, and starts a new one; Ok once it sent READY=1.
    async fn start(&self, child: &mut Option<Child>) -> Result<(), String> {
        if let Some(mut old) = child.take() {
            child::stop(&mut old, Signal::SIGTERM, Duration::from_secs(10)).await;
        }
        let mut buf = vec![0u8; 4096];
        while self.socket.try_recv(&mut buf).is_ok() {}
        let mut cmd = self.me.command(&["serve", "--slot", self.slot.as_str()]);
        cmd.env("NOTIFY_SOCKET", &self.notify_path);
        let mut new = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
        let deadline = sleep(self.ready_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                received = self.socket.recv(&mut buf) => {
                    let Ok(n) = received else { continue };
                    let message = String::from_utf8_lossy(&buf[..n]);
                    if message.lines().any(|l| l == "READY=1") {
                        *child = Some(new);
                        return Ok(());
                    }
                }
                status = new.wait() => {
                    return Err(format!("it exited before READY=1 ({})", child::describe(status.ok())));
                }
                _ = &mut deadline => {
                    let _ = new.kill().await;
                    return Err(format!("no READY=1 within {:?}; it was stopped", self.ready_timeout));
                }
            }
        }
    }
}

async fn wait(child: &mut Option<Child>) -> Option<ExitStatus> {
    match child {
        Some(c) => c.wait().await.ok(),
        None => std::future::pending().await,
    }
}
