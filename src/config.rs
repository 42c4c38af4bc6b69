//! The one validated [`Config`]: where it is found, its defaults, and what makes a value bad.
//!
//! Every key has a default, so an empty file is a valid configuration. A file is looked for in
//! this order: `--config PATH`, `$BLUEGREEN_CONFIG`, `./bluegreen.toml`, and
//! `/etc/bluegreen/config.toml`; with none of them the defaults apply. Relative paths in a file
//! are taken relative to the folder of that file, so the repository's own `bluegreen.toml`
//! keeps its state beside it whatever the current directory is.
//!
//! Values are checked once, here, when the file is read; the rest of the program trusts them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::slot::Slot;

/// Where the packaged configuration lives.
pub const SYSTEM_CONFIG: &str = "/etc/bluegreen/config.toml";
/// A configuration in the current directory, as the repository ships for development.
pub const LOCAL_CONFIG: &str = "bluegreen.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}` is invalid: {why}")]
    Invalid { key: &'static str, why: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Everything bluegreen writes: data, models, slot links, the NGINX include, history.
    pub state_dir: PathBuf,
    /// Rows added since the newest model that make a training due.
    pub batch_size: usize,
    /// The port NGINX listens on for clients.
    pub public_port: u16,
    /// How many model artifacts to keep; older ones are pruned unless a slot serves them.
    pub keep_models: usize,
    pub slots: Slots,
    pub gate: Gate,
    pub limits: Limits,
    pub nginx: Nginx,
    pub deploy: Deploy,
    /// The file this configuration was read from, handed on to the processes `up` starts.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Slots {
    pub blue: SocketAddr,
    pub green: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gate {
    /// How much worse (relative) a candidate's RMSE may be than the active model's on the
    /// same rows before it is refused: 0.10 allows 10 % worse.
    pub tolerance: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body a slot accepts.
    pub max_body_bytes: usize,
    /// Most rows one prediction request may carry.
    pub max_rows: usize,
    /// How long a slot waits for a request's head (request line and headers), from the moment
    /// the connection is opened or its previous answer was sent; then it closes the
    /// connection without an answer. This is also how long a slot keeps an idle keep-alive
    /// connection, so it must exceed NGINX's idle upstream timeout
    /// ([`crate::nginx::UPSTREAM_IDLE_SECS`]): NGINX, not the slot, must close idle
    /// connections, or a request could be sent on one the slot is closing (issue 8, §9).
    pub header_read_timeout_secs: u64,
    /// How long a slot waits for a request's whole body once its head has arrived; then it
    /// answers 408 and closes the connection (issue 8, §9).
    pub body_read_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nginx {
    /// The nginx executable (looked up in PATH when it has no slash).
    pub binary: PathBuf,
    /// The main configuration that `nginx -t` checks (production; `up` uses its own).
    pub conf: PathBuf,
    /// Where the NGINX master writes its pid (production; `up` uses its own).
    pub pid_file: PathBuf,
    /// How long an old worker may finish requests after a reload.
    pub worker_shutdown_timeout_secs: u64,
    /// How long NGINX waits on a slot: to send it the request, and between two reads of its
    /// answer (`proxy_send_timeout`, `proxy_read_timeout`), and for how long after the first
    /// attempt it may still retry on another (`proxy_next_upstream_timeout`). Past it, the
    /// client gets a 504 in JSON.
    pub upstream_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Deploy {
    /// How long a restarted slot has to report READY=1.
    pub ready_timeout_secs: u64,
    /// How long NGINX has to show the new version after the reload.
    pub confirm_timeout_secs: u64,
    /// How long a deploy waits for another one to finish before it gives up.
    pub lock_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/bluegreen"),
            batch_size: 2,
            public_port: 8080,
            keep_models: 20,
            slots: Slots::default(),
            gate: Gate::default(),
            limits: Limits::default(),
            nginx: Nginx::default(),
            deploy: Deploy::default(),
            source: None,
        }
    }
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            blue: SocketAddr::from(([127, 0, 0, 1], 8081)),
            green: SocketAddr::from(([127, 0, 0, 1], 8082)),
        }
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate { tolerance: 0.10 }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 2 * 1024 * 1024,
            max_rows: 10_000,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
        }
    }
}

impl Default for Nginx {
    fn default() -> Self {
        Nginx {
            binary: PathBuf::from("nginx"),
            conf: PathBuf::from("/etc/nginx/nginx.conf"),
            pid_file: PathBuf::from("/run/nginx.pid"),
            worker_shutdown_timeout_secs: 10,
            upstream_timeout_secs: 10,
        }
    }
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            ready_timeout_secs: 30,
            confirm_timeout_secs: 10,
            lock_timeout_secs: 300,
        }
    }
}

impl Config {
    /// Finds, reads and validates the configuration (see the module doc for the order).
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let candidate = match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => [LOCAL_CONFIG, SYSTEM_CONFIG]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
        };
        match candidate {
            Some(path) => Config::from_file(&path),
            None => {
                let config = Config::default();
                config.validate()?;
                Ok(config)
            }
        }
    }

    /// Reads one file; relative paths in it are resolved against its folder.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        for p in [
            &mut config.state_dir,
            &mut config.nginx.conf,
            &mut config.nginx.pid_file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.source = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.message().to_string()
                + &e.span()
                    .map(|s| format!(" (at {})", line_col(text, s.start)))
                    .unwrap_or_default(),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, why: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                why: why.into(),
            })
        }
        if self.state_dir.as_os_str().is_empty() {
            return bad("state_dir", "must not be empty");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1 row");
        }
        if self.public_port == 0 {
            return bad("public_port", "must be a port from 1 to 65535");
        }
        if self.keep_models < 2 {
            return bad(
                "keep_models",
                "must be at least 2 (the models that both slots serve)",
            );
        }
        for slot in Slot::ALL {
            let addr = self.slot_addr(slot);
            let key = match slot {
                Slot::Blue => "slots.blue",
                Slot::Green => "slots.green",
            };
            if !addr.ip().is_loopback() {
                return bad(
                    key,
                    format!(
                        "{addr} is not a loopback address; slots are reached only through NGINX"
                    ),
                );
            }
            if addr.port() == 0 {
                return bad(key, "needs a fixed port, not 0");
            }
            if addr.port() == self.public_port {
                return bad(key, format!("port {} is also public_port", addr.port()));
            }
        }
        if self.slots.blue == self.slots.green {
            return bad("slots.green", "is the same address as slots.blue");
        }
        if !self.gate.tolerance.is_finite() || self.gate.tolerance < 0.0 {
            return bad(
                "gate.tolerance",
                format!("{} is not a finite number >= 0", self.gate.tolerance),
            );
        }
        if self.limits.max_body_bytes < 1024 {
            return bad("limits.max_body_bytes", "must be at least 1024 bytes");
        }
        if self.limits.max_rows == 0 {
            return bad("limits.max_rows", "must be at least 1");
        }
        if self.limits.header_read_timeout_secs <= crate::nginx::UPSTREAM_IDLE_SECS {
            return bad(
                "limits.header_read_timeout_secs",
                format!(
                    "must be more than {} s, the time NGINX keeps an idle connection to a slot",
                    crate::nginx::UPSTREAM_IDLE_SECS
                ),
            );
        }
        if self.limits.body_read_timeout_secs == 0 {
            return bad("limits.body_read_timeout_secs", "must be at least 1 second");
        }
        if self.nginx.binary.as_os_str().is_empty() {
            return bad("nginx.binary", "must not be empty");
        }
        if self.nginx.worker_shutdown_timeout_secs == 0 {
            return bad("nginx.worker_shutdown_timeout_secs", "must be at least 1");
        }
        if self.nginx.upstream_timeout_secs == 0 {
            return bad("nginx.upstream_timeout_secs", "must be at least 1 second");
        }
        for (key, secs) in [
            ("deploy.ready_timeout_secs", self.deploy.ready_timeout_secs),
            (
                "deploy.confirm_timeout_secs",
                self.deploy.confirm_timeout_secs,
            ),
            ("deploy.lock_timeout_secs", self.deploy.lock_timeout_secs),
        ] {
            if secs == 0 {
                return bad(key, "must be at least 1 second");
            }
        }
        Ok(())
    }

    pub fn slot_addr(&self, slot: Slot) -> SocketAddr {
        match slot {
            Slot::Blue => self.slots.blue,
            Slot::Green => self.slots.green,
        }
    }

    /// The slot listening on `addr`, if any.
    pub fn slot_at(&self, addr: SocketAddr) -> Option<Slot> {
        Slot::ALL.into_iter().find(|s| self.slot_addr(*s) == addr)
    }

    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.deploy.ready_timeout_secs)
    }

    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_secs(self.deploy.confirm_timeout_secs)
    }

    pub fn lock_timeout(&self) -> Duration {
        Duration::from_secs(self.deploy.lock_timeout_secs)
    }

    pub fn worker_shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.nginx.worker_shutdown_timeout_secs)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.header_read_timeout_secs)
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.body_read_timeout_secs)
    }
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {col}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_key(text: &str) -> String {
        match Config::from_toml(text) {
            Err(ConfigError::Invalid { key, .. }) => key.to_string(),
            other => panic!("expected an invalid key for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.batch_size, 2);
        assert_eq!(config.public_port, 8080);
        assert_eq!(config.slots.blue.to_string(), "127.0.0.1:8081");
        assert_eq!(config.slots.green.to_string(), "127.0.0.1:8082");
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/bluegreen"));
    }

    #[test]
    fn every_bad_value_names_its_key() {
        assert_eq!(invalid_key("batch_size = 0"), "batch_size");
        assert_eq!(invalid_key("public_port = 0"), "public_port");
        assert_eq!(invalid_key("keep_models = 1"), "keep_models");
        assert_eq!(invalid_key("state_dir = \"\""), "state_dir");
        assert_eq!(
            invalid_key("[slots]\nblue = \"10.0.0.1:8081\""),
            "slots.blue"
        );
        assert_eq!(
            invalid_key("[slots]\ngreen = \"127.0.0.1:0\""),
            "slots.green"
        );
        assert_eq!(
            invalid_key("[slots]\ngreen = \"127.0.0.1:8081\""),
            "slots.green"
        );
        assert_eq!(
            invalid_key("[slots]\nblue = \"127.0.0.1:8080\""),
            "slots.blue"
        );
        assert_eq!(invalid_key("[gate]\ntolerance = -0.5"), "gate.tolerance");
        assert_eq!(invalid_key("[gate]\ntolerance = nan"), "gate.tolerance");
        assert_eq!(
            invalid_key("[limits]\nmax_body_bytes = 10"),
            "limits.max_body_bytes"
        );
        assert_eq!(invalid_key("[limits]\nmax_rows = 0"), "limits.max_rows");
        for secs in [0, 1, 2] {
            assert_eq!(
                invalid_key(&format!("[limits]\nheader_read_timeout_secs = {secs}")),
                "limits.header_read_timeout_secs"
            );
        }
        assert_eq!(
            invalid_key("[limits]\nbody_read_timeout_secs = 0"),
            "limits.body_read_timeout_secs"
        );
        assert_eq!(
            invalid_key("[nginx]\nupstream_timeout_secs = 0"),
            "nginx.upstream_timeout_secs"
        );
        assert_eq!(invalid_key("[nginx]\nbinary = \"\""), "nginx.binary");
        assert_eq!(
            invalid_key("[nginx]\nworker_shutdown_timeout_secs = 0"),
            "nginx.worker_shutdown_timeout_secs"
        );
        assert_eq!(
            invalid_key("[deploy]\nready_timeout_secs = 0"),
            "deploy.ready_timeout_secs"
        );
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_refused_with_their_place() {
        let err = Config::from_toml("batch_size = \"two\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
        let err = Config::from_toml("\nbatchsize = 2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("batchsize") && err.contains("line 2"), "{err}");
        let err = Config::from_toml("[slots]\nblue = \"nowhere\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bg.toml");
        std::fs::write(&path, "state_dir = \"state\"\n").unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(
            config.state_dir,
            std::fs::canonicalize(dir.path()).unwrap().join("state")
        );
        let missing = Config::from_file(&dir.path().join("nope.toml")).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
    }
}
