//! The one validated [`Config`]: where it is found, its defaults, and what makes a value bad.
//!
//! Every key has a default, so an empty file is a valid configuration. A file is looked for in
//! this order: `--config PATH`, `$BLUEGREEN_CONFIG`, `./bluegreen.toml`, and
//! `/etc/bluegreen/config.toml`; with none of them the defaults apply. Relative paths in a file
//! are taken relative to the folder of that file, so the repository's own `bluegreen.toml`
//! keeps its state beside it whatever the current directory is.
//!
//! Values are checked once, here, when the file is read; the rest of the program trusts them.
//!
//! This module also owns the **last good configuration** (issue 8 §3): a copy of the last
//! configuration that passed `bluegreen check` (or that `bluegreen init` set a state folder up
//! for), saved with every path resolved as `state_dir/config.last-good.toml`. A slot that
//! starts while the configuration file is bad runs on that copy instead of failing, and says
//! so (see [`Config::discover_or_last_good`]); a bad edit then never takes serving down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::data;
use crate::fsutil;
use crate::model::{Kind, Params};
use crate::slot::Slot;
use crate::switch::Mode;

/// Where the packaged configuration lives.
pub const SYSTEM_CONFIG: &str = "/etc/bluegreen/config.toml";
/// A configuration in the current directory, as the repository ships for development.
pub const LOCAL_CONFIG: &str = "bluegreen.toml";
/// Names the last good configuration when set (`bluegreen@.service` does): a configuration
/// that does not even parse cannot say where its `state_dir` is.
pub const LAST_GOOD_ENV: &str = "BLUEGREEN_LAST_GOOD_CONFIG";
/// The last good configuration's file name, in `state_dir`.
pub const LAST_GOOD_FILE: &str = "config.last-good.toml";
/// Keys whose relative paths are relative to the config file's folder.
const PATH_KEYS: [&str; 3] = ["state_dir", "nginx.conf", "nginx.pid_file"];
/// The packaged configuration: every key, commented out with its default.
const PACKAGED_CONFIG: &str = include_str!("../packaging/config.toml");

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
    #[error("cannot save the last good configuration as {path}")]
    Save {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration is bad, and the last good one cannot stand in for it.
    #[error("{bad}; the last good configuration {path} cannot stand in for it")]
    NoFallback {
        bad: Box<ConfigError>,
        path: PathBuf,
        #[source]
        source: Box<ConfigError>,
    },
}

/// The most a numeric key may be, in its unit, and why ([`Config::upper_bounds`]).
struct Bound {
    max: u64,
    unit: &'static str,
    why: &'static str,
}

/// Why a command runs on the last good configuration instead of the file it was given.
#[derive(Debug)]
pub struct Fallback {
    /// The configuration file that is bad (`None`: no file, which cannot be bad).
    pub file: Option<PathBuf>,
    /// What is wrong with it.
    pub bad: ConfigError,
    /// The last good configuration, used instead.
    pub last_good: PathBuf,
    /// When that was saved (its modification time), as `YYYY-MM-DDTHH:MM:SSZ`.
    pub saved: Option<String>,
}

impl Fallback {
    /// What is wrong, on one line, naming the file.
    pub fn reason(&self) -> String {
        let why = error_chain(&self.bad);
        match &self.file {
            Some(file) if !why.contains(&file.display().to_string()) => {
                format!("{}: {why}", file.display())
            }
            _ => why,
        }
    }

    /// One loud line for the journal, a STATUS= line and `bluegreen status`; `consequence`
    /// says who runs on the last good configuration ("running on", "slots that start now
    /// run on").
    pub fn summary(&self, consequence: &str) -> String {
        format!(
            "CONFIG IS BAD ({}), {consequence} the last good one ({}{}); hint: fix it, `bluegreen check`, then `bluegreen restart`",
            self.reason(),
            self.last_good.display(),
            self.saved
                .as_deref()
                .map(|t| format!(", saved {t}"))
                .unwrap_or_default(),
        )
    }
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
    pub fleet: Fleet,
    pub data: Data,
    pub model: Model,
    /// How a deploy moves traffic to a candidate (issue 11; `crate::rollout`).
    pub rollout: crate::rollout::Settings,
    pub dashboard: Dashboard,
    /// The file this configuration was read from, handed on to the processes `up` starts.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The file's own keys and values, its relative paths made absolute: what
    /// [`Config::save_as_last_good`] writes, so the copy says what the file said, no more.
    #[serde(skip)]
    keys: toml::Table,
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
    /// How a deploy or rollback moves traffic: `reload` NGINX with a new include, or rename
    /// the `socket` link NGINX connects through (issue 10; see `crate::switch`).
    pub switch: Mode,
    /// Addresses (or CIDR blocks) besides loopback whose requests with
    /// `X-Bluegreen-Preview: 1` NGINX sends to the resting slot (issue 11, `crate::rollout`).
    pub preview_from: Vec<String>,
}

/// The dashboard at `/-/` (issue 12; `crate::dashboard`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dashboard {
    /// Who may see it besides this host (127.0.0.1, ::1): IPv4 or IPv6 addresses and
    /// networks, `"192.0.2.7"` or `"10.0.0.0/8"`. NGINX answers anyone else 403.
    pub allow: Vec<String>,
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

/// This host's part in a fleet of hosts (issue 13). See `crate::fleet` for what each role
/// does, and `deploy/ansible/` for the playbooks that drive a fleet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fleet {
    pub role: Role,
    /// Trainer only: the program and its arguments, run once a new model passed the quality
    /// gate, before any local deploy. `{version}` in an argument becomes the model's version;
    /// the environment also carries `BLUEGREEN_VERSION` and `BLUEGREEN_ARTIFACT` (its path).
    pub on_new_model: Vec<String>,
    /// Trainer only: after `on_new_model` succeeded, also deploy the model on this host.
    /// `false` when the rollout itself deploys this host, as one host of the fleet.
    pub deploy_locally: bool,
    /// Trainer only: how long `on_new_model` may run before it is killed and counted failed.
    pub on_new_model_timeout_secs: u64,
}

/// What a host does with its data and its models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One host on its own: new data trains a model, which is deployed here (the default).
    Standalone,
    /// Trains on new data and hands every model that passed the gate to `on_new_model`.
    Trainer,
    /// Never trains: serves the models it is given (`bluegreen import`, then `deploy VERSION`).
    Server,
}

impl Role {
    /// The name in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Trainer => "trainer",
            Role::Server => "server",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet {
            role: Role::Standalone,
            on_new_model: Vec::new(),
            deploy_locally: true,
            on_new_model_timeout_secs: 3600,
        }
    }
}

/// `[data]`: the training data's file and columns (issue #9).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Data {
    /// The CSV's file name, in `state_dir/data/`.
    pub file: String,
    /// The feature columns, in the order of the API's rows and of the stored CSV.
    pub features: Vec<String>,
    /// The column the model predicts; last in the stored CSV.
    pub label: String,
    /// Columns that files given to `add-data` may carry but the model does not use (an ID).
    pub ignore: Vec<String>,
}

/// `[model]`: the model's name, its kind, and the kind's parameters, flat beside them
/// (issue #9). Which kind takes which parameter is [`Kind::parameters`]' to say.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The model's name in the inference protocols' paths (`/v2/models/<name>`).
    pub name: String,
    pub kind: Kind,
    /// The kind's parameters, flat beside `name` and `kind`.
    pub params: Params,
}

/// By hand, because serde's `flatten` would take the parameters flat but neither refuses an
/// unknown key nor names the key of a value of the wrong type. Each key is read on its own,
/// so an error names it.
impl<'de> Deserialize<'de> for Model {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        // toml would hand a date to a text as text, and to a number as text too.
        if let Some((key, _)) = table.iter().find(|(_, value)| value.is_datetime()) {
            let expected = if key == "name" { "a string" } else { "f64" };
            return Err(D::Error::custom(format!(
                "key `model.{key}`: invalid type: date or time, expected {expected}"
            )));
        }
        let mut model = Model::default();
        let bad = |key: &str, e: toml::de::Error| {
            D::Error::custom(format!("key `model.{key}`: {}", e.message()))
        };
        if let Some(name) = table.remove("name") {
            model.name = name.try_into().map_err(|e| bad("name", e))?;
        }
        if let Some(kind) = table.remove("kind") {
            model.kind = kind.try_into().map_err(|e| bad("kind", e))?;
        }
        for (key, value) in &table {
            if !Params::NAMES.contains(&key.as_str()) {
                return Err(D::Error::custom(format!(
                    "unknown key `{key}` in [model]; it takes name, kind, and the parameters {}",
                    Params::NAMES.join(", ")
                )));
            }
            let one = toml::Table::from_iter([(key.clone(), value.clone())]);
            Params::deserialize(toml::Value::Table(one)).map_err(|e| bad(key, e))?;
        }
        model.params = Params::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(model)
    }
}

impl Default for Data {
    fn default() -> Self {
        Data {
            file: "boston.csv".to_string(),
            features: data::FEATURES.iter().map(|s| s.to_string()).collect(),
            label: data::LABEL.to_string(),
            ignore: Vec::new(),
        }
    }
}

impl Default for Model {
    fn default() -> Self {
        Model {
            name: "bluegreen".to_string(),
            kind: Kind::Linear,
            params: Params::default(),
        }
    }
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
            fleet: Fleet::default(),
            data: Data::default(),
            model: Model::default(),
            rollout: crate::rollout::Settings::default(),
            dashboard: Dashboard::default(),
            source: None,
            keys: toml::Table::new(),
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
            switch: Mode::Reload,
            preview_from: Vec::new(),
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
    /// The file a configuration is read from (see the module doc for the order); `None`
    /// means the built-in defaults.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => [LOCAL_CONFIG, SYSTEM_CONFIG]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
        }
    }

    /// Finds, reads and validates the configuration (see the module doc for the order).
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match Config::locate(explicit) {
            Some(path) => Config::from_file(&path),
            None => {
                let config = Config::default();
                config.validate()?;
                Ok(config)
            }
        }
    }

    /// As [`Config::discover`], but when the configuration is bad (unreadable, not TOML, a
    /// bad value), the last good configuration stands in for it, and the [`Fallback`] says
    /// why. For the slots, so that a bad edit followed by a restart keeps serving, and for
    /// `bluegreen status`, which must say so (issue 8 §3). Fails with both reasons when
    /// there is no usable last good configuration either.
    pub fn discover_or_last_good(
        explicit: Option<&Path>,
    ) -> Result<(Config, Option<Fallback>), ConfigError> {
        let bad = match Config::discover(explicit) {
            Ok(config) => return Ok((config, None)),
            Err(bad) => bad,
        };
        let file = Config::locate(explicit);
        let path = last_good_for_bad(file.as_deref());
        match Config::from_file(&path) {
            Ok(config) => {
                let saved = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| utc_seconds(time::OffsetDateTime::from(t)));
                Ok((
                    config,
                    Some(Fallback {
                        file,
                        bad,
                        last_good: path,
                        saved,
                    }),
                ))
            }
            Err(source) => Err(ConfigError::NoFallback {
                bad: Box::new(bad),
                path,
                source: Box::new(source),
            }),
        }
    }

    /// Reads one file and validates it; relative paths in it are resolved against its folder.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let config = Config::read_file(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads one file without judging its values (relative paths resolved), so that
    /// `bluegreen check` can list every bad value at once ([`Config::invalid`]).
    pub fn read_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        let base = base_dir(path);
        for p in [
            &mut config.state_dir,
            &mut config.nginx.conf,
            &mut config.nginx.pid_file,
        ] {
            // An empty path stays empty, for `invalid` to name it.
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
        // It parsed as a Config, so it parses as a table.
        config.keys = text.parse().unwrap_or_default();
        for key in PATH_KEYS {
            let value = match key.split_once('.') {
                Some((table, key)) => config
                    .keys
                    .get_mut(table)
                    .and_then(|t| t.as_table_mut())
                    .and_then(|t| t.get_mut(key)),
                None => config.keys.get_mut(key),
            };
            if let Some(toml::Value::String(p)) = value {
                if Path::new(p.as_str()).is_relative() {
                    *p = base.join(&*p).display().to_string();
                }
            }
        }
        config.source = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The text as a configuration; its error is the first of [`Config::wrong_types`], so
    /// that every command names the problem `bluegreen check` lists first.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_keyed(text).map_err(|refused| {
            let (found, _) = Config::wrong_types(text);
            found
                .into_iter()
                .next()
                .unwrap_or_else(|| refused.error(text, None))
        })
    }

    /// Every value of the wrong type in a config file's text, in the file's order, for
    /// `bluegreen check`; and whether that is all of them. toml stops at the first, so each
    /// key found wrong is blanked out (its bytes become spaces, so that every later place is
    /// still right) and the text read again. The search stops, incomplete, where a key cannot
    /// be blanked out (a dotted key under a key that is not a table), or past 50 keys. The
    /// first 10 get advice ([`Written::advice`]) once all are known. Empty and complete when
    /// the text parses.
    pub fn wrong_types(text: &str) -> (Vec<ConfigError>, bool) {
        let mut rest = text.to_string();
        let mut found: Vec<Refusal> = Vec::new();
        let mut blanked: Vec<std::ops::Range<usize>> = Vec::new();
        let mut before = None;
        for _ in 0..50 {
            match Config::parse_keyed(&rest) {
                Ok(config) => {
                    before = Some(config.invalid().iter().map(|e| e.to_string()).collect());
                    break;
                }
                Err(refused) => {
                    let out = refused.key.as_deref().and_then(|key| blank_out(&rest, key));
                    found.push(*refused);
                    match out {
                        Some((text, range)) => {
                            rest = text;
                            blanked.push(range);
                        }
                        None => break,
                    }
                }
            }
        }
        let complete = before.is_some();
        let before: Vec<String> = before.unwrap_or_default();
        // In the file's order; the first 10 that a rewrite could fix get advice.
        let mut order: Vec<(usize, usize)> = found
            .iter()
            .enumerate()
            .map(|(i, refused)| {
                let at = refused.written.as_ref().map(|w| w.whole.start);
                (refused.at.or(at).unwrap_or(usize::MAX), i)
            })
            .collect();
        order.sort();
        let mut advised = 0;
        let listed: Vec<ConfigError> = order
            .into_iter()
            .map(|(_, i)| {
                let refused = &found[i];
                let advice = match (&refused.written, &refused.key) {
                    (Some(written), Some(key)) if complete && advised < 10 => {
                        advised += 1;
                        // The other keys found wrong stay blanked out while this one's
                        // rewrites are tried: one reading of the file a rewrite.
                        let others: Vec<_> = blanked
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| *j != i)
                            .map(|(_, range)| range.clone())
                            .collect();
                        written.advice(text, key, &others, &before, &refused.raw)
                    }
                    _ => None,
                };
                refused.error(text, advice.as_deref())
            })
            .collect();
        (listed, complete)
    }

    /// [`Config::parse`] without the search for every problem: its first refusal, with the
    /// dotted key it is at, when there is one.
    fn parse_keyed(text: &str) -> Result<Config, Box<Refusal>> {
        let doc = toml_edit::ImDocument::parse(text).ok();
        if let Some(found) = doc.as_ref().and_then(wrong_shape) {
            return Err(Box::new(found));
        }
        toml::from_str(text).map_err(|e| {
            // A [model] parameter's error names it (`Model`'s deserializer), but toml's span
            // is the whole table's: the place is the parameter's own line.
            let param = e
                .message()
                .strip_prefix("key `model.")
                .and_then(|rest| rest.split_once('`'))
                .map(|(name, _)| name);
            // Its value, where the other keys' errors point too.
            let value_start = |name: &str| {
                let item = item_at(doc.as_ref()?, &format!("model.{name}"))?;
                item.span().map(|span| span.start)
            };
            let start = match param
                .and_then(|name| value_start(name).or_else(|| key_start(text, &["model", name])))
            {
                Some(start) => Some(start),
                None => e.span().map(|s| s.start),
            };
            // A value of the wrong type: toml's message names the type, the span the place;
            // the key is what the operator looks for (`slots.blue`, not "line 2, column 8").
            let name = match param {
                Some(param) => Some(format!("model.{param}")),
                None => {
                    start.and_then(|start| key_at(text, start).or_else(|| key_on_line(text, start)))
                }
            };
            let key = name
                .as_deref()
                .filter(|key| !e.message().contains(&format!("`{key}")))
                .map(|key| format!("key `{key}`: "))
                .unwrap_or_default();
            // What was written there, to say how to write it instead.
            let written = match (&doc, &name) {
                (Some(doc), Some(name)) => Written::find(text, doc, name, e.span(), param),
                _ => None,
            };
            let mut message = e.message().to_string();
            if let Some(written) = &written {
                if matches!(written.piece, toml::Value::Datetime(_)) {
                    // toml hands a date or a time to serde as a table.
                    message =
                        message.replacen("invalid type: map", "invalid type: date or time", 1);
                }
            }
            // toml's syntax errors put what it expected on a line of its own.
            let message = message.trim().replace('\n', ": ");
            Box::new(Refusal {
                said: key + &in_words(&message),
                at: start,
                key: name,
                written,
                raw: e.message().to_string(),
            })
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match self.invalid().into_iter().next() {
            Some(first) => Err(first),
            None => Ok(()),
        }
    }

    /// Every bad value, each as a [`ConfigError::Invalid`] naming its key; empty when the
    /// configuration is valid.
    pub fn invalid(&self) -> Vec<ConfigError> {
        let mut found = Vec::new();
        let mut bad = |key: &'static str, why: String| {
            found.push(ConfigError::Invalid { key, why });
        };
        if self.state_dir.as_os_str().is_empty() {
            bad("state_dir", "must not be empty".into());
        }
        if self.batch_size == 0 {
            bad("batch_size", "must be at least 1 row".into());
        }
        if self.public_port == 0 {
            bad("public_port", "must be a port from 1 to 65535".into());
        }
        if self.keep_models < 2 {
            bad(
                "keep_models",
                "must be at least 2 (the models that both slots serve)".into(),
            );
        }
        for slot in Slot::ALL {
            let addr = self.slot_addr(slot);
            let key = match slot {
                Slot::Blue => "slots.blue",
                Slot::Green => "slots.green",
            };
            if !addr.ip().is_loopback() {
                bad(
                    key,
                    format!(
                        "{addr} is not a loopback address; slots are reached only through NGINX"
                    ),
                );
            } else if addr.port() == 0 {
                bad(key, "needs a fixed port, not 0".into());
            } else if addr.port() == self.public_port {
                bad(key, format!("port {} is also public_port", addr.port()));
            }
        }
        if self.slots.blue == self.slots.green {
            bad("slots.green", "is the same address as slots.blue".into());
        }
        if !self.gate.tolerance.is_finite() || self.gate.tolerance < 0.0 {
            bad(
                "gate.tolerance",
                format!("{} is not a finite number >= 0", self.gate.tolerance),
            );
        }
        if self.limits.max_body_bytes < 1024 {
            bad(
                "limits.max_body_bytes",
                "must be at least 1024 bytes".into(),
            );
        }
        if self.limits.max_rows == 0 {
            bad("limits.max_rows", "must be at least 1".into());
        }
        if self.limits.header_read_timeout_secs <= crate::nginx::UPSTREAM_IDLE_SECS {
            bad(
                "limits.header_read_timeout_secs",
                format!(
                    "must be more than {} s, the time NGINX keeps an idle connection to a slot",
                    crate::nginx::UPSTREAM_IDLE_SECS
                ),
            );
        }
        if self.limits.body_read_timeout_secs == 0 {
            bad(
                "limits.body_read_timeout_secs",
                "must be at least 1 second".into(),
            );
        }
        if self.nginx.binary.as_os_str().is_empty() {
            bad("nginx.binary", "must not be empty".into());
        }
        if self.nginx.worker_shutdown_timeout_secs == 0 {
            bad(
                "nginx.worker_shutdown_timeout_secs",
                "must be at least 1".into(),
            );
        }
        if self.nginx.upstream_timeout_secs == 0 {
            bad(
                "nginx.upstream_timeout_secs",
                "must be at least 1 second".into(),
            );
        }
        // A unix socket's path must fit sockaddr_un's sun_path: 108 bytes with the final NUL
        // (unix(7)). The link is the longest of the three socket paths.
        let link = crate::layout::Layout::new(&self.state_dir).active_socket();
        if self.nginx.switch == Mode::Socket && link.as_os_str().len() > 107 {
            bad(
                "nginx.switch",
                format!(
                    "\"socket\" puts the slots' sockets in {}, a path of {} bytes, but a unix socket's path has at most 107; choose a shorter state_dir, or switch = \"reload\"",
                    link.display(),
                    link.as_os_str().len()
                ),
            );
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
                bad(key, "must be at least 1 second".into());
            }
        }
        if self.nginx.conf.as_os_str().is_empty() {
            bad("nginx.conf", "must not be empty".into());
        }
        if self.nginx.pid_file.as_os_str().is_empty() {
            bad(
                "nginx.pid_file",
                "must not be empty: a deploy signals NGINX's master by the pid in it".into(),
            );
        }
        for (key, value, bound) in self.upper_bounds() {
            if value > bound.max {
                bad(
                    key,
                    format!(
                        "must be at most {} {}, not {value}: {}",
                        bound.max, bound.unit, bound.why
                    ),
                );
            }
        }
        for (key, why) in self.fleet.problems() {
            bad(key, why);
        }
        for (key, why) in self.rollout.problems(self.nginx.switch) {
            bad(key, why);
        }
        for entry in &self.nginx.preview_from {
            if let Err(why) = crate::rollout::preview::parse(entry) {
                bad("nginx.preview_from", why);
            }
        }
        for entry in &self.dashboard.allow {
            if let Err(why) = crate::dashboard::access::parse(entry) {
                bad("dashboard.allow", why);
            }
        }
        found.extend(self.invalid_data());
        found.extend(self.invalid_model());
        found
    }

    /// Every numeric key with its value and its upper bound (issue 13 review: without one,
    /// `upstream_timeout_secs = 100000000000` passed and was written into NGINX's site).
    /// The lower bounds are checked one by one above, each with its own reason.
    fn upper_bounds(&self) -> Vec<(&'static str, u64, Bound)> {
        const HOUR: u64 = 3600;
        let secs = |max: u64, why: &'static str| Bound {
            max,
            unit: "seconds",
            why,
        };
        let wait = "a client or a command would wait that long for an answer that never comes";
        let held = "a connection is held that long; NGINX's site applies it too";
        let p = &self.model.params;
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let mut found = vec![
            (
                "batch_size",
                as_u64(self.batch_size),
                Bound {
                    max: 10_000_000,
                    unit: "rows",
                    why: "training would never be due",
                },
            ),
            (
                "keep_models",
                as_u64(self.keep_models),
                Bound {
                    max: 10_000,
                    unit: "models",
                    why: "each one kept is a file in state_dir/models",
                },
            ),
            (
                "limits.max_body_bytes",
                as_u64(self.limits.max_body_bytes),
                Bound {
                    max: 256 * 1024 * 1024,
                    unit: "bytes (256 MiB)",
                    why: "a slot holds a whole body in memory",
                },
            ),
            (
                "limits.max_rows",
                as_u64(self.limits.max_rows),
                Bound {
                    max: 1_000_000,
                    unit: "rows",
                    why: "a slot holds a request's rows and answers in memory",
                },
            ),
            (
                "limits.header_read_timeout_secs",
                self.limits.header_read_timeout_secs,
                secs(HOUR, held),
            ),
            (
                "limits.body_read_timeout_secs",
                self.limits.body_read_timeout_secs,
                secs(HOUR, held),
            ),
            (
                "nginx.worker_shutdown_timeout_secs",
                self.nginx.worker_shutdown_timeout_secs,
                secs(HOUR, "a deploy waits that long for NGINX's old workers"),
            ),
            (
                "nginx.upstream_timeout_secs",
                self.nginx.upstream_timeout_secs,
                secs(HOUR, wait),
            ),
            (
                "deploy.ready_timeout_secs",
                self.deploy.ready_timeout_secs,
                secs(HOUR, wait),
            ),
            (
                "deploy.confirm_timeout_secs",
                self.deploy.confirm_timeout_secs,
                secs(HOUR, wait),
            ),
            (
                "deploy.lock_timeout_secs",
                self.deploy.lock_timeout_secs,
                secs(24 * HOUR, wait),
            ),
            (
                "fleet.on_new_model_timeout_secs",
                self.fleet.on_new_model_timeout_secs,
                secs(24 * HOUR, "a hung rollout would hold the trainer that long"),
            ),
        ];
        let model = [
            (
                "model.max_iter",
                p.max_iter,
                10_000_000,
                "iterations",
                "each one passes over every row",
            ),
            (
                "model.n_trees",
                p.n_trees,
                10_000,
                "trees",
                "each tree is trained on every row and kept in the artifact",
            ),
            (
                "model.min_samples_split",
                p.min_samples_split,
                10_000_000,
                "rows",
                "more than any training set would never split",
            ),
            (
                "model.min_samples_leaf",
                p.min_samples_leaf,
                10_000_000,
                "rows",
                "more than any training set would never split",
            ),
            (
                "model.k",
                p.k,
                10_000,
                "neighbours",
                "each prediction averages k rows, and training needs at least k rows",
            ),
        ];
        for (key, value, max, unit, why) in model {
            if let Some(value) = value {
                found.push((key, as_u64(value), Bound { max, unit, why }));
            }
        }
        found
    }

    /// The built-in default of a key (`batch_size`, `slots.blue`), as TOML writes it, for
    /// hints: read from the packaged config.toml, which lists every key commented out with its
    /// default (`#batch_size = 2` under its `[table]`).
    pub fn default_of(key: &str) -> Option<String> {
        let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
        let mut current = "";
        for line in PACKAGED_CONFIG.lines().map(str::trim) {
            if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = t;
            } else if current == table {
                let setting = line.strip_prefix('#').unwrap_or("");
                if let Some((k, v)) = setting.split_once('=') {
                    if k.trim() == name {
                        let v = v.split(" #").next().unwrap_or(v).trim();
                        return Some(v.to_string());
                    }
                }
            }
        }
        None
    }

    /// Where the last good configuration is kept: `$BLUEGREEN_LAST_GOOD_CONFIG` if set (the
    /// units set it), else `state_dir/config.last-good.toml`.
    pub fn last_good_path(&self) -> PathBuf {
        last_good_env().unwrap_or_else(|| self.state_dir.join(LAST_GOOD_FILE))
    }

    /// Saves this configuration as the last good one, whole (temp file, fsync, rename), with
    /// every path absolute, so it means the same wherever it is read from. Returns its path.
    pub fn save_as_last_good(&self) -> Result<PathBuf, ConfigError> {
        let path = self.last_good_path();
        let save = |source| ConfigError::Save {
            path: path.clone(),
            source,
        };
        let body = toml::to_string(&self.keys)
            .map_err(|e| save(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let text = format!(
            "# The last configuration that passed `bluegreen check`: {}\n\
             # as it was at {}, its relative paths made absolute (a key not here has its default).\n\
             # A slot that starts while that file is bad runs on this copy instead, and says so.\n\
             # Written by bluegreen; do not edit (edit the configuration, then `bluegreen check`).\n\n{body}",
            self.source
                .as_deref()
                .map_or("the built-in defaults".to_string(), |p| p.display().to_string()),
            utc_seconds(time::OffsetDateTime::now_utc()).unwrap_or_default(),
        );
        fsutil::write_atomic(&path, text.as_bytes()).map_err(save)?;
        Ok(path)
    }

    /// `[data]`: a plain file name, and column names that a header can be matched against
    /// unambiguously (case-insensitively, as `add-data` matches them).
    fn invalid_data(&self) -> Option<ConfigError> {
        self.data_problem().err()
    }

    fn data_problem(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, why: String| Err(ConfigError::Invalid { key, why });
        let file = &self.data.file;
        if file.is_empty() || file == "." || file == ".." || file.contains('/') {
            return bad(
                "data.file",
                format!("{file:?} is not a file name; the file lives in state_dir/data/"),
            );
        }
        if file.starts_with('.') {
            return bad(
                "data.file",
                format!("{file:?} starts with a dot; such names are for temporary files (and systemd's path units ignore them)"),
            );
        }
        if self.data.features.is_empty() {
            return bad("data.features", "must name at least one column".to_string());
        }
        // Names seen so far, by their ASCII lowercase, with their key: one lookup a name.
        let mut seen: std::collections::HashMap<String, &'static str> =
            std::collections::HashMap::new();
        let named = self
            .data
            .features
            .iter()
            .map(|f| ("data.features", f.as_str()));
        let label = std::iter::once(("data.label", self.data.label.as_str()));
        let ignore = self.data.ignore.iter().map(|f| ("data.ignore", f.as_str()));
        for (key, name) in named.chain(label).chain(ignore) {
            if name.trim().is_empty() || name.trim() != name {
                return bad(
                    key,
                    format!("{name:?} is not a column name: it is empty or has spaces around it"),
                );
            }
            if fast_float2::parse::<f64, _>(name).is_ok() {
                return bad(
                    key,
                    format!("{name:?} is a number, so a header holding it would read as a row"),
                );
            }
            if let Some(other) = seen.get(&name.to_ascii_lowercase()) {
                return bad(
                    key,
                    format!("{name:?} is also in {other} (names are matched ignoring case)"),
                );
            }
            seen.insert(name.to_ascii_lowercase(), key);
        }
        Ok(())
    }

    /// `[model]`: a name usable in a URL path, and parameters the kind takes, in range.
    fn invalid_model(&self) -> Option<ConfigError> {
        self.model_problem().err()
    }

    fn model_problem(&self) -> Result<(), ConfigError> {
        let name = &self.model.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError::Invalid {
                key: "model.name",
                why: format!(
                    "{name:?} must be letters, digits, '-', '_' or '.' (it is part of URL paths)"
                ),
            });
        }
        self.model
            .params
            .check(self.model.kind, self.data.features.len())
            .map_err(|bad| ConfigError::Invalid {
                key: bad.key,
                why: bad.why,
            })
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

/// An error and its sources on one line, as `main` prints a chain (`{:#}`), for text that
/// outlives the error: a STATUS= line, `bluegreen check`'s report.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The folder a file's relative paths are relative to.
fn base_dir(path: &Path) -> PathBuf {
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf())
}

fn last_good_env() -> Option<PathBuf> {
    std::env::var_os(LAST_GOOD_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The last good configuration for a configuration file that does not load: the
/// environment's, else the `state_dir` the file names if that much of it parses, else the
/// default `state_dir`'s.
fn last_good_for_bad(file: Option<&Path>) -> PathBuf {
    if let Some(path) = last_good_env() {
        return path;
    }
    let named = file.and_then(|file| {
        let text = std::fs::read_to_string(file).ok()?;
        let table: toml::Table = text.parse().ok()?;
        let dir = PathBuf::from(table.get("state_dir")?.as_str()?);
        Some(if dir.is_relative() {
            base_dir(file).join(dir)
        } else {
            dir
        })
    });
    named
        .unwrap_or_else(|| Config::default().state_dir)
        .join(LAST_GOOD_FILE)
}

/// A UTC time to the second, `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_seconds(t: time::OffsetDateTime) -> Option<String> {
    t.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .ok()
}

/// The dotted key (`slots.blue`) whose key or value holds byte `offset` of `text`, the
/// innermost one; `None` when the text does not parse or no key is there.
fn key_at(text: &str, offset: usize) -> Option<String> {
    fn within(span: Option<std::ops::Range<usize>>, offset: usize) -> bool {
        span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
    }
    fn in_item(item: &toml_edit::Item, offset: usize, path: &[&str]) -> Option<String> {
        match item {
            toml_edit::Item::Table(table) => in_pairs(
                table.iter().filter_map(|(k, _)| table.get_key_value(k)),
                offset,
                path,
            ),
            toml_edit::Item::Value(toml_edit::Value::InlineTable(table)) => in_pairs(
                table.iter().filter_map(|(k, _)| table.get_key_value(k)),
                offset,
                path,
            ),
            toml_edit::Item::ArrayOfTables(tables) => tables
                .iter()
                .find_map(|t| in_item(&toml_edit::Item::Table(t.clone()), offset, path)),
            _ => None,
        }
    }
    fn in_pairs<'a>(
        pairs: impl Iterator<Item = (&'a toml_edit::Key, &'a toml_edit::Item)>,
        offset: usize,
        path: &[&str],
    ) -> Option<String> {
        for (key, item) in pairs {
            let mut here = path.to_vec();
            here.push(key.get());
            if let Some(inner) = in_item(item, offset, &here) {
                return Some(inner);
            }
            if within(key.span(), offset) || within(item.span(), offset) {
                return Some(here.join("."));
            }
        }
        None
    }
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    in_item(doc.as_item(), offset, &[])
}

/// Where the key at `path` (`["model", "alpha"]`) begins in `text`, if it is there.
fn key_start(text: &str, path: &[&str]) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let (last, tables) = path.split_last()?;
    let mut table = doc.as_table();
    for name in tables {
        table = table.get(name)?.as_table()?;
    }
    let (key, _) = table.get_key_value(last)?;
    key.span().map(|s| s.start)
}

/// The key of the `key = value` line around `offset`, under the `[table]` above it, read
/// from the text alone: for a file that is not TOML as a whole (an integer past 64 bits is
/// refused by the parser itself), where [`key_at`] finds nothing.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    // The line with the key: this one, or for a value that spans lines (an array) the
    // nearest one above with a `=`.
    let line = text[line_start..].lines().next()?;
    let above = before[..line_start].lines().rev();
    let line = std::iter::once(line)
        .chain(above)
        .map(|l| l.split('#').next().unwrap_or(""))
        .take_while(|l| !l.trim_start().starts_with('['))
        .find(|l| l.contains('='))?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() {
        return None;
    }
    let table = before[..line_start].lines().rev().find_map(|l| {
        // `[rollout]   # see Rollouts`, as the packaged config writes headers.
        let l = l.split('#').next().unwrap_or("").trim();
        (l.starts_with('[') && !l.starts_with("[[")).then(|| l.trim_matches(['[', ']']).trim())
    });
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// serde's message for a value of the wrong type, with the Rust type it names in words an
/// operator reads (`expected u16` → `expected a whole number, not negative and at most 65535`:
/// what the type takes; a key's own range is `Config::invalid`'s to say). A `[model]`
/// parameter's message carries its key first (`key `model.alpha`: …`), which stays.
fn in_words(message: &str) -> String {
    const TYPES: [(&str, &str); 12] = [
        ("f64", "a number"),
        ("f32", "a number"),
        ("u8", "a whole number, not negative and at most 255"),
        ("u16", "a whole number, not negative and at most 65535"),
        ("u32", "a whole number, not negative and at most 4294967295"),
        ("u64", "a whole number, not negative"),
        ("usize", "a whole number, not negative"),
        ("i64", "a whole number"),
        ("a boolean", "true or false"),
        ("a string", "text in double quotes"),
        ("path string", "a path in double quotes"),
        (
            "socket address",
            "an address and port in double quotes, such as \"127.0.0.1:8081\"",
        ),
    ];
    // TOML's words for serde's: an array is a list, a table is a table.
    let message = message
        .replacen("invalid type: sequence", "invalid type: list", 1)
        .replacen("invalid type: map", "invalid type: table", 1);
    let message = message.as_str();
    if let Some(head) = message.strip_suffix(", expected a sequence") {
        return format!("{head}, expected a list in square brackets");
    }
    for (ty, words) in TYPES {
        if let Some(head) = message.strip_suffix(&format!(", expected {ty}")) {
            return format!("{head}, expected {words}");
        }
    }
    message.to_string()
}

/// The keys that take one of a few names, each with serde's list of them: "`auto` or
/// `manual`", "one of `linear`, `ridge`, …" (what serde says of a name it does not know).
const NAME_KEYS: [(&str, Names); 5] = [
    ("model.kind", names::<Kind>),
    ("model.weights", names::<crate::model::kinds::Weights>),
    ("rollout.promote", names::<crate::rollout::Promote>),
    ("nginx.switch", names::<Mode>),
    ("fleet.role", names::<Role>),
];

/// Lists the names a key takes, as [`NAME_KEYS`] holds it for each key.
type Names = fn() -> Option<String>;

fn names<T: serde::de::DeserializeOwned>() -> Option<String> {
    let err = toml::Value::String(String::new()).try_into::<T>().err()?;
    Some(err.message().split_once(", expected ")?.1.to_string())
}

/// The tables of the config file (`[slots]`, `[rollout]`, …), as the packaged config
/// writes them, one header a line.
fn sections() -> impl Iterator<Item = &'static str> {
    PACKAGED_CONFIG.lines().filter_map(|line| {
        let name = line.strip_prefix('[')?.strip_suffix(']')?;
        (!name.starts_with('[')).then_some(name)
    })
}

/// A value whose shape serde would misread, refused with what to write, and its key:
/// - a key of [`NAME_KEYS`] given anything but text (serde says "wanted string or table",
///   and takes a table, `kind = { knn = {} }`, as the name of its one key);
/// - a table written as a value (`nginx = "reload"`: serde says "expected struct Nginx", and
///   reads a list, `nginx = ["reload"]`, into the table's keys in their order) or as a list
///   of tables (`[[rollout]]`).
fn wrong_shape(doc: &toml_edit::ImDocument<&str>) -> Option<Refusal> {
    let refuse = |key: &str, message: String, span: Option<std::ops::Range<usize>>| {
        Some(Refusal {
            said: format!("key `{key}`: {message}"),
            at: span.map(|span| span.start),
            key: Some(key.to_string()),
            written: None,
            raw: message,
        })
    };
    let table = sections().find_map(|name| {
        let item = doc.get(name)?;
        let span = doc.key(name).and_then(|key| key.span());
        match item {
            toml_edit::Item::Table(_) => None,
            toml_edit::Item::Value(toml_edit::Value::InlineTable(_)) => None,
            toml_edit::Item::ArrayOfTables(_) => refuse(
                name,
                format!("written `[[{name}]]`, a list of tables; write `[{name}]`, with single brackets"),
                span,
            ),
            _ => refuse(
                name,
                format!("expected a table: a `[{name}]` line with its keys on the lines below it"),
                span,
            ),
        }
    });
    table.or_else(|| {
        NAME_KEYS.iter().find_map(|(key, names)| {
            let item = item_at(doc, key)?;
            if item.is_str() {
                return None;
            }
            let names = names().unwrap_or_else(|| "a name".to_string());
            refuse(
                key,
                format!("expected {names}, in double quotes"),
                item.span(),
            )
        })
    })
}

/// A value the configuration refused, before any advice: what to say and where, and what
/// was written there.
struct Refusal {
    /// `key `slots.blue`: ` and toml's message in words.
    said: String,
    /// The byte of the file the error is at, when toml names a place.
    at: Option<usize>,
    /// The dotted key, when one is found.
    key: Option<String>,
    written: Option<Written>,
    /// toml's own message (an address key's says "socket address").
    raw: String,
}

impl Refusal {
    /// The error, with `advice` (`write it without quotes: 5`) before the place, which is
    /// counted in the file as written, `text`: a key blanked out before it may have held
    /// characters of several bytes, each now a space a byte.
    fn error(&self, text: &str, advice: Option<&str>) -> ConfigError {
        let advice = advice.map(|a| format!("; {a}")).unwrap_or_default();
        let place = self
            .at
            .map(|at| format!(" (at {})", line_col(text, at)))
            .unwrap_or_default();
        ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: format!("{}{advice}{place}", self.said),
        }
    }
}

/// `text` with the line of the dotted `key` (its key and value) turned into spaces, line ends
/// kept; `None` when the key is not found, or when the text without it is not TOML (a key
/// inside an inline table leaves a stray comma).
fn blank_out(text: &str, key: &str) -> Option<(String, std::ops::Range<usize>)> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let (table, leaf) = match key.rsplit_once('.') {
        Some((table, leaf)) => (item_at(&doc, table)?, leaf),
        None => (doc.as_item(), key),
    };
    let (name, value) = table.as_table_like()?.get_key_value(leaf)?;
    let mut span = name.span()?.start..value.span()?.end;
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..span.start];
    if !before.contains(['=', '{', ',']) {
        // A dotted key (`slots.blue = 5`): the line from its start.
        span.start = line_start;
    } else {
        // In an inline table: the pair and one comma beside it.
        let after = text[span.end..].trim_start_matches([' ', '\t']);
        if after.starts_with(',') {
            span.end = text.len() - after.len() + 1;
        } else {
            let ahead = text[..span.start].trim_end_matches([' ', '\t']);
            if ahead.ends_with(',') {
                span.start = ahead.len() - 1;
            }
        }
    }
    let rest = blank(text, std::slice::from_ref(&span));
    toml_edit::ImDocument::parse(rest.as_str()).ok()?;
    Some((rest, span))
}

/// `text` with the bytes of `ranges` made spaces, line ends kept: a space for each byte, so
/// that every byte offset stays where it was.
fn blank(text: &str, ranges: &[std::ops::Range<usize>]) -> String {
    text.char_indices()
        .map(|(i, c)| match c {
            '\n' | '\r' => c.to_string(),
            _ if ranges.iter().any(|r| r.contains(&i)) => " ".repeat(c.len_utf8()),
            _ => c.to_string(),
        })
        .collect()
}

/// The item at a dotted key (`rollout.steps`) of a parsed document.
fn item_at<'a>(doc: &'a toml_edit::ImDocument<&str>, key: &str) -> Option<&'a toml_edit::Item> {
    let mut item = doc.as_item();
    for part in key.split('.') {
        item = item.get(part)?;
    }
    Some(item)
}

/// A value of the wrong type as written: the key's whole value, and the piece of it the error
/// is at (the value itself, or one item of a list).
struct Written {
    /// Where the key's whole value is in the file, in bytes.
    whole: std::ops::Range<usize>,
    /// Where the piece is in the file, in bytes.
    at: std::ops::Range<usize>,
    /// The piece, as TOML reads it.
    piece: toml::Value,
}

impl Written {
    /// The value of `key` in `text` and the piece `span` covers; for a `[model]` parameter
    /// (`param`) toml's span is the table's, and the piece is the parameter's whole value.
    fn find(
        text: &str,
        doc: &toml_edit::ImDocument<&str>,
        key: &str,
        span: Option<std::ops::Range<usize>>,
        param: Option<&str>,
    ) -> Option<Written> {
        let whole = item_at(doc, key)?.span()?;
        let at = match (param, span) {
            (None, Some(span)) if whole.start <= span.start && span.end <= whole.end => span,
            _ => whole.clone(),
        };
        text.get(at.clone())?;
        let table: toml::Table = format!("v = {}", &text[at.clone()]).parse().ok()?;
        Some(Written {
            whole,
            at,
            piece: table.get("v")?.clone(),
        })
    }

    /// What to write instead, when a likely rewrite of the piece (or of the whole list) is
    /// one the key takes: tried in the file `text` itself, with the keys found wrong besides
    /// this one blanked out (`others`), it must give the key a value of the right type and
    /// add no problem to those [`Config::invalid`] found with this key blanked out too
    /// (`before`), and none at all at `key` itself. TOML reads `"5"` as text and `5` as a
    /// number, and a list is in square brackets (toml.io). `message` is toml's, to know an
    /// address key ("socket address").
    fn advice(
        &self,
        text: &str,
        key: &str,
        others: &[std::ops::Range<usize>],
        before: &[String],
        message: &str,
    ) -> Option<String> {
        // A long value (a list of thousands of names) is not rewritten by guess: each try
        // reads the whole file again. Nor is one inside another key set aside.
        let overlaps =
            |r: &std::ops::Range<usize>| r.start < self.whole.end && self.whole.start < r.end;
        if self.whole.len() > 4096 || others.iter().any(overlaps) {
            return None;
        }
        let quote = |text: &str| toml::Value::String(text.to_string()).to_string();
        let raw = &text[self.at.clone()];
        // Each try: what to do, and the piece's new text.
        let mut tries: Vec<(&str, String)> = Vec::new();
        match &self.piece {
            toml::Value::String(text) => {
                let trimmed = text.trim();
                tries.push(("write it without quotes", trimmed.to_string()));
                if trimmed.is_empty() {
                    tries.push(("write it as an empty list", "[]".to_string()));
                }
                tries.push(("write it as a list", format!("[{trimmed}]")));
                // Items in one text: split at commas, or at spaces for numbers (a command
                // line in one text, `on_new_model`, is not split into words by guess).
                let inner = trimmed
                    .strip_prefix('[')
                    .and_then(|t| t.strip_suffix(']'))
                    .unwrap_or(trimmed);
                if inner.contains(',') || !inner.contains(char::is_whitespace) {
                    let items: Vec<String> = inner
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| quote(item.trim_matches(['"', '\''])))
                        .collect();
                    tries.push(("write it as a list", format!("[{}]", items.join(", "))));
                } else {
                    let items: Vec<&str> = inner.split_whitespace().collect();
                    tries.push(("write it as a list", format!("[{}]", items.join(", "))));
                }
                if trimmed != text {
                    tries.push(("write it without the spaces", quote(trimmed)));
                }
            }
            toml::Value::Array(items) if items.len() == 1 => {
                // The item as TOML writes it: no comment that was beside it.
                tries.push(("write it without the brackets", items[0].to_string()));
            }
            toml::Value::Array(_) | toml::Value::Table(_) => {}
            toml::Value::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => {
                tries.push(("write it as a whole number", format!("{}", *x as i64)));
            }
            _ => {
                tries.push(("write it in quotes", quote(raw)));
                tries.push(("write it as a list", format!("[{raw}]")));
                tries.push(("write it as a list", format!("[{}]", quote(raw))));
            }
        }
        // An address key given only a port, or a host name: a slot's address is an IP.
        if message.contains("socket address") {
            let port = match &self.piece {
                toml::Value::Integer(n) => u16::try_from(*n).ok().map(|p| p.to_string()),
                toml::Value::String(text) => {
                    let text = text.trim();
                    text.parse::<u16>()
                        .ok()
                        .map(|p| p.to_string())
                        .or_else(|| text.strip_prefix("localhost:").map(str::to_string))
                }
                _ => None,
            };
            if let Some(port) = port {
                tries.push((
                    "write an IP address and the port",
                    quote(&format!("127.0.0.1:{port}")),
                ));
            }
        }
        let value = &text[self.whole.clone()];
        let rest = blank(text, others);
        let mut tried: Vec<(&str, String, String)> = tries
            .into_iter()
            .map(|(how, piece)| {
                let at = self.at.start - self.whole.start..self.at.end - self.whole.start;
                let value = format!("{}{piece}{}", &value[..at.start], &value[at.end..]);
                (how, piece, value)
            })
            .collect();
        // A list whose items are all numbers or booleans in quotes: each without them.
        let list = format!("v = {value}").parse::<toml::Table>().ok();
        if let Some(toml::Value::Array(items)) = list.as_ref().and_then(|t| t.get("v")) {
            let bare: Option<Vec<String>> = items
                .iter()
                .map(|item| item.as_str().map(|text| text.trim().to_string()))
                .collect();
            if let Some(bare) = bare.filter(|bare| bare.len() > 1) {
                let list = format!("[{}]", bare.join(", "));
                tried.push(("write its items without quotes", list.clone(), list));
            }
        }
        tried.into_iter().find_map(|(how, piece, value)| {
            // One line, of characters a terminal shows as they are.
            if !piece.chars().all(shown_as_is) {
                return None;
            }
            let text = format!(
                "{}{value}{}",
                &rest[..self.whole.start],
                &rest[self.whole.end..]
            );
            let config = Config::parse_keyed(&text).ok()?;
            config
                .invalid()
                .iter()
                .all(|problem| {
                    let here = matches!(problem, ConfigError::Invalid { key: k, .. } if *k == key);
                    !here && before.contains(&problem.to_string())
                })
                .then(|| format!("{how}: {piece}"))
        })
    }
}

/// Whether a terminal shows `c` as it is: not a control character, a line or paragraph
/// separator, or one of Unicode's default-ignorable code points (invisible, or turning the
/// text's direction), which advice must not carry unseen.
fn shown_as_is(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}'
            | '\u{17b4}' | '\u{17b5}' | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}' | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}'
            | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}')
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {col}")
}

impl Fleet {
    /// Every bad `[fleet]` value, with its key.
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        if self.on_new_model_timeout_secs == 0 {
            found.push((
                "fleet.on_new_model_timeout_secs",
                "must be at least 1 second".to_string(),
            ));
        }
        if self.role != Role::Trainer {
            if !self.on_new_model.is_empty() {
                found.push((
                    "fleet.on_new_model",
                    format!(
                        "only a trainer runs it, and this host's role is \"{}\"; hint: remove it, or set role = \"trainer\"",
                        self.role
                    ),
                ));
            }
            if !self.deploy_locally {
                found.push((
                    "fleet.deploy_locally",
                    format!(
                        "only applies to role = \"trainer\", and this host's role is \"{}\"; hint: remove it",
                        self.role
                    ),
                ));
            }
            return found;
        }
        if self
            .on_new_model
            .first()
            .is_some_and(|p| p.trim().is_empty())
        {
            found.push((
                "fleet.on_new_model",
                "its first item is the program to run and must not be empty".to_string(),
            ));
        }
        if self.on_new_model.is_empty() && !self.deploy_locally {
            found.push((
                "fleet.on_new_model",
                "a trainer with deploy_locally = false needs a command to hand its models on, or no host would ever serve them; hint: on_new_model = [\"ansible-playbook\", \"-i\", \"INVENTORY\", \"rollout.yml\", \"-e\", \"version={version}\"]".to_string(),
            ));
        }
        found
    }
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
        let long = format!(
            "state_dir = \"/{}\"\n[nginx]\nswitch = \"socket\"",
            "x".repeat(90)
        );
        assert_eq!(invalid_key(&long), "nginx.switch");
        assert_eq!(
            invalid_key("[deploy]\nready_timeout_secs = 0"),
            "deploy.ready_timeout_secs"
        );
    }

    #[test]
    fn every_bad_rollout_value_names_its_key() {
        for (text, key) in [
            ("[rollout]\nsteps = []", "rollout.steps"),
            ("[rollout]\nsteps = [0, 100]", "rollout.steps"),
            ("[rollout]\nsteps = [10, 150]", "rollout.steps"),
            ("[rollout]\nsteps = [50, 10, 100]", "rollout.steps"),
            ("[rollout]\nsteps = [10, 10, 100]", "rollout.steps"),
            ("[rollout]\nsteps = [10, 50]", "rollout.steps"),
            (
                "[rollout]\nsteps = [10, 100]\n[nginx]\nswitch = \"socket\"",
                "rollout.steps",
            ),
            ("[rollout]\nstep_seconds = 0", "rollout.step_seconds"),
            ("[rollout]\nstep_seconds = 86401", "rollout.step_seconds"),
            (
                "[rollout]\nshadow_seconds = 100000",
                "rollout.shadow_seconds",
            ),
            ("[rollout]\nwatch_seconds = 100000", "rollout.watch_seconds"),
            ("[rollout]\nmax_error_rate = -0.1", "rollout.max_error_rate"),
            ("[rollout]\nmax_error_rate = 1.5", "rollout.max_error_rate"),
            ("[rollout]\nmax_error_rate = nan", "rollout.max_error_rate"),
            (
                "[rollout]\nmax_latency_ratio = 0.5",
                "rollout.max_latency_ratio",
            ),
            (
                "[rollout]\nmax_latency_ratio = inf",
                "rollout.max_latency_ratio",
            ),
            ("[rollout]\nmax_divergence = -1.0", "rollout.max_divergence"),
            ("[rollout]\nmax_divergence = nan", "rollout.max_divergence"),
            ("[rollout]\nshadow_percent = 0", "rollout.shadow_percent"),
            (
                "[rollout]\nshadow_percent = 100.01",
                "rollout.shadow_percent",
            ),
            ("[rollout]\nshadow_percent = inf", "rollout.shadow_percent"),
            (
                "[rollout]\nshadow_percent = 0.001",
                "rollout.shadow_percent",
            ),
            // Within any rounding tolerance of 0.00, which NGINX's split_clients refuses.
            ("[rollout]\nshadow_percent = 1e-9", "rollout.shadow_percent"),
            (
                "[nginx]\npreview_from = [\"10.0.0.0/33\"]",
                "nginx.preview_from",
            ),
            (
                "[nginx]\npreview_from = [\"localhost\"]",
                "nginx.preview_from",
            ),
        ] {
            assert_eq!(invalid_key(text), key, "{text}");
        }
        // The reason names what is wrong and what to do.
        let err = Config::from_toml("[rollout]\nsteps = [10, 100]\n[nginx]\nswitch = \"socket\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not available") && err.contains("hint"),
            "{err}"
        );
        // Wrong types and unknown keys are refused with their place; a type in words, and a
        // number in quotes with what to write instead.
        for (text, what) in [
            (
                "[rollout]\nshadow_percent = \"5\"",
                "expected a number; write it without quotes: 5",
            ),
            (
                "[limits]\nmax_rows = \"100\"",
                "expected a whole number, not negative; write it without quotes: 100",
            ),
            (
                "[fleet]\ndeploy_locally = \"true\"",
                "expected true or false; write it without quotes: true",
            ),
            (
                "[model]\nalpha = \" 0.5\"\nkind = \"ridge\"",
                "key `model.alpha`: invalid type: string \" 0.5\", expected a number; write it without quotes: 0.5",
            ),
            ("[rollout]\nshadow_percent = \"five\"", "string \"five\", expected a number (at"),
            ("[rollout]\npromote = \"later\"", "unknown variant `later`"),
            ("[rollout]\nsteps = 100", "invalid type"),
            ("[rollout]\nshadow_seconds = -1", "invalid value"),
            ("[rollout]\nwatch = 5", "unknown field `watch`"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(
                err.contains(what) && err.contains("line 2"),
                "{text}: {err}"
            );
        }
        let good = Config::from_toml(
            "[rollout]\npromote = \"manual\"\nshadow_seconds = 5\nshadow_percent = 0.5\nsteps = [10, 50, 100]\nstep_seconds = 3\nwatch_seconds = 4\nmax_error_rate = 0.01\nmax_latency_ratio = 3.0\nmax_divergence = 0.2\n[nginx]\npreview_from = [\"10.0.0.0/8\", \"192.0.2.7\"]",
        )
        .unwrap();
        assert_eq!(good.rollout.promote, crate::rollout::Promote::Manual);
        assert_eq!(good.rollout.shadow_percent, 0.5);
        // An integer is a share too.
        let whole = Config::from_toml("[rollout]\nshadow_percent = 100").unwrap();
        assert_eq!(whole.rollout.shadow_percent, 100.0);
        assert_eq!(good.rollout.canary_steps().collect::<Vec<_>>(), [10, 50]);
    }

    #[test]
    fn fleet_roles_and_their_keys() {
        assert_eq!(Config::default().fleet.role, Role::Standalone);
        let server = Config::from_toml("[fleet]\nrole = \"server\"").unwrap();
        assert_eq!(server.fleet.role, Role::Server);
        let trainer = Config::from_toml(
            "[fleet]\nrole = \"trainer\"\non_new_model = [\"ansible-playbook\", \"rollout.yml\", \"-e\", \"version={version}\"]\ndeploy_locally = false",
        )
        .unwrap();
        assert_eq!(trainer.fleet.role, Role::Trainer);
        assert!(!trainer.fleet.deploy_locally);
        // A trainer with no command deploys locally, as a standalone host would.
        Config::from_toml("[fleet]\nrole = \"trainer\"").unwrap();
    }

    #[test]
    fn every_bad_fleet_value_names_its_key() {
        let err = Config::from_toml("[fleet]\nrole = \"leader\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("leader") && err.contains("`standalone`, `trainer`, `server`"),
            "{err}"
        );
        assert!(err.contains("line 2"), "{err}");
        assert_eq!(
            invalid_key("[fleet]\nrole = \"server\"\non_new_model = [\"true\"]"),
            "fleet.on_new_model"
        );
        assert_eq!(
            invalid_key("[fleet]\non_new_model = [\"true\"]"),
            "fleet.on_new_model"
        );
        assert_eq!(
            invalid_key("[fleet]\nrole = \"server\"\ndeploy_locally = false"),
            "fleet.deploy_locally"
        );
        assert_eq!(
            invalid_key("[fleet]\nrole = \"trainer\"\ndeploy_locally = false"),
            "fleet.on_new_model"
        );
        assert_eq!(
            invalid_key("[fleet]\nrole = \"trainer\"\non_new_model = [\" \", \"x\"]"),
            "fleet.on_new_model"
        );
        assert_eq!(
            invalid_key(
                "[fleet]\nrole = \"trainer\"\non_new_model = [\"true\"]\non_new_model_timeout_secs = 0"
            ),
            "fleet.on_new_model_timeout_secs"
        );
        let err = Config::from_toml("[fleet]\non_new_model = \"ansible-playbook rollout.yml\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn every_bad_data_value_names_its_key() {
        for (text, key) in [
            ("[data]\nfile = \"\"", "data.file"),
            ("[data]\nfile = \"../x.csv\"", "data.file"),
            ("[data]\nfile = \"sub/x.csv\"", "data.file"),
            ("[data]\nfile = \".x.csv\"", "data.file"),
            ("[data]\nfeatures = []", "data.features"),
            ("[data]\nfeatures = [\"a\", \"\"]", "data.features"),
            ("[data]\nfeatures = [\" a\"]", "data.features"),
            ("[data]\nfeatures = [\"a\", \"A\"]", "data.features"),
            ("[data]\nfeatures = [\"a\", \"2\"]", "data.features"),
            ("[data]\nlabel = \"crim\"", "data.label"),
            ("[data]\nlabel = \"\"", "data.label"),
            ("[data]\nignore = [\"MEDV\"]", "data.ignore"),
            ("[data]\nignore = [\"id\", \"ID\"]", "data.ignore"),
        ] {
            assert_eq!(invalid_key(text), key, "{text}");
        }
        let err = Config::from_toml("[data]\nlabel = \"crim\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"crim\" is also in data.features"), "{err}");
    }

    #[test]
    fn every_bad_model_value_names_its_key() {
        for (text, key) in [
            ("name = \"\"", "model.name"),
            ("name = \"my model\"", "model.name"),
            ("kind = \"ridge\"\nalpha = -1.0", "model.alpha"),
            ("kind = \"ridge\"\nalpha = nan", "model.alpha"),
            ("kind = \"elastic_net\"\nl1_ratio = 1.5", "model.l1_ratio"),
            ("kind = \"lasso\"\nmax_iter = 0", "model.max_iter"),
            ("kind = \"lasso\"\ntol = 0.0", "model.tol"),
            ("kind = \"decision_tree\"\nmax_depth = 0", "model.max_depth"),
            (
                "kind = \"decision_tree\"\nmin_samples_split = 1",
                "model.min_samples_split",
            ),
            (
                "kind = \"random_forest\"\nmin_samples_leaf = 0",
                "model.min_samples_leaf",
            ),
            ("kind = \"random_forest\"\nn_trees = 0", "model.n_trees"),
            ("kind = \"random_forest\"\nm = 0", "model.m"),
            ("kind = \"random_forest\"\nm = 14", "model.m"),
            ("kind = \"knn\"\nk = 0", "model.k"),
            // A parameter the kind does not take.
            ("alpha = 1.0", "model.alpha"),
            ("kind = \"ridge\"\nn_trees = 10", "model.n_trees"),
            ("kind = \"knn\"\nseed = 1", "model.seed"),
        ] {
            assert_eq!(invalid_key(&format!("[model]\n{text}")), key, "{text}");
        }
        let err = Config::from_toml("[model]\nkind = \"ridge\"\nn_trees = 10")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`model.n_trees` is invalid: is not a parameter of kind \"ridge\", which takes alpha"),
            "{err}"
        );
        let err = Config::from_toml("[model]\nmax_depth = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kind \"linear\", which takes none"), "{err}");
    }

    #[test]
    fn unknown_model_keys_and_kinds_are_refused_by_name() {
        let err = Config::from_toml("[model]\nkind = \"random_forest\"\nntrees = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `ntrees` in [model]"), "{err}");
        assert!(err.contains("n_trees"), "{err}");
        let err = Config::from_toml("[model]\nkind = \"random_forest\"\nn_trees = \"ten\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`model.n_trees`: invalid type: string \"ten\""),
            "{err}"
        );
        let err = Config::from_toml("[model]\nkind = \"svm\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown variant `svm`") && err.contains("random_forest"),
            "{err}"
        );
        let err = Config::from_toml("[model]\nkind = \"knn\"\nweights = \"far\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `far`"), "{err}");
        let err = Config::from_toml("[data]\nfeature = [\"a\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `feature`") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn data_and_model_are_read_as_written() {
        let config = Config::from_toml(
            "[data]\nfile = \"houses.csv\"\nfeatures = [\"rooms\", \"area\"]\nlabel = \"price\"\nignore = [\"id\"]\n[model]\nname = \"houses\"\nkind = \"random_forest\"\nn_trees = 50\nmax_depth = 8\nseed = 7\n",
        )
        .unwrap();
        assert_eq!(config.data.file, "houses.csv");
        assert_eq!(config.data.features, ["rooms", "area"]);
        assert_eq!(config.data.ignore, ["id"]);
        assert_eq!(config.model.name, "houses");
        assert_eq!(config.model.kind, Kind::RandomForest);
        assert_eq!(config.model.params.n_trees, Some(50));
        assert_eq!(config.model.params.max_depth, Some(8));
        assert_eq!(config.model.params.seed, Some(7));
        assert_eq!(
            config.model.params.set(),
            ["model.max_depth", "model.n_trees", "model.seed"]
        );
    }

    #[test]
    fn every_bad_dashboard_address_is_named_with_what_is_wrong() {
        for (entry, why) in [
            ("", "is not an IP address or network"),
            ("dashboard.example.com", "host names are not allowed"),
            ("10.0.0.0/8; allow all", "must be a number from 0 to 32"),
            ("all", "is not an IP address or network"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("2001:db8::/129", "from 0 to 128"),
            ("10.0.0.0/-1", "from 0 to 32"),
            ("10.0.0.0/", "from 0 to 32"),
            ("10.0.0/8", "\"10.0.0\" is not an IPv4 or IPv6 address"),
            ("10.0.0.1/8", "host bits set after /8; write 10.0.0.0/8"),
            ("2001:db8::1/32", "write 2001:db8::/32"),
        ] {
            let text = format!("[dashboard]\nallow = [\"127.0.0.2\", {entry:?}]");
            match Config::from_toml(&text) {
                Err(ConfigError::Invalid { key, why: got }) => {
                    assert_eq!(key, "dashboard.allow", "{entry}");
                    assert!(got.contains(why), "{entry}: {got}");
                    assert!(got.contains(&format!("{entry:?}")), "{entry}: {got}");
                }
                other => panic!("{entry:?} was not refused: {other:?}"),
            }
        }
        let err = Config::from_toml("[dashboard]\nallow = \"10.0.0.0/8\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
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
        let err = Config::from_toml("[nginx]\nswitch = \"sockets\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sockets")
                && err.contains("`reload` or `socket`")
                && err.contains("line 2"),
            "{err}"
        );
    }

    /// The package's config parses, and its commented-out values are the defaults it says
    /// they are.
    #[test]
    fn the_packaged_config_shows_the_defaults() {
        let text = include_str!("../packaging/config.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
        let uncommented: Vec<&str> = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(setting) if !setting.starts_with([' ', '#']) && !setting.is_empty() => setting,
                _ => line,
            })
            .collect();
        assert_eq!(
            Config::from_toml(&uncommented.join("\n")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn every_bad_value_is_listed_at_once() {
        let config =
            Config::parse("batch_size = 0\nkeep_models = 1\n[limits]\nmax_rows = 0\n").unwrap();
        let keys: Vec<String> = config
            .invalid()
            .iter()
            .map(|e| match e {
                ConfigError::Invalid { key, .. } => key.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(keys, ["batch_size", "keep_models", "limits.max_rows"]);
        assert!(Config::default().invalid().is_empty());
    }

    #[test]
    fn defaults_are_named_for_hints() {
        assert_eq!(Config::default_of("batch_size").as_deref(), Some("2"));
        assert_eq!(
            Config::default_of("slots.blue").as_deref(),
            Some("\"127.0.0.1:8081\"")
        );
        assert_eq!(Config::default_of("no.such.key"), None);
    }

    #[test]
    fn the_last_good_config_round_trips_with_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bg.toml");
        std::fs::write(
            &path,
            "state_dir = \"state\"\nbatch_size = 7\n[gate]\ntolerance = 0.25\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        std::fs::create_dir_all(&config.state_dir).unwrap();
        let saved = config.save_as_last_good().unwrap();
        assert_eq!(saved, config.state_dir.join(LAST_GOOD_FILE));
        let text = std::fs::read_to_string(&saved).unwrap();
        assert!(
            text.starts_with("# The last configuration that passed"),
            "{text}"
        );
        let back = Config::from_file(&saved).unwrap();
        assert_eq!(
            Config {
                source: None,
                ..back
            },
            Config {
                source: None,
                ..config
            }
        );
    }

    #[test]
    fn a_bad_file_falls_back_to_the_last_good_one_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bg.toml");
        std::fs::write(&path, "state_dir = \"state\"\nbatch_size = 5\n").unwrap();
        let good = Config::from_file(&path).unwrap();
        std::fs::create_dir_all(&good.state_dir).unwrap();

        // No last good config yet: the error names both.
        std::fs::write(&path, "state_dir = \"state\"\nbatch_size = 0\n").unwrap();
        let err = Config::discover_or_last_good(Some(&path)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`batch_size`") && text.contains(LAST_GOOD_FILE),
            "{text}"
        );

        good.save_as_last_good().unwrap();
        let (config, fallback) = Config::discover_or_last_good(Some(&path)).unwrap();
        assert_eq!(config.batch_size, 5);
        let fallback = fallback.expect("a fallback");
        assert!(
            fallback.reason().contains("`batch_size` is invalid"),
            "{}",
            fallback.reason()
        );
        assert!(
            fallback.reason().contains("bg.toml"),
            "{}",
            fallback.reason()
        );
        let summary = fallback.summary("running on");
        assert!(
            summary.starts_with("CONFIG IS BAD (")
                && summary.contains("running on the last good one (")
                && summary.contains("hint:"),
            "{summary}"
        );

        // A file that is not TOML at all cannot say where its state is: the copy is looked
        // for under the default state_dir, and the error names that place.
        std::fs::write(&path, "state_dir = \"state\"\nbatch_size = \n").unwrap();
        let err = Config::discover_or_last_good(Some(&path)).unwrap_err();
        assert!(
            err.to_string()
                .contains("/var/lib/bluegreen/config.last-good.toml"),
            "{err}"
        );

        // A good file needs no fallback.
        std::fs::write(&path, "state_dir = \"state\"\n").unwrap();
        let (config, fallback) = Config::discover_or_last_good(Some(&path)).unwrap();
        assert!(fallback.is_none());
        assert_eq!(config.batch_size, 2);
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

    /// A [model] parameter's error is placed at its own line, not the table's; a number too
    /// large for TOML itself still names its key.
    #[test]
    fn a_parameters_error_is_at_its_line_and_a_huge_number_names_its_key() {
        let err = Config::from_toml("batch_size = 2\n[model]\nkind = \"ridge\"\n\nalpha = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `model.alpha`: invalid type")
                && err.contains("(at line 5, column 9)"),
            "{err}"
        );
        for (text, key, line) in [
            (
                "[limits]\nmax_rows = 99999999999999999999",
                "limits.max_rows",
                2,
            ),
            (
                "[rollout]    # see Rollouts\nstep_seconds = 99999999999999999999 # s",
                "rollout.step_seconds",
                2,
            ),
            (
                "[rollout]\nsteps = [\n  50,\n  99999999999999999999,\n]",
                "rollout.steps",
                4,
            ),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(
                err.contains(&format!("key `{key}`: ")) && err.contains(&format!("line {line}")),
                "{text}: {err}"
            );
        }
    }

    /// A value in the wrong TOML form says what the key takes and, when a likely rewrite is
    /// one the key takes, how to write it. toml's own words were "unit variant, expected
    /// string only", "wanted string or table" and "expected a sequence".
    #[test]
    fn a_value_in_the_wrong_form_says_what_the_key_takes_and_how_to_write_it() {
        for (text, says) in [
            (
                "[model]\nkind = 3",
                "key `model.kind`: expected one of `linear`, `ridge`, `lasso`, `elastic_net`, `decision_tree`, `random_forest`, `knn`, in double quotes (at line 2, column 8)",
            ),
            (
                "[model]\nkind = \"knn\"\nweights = 2",
                "key `model.weights`: expected `uniform` or `distance`, in double quotes (at line 3",
            ),
            (
                "[rollout]\npromote = true",
                "key `rollout.promote`: expected `auto` or `manual`, in double quotes (at line 2",
            ),
            (
                "[fleet]\nrole = 1",
                "key `fleet.role`: expected one of `standalone`, `trainer`, `server`, in double quotes",
            ),
            (
                "[rollout]\nsteps = \"100\"",
                "expected a list in square brackets; write it as a list: [100] (at line 2",
            ),
            (
                "[rollout]\nsteps = 100",
                "expected a list in square brackets; write it as a list: [100] (at line 2",
            ),
            (
                "[rollout]\nsteps = \"[10, 100]\"",
                "expected a list in square brackets; write it without quotes: [10, 100] (at",
            ),
            (
                "[rollout]\nsteps = \"10, 100\"",
                "expected a list in square brackets; write it as a list: [10, 100] (at",
            ),
            (
                "[data]\nfeatures = \"CRIM\"",
                "key `data.features`: invalid type: string \"CRIM\", expected a list in square brackets; write it as a list: [\"CRIM\"] (at",
            ),
            (
                "[data]\nfeatures = '[\"CRIM\", \"ZN\"]'",
                "expected a list in square brackets; write it without quotes: [\"CRIM\", \"ZN\"] (at",
            ),
            (
                "[data]\nfeatures = \"CRIM, ZN\"",
                "expected a list in square brackets; write it as a list: [\"CRIM\", \"ZN\"] (at",
            ),
            (
                "[data]\nfeatures = \"e\\u0301\"",
                "write it as a list: [\"e\u{301}\"] (at",
            ),
            (
                "[data]\nignore = \"\"",
                "expected a list in square brackets; write it as an empty list: [] (at",
            ),
            (
                "[data]\nlabel = true",
                "key `data.label`: invalid type: boolean `true`, expected text in double quotes; write it in quotes: \"true\" (at",
            ),
            (
                "[data]\nlabel = 1979-05-27",
                "key `data.label`: invalid type: date or time, expected text in double quotes; write it in quotes: \"1979-05-27\" (at",
            ),
            (
                "[data]\nfeatures = [\"CRIM\", true]",
                "key `data.features`: invalid type: boolean `true`, expected text in double quotes; write it in quotes: \"true\" (at line 2, column 21)",
            ),
            (
                "[slots]\nblue = 8085",
                "key `slots.blue`: invalid type: integer `8085`, expected an address and port in double quotes, such as \"127.0.0.1:8081\"; write an IP address and the port: \"127.0.0.1:8085\" (at",
            ),
            (
                "[slots]\nblue = \"localhost:8085\"",
                "key `slots.blue`: invalid socket address syntax; write an IP address and the port: \"127.0.0.1:8085\" (at",
            ),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
        // Found by a review: advice where a rewrite of another kind is the likely one.
        for (text, says) in [
            (
                "[rollout]\nsteps = [\"10\", \"50\", \"100\"]",
                "write its items without quotes: [10, 50, 100] (at",
            ),
            (
                "[rollout]\nsteps = \"10 50 100\"",
                "write it as a list: [10, 50, 100] (at",
            ),
            (
                "[data]\nfeatures = \"[CRIM, ZN,]\"",
                "write it as a list: [\"CRIM\", \"ZN\"] (at",
            ),
            (
                "[data]\nlabel = [\"MEDV\"]",
                "invalid type: list, expected text in double quotes; write it without the brackets: \"MEDV\" (at",
            ),
            ("batch_size = 2.0", "write it as a whole number: 2 (at"),
            (
                "[slots]\nblue = \" 127.0.0.1:8085\"",
                "write it without the spaces: \"127.0.0.1:8085\" (at",
            ),
            (
                "[slots]\nblue = 0x1F95",
                "write an IP address and the port: \"127.0.0.1:8085\" (at",
            ),
            (
                "[fleet]\nrole = \"trainer\"\non_new_model = \"/usr/local/bin/notify\"",
                "write it as a list: [\"/usr/local/bin/notify\"] (at",
            ),
            (
                "[model]\nname = 1979-05-27",
                "key `model.name`: invalid type: date or time, expected text in double quotes; write it in quotes: \"1979-05-27\" (at line 2",
            ),
            // A table written as a value, or as a list of tables.
            (
                "nginx = \"reload\"",
                "key `nginx`: expected a table: a `[nginx]` line with its keys on the lines below it (at line 1",
            ),
            (
                "data = [\"CRIM\"]",
                "key `data`: expected a table: a `[data]` line",
            ),
            (
                "[[rollout]]\npromote = \"manual\"",
                "key `rollout`: written `[[rollout]]`, a list of tables; write `[rollout]`, with single brackets",
            ),
            // A third review: the item as TOML writes it, without the comment beside it; a
            // [model] parameter's place is its value's; toml's syntax errors on one line.
            (
                "[data]\nlabel = [ \"y\" # the label\n]",
                "write it without the brackets: \"y\" (at line 2, column 9)",
            ),
            (
                "model = { kind = \"knn\", k = \"3\" }",
                "key `model.k`: invalid type: string \"3\", expected a whole number, not negative; write it without quotes: 3 (at line 1, column 29)",
            ),
            ("[rollout\nx = 1", "invalid table header: expected `.`, `]` (at line 1"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
        // No advice where no likely rewrite is one the key takes, in this file: a command
        // line is not split into words by guess, a label may not be a number, steps end at
        // 100 and socket mode takes none, a port may not be another key's, a rewrite of
        // several lines or of characters a terminal does not show as they are is none, and a
        // name is text.
        for text in [
            "[fleet]\non_new_model = \"ansible-playbook -i inventory.ini rollout.yml\"",
            "[data]\nlabel = 5",
            "[data]\nfeatures = \"5\"",
            "[rollout]\nsteps = \"[10, 50]\"",
            "[nginx]\nswitch = \"socket\"\n[rollout]\nsteps = \"10, 100\"",
            "public_port = 8085\n[slots]\nblue = 8085",
            "[rollout]\nsteps = \"\"\"\n10,\n100\n\"\"\"",
            "[data]\nfeatures = \"\\u202e\"",
            "[data]\nfeatures = \"CRIM\\u3164, ZN\"",
            "[model]\nkind = { knn = {} }",
            // A rewrite that leaves a problem at the key itself, even one its default has.
            "[fleet]\nrole = \"trainer\"\ndeploy_locally = false\non_new_model = \"\"",
            "[slots]\nblue = \"127.0.0.1:8082\"\ngreen = 8082",
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(!err.contains("; write"), "{text}: {err}");
        }
    }

    /// `wrong_types` sets each key of the wrong type aside and reads on, with every later place
    /// right (a key of several bytes a character is blanked byte for byte), through dotted
    /// keys and inline tables; where setting a key aside is not possible (`kind.x = 1`) it
    /// stops and says the list is incomplete. `parse`, which every command uses, names the
    /// same first problem.
    #[test]
    fn every_value_of_the_wrong_type_is_found_and_the_places_stay_right() {
        let found = |text: &str| -> (Vec<String>, bool) {
            let (found, complete) = Config::wrong_types(text);
            (found.iter().map(|e| e.to_string()).collect(), complete)
        };
        let text = "[data]\nlabel = [\"é\", \"ü\"]\nfeatures = \"CRIM\"\n[rollout]\nsteps = [\n  10,\n  \"100\",\n]\nshadow_seconds = \"x\"\n[gate]\ntolerance = -1\n";
        let (all, complete) = found(text);
        assert!(complete, "{all:#?}");
        assert_eq!(all.len(), 4, "{all:#?}");
        for (found, says) in all.iter().zip([
            "key `data.label`: invalid type: list, expected text in double quotes (at line 2, column 9)",
            "key `data.features`: invalid type: string \"CRIM\", expected a list in square brackets; write it as a list: [\"CRIM\"] (at line 3, column 12)",
            "key `rollout.steps`: invalid type: string \"100\", expected a whole number, not negative and at most 4294967295; write it without quotes: 100 (at line 7, column 3)",
            "key `rollout.shadow_seconds`: invalid type: string \"x\", expected a whole number, not negative (at line 9, column 18)",
        ]) {
            assert!(found.contains(says), "{found} does not say {says}");
        }
        assert_eq!(found("batch_size = 3\n"), (vec![], true));
        // Dotted keys and inline tables: each key is set aside, and the search reads on.
        let (all, complete) = found(
            "batch_size = \"3\"\nslots.blue = 5\nrollout = { promote = 5, steps = \"100\" }\nkeep_models = \"4\"\n",
        );
        assert!(complete, "{all:#?}");
        // A place after a pair blanked out is counted in the file as written: `é` is one
        // character, though two bytes, and two spaces once blanked.
        let (after_e, _) = found("rollout = { promote = \"é\", steps = \"100\" }\n");
        assert!(
            after_e[1].contains("key `rollout.steps`")
                && after_e[1].contains("(at line 1, column 36)"),
            "{after_e:#?}"
        );
        let keys: Vec<&str> = all
            .iter()
            .map(|e| e.split('`').nth(1).unwrap_or(""))
            .collect();
        assert_eq!(
            keys,
            [
                "batch_size",
                "slots.blue",
                "rollout.promote",
                "rollout.steps",
                "keep_models"
            ],
            "{all:#?}"
        );
        // A list of tables is set aside whole, after what is above it.
        let (all, complete) = found("batch_size = \"3\"\n[[rollout]]\npromote = \"manual\"\n");
        assert!(complete && all.len() == 2, "{all:#?}");
        assert!(
            all[1].contains("key `rollout`: written `[[rollout]]`"),
            "{all:#?}"
        );
        // A key that cannot be set aside (a dotted key under a name key): the search stops,
        // and says so.
        let (all, complete) = found("[model]\nkind.x = 1\n[data]\nlabel = 5\n");
        assert!(!complete && all.len() == 1, "{all:#?}");
        // Every command's first problem is the file's first.
        let err = Config::from_toml("batch_size = \"2\"\n[nginx]\nswitch = [\"reload\"]\n[model]\ntol = \"x\"\nalpha = \"y\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `batch_size`"), "{err}");
        let err = Config::from_toml("[model]\ntol = \"x\"\nalpha = \"y\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `model.tol`"), "{err}");
    }

    /// A quoted value is said to be written without quotes only when the type takes it so
    /// (`"-1"` is not a port, `"5."` is not TOML).
    #[test]
    fn a_quoted_value_is_unquoted_only_when_that_fits() {
        for text in [
            "public_port = \"-1\"",
            "public_port = \"70000\"",
            "public_port = \"80.5\"",
            "[limits]\nmax_rows = \"1e3\"",
            "[rollout]\nshadow_percent = \"5.\"",
            "[rollout]\nshadow_percent = \"inf\"",
            "[rollout]\nshadow_percent = \"five\"",
            "[fleet]\ndeploy_locally = \"yes\"",
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(
                err.contains("invalid type: string") && !err.contains("without quotes"),
                "{text}: {err}"
            );
        }
    }
}
