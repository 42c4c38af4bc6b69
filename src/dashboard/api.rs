//! The dashboard's JSON, under `/-/api/` (see the module doc of `crate::dashboard` for what
//! each costs and how it is bounded):
//!
//! | route | answer |
//! | --- | --- |
//! | `/-/api/status` | what `bluegreen status --json` prints, but asked from inside the slot: no probes (`slots[].serving` is null, `health` says why; the page asks each slot) |
//! | `/-/api/history` | `{"records": [...], "truncated": bool}`: the last 200 records of the history, oldest first, as the file holds them |
//! | `/-/api/models` | `{"models": [...]}`: per stored model, oldest first, its version, time, rows, kind and fit figures, or why it cannot be read |
//! | `/-/api/predictions` | `{"holdout_rows", "actual": [...], "models": [{"version", "roles", "predicted": [...]}]}`: the active and the newest model on the same holdout rows, by actual value |
//! | `/-/api/slot` | this slot's live counters ([`Live`]) |
//!
//! A failure to read the state folder is a 500 with the usual `{"error", "hint"}`: nothing a
//! client sends can cause it.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::assets::hardened;
use crate::config::Config;
use crate::data::{self, Learned, Scan, Schema};
use crate::history;
use crate::layout::Layout;
use crate::model::{self, Artifact, Store};
use crate::server::{AppState, Live};
use crate::slot::Slot;
use crate::status::{self, Probe, Status};

/// The status is gathered at most this often, however many pages poll it.
const STATUS_TTL: Duration = Duration::from_secs(1);
/// History records the timeline shows, and how much of the file's end is read for them
/// (a record is about 0.5 KiB).
const HISTORY_RECORDS: usize = 200;
const HISTORY_BYTES: u64 = 512 * 1024;
/// Models whose figures are shown, the newest ones.
const MODELS: usize = 200;
/// Holdout rows predicted for the predicted-against-actual chart, at most.
const POINTS: usize = 300;

/// The dashboard's state: what it reads from, and what it keeps between requests.
pub struct Site {
    config: Config,
    /// Why this slot runs on the last good configuration, if it does.
    config_error: Option<String>,
    layout: Layout,
    slot: Arc<AppState>,
    status: Mutex<Option<(Instant, Arc<Status>)>>,
    scan: Mutex<Option<(ScanKey, Result<Scan, String>)>>,
    history: Mutex<Option<(Stamp, Arc<Value>)>>,
    models: Mutex<HashMap<String, Arc<Value>>>,
    predictions: Mutex<Option<(String, Arc<Value>)>>,
}

/// What a scan of the data depends on: the file, and what the newest model learned from.
type ScanKey = (Option<Stamp>, Option<(usize, Option<u64>, String)>);

/// What a file is now, cheaply: a file whose stamp did not change need not be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            inode: meta.ino(),
            len: meta.len(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }
}

/// Why an answer could not be made: the client sees it as a 500 with a hint.
struct Failure(String);

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(history::chain(&e))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.0,
            "hint": "see `bluegreen status` and the slot's log on the server",
        });
        hardened((StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response())
    }
}

impl Site {
    /// The dashboard of the slot `slot` describes, reading the state folder `config` names.
    pub fn new(config: &Config, slot: Arc<AppState>, config_error: Option<String>) -> Site {
        Site {
            config: config.clone(),
            config_error,
            layout: Layout::new(&config.state_dir),
            slot,
            status: Mutex::new(None),
            scan: Mutex::new(None),
            history: Mutex::new(None),
            models: Mutex::new(HashMap::new()),
            predictions: Mutex::new(None),
        }
    }

    /// The status, gathered again when the last is older than [`STATUS_TTL`]. Requests that
    /// arrive meanwhile wait for the one gathering it.
    fn status(&self) -> Result<Arc<Status>, Failure> {
        let mut cached = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, value)) = cached.as_ref() {
            if at.elapsed() < STATUS_TTL {
                return Ok(value.clone());
            }
        }
        let mut status = status::gather(&self.config, self, Vec::new())?;
        status.config_error = self.config_error.clone();
        let status = Arc::new(status);
        *cached = Some((Instant::now(), status.clone()));
        Ok(status)
    }

    fn history(&self) -> Result<Arc<Value>, Failure> {
        let path = self.layout.history();
        let stamp = Stamp::of(&path);
        let mut cached = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(now), Some((then, value))) = (stamp, cached.as_ref()) {
            if now == *then {
                return Ok(value.clone());
            }
        }
        let tail = history::tail(&path, HISTORY_RECORDS, HISTORY_BYTES)?;
        let value = Arc::new(serde_json::to_value(tail)?);
        if let Some(stamp) = stamp {
            *cached = Some((stamp, value.clone()));
        }
        Ok(value)
    }

    fn models(&self) -> Result<Value, Failure> {
        let store = Store::new(&self.layout.models_dir());
        let versions = store.versions()?;
        let shown = &versions[versions.len().saturating_sub(MODELS)..];
        let mut cached = self.models.lock().unwrap_or_else(|e| e.into_inner());
        cached.retain(|version, _| shown.contains(version));
        let models: Vec<Arc<Value>> = shown
            .iter()
            .map(|version| {
                cached
                    .entry(version.clone())
                    .or_insert_with(|| Arc::new(summary(&store, version)))
                    .clone()
            })
            .collect();
        Ok(json!({ "models": models }))
    }

    /// The active and the newest model on the same holdout rows: every fifth row among the
    /// first rows both learned from (`model::is_holdout`), at most [`POINTS`] of them taken
    /// evenly, sorted by actual value. Holdout rows are never trained on, so the chart tests
    /// both models on rows neither has seen.
    fn predictions(&self) -> Result<Arc<Value>, Failure> {
        let status = self.status()?;
        let active = status
            .slots
            .iter()
            .find(|s| Some(s.slot) == status.active)
            .and_then(|s| s.model.as_deref());
        let newest = status.newest_model.as_deref();
        let mut wanted: Vec<(&str, Vec<&str>)> = Vec::new();
        for (version, role) in [(active, "active"), (newest, "newest")] {
            let Some(version) = version else { continue };
            match wanted.iter_mut().find(|(v, _)| *v == version) {
                Some((_, roles)) => roles.push(role),
                None => wanted.push((version, vec![role])),
            }
        }
        let csv = self.layout.data_csv(&self.config.data);
        let key = format!("{wanted:?} {:?}", Stamp::of(&csv));
        let mut cached = self.predictions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((then, value)) = cached.as_ref() {
            if *then == key {
                return Ok(value.clone());
            }
        }
        let store = Store::new(&self.layout.models_dir());
        let models = wanted
            .iter()
            .map(|(version, roles)| Ok((store.load(version)?, roles)))
            .collect::<Result<Vec<(Artifact, &Vec<&str>)>, Failure>>()?;
        let schema = Schema::of(&self.config.data);
        let data = data::read_dataset(&csv, &schema)?;
        // Each model's features, where the file has them: a model of another schema (issue 9
        // allows a deploy of one) cannot be shown against these rows.
        let columns: Vec<Option<Vec<usize>>> = models
            .iter()
            .map(|(m, _)| data.columns_of(&m.features, &m.label))
            .collect();
        let learned = models
            .iter()
            .zip(&columns)
            .filter(|(_, c)| c.is_some())
            .map(|((m, _), _)| m.rows)
            .min()
            .unwrap_or(0)
            .min(data.rows.len());
        let holdout: Vec<usize> = (0..learned).filter(|i| model::is_holdout(*i)).collect();
        let taken = holdout.len().min(POINTS);
        let label = schema.features.len();
        let mut sample: Vec<&[f64]> = (0..taken)
            .map(|k| data.rows.row(holdout[k * holdout.len() / taken]))
            .collect();
        sample.sort_by(|a, b| a[label].total_cmp(&b[label]));
        let predicted = |model: &Artifact, columns: &[usize]| -> Result<Vec<f64>, Failure> {
            let block: Vec<f64> = sample
                .iter()
                .flat_map(|row| columns.iter().map(|&c| row[c]))
                .collect();
            Ok(model.predict_rows(&block)?)
        };
        let mut shown = Vec::new();
        for ((model, roles), columns) in models.iter().zip(&columns) {
            shown.push(match columns {
                Some(columns) => json!({
                    "version": model.version,
                    "roles": roles,
                    "predicted": predicted(model, columns)?,
                }),
                None => json!({
                    "version": model.version,
                    "roles": roles,
                    "error": format!("it was trained on other columns ({} from {}) than the data file has", model.label, model.features.join(", ")),
                }),
            });
        }
        let value = Arc::new(json!({
            "label": schema.label,
            "holdout_rows": holdout.len(),
            "actual": sample.iter().map(|r| r[label]).collect::<Vec<f64>>(),
            "models": shown,
        }));
        *cached = Some((key, value.clone()));
        Ok(value)
    }
}

/// What the dashboard shows of one model, or why it cannot be read.
fn summary(store: &Store, version: &str) -> Value {
    let artifact = match store.load(version) {
        Ok(a) => a,
        Err(e) => return json!({ "version": version, "error": history::chain(&e) }),
    };
    #[derive(Serialize)]
    struct Summary<'a> {
        version: &'a str,
        seq: u64,
        trained_at: &'a str,
        rows: usize,
        kind: &'static str,
        solver: &'a str,
        metrics: &'a model::Metrics,
        gate: Option<&'a crate::gate::GateReport>,
    }
    serde_json::to_value(Summary {
        version: &artifact.version,
        seq: artifact.seq(),
        trained_at: &artifact.trained_at,
        rows: artifact.rows,
        kind: artifact.kind.as_str(),
        solver: &artifact.solver,
        metrics: &artifact.metrics,
        gate: artifact.gate.as_ref(),
    })
    .unwrap_or_else(|e| json!({ "version": version, "error": e.to_string() }))
}

/// Inside a slot nothing is probed: under systemd a slot has no network of its own to ask
/// NGINX or the other slot with (`PrivateNetwork=yes`). The page asks each slot through
/// NGINX instead, and the answer's `X-Slot` header says where NGINX routed it.
impl Probe for Site {
    fn nginx_routes(&self, _config: &Config) -> Result<Option<Slot>, String> {
        Ok(None)
    }

    fn slot(
        &self,
        _addr: &crate::switch::Endpoint,
        _linked: Option<&str>,
    ) -> (Option<String>, String) {
        (
            None,
            "not probed from the slot; the dashboard asks the slot itself".to_string(),
        )
    }

    /// Scanned again only when the file, or the newest model, changed.
    fn data(&self, path: &Path, schema: &Schema, learned: Option<Learned>) -> Result<Scan, String> {
        let key = (
            Stamp::of(path),
            learned.map(|l| (l.rows, l.bytes, l.sha256.to_string())),
        );
        let mut cached = self.scan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((then, scan)) = cached.as_ref() {
            if then.0.is_some() && *then == key {
                return scan.clone();
            }
        }
        let scan = status::Ask.data(path, schema, learned);
        *cached = Some((key, scan.clone()));
        scan
    }
}

/// Runs `work` on a blocking thread and answers with its JSON.
async fn blocking<T: Serialize + Send + 'static>(
    site: Arc<Site>,
    work: fn(&Site) -> Result<T, Failure>,
) -> Response {
    match tokio::task::spawn_blocking(move || work(&site)).await {
        Ok(Ok(value)) => hardened(Json(value).into_response()),
        Ok(Err(failure)) => failure.into_response(),
        Err(e) => Failure(format!("the dashboard failed while answering: {e}")).into_response(),
    }
}

/// `/-/api/status`: the status report, as `bluegreen status --json` has it.
pub async fn status(State(site): State<Arc<Site>>) -> Response {
    blocking(site, Site::status).await
}

/// `/-/api/history`: the history's last records.
pub async fn history(State(site): State<Arc<Site>>) -> Response {
    blocking(site, Site::history).await
}

/// `/-/api/models`: every stored model's figures.
pub async fn models(State(site): State<Arc<Site>>) -> Response {
    blocking(site, Site::models).await
}

/// `/-/api/predictions`: the active and the newest model on the same holdout rows.
pub async fn predictions(State(site): State<Arc<Site>>) -> Response {
    blocking(site, Site::predictions).await
}

/// `/-/api/slot`: this slot's counters. No file, no lock, so it is answered right here.
pub async fn slot(State(site): State<Arc<Site>>) -> Response {
    let live: Live = site.slot.live();
    hardened(Json(live).into_response())
}

/// The 405 for any method but GET and HEAD: nothing under `/-` changes state (issue 12).
pub async fn read_only(request: Request) -> Response {
    let body = json!({
        "error": format!(
            "method {} not allowed on {}: the dashboard is read-only",
            request.method(),
            request.uri().path()
        ),
        "hint": "use GET or HEAD; deploys, rollbacks and restarts are `bluegreen` commands on the server",
    });
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("GET, HEAD"),
    );
    hardened(response)
}
