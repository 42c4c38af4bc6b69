//! The slot supervisor: one task per slot that owns its `bluegreen serve` process.
//!
//! It does for `up` what systemd does for `bluegreen@.service` and `bluegreen@.socket`:
//! - it holds the slot's listening socket (see [`super::listeners`]) and hands it to every
//!   incarnation of the slot (`serve --listen-fd N`), so connections wait in the backlog
//!   while the slot restarts instead of being refused;
//! - it starts and restarts the slot on request (a deploy or `bluegreen restart`, over the
//!   control socket), and a start counts only once the slot sent `READY=1` on the notify
//!   socket `up` gave it, the very sd_notify path that `Type=notify` uses;
//! - a slot that dies, or fails to come back, is started again with a backoff, forever, as
//!   `Restart=on-failure` with `RestartSec=`, `RestartSteps=` and `RestartMaxDelaySec=`
//!   would (issue 8 §5: a replacement killed before it was ready used to leave the slot
//!   down for good);
//! - a slot that stops pinging (`WATCHDOG=1`, which `serve` sends at half of
//!   `WATCHDOG_USEC` once `up` sets it) for [`WATCHDOG`] is hung, or stopped (SIGSTOP): it is
//!   killed and started again, as the unit's `WatchdogSec=` has systemd do. Until then its
//!   held socket queues connections, and NGINX resends what the killed process had taken.

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
use tokio::time::{sleep, sleep_until, Instant};

use super::child::{self, SelfCommand};
use super::listeners::{self, Held};
use crate::cmd::serve::BACKLOG;
use crate::config::Config;
use crate::layout::Layout;
use crate::slot::Slot;
use tracing::{info, warn};

/// The first pause before a dead slot is started again: the unit's `RestartSec=100ms`.
const RESTART_FIRST: Duration = Duration::from_millis(100);
/// The pause doubles with every failed start, up to this.
const RESTART_MAX: Duration = Duration::from_secs(5);
/// A slot that ran this long after READY=1 before it died starts again after the first
/// pause; one that died sooner counts as another failure, so a slot that crashes right after
/// every start backs off too.
const STABLE: Duration = Duration::from_secs(1);

/// How long a stopped slot has to finish its requests before it is killed (the unit's
/// `TimeoutStopSec=`).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a ready slot may go without sending `WATCHDOG=1` before it is killed and started
/// again: the unit's `WatchdogSec=` (systemd/bluegreen@.service; a unit test keeps the two
/// equal). systemd sends SIGABRT first, for a core dump; `up` kills at once (SIGKILL, which
/// also ends a stopped process), since every moment counts against the requests waiting for
/// the slot.
///
/// Why 5 s and not 10: a request the hung slot holds waits up to this long after the slot's
/// last ping, plus a restart (about 0.15 s), before NGINX can resend it, and NGINX gives up on
/// a slot after `nginx.upstream_timeout_secs` (10 s). At 10 s, a SIGSTOP that came within
/// about 0.1 s after a ping failed every request in flight (24 of 24 under 16 keep-alive and 8
/// `Connection: close` clients, in 2 of 7 tries timed to land there); elsewhere none did.
pub const WATCHDOG: Duration = Duration::from_secs(5);

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
                listener: Held::new(crate::switch::endpoint(config, slot), BACKLOG),
                ready_timeout: config.ready_timeout(),
            };
            tokio::spawn(actor.run(rx));
            slots.insert(slot, tx);
        }
        Ok(Slots(Arc::new(slots)))
    }

    /// Stops `slot` if it runs, starts it again, and returns once it sent `READY=1`. If the
    /// start fails, the supervisor keeps trying in the background.
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

/// Owns one slot's process and listening socket.
struct SlotActor {
    slot: Slot,
    me: SelfCommand,
    notify_path: PathBuf,
    socket: UnixDatagram,
    listener: Held,
    ready_timeout: Duration,
}

/// The slot's process, since when it has been ready, and when it last pinged the watchdog.
struct Running {
    child: Child,
    ready_at: Instant,
    pinged_at: Instant,
}

fn backoff(failures: u32) -> Duration {
    RESTART_FIRST
        .saturating_mul(1u32 << failures.min(16))
        .min(RESTART_MAX)
}

impl SlotActor {
    async fn run(mut self, mut commands: mpsc::Receiver<SlotCmd>) {
        let mut running: Option<Running> = None;
        // When the next start is due after a death or a failed start, and how many of those
        // came in a row (the backoff's exponent).
        let mut retry: Option<Instant> = None;
        let mut failures = 0u32;
        let mut buf = vec![0u8; 4096];
        loop {
            let watchdog = running.as_ref().map(|r| r.pinged_at + WATCHDOG);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(SlotCmd::Restart(reply)) => {
                        let result = self.start(&mut running).await;
                        retry = match &result {
                            Ok(()) => {
                                failures = 0;
                                None
                            }
                            Err(why) => Some(self.failed(why, &mut failures)),
                        };
                        let _ = reply.send(result);
                    }
                    Some(SlotCmd::Stop(reply)) => {
                        if let Some(r) = running.as_mut() {
                            child::stop(&mut r.child, Signal::SIGTERM, STOP_GRACE).await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                (status, ready_at) = wait(&mut running) => {
                    running = None;
                    let how = format!("exited unexpectedly ({})", child::describe(status));
                    retry = Some(self.died(&how, ready_at, &mut failures));
                }
                () = sleep_until(watchdog.unwrap_or_else(Instant::now)), if watchdog.is_some() => {
                    let mut hung = running.take().expect("guarded by is_some");
                    let pid = hung.child.id().unwrap_or(0);
                    let _ = hung.child.kill().await;
                    let how = format!(
                        "sent no WATCHDOG=1 for {} s (hung, or stopped): killed it (pid {pid}), as systemd's WatchdogSec= would",
                        WATCHDOG.as_secs()
                    );
                    retry = Some(self.died(&how, hung.ready_at, &mut failures));
                }
                () = sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {
                    retry = match self.start(&mut running).await {
                        Ok(()) => {
                            info!("{} is back", self.slot);
                            None
                        }
                        Err(why) => Some(self.failed(&why, &mut failures)),
                    };
                }
                // WATCHDOG=1 keeps the running slot alive; STATUS=, STOPPING=1 and the like are
                // drained.
                received = self.socket.recv(&mut buf) => {
                    if let (Ok(n), Some(r)) = (received, running.as_mut()) {
                        if notified(&buf[..n], "WATCHDOG=1") {
                            r.pinged_at = Instant::now();
                        }
                    }
                }
            }
        }
    }

    /// Says how the running slot ended (`how`); returns when its next start is due. One that
    /// ran [`STABLE`] since READY=1 starts again after the first pause; one that died sooner
    /// counts as another failure in a row.
    fn died(&self, how: &str, ready_at: Instant, failures: &mut u32) -> Instant {
        if ready_at.elapsed() >= STABLE {
            *failures = 0;
        }
        let pause = backoff(*failures);
        *failures += 1;
        warn!(
            "{} {how}; starting it again in {} ms",
            self.slot,
            pause.as_millis()
        );
        Instant::now() + pause
    }

    /// Says why a start failed; returns when the next one is due.
    fn failed(&self, why: &str, failures: &mut u32) -> Instant {
        let pause = backoff(*failures);
        *failures += 1;
        warn!(
            "{} did not come back: {why}; trying again in {} ms ({} failures in a row)",
            self.slot,
            pause.as_millis(),
            failures
        );
        Instant::now() + pause
    }

    /// Stops the running process, if any, and starts a new one on the held socket; Ok once
    /// it sent READY=1.
    async fn start(&mut self, running: &mut Option<Running>) -> Result<(), String> {
        if let Some(mut old) = running.take() {
            child::stop(&mut old.child, Signal::SIGTERM, STOP_GRACE).await;
        }
        let endpoint = self.listener.endpoint().clone();
        let fd = self.listener.fd().map_err(|e| {
            format!("cannot listen on {endpoint}: {e}; hint: is another server using it? (`ss -lnp | grep '{endpoint}'`)")
        })?;
        let mut buf = vec![0u8; 4096];
        while self.socket.try_recv(&mut buf).is_ok() {}
        let fd_arg = fd.to_string();
        let mut cmd = self.me.command(&[
            "serve",
            "--slot",
            self.slot.as_str(),
            "--listen-fd",
            &fd_arg,
        ]);
        listeners::pass(&mut cmd, fd);
        cmd.env("NOTIFY_SOCKET", &self.notify_path);
        // sd_notify(3)'s watchdog protocol, as systemd sets it for `WatchdogSec=`; without
        // WATCHDOG_PID, `serve` takes it as its own.
        cmd.env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string());
        let mut new = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
        let deadline = sleep(self.ready_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                received = self.socket.recv(&mut buf) => {
                    let Ok(n) = received else { continue };
                    if notified(&buf[..n], "READY=1") {
                        let now = Instant::now();
                        *running = Some(Running { child: new, ready_at: now, pinged_at: now });
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

/// True when the sd_notify message `message` holds the line `line` (`READY=1`, …).
fn notified(message: &[u8], line: &str) -> bool {
    message.split(|&b| b == b'\n').any(|l| l == line.as_bytes())
}

/// Waits for the running slot to exit; never returns while none runs.
async fn wait(running: &mut Option<Running>) -> (Option<ExitStatus>, Instant) {
    match running {
        Some(r) => (r.child.wait().await.ok(), r.ready_at),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_the_units_watchdogsec() {
        let unit = include_str!("../../systemd/bluegreen@.service");
        let line = format!("WatchdogSec={}s", WATCHDOG.as_secs());
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "bluegreen@.service has no {line}"
        );
    }

    #[test]
    fn the_pause_doubles_from_100_ms_up_to_5_s() {
        let pauses: Vec<u128> = (0..8).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(40), RESTART_MAX);
    }
}
