//! Who runs the slots: systemd in production, or `bluegreen up` in the foreground.
//!
//! The deploy needs two things from whoever runs the slots: restart one slot and return only
//! once it reported `READY=1`, and name the NGINX to reload. [`Supervisor`] is that seam.
//! Both implementations wait for the same sd_notify readiness: systemd because the unit is
//! `Type=notify`, `up` because it hands each slot a `NOTIFY_SOCKET` of its own.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::config::Config;
use crate::layout::Layout;
use crate::nginx::Nginx;
use crate::slot::Slot;

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
    #[error("slot {slot} did not become ready: {why}")]
    NotReady { slot: Slot, why: String },
}

pub trait Supervisor {
    /// Restarts `slot` and returns once it has reported `READY=1`.
    fn restart(&self, slot: Slot) -> Result<(), SupervisorError>;
    /// The NGINX in front of the slots.
    fn nginx(&self) -> &Nginx;
    /// A short name for messages: "systemd" or "bluegreen up".
    fn name(&self) -> &'static str;
}

/// Picks the supervisor: `bluegreen up` when it is running for this state folder (its
/// control socket answers), systemd otherwise.
pub fn detect(config: &Config, layout: &Layout) -> Box<dyn Supervisor> {
    let socket = layout.control_socket();
    if UnixStream::connect(&socket).is_ok() {
        Box::new(Local {
            socket,
            nginx: Nginx::local(config, layout),
            timeout: config.ready_timeout() + Duration::from_secs(15),
        })
    } else {
        Box::new(Systemd {
            nginx: Nginx::system(config),
        })
    }
}

pub struct Systemd {
    nginx: Nginx,
}

impl Supervisor for Systemd {
    fn restart(&self, slot: Slot) -> Result<(), SupervisorError> {
        let unit = slot.unit();
        // Type=notify: systemctl returns when the job is done, that is once READY=1 came or
        // the unit's start timeout expired.
        let output = Command::new("systemctl")
            .args(["restart", "--no-ask-password", &unit])
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

    fn nginx(&self) -> &Nginx {
        &self.nginx
    }

    fn name(&self) -> &'static str {
        "systemd"
    }
}

/// Talks to a running `bluegreen up` over its control socket (see `cmd::up`).
pub struct Local {
    socket: PathBuf,
    nginx: Nginx,
    timeout: Duration,
}

impl Supervisor for Local {
    fn restart(&self, slot: Slot) -> Result<(), SupervisorError> {
        let control = |source| SupervisorError::Control {
            path: self.socket.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(control)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(control)?;
        writeln!(stream, "restart {slot}").map_err(control)?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .map_err(control)?;
        match answer.trim_end().split_once(' ') {
            _ if answer.trim_end() == "ok" => Ok(()),
            Some(("error", why)) => Err(SupervisorError::NotReady {
                slot,
                why: why.to_string(),
            }),
            _ => Err(SupervisorError::NotReady {
                slot,
                why: format!("unexpected answer {answer:?} from bluegreen up"),
            }),
        }
    }

    fn nginx(&self) -> &Nginx {
        &self.nginx
    }

    fn name(&self) -> &'static str {
        "bluegreen up"
    }
}
