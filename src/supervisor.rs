//! Who runs the slots: systemd in production, or `bluegreen up` in the foreground.
//!
//! The deploy needs two things from whoever runs the slots: restart one slot and return only
//! once it reported `READY=1`, and name the NGINX to reload. [`Supervisor`] is that seam.
//! Both implementations wait for the same sd_notify readiness: systemd because the unit is
//! `Type=notify`, `up` because it hands each slot a `NOTIFY_SOCKET` of its own. The `up` side
//! (its client and server of the control socket) lives in `crate::up::control`.

use std::io;
use std::path::PathBuf;
use std::process::Command;

use crate::config::Config;
use crate::layout::Layout;
use crate::nginx::Nginx;
use crate::slot::Slot;
use crate::switch::Endpoint;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot run systemctl: {0}")]
    Systemctl(#[source] io::Error),
    #[error("`systemctl restart {unit}` failed: {output}; hint: `systemctl status {unit}` and `journalctl -u {unit}` say why")]
    RestartFailed { unit: String, output: String },
    #[error("cannot reach `bluegreen up` at {path}: {source}")]
    Control {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`systemctl start {unit}` failed: {output}; hint: `systemctl status bluegreen-check.service` says why")]
    StartFailed { unit: String, output: String },
    #[error("slot {slot} did not become ready: {why}")]
    NotReady { slot: Slot, why: String },
    #[error("unexpected answer {answer:?} from bluegreen up; hint: is it the same version as this bluegreen?")]
    Answer { answer: String },
    #[error("config key `{key}` asks for {wanted}, but bluegreen up has held {held} since it started, and restarting slots cannot move it; hint: stop bluegreen up (Ctrl-C) and start it again")]
    Moved {
        key: &'static str,
        held: Endpoint,
        wanted: Endpoint,
    },
    #[error("config key `{key}` asks for {wanted}, but bluegreen up started with {held}, and it applies a slot's address only when it starts, in either switch mode; hint: stop bluegreen up (Ctrl-C) and start it again, or set `{key}` back")]
    Started {
        key: &'static str,
        held: std::net::SocketAddr,
        wanted: std::net::SocketAddr,
    },
}

pub trait Supervisor {
    /// Restarts `slot` and returns once it has reported `READY=1`.
    fn restart(&self, slot: Slot) -> Result<(), SupervisorError>;
    /// Fails if restarting the slots would not apply `config`: some of it is fixed for as
    /// long as the supervisor runs (`bluegreen restart` asks before it touches anything).
    fn can_apply(&self, config: &Config) -> Result<(), SupervisorError>;
    /// Where `slot` listens now, when the supervisor holds its socket for as long as it runs
    /// (`up`), which may differ from an edited config; `None` when it cannot say.
    fn listens(&self, _slot: Slot) -> Option<Endpoint> {
        None
    }
    /// The NGINX in front of the slots.
    fn nginx(&self) -> &Nginx;
    /// A short name for messages: "systemd" or "bluegreen up".
    fn name(&self) -> &'static str;
    /// Restarts `slot` together with its listening socket, which moves to where the
    /// configuration now puts it (a change of `nginx.switch`, issue 10). `up` cannot move a
    /// socket it holds ([`Supervisor::can_apply`] refuses that first), so by default this is
    /// [`Supervisor::restart`].
    fn restart_with_socket(&self, slot: Slot) -> Result<(), SupervisorError> {
        self.restart(slot)
    }
    /// After `bluegreen restart` applied a configuration that passed `bluegreen check`: what
    /// the supervisor itself still says about the old one. Nothing by default.
    fn applied(&self) -> Result<(), SupervisorError> {
        Ok(())
    }
}

/// Picks the supervisor: `bluegreen up` when it is running for this state folder (its
/// control socket answers), systemd otherwise.
pub fn detect(config: &Config, layout: &Layout) -> Box<dyn Supervisor> {
    if crate::up::control::is_running(layout) {
        Box::new(crate::up::control::Client::new(config, layout))
    } else {
        Box::new(Systemd {
            nginx: Nginx::system(config),
        })
    }
}

pub struct Systemd {
    nginx: Nginx,
}

impl Systemd {
    /// `systemctl restart` of `units`, after the slot's start limit counter was zeroed.
    fn systemctl_restart(&self, slot: Slot, units: &[String]) -> Result<(), SupervisorError> {
        let unit = slot.unit();
        // A deploy's restart is deliberate: zero the slot's start limit counter first
        // (`systemctl reset-failed`, systemctl(1)), so that a burst of deploys never uses up
        // the limit bluegreen@.service keeps for crash loops. Its failure is not this
        // restart's: the restart below says what matters.
        let _ = Command::new("systemctl")
            .args(["reset-failed", "--no-ask-password", &unit])
            .output();
        // Type=notify: systemctl returns when the job is done, that is once READY=1 came or
        // the unit's start timeout expired.
        let output = Command::new("systemctl")
            .args(["restart", "--no-ask-password"])
            .args(units)
            .output()
            .map_err(SupervisorError::Systemctl)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(SupervisorError::RestartFailed {
                unit,
                output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }
}

impl Supervisor for Systemd {
    fn restart(&self, slot: Slot) -> Result<(), SupervisorError> {
        self.systemctl_restart(slot, &[slot.unit()])
    }

    /// `systemctl daemon-reload` gives a running socket unit its new `ListenStream=` (from
    /// bluegreen's generator) but does not move the socket it holds; restarting the socket
    /// unit does, and restarts the slot with it (`Requires=`).
    fn restart_with_socket(&self, slot: Slot) -> Result<(), SupervisorError> {
        let socket = format!("bluegreen@{slot}.socket");
        self.systemctl_restart(slot, &[socket, slot.unit()])
    }

    /// The socket units hold the slots' addresses, and a slot refuses a socket on any
    /// address but its configured one (`serve`); NGINX's own configuration has the public
    /// port, which `nginx -t` checks.
    fn can_apply(&self, _config: &Config) -> Result<(), SupervisorError> {
        Ok(())
    }

    fn nginx(&self) -> &Nginx {
        &self.nginx
    }

    fn name(&self) -> &'static str {
        "systemd"
    }

    /// A restart with a bad configuration (`systemctl restart bluegreen.target`) left
    /// bluegreen-check.service failed and the target stopped ("Dependency failed"); starting
    /// the target runs that check again, and it passes now. A no-op when the target is up.
    fn applied(&self) -> Result<(), SupervisorError> {
        let unit = "bluegreen.target".to_string();
        let output = Command::new("systemctl")
            .args(["start", "--no-ask-password", &unit])
            .output()
            .map_err(SupervisorError::Systemctl)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(SupervisorError::StartFailed {
                unit,
                output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }
}
