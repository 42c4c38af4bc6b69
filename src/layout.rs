//! Where everything lives under `state_dir`. One place names every path, so that the
//! trainer, the deploy, the slots and `status` can never disagree about them.
//!
//! ```text
//! state_dir/
//!   data/<data.file>         training data (boston.csv by default): header + rows, label last
//!   models/<version>.json    immutable model artifacts
//!   slots/<slot>.json        symlink to the artifact the slot serves
//!   nginx/upstream.conf      the include that names the active slot (NGINX reads it)
//!   nginx/dashboard.conf     the dashboard's part of the site that changes with the config
//!   deploys.jsonl            append-only history: switches, refusals, failures, recoveries
//!   run/                     locks, the intent of a switch in progress, the data's
//!                            ledger, and the control socket of `bluegreen up`
//!   sockets/                 switch mode "socket" only: the slots' unix sockets
//!                            (<slot>.sock) and active.sock, the link to the active one
//! ```

use std::path::{Path, PathBuf};

use crate::slot::Slot;

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(state_dir: &Path) -> Layout {
        Layout {
            root: state_dir.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The training data: `[data] file` in the data folder.
    pub fn data_csv(&self, data: &crate::config::Data) -> PathBuf {
        self.data_dir().join(&data.file)
    }

    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    pub fn slots_dir(&self) -> PathBuf {
        self.root.join("slots")
    }

    pub fn slot_link(&self, slot: Slot) -> PathBuf {
        self.slots_dir().join(format!("{slot}.json"))
    }

    pub fn nginx_dir(&self) -> PathBuf {
        self.root.join("nginx")
    }

    pub fn upstream_include(&self) -> PathBuf {
        self.nginx_dir().join("upstream.conf")
    }

    /// The folder of the slots' unix sockets and the link NGINX connects through (switch mode
    /// "socket"; see `crate::switch` for who may write it).
    pub fn sockets_dir(&self) -> PathBuf {
        self.root.join("sockets")
    }

    /// Where `slot` listens in switch mode "socket".
    pub fn slot_socket(&self, slot: Slot) -> PathBuf {
        self.sockets_dir().join(format!("{slot}.sock"))
    }

    /// The symlink to the active slot's socket, which NGINX's upstream names.
    pub fn active_socket(&self) -> PathBuf {
        self.sockets_dir().join("active.sock")
    }

    /// The symlink to the resting slot's socket (socket mode): where NGINX sends a preview
    /// and the shadow mirror (issue 11).
    pub fn resting_socket(&self) -> PathBuf {
        self.sockets_dir().join("resting.sock")
    }

    /// The file NGINX's site includes in its `location /`: the shadow mirror, on or off
    /// (issue 11).
    pub fn shadow_conf(&self) -> PathBuf {
        self.nginx_dir().join("shadow.conf")
    }

    /// The file NGINX's site includes in the http context beside the include: the share of
    /// live requests the shadow mirror copies on to the candidate (issue 11).
    pub fn shadow_share_conf(&self) -> PathBuf {
        self.nginx_dir().join("shadow-share.conf")
    }

    /// The include in the site's `geo` block: who besides this host may preview the resting
    /// slot, `nginx.preview_from` (issue 11; see `rollout::preview`).
    pub fn preview_include(&self) -> PathBuf {
        self.nginx_dir().join("preview.conf")
    }

    /// The dashboard's include: who besides this host may see it, and where each slot's
    /// counters are (NGINX reads it; see `dashboard::access`).
    pub fn dashboard_include(&self) -> PathBuf {
        self.nginx_dir().join("dashboard.conf")
    }

    pub fn history(&self) -> PathBuf {
        self.root.join("deploys.jsonl")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    pub fn deploy_lock(&self) -> PathBuf {
        self.run_dir().join("deploy.lock")
    }

    /// What `add-data` did to the data file (`crate::ledger`).
    pub fn data_ledger(&self) -> PathBuf {
        self.run_dir().join("data-ledger.json")
    }

    pub fn train_lock(&self) -> PathBuf {
        self.run_dir().join("train.lock")
    }

    /// The switch a deploy or rollback is making, while it makes it (see `history::Intent`).
    pub fn deploy_intent(&self) -> PathBuf {
        self.run_dir().join("deploy-intent.json")
    }

    /// Where a running `bluegreen up` takes requests to restart a slot.
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir().join("up.sock")
    }

    /// The datagram socket on which `bluegreen up` hears a slot's sd_notify messages.
    pub fn notify_socket(&self, slot: Slot) -> PathBuf {
        self.run_dir().join(format!("notify-{slot}.sock"))
    }

    /// The folders `init` creates.
    pub fn dirs(&self) -> [PathBuf; 6] {
        [
            self.data_dir(),
            self.models_dir(),
            self.slots_dir(),
            self.nginx_dir(),
            self.run_dir(),
            self.sockets_dir(),
        ]
    }
}

impl Layout {
    /// The version a slot's symlink points at, from the link's target name; `None` when the
    /// slot has no link yet.
    pub fn slot_version(&self, slot: Slot) -> std::io::Result<Option<String>> {
        match std::fs::read_link(self.slot_link(slot)) {
            Ok(target) => Ok(target.file_stem().map(|s| s.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The symlink target for an artifact, relative so the state folder can be moved.
    pub fn link_target(version: &str) -> PathBuf {
        Path::new("..")
            .join("models")
            .join(format!("{version}.json"))
    }
}
