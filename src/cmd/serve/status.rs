//! The slot's `STATUS=` line, which `systemctl status bluegreen@blue` shows: whether the slot
//! is active or resting, and what it serves where (issue 8, §9).
//!
//! The role is the NGINX include's to say (see `nginx`), and it changes with every deploy and
//! rollback while the slot keeps running. So a thread watches the include's folder with
//! inotify (a switch renames a new include into place) and sends a new `STATUS=` line when the
//! role changes. The thread reads the include only then; the request path never sees any of it.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use inotify::{Inotify, WatchMask};
use sd_notify::NotifyState;

use crate::config::Config;
use crate::layout::Layout;
use crate::nginx;
use crate::slot::Slot;

/// The slot's role as the include names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Active,
    /// NGINX sends requests to the other slot.
    Resting,
    /// No include yet, or one that cannot be read; the reason.
    Unknown(String),
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Active => f.write_str("active"),
            Role::Resting => f.write_str("resting"),
            Role::Unknown(why) => write!(f, "role unknown ({why})"),
        }
    }
}

/// What the status line says besides the role.
pub struct Status {
    slot: Slot,
    version: String,
    addr: SocketAddr,
    config: Config,
    include: PathBuf,
    /// Said after the rest on every line: the slot runs on the last good configuration.
    note: Option<String>,
}

impl Status {
    pub fn new(config: &Config, slot: Slot, version: String, addr: SocketAddr) -> Status {
        Status {
            slot,
            version,
            addr,
            config: config.clone(),
            include: Layout::new(&config.state_dir).upstream_include(),
            note: None,
        }
    }

    /// Adds `note` to every line, the first and those after a flip (issue 8 §3: a slot on
    /// the last good configuration says so for as long as it runs).
    pub fn with_note(self, note: String) -> Status {
        Status {
            note: Some(note),
            ..self
        }
    }

    /// The role, from the include as it is now.
    pub fn role(&self) -> Role {
        match nginx::read_active(&self.config, &self.include) {
            Ok(Some(active)) if active == self.slot => Role::Active,
            Ok(Some(_)) => Role::Resting,
            Ok(None) => Role::Unknown(format!("no NGINX include {}", self.include.display())),
            Err(e) => Role::Unknown(e.to_string()),
        }
    }

    /// The `STATUS=` text, e.g. `active: serving v0002-… on 127.0.0.1:8082`.
    pub fn line(&self, role: &Role) -> String {
        let other = match role {
            Role::Resting => format!(" (NGINX sends requests to {})", self.slot.other()),
            _ => String::new(),
        };
        let note = self
            .note
            .as_deref()
            .map(|n| format!("; {n}"))
            .unwrap_or_default();
        format!(
            "{role}{other}: serving {} on {}{note}",
            self.version, self.addr
        )
    }

    /// Starts watching the include: from now on every change of role is sent as a new
    /// `STATUS=` line and printed. Returns the line for now, read after the watch was set up
    /// so that no change can fall between the two. If the folder cannot be watched, the role
    /// is only the one at start, and the line says so.
    pub fn follow(self) -> String {
        let watched = self.include.parent().map(|dir| dir.to_path_buf());
        let watch = watched
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the include has no folder"))
            .and_then(|dir| {
                let inotify = Inotify::init()?;
                let mask = WatchMask::CLOSE_WRITE
                    | WatchMask::MOVED_TO
                    | WatchMask::MOVED_FROM
                    | WatchMask::DELETE;
                inotify.watches().add(dir, mask)?;
                Ok(inotify)
            });
        let role = self.role();
        match watch {
            Ok(inotify) => {
                let line = self.line(&role);
                let first = role.clone();
                let spawned = std::thread::Builder::new()
                    .name("status".into())
                    .spawn(move || self.watch(inotify, first));
                match spawned {
                    Ok(_) => line,
                    Err(e) => format!("{line} (role as at start: {e})"),
                }
            }
            Err(e) => {
                let line = self.line(&role);
                let dir = watched.unwrap_or_default();
                format!(
                    "{line} (role as at start: cannot watch {}: {e})",
                    dir.display()
                )
            }
        }
    }

    fn watch(self, mut inotify: Inotify, mut role: Role) {
        let name: OsString = self.include.file_name().unwrap_or_default().to_os_string();
        let mut buffer = [0u8; 4096];
        while let Ok(events) = inotify.read_events_blocking(&mut buffer) {
            if !events.into_iter().any(|e| e.name == Some(name.as_os_str())) {
                continue;
            }
            let now = self.role();
            if now != role {
                role = now;
                let line = self.line(&role);
                crate::cmd::say(&format!("{}: now {line}", self.slot));
                let _ = sd_notify::notify(&[NotifyState::Status(&line)]);
            }
        }
    }
}
