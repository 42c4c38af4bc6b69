//! The slot's `STATUS=` line, which `systemctl status bluegreen@blue` shows: whether the slot
//! is active or resting, and what it serves where (issue 8, §9); and, for the server, whether
//! it rests, which in switch mode "socket" makes it let go of NGINX's connections (issue 10,
//! `crate::server`).
//!
//! The role is the NGINX include's to say, and in socket mode the link's that the include
//! names (see `crate::switch`); it changes with every deploy and rollback while the slot keeps
//! running. So a thread watches the include's folder and the link's with inotify (a switch
//! renames a new include or a new link into place) and, when the role changes, sends a new
//! `STATUS=` line and tells the server. The thread reads the include and the link only then;
//! the request path never sees any of it.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use inotify::{Inotify, WatchMask};
use sd_notify::NotifyState;

use crate::config::Config;
use crate::layout::Layout;
use crate::slot::Slot;
use crate::switch::{self, Endpoint};
use tracing::info;

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
    endpoint: Endpoint,
    config: Config,
    layout: Layout,
    /// Said after the rest on every line: the slot runs on the last good configuration.
    note: Option<String>,
}

impl Status {
    pub fn new(config: &Config, slot: Slot, version: String, endpoint: Endpoint) -> Status {
        Status {
            slot,
            version,
            endpoint,
            config: config.clone(),
            layout: Layout::new(&config.state_dir),
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

    /// The role, from the include (and the link) as they are now.
    pub fn role(&self) -> Role {
        match switch::active(&self.config, &self.layout) {
            Ok(Some(active)) if active == self.slot => Role::Active,
            Ok(Some(_)) => Role::Resting,
            Ok(None) => Role::Unknown(format!(
                "no NGINX include {} naming a slot",
                self.layout.upstream_include().display()
            )),
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
            self.version, self.endpoint
        )
    }

    /// Starts watching the include and the link: from now on every change of role is told
    /// to `rests` (`true` while the slot rests), then sent as a new `STATUS=` line and
    /// printed. Returns the line for now, read after the watch was set up so that no change
    /// can fall between the two (`rests` hears the role at start before this returns). If a
    /// folder cannot be watched, the role is only the one at start, and the line says so.
    pub fn follow(self, rests: impl Fn(bool) + Send + 'static) -> String {
        let folders: Vec<PathBuf> = [self.layout.nginx_dir(), self.layout.sockets_dir()]
            .into_iter()
            .filter(|dir| dir.is_dir())
            .collect();
        let watch = Inotify::init().and_then(|inotify| {
            let mask = WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::DELETE;
            for dir in &folders {
                inotify.watches().add(dir, mask)?;
            }
            Ok(inotify)
        });
        let role = self.role();
        rests(role == Role::Resting);
        let line = self.line(&role);
        match watch {
            Ok(inotify) => {
                let first = role.clone();
                let spawned = std::thread::Builder::new()
                    .name("status".into())
                    .spawn(move || self.watch(inotify, first, rests));
                match spawned {
                    Ok(_) => line,
                    Err(e) => format!("{line} (role as at start: {e})"),
                }
            }
            Err(e) => format!(
                "{line} (role as at start: cannot watch {}: {e})",
                self.layout.nginx_dir().display()
            ),
        }
    }

    fn watch(self, mut inotify: Inotify, mut role: Role, rests: impl Fn(bool)) {
        let names: [OsString; 2] = [self.layout.upstream_include(), self.layout.active_socket()]
            .map(|p| p.file_name().unwrap_or_default().to_os_string());
        let mut buffer = [0u8; 4096];
        while let Ok(events) = inotify.read_events_blocking(&mut buffer) {
            let ours = events
                .into_iter()
                .any(|e| e.name.is_some_and(|n| names.iter().any(|m| m == n)));
            if !ours {
                continue;
            }
            let now = self.role();
            if now != role {
                role = now;
                rests(role == Role::Resting);
                let line = self.line(&role);
                info!("{}: now {line}", self.slot);
                let _ = sd_notify::notify(&[NotifyState::Status(&line)]);
            }
        }
    }
}
