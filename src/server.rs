//! The slot's HTTP server: the prediction API, health, model info and metrics.
//!
//! Error policy: a request that is wrong in any way (bad JSON, wrong row length, a value that
//! is not a finite number, no rows, too many rows, a body over the limit or too slow, a wrong
//! method or path) gets a 4xx with `{"error": "<what is wrong and where>", "hint": "<what to
//! do>"}`. Nothing a client sends can produce a 5xx or a panic: the handler has no fallible
//! step that is not the client's fault.
//!
//! The request path is lean: the model is loaded once before the server starts and shared
//! read-only; there are no locks and no file I/O per request; metrics are atomics.
//!
//! The inference protocols' routes answer their errors in the protocol's own shape,
//! `{"error": "<what is wrong and where>; hint: <what to do>"}` ([`ProtocolError`]), with the
//! status the protocol uses (400 where `POST /` says 422).
//!
//! [`run`] takes the listener and a shutdown future (as mini-redis does), so tests can bind
//! `127.0.0.1:0` and stop the server when they like; `conn` owns the connections and their
//! timeouts, `path` how a request's path finds its route, `rows` the row formats of a
//! request body, `v2` the Open Inference Protocol and `v1` KServe's v1 protocol.
//!
//! **Letting go of NGINX (switch mode "socket", issue 10).** NGINX keeps idle connections to
//! the slot and cannot tell them from connections to the other slot (`crate::switch`). So a
//! slot that learns it rests ([`AppState::set_closing`]) answers every request from then on
//! with `Connection: close` and closes the connection after it: NGINX uses each connection it
//! cached at most once more, and does not keep it. Connections that stay idle are closed by
//! NGINX itself after its `keepalive_timeout` (`nginx::UPSTREAM_IDLE_SECS`). The slot never
//! closes an idle one: NGINX may be sending a request on it at that very instant, and when a
//! slot closed all its idle connections at once, a request met one dead cached connection
//! after another until NGINX had tried every `server` line, and got a 502 (1–3 in five flips
//! under `tests/it/flips.rs`'s load, with "no live upstreams" in NGINX's log). The cost on the
//! request path is one relaxed atomic load per answer.

mod conn;
mod live;
mod path;
pub mod rows;
pub mod shadow;
mod v1;
mod v2;

pub use conn::run;
pub use live::Live;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{json, Value};

use crate::history::RefusalCount;
use crate::model::Artifact;
use crate::rollout::fault::{Effect, Fault};
use crate::slot::Slot;
use rows::Refusal;
use shadow::{Mirrored, Shadow};

/// Upper bounds of the latency histogram, in seconds. Fine enough (about ×1.5 from one to the
/// next) for a rollout to compare two slots' p99 (issue 11, `crate::rollout::metrics`).
const BUCKETS: [f64; 25] = [
    0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
    0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
];

/// The histogram bucket of a latency of `seconds` (the last one is +Inf).
fn bucket(seconds: f64) -> usize {
    BUCKETS
        .iter()
        .position(|b| seconds <= *b)
        .unwrap_or(BUCKETS.len())
}

/// Writes a latency histogram's `_bucket` lines, cumulative, as Prometheus reads them.
fn render_histogram(out: &mut String, name: &str, buckets: &[AtomicU64]) -> u64 {
    use std::fmt::Write;
    let mut cumulative = 0;
    for (i, bucket) in buckets.iter().enumerate() {
        cumulative += bucket.load(Ordering::Relaxed);
        let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative
}

/// What the server needs: the model, which slot it is, and the request limits.
pub struct AppState {
    model: Artifact,
    /// `[model] name`: the model's name in the inference protocols' paths.
    name: String,
    /// The Open Inference Protocol's answers that never change.
    v2: v2::Answers,
    /// `GET /model`'s description of it, made once.
    described: Value,
    slot: Slot,
    max_rows: usize,
    /// The largest magnitude a value may have, [`data::max_magnitude`] of the model's width:
    /// what `predict` and the CSV reader take.
    max_magnitude: f64,
    version_header: HeaderValue,
    slot_header: HeaderValue,
    metrics: Metrics,
    /// Gate refusals in the history, kept current by `serve` off the request path.
    gate_refusals: RefusalCount,
    /// While set, every answer says `Connection: close` (see the module doc).
    closing: AtomicBool,
    /// The reference model and figures of a shadow phase (issue 11), when `serve` set one.
    shadow: OnceLock<Shadow>,
    /// A test-only fault (debug builds; `crate::rollout::fault`).
    fault: Option<Fault>,
}

struct Metrics {
    /// Requests by status code, indexed by `status - 100`.
    by_status: Vec<AtomicU64>,
    /// Request count per latency bucket (the last one is +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_micros_sum: AtomicU64,
    rows_predicted: AtomicU64,
    /// When these counters began, in seconds since the Unix epoch: Prometheus's
    /// `process_start_time_seconds`, by which a reader tells a restart (counters back to 0).
    started: f64,
}

impl AppState {
    /// The state for a slot serving `model` under the name `name` (`[model] name`).
    pub fn new(model: Artifact, name: &str, slot: Slot, max_rows: usize) -> Arc<AppState> {
        let version_header = HeaderValue::from_str(&model.version)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        let fault = Fault::for_model(&model.version);
        Arc::new(AppState {
            described: model.describe(),
            name: name.to_string(),
            v2: v2::Answers::new(name, &model),
            max_magnitude: crate::data::max_magnitude(model.features.len()),
            model,
            slot,
            max_rows,
            version_header,
            slot_header: HeaderValue::from_static(slot.as_str()),
            metrics: Metrics {
                by_status: (100..600).map(|_| AtomicU64::new(0)).collect(),
                buckets: Default::default(),
                latency_micros_sum: AtomicU64::new(0),
                rows_predicted: AtomicU64::new(0),
                started: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            },
            gate_refusals: RefusalCount::default(),
            closing: AtomicBool::new(false),
            shadow: OnceLock::new(),
            fault,
        })
    }

    /// Compares this slot's predictions of mirrored requests with `reference`'s, the active
    /// slot's model (issue 11, [`shadow`]). Set once, before serving.
    pub fn set_reference(&self, reference: Artifact) {
        let _ = self.shadow.set(Shadow::new(reference));
    }

    /// The model this slot serves.
    pub fn model(&self) -> &Artifact {
        &self.model
    }

    /// The test-only fault this slot runs with, if any (debug builds only).
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// From now on, end every connection after its current answer (`true`), or keep them
    /// alive again (`false`). `serve` sets it in switch mode "socket" when the slot starts or
    /// stops resting.
    pub fn set_closing(&self, closing: bool) {
        self.closing.store(closing, Ordering::Relaxed);
    }

    /// The gate refusals that `/metrics` reports (issue 8 §7).
    pub fn gate_refusals(&self) -> &RefusalCount {
        &self.gate_refusals
    }
}

/// How long a slot waits on a client (issue 8, §9); `limits.header_read_timeout_secs` and
/// `limits.body_read_timeout_secs` in the config.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a request's head, from the moment the connection opens or its previous answer was
    /// sent; then the connection is closed without an answer.
    pub header: Duration,
    /// For the rest of a request, its body, once the head has arrived; then a 408.
    pub body: Duration,
}

impl Timeouts {
    /// The timeouts the config sets (`[limits]`).
    pub fn from_config(config: &crate::config::Config) -> Timeouts {
        Timeouts {
            header: config.header_read_timeout(),
            body: config.body_read_timeout(),
        }
    }
}

/// The service for one slot: its routes inside [`App`]. `max_body_bytes` bounds request
/// bodies, `timeouts` how long a client may take to send one.
pub fn router(state: Arc<AppState>, max_body_bytes: usize, timeouts: Timeouts) -> App {
    let routes = Router::new()
        .route("/", post(predict))
        .route("/inference", post(predict))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/model", get(model_info))
        .route("/metrics", get(metrics))
        .merge(v2::routes(&state.name, &state.model.version))
        .merge(v1::routes(&state.name))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state.clone());
    App {
        routes,
        state,
        timeouts,
    }
}

/// The slot's routes, wrapped so that every answer gets the version and slot headers and is
/// counted in the metrics (status, latency), every path reaches its route in normal form
/// (`path`), and a request whose body is too slow gets a 408.
///
/// Why not `axum::middleware::from_fn`: a layer runs inside axum's per-request clone of
/// each route, so every request cloned and boxed the inner service and built a `Next`.
/// Wrapping the whole router once costs one boxed future per request: the slot alone
/// answers 5–8% more one-row requests (bench/run, section 1).
#[derive(Clone)]
pub struct App {
    routes: Router,
    state: Arc<AppState>,
    timeouts: Timeouts,
}

impl App {
    /// Adds `routes` beside the API's: the dashboard's (`crate::dashboard::routes`).
    pub fn merge(mut self, routes: Router) -> App {
        self.routes = self.routes.merge(routes);
        self
    }
}

impl hyper::service::Service<Request<Incoming>> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let started = Instant::now();
        let mirrored = request.headers().contains_key(shadow::HEADER);
        match path::normalise_uri(request.uri()) {
            Ok(Some(uri)) => *request.uri_mut() = uri,
            Ok(None) => {}
            Err(why) => {
                let mut response = bad_path(request.uri().path(), why);
                observe(&self.state, started, &mut response, true, mirrored);
                return Box::pin(std::future::ready(Ok(response)));
            }
        }
        let counted = {
            let path = request.uri().path();
            !crate::dashboard::is_dashboard_path(path) && !is_probe_path(path)
        };
        if mirrored {
            request.extensions_mut().insert(Mirrored { started });
        }
        // A Router is always ready (axum docs), and cloning it clones one Arc.
        let answer = tower_service::Service::call(&mut self.routes.clone(), request);
        let state = self.state.clone();
        let body_timeout = self.timeouts.body;
        Box::pin(async move {
            // The timer is armed only if the answer is not ready at the first poll, as it
            // is whenever the body came with the head.
            let mut response = match tokio::time::timeout(body_timeout, answer).await {
                Ok(answer) => answer?,
                Err(_) => body_too_slow(body_timeout),
            };
            observe(&state, started, &mut response, counted, mirrored);
            Ok(response)
        })
    }
}

/// The 408 for a request whose body did not arrive within `waited`. The connection is closed
/// after it: the rest of that body may still be on its way.
fn body_too_slow(waited: Duration) -> Response {
    let mut response = ApiError(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {} s (limits.body_read_timeout_secs)",
            waited.as_secs()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The 400 for a path NGINX refuses too (`path`), so that a slot answers it as NGINX does.
fn bad_path(raw: &str, why: path::BadPath) -> Response {
    let error = format!("the path {raw:?} {why}");
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error, "hint": ROUTES })),
    )
        .into_response()
}

/// A client error: its status and the message the client sees, answered as
/// `{"error": …, "hint": …}`.
struct ApiError(StatusCode, String);

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        ApiError(refusal.status, refusal.what)
    }
}

/// A client error of an inference protocol (KServe v1, Open Inference Protocol v2), in the
/// one shape both define: `{"error": "<message>"}`. The message says what is wrong and
/// where, then `; hint: ` and what to do next.
pub struct ProtocolError {
    status: StatusCode,
    message: String,
}

impl ProtocolError {
    fn new(status: StatusCode, what: String, hint: String) -> ProtocolError {
        ProtocolError {
            status,
            message: format!("{what}; hint: {hint}"),
        }
    }

    /// A refused request: a 422 becomes the protocols' 400 ("typically 400", OIP).
    fn from_refusal(refusal: Refusal, hint: String) -> ProtocolError {
        let status = match refusal.status {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        ProtocolError::new(status, refusal.what, hint)
    }
}

impl IntoResponse for ProtocolError {
    fn into_response(self) -> Response {
        // Logged as the native API's refusals are, within the same rate limit (issue 12).
        crate::log::request_error(self.status.as_u16(), &self.message);
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Every refusal is logged, within a rate limit: a flood of bad requests must not
        // flood the journal (issue 12).
        crate::log::request_error(self.0.as_u16(), &self.1);
        let hint = hint(self.0);
        (self.0, axum::Json(json!({ "error": self.1, "hint": hint }))).into_response()
    }
}

/// What to do next, by the kind of error: the message says what is wrong and where.
fn hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "send fewer rows per request (limits.max_rows, limits.max_body_bytes)"
        }
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => ROUTES,
        StatusCode::REQUEST_TIMEOUT => "send the whole request at once",
        _ => "send {\"data\": [row, ...]}: each row a list of numbers in the order GET /model lists the features, or an object keyed by feature name; or {\"columns\": [feature names], \"data\": [[numbers in that order], ...]}",
    }
}

/// The routes, for the hint of a 404 or 405.
const ROUTES: &str =
    "predictions are POST / or POST /inference; GET /healthz, /readyz, /model, /metrics; the inference protocols are under /v2 (Open Inference Protocol) and /v1/models (KServe v1)";

/// Whether `path` (in normal form) is one that monitors poll rather than clients use:
/// `/metrics` and the health routes. They are not counted in the request figures, so a
/// rollout's own polling of `/metrics` (two a second) cannot pass as traffic that a
/// candidate answered well (issue 11: a candidate that failed every prediction passed its
/// canary steps on its metric polls alone), and a scraper does not dilute the error rate.
fn is_probe_path(path: &str) -> bool {
    matches!(
        path,
        "/metrics" | "/healthz" | "/readyz" | "/v2/health/live" | "/v2/health/ready"
    )
}

/// Adds the version and slot headers to an answer and, if `counted`, records its status and
/// latency. The dashboard's requests are not counted (see `live`); a mirrored copy (issue 11)
/// is counted in the shadow figures instead.
fn observe(
    state: &AppState,
    started: Instant,
    response: &mut Response,
    counted: bool,
    mirrored: bool,
) {
    let headers = response.headers_mut();
    headers.insert("x-model-version", state.version_header.clone());
    headers.insert("x-slot", state.slot_header.clone());
    if state.closing.load(Ordering::Relaxed) {
        // hyper closes the connection once this answer is written.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if mirrored {
        if let Some(shadow) = state.shadow.get() {
            shadow.answered(response.status().as_u16());
        }
        // NGINX reads only the head of a copy's answer (the mirror's subrequests are
        // header-only, ngx_http_mirror_module.c) and keeps the connection for the next copy
        // only if the answer has no body (ngx_http_proxy_module.c): with the body, every copy
        // opened and closed a connection to the candidate (issue 11, bench/run section 7).
        *response.body_mut() = axum::body::Body::empty();
        response.headers_mut().remove(header::CONTENT_LENGTH);
        return;
    }
    if !counted {
        return;
    }
    let metrics = &state.metrics;
    let status = response.status().as_u16() as usize;
    if let Some(counter) = metrics.by_status.get(status.wrapping_sub(100)) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let seconds = started.elapsed().as_secs_f64();
    metrics.buckets[bucket(seconds)].fetch_add(1, Ordering::Relaxed);
    metrics
        .latency_micros_sum
        .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
}

#[derive(Serialize)]
struct Prediction<'a> {
    #[serde(rename = "Price")]
    price: f64,
    prices: Vec<f64>,
    model: &'a str,
    slot: Slot,
}

/// The request body, or why it cannot be read: too large (413), or broken off.
fn body_refusal(rejection: BytesRejection) -> Refusal {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Refusal {
            status,
            what: "the request body is larger than the limit (limits.max_body_bytes)".to_string(),
        }
    } else {
        Refusal {
            status: if status.is_client_error() {
                status
            } else {
                StatusCode::BAD_REQUEST
            },
            what: format!("cannot read the request body: {}", rejection.body_text()),
        }
    }
}

/// The test-only fault's effect on a prediction (issue 11, `crate::rollout::fault`): none
/// unless a debug build armed one for this slot's model.
async fn test_fault(state: &AppState) -> Result<(), Refusal> {
    let Some(fault) = state.fault() else {
        return Ok(());
    };
    match fault.effect() {
        Effect::None => Ok(()),
        Effect::Error => Err(Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            what: "test fault: this slot answers errors (BLUEGREEN_TEST_FAULT)".to_string(),
        }),
        Effect::Delay(delay) => {
            tokio::time::sleep(delay).await;
            Ok(())
        }
    }
}

/// The model's predictions for `rows` (row-major, of the model's width), counted in the
/// metrics, or for a `mirrored` copy (issue 11) compared with the reference model's in the
/// shadow figures instead. `list` names the rows in the request, for errors: none, more than
/// `limits.max_rows`, or values out of the model's range.
fn predict_rows(
    state: &AppState,
    rows: &[f64],
    list: &str,
    mirrored: Option<Mirrored>,
) -> Result<Vec<f64>, Refusal> {
    let width = state.model.features.len();
    let count = rows.len() / width;
    if count == 0 {
        return Err(Refusal::unprocessable(format!(
            "\"{list}\" is empty: send at least one row of {width} numbers"
        )));
    }
    if count > state.max_rows {
        return Err(Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            what: format!(
                "\"{list}\" has {count} rows; at most {} are allowed per request (limits.max_rows)",
                state.max_rows
            ),
        });
    }
    // Every value is a finite number here: every reader refuses anything else. One bound
    // for all row formats, the CSV reader's and `predict`'s: past it a model's sums of
    // squares overflow and its answer means nothing (one compare per value).
    let limit = state.max_magnitude;
    if let Some(i) = rows.iter().position(|v| v.abs() > limit) {
        let (row, column) = (i / width, i % width);
        return Err(Refusal::unprocessable(format!(
            "\"{list}\" row {row}, column {column} ({}): {:e} is too large: values may be at most ±{limit:.2e} in rows of {width} numbers, as `bluegreen predict` and the training data take them, so that a model's sums of squares over a row stay finite",
            state.model.features[column], rows[i]
        )));
    }
    let prices = state
        .model
        .predict_rows(rows)
        .map_err(|e| Refusal::unprocessable(format!("the model cannot predict these rows: {e}")))?;
    if let Some(i) = prices.iter().position(|p| !p.is_finite()) {
        return Err(Refusal::unprocessable(format!(
            "{list}[{i}]: the prediction is not a finite number; are the values in range?"
        )));
    }
    match (mirrored, state.shadow.get()) {
        (Some(m), Some(shadow)) => shadow.compare(rows, &prices, m.started.elapsed()),
        _ => {
            state
                .metrics
                .rows_predicted
                .fetch_add(count as u64, Ordering::Relaxed);
        }
    }
    Ok(prices)
}

/// `POST /`: the original's contract, `{"data": rows}` → `{"Price": …}`, and the other row
/// formats of [`rows`].
async fn predict(
    State(state): State<Arc<AppState>>,
    mirrored: Option<Extension<Mirrored>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    test_fault(&state).await?;
    let body = body.map_err(body_refusal)?;
    let features = &state.model.features;
    let rows = match rows::read_common(&body, "data", features.len()) {
        Some(rows) => rows,
        None => rows::read_body(&body, features)?,
    };
    let prices = predict_rows(&state, &rows, "data", mirrored.map(|Extension(m)| m))?;
    Ok(axum::Json(Prediction {
        price: prices[0],
        prices,
        model: &state.model.version,
        slot: state.slot,
    })
    .into_response())
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    axum::Json(json!({
        "ready": true,
        "model": state.model.version,
        "slot": state.slot,
    }))
}

async fn model_info(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    axum::Json(json!({ "slot": state.slot, "model": state.described }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    use std::fmt::Write;
    let m = &state.metrics;
    let mut out = String::new();
    out.push_str("# HELP bluegreen_requests_total HTTP requests answered, by status; not /metrics, the health routes nor the dashboard.\n");
    out.push_str("# TYPE bluegreen_requests_total counter\n");
    for (i, counter) in m.by_status.iter().enumerate() {
        let n = counter.load(Ordering::Relaxed);
        if n > 0 {
            let _ = writeln!(
                out,
                "bluegreen_requests_total{{status=\"{}\"}} {n}",
                i + 100
            );
        }
    }
    out.push_str("# HELP bluegreen_request_duration_seconds Time to answer a request.\n");
    out.push_str("# TYPE bluegreen_request_duration_seconds histogram\n");
    let cumulative = render_histogram(&mut out, "bluegreen_request_duration_seconds", &m.buckets);
    let sum = m.latency_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "bluegreen_request_duration_seconds_sum {sum}");
    let _ = writeln!(out, "bluegreen_request_duration_seconds_count {cumulative}");
    out.push_str("# HELP bluegreen_rows_predicted_total Rows predicted.\n");
    out.push_str("# TYPE bluegreen_rows_predicted_total counter\n");
    let _ = writeln!(
        out,
        "bluegreen_rows_predicted_total {}",
        m.rows_predicted.load(Ordering::Relaxed)
    );
    out.push_str("# HELP bluegreen_model_info The model this slot serves.\n");
    out.push_str("# TYPE bluegreen_model_info gauge\n");
    let _ = writeln!(
        out,
        "bluegreen_model_info{{version=\"{}\",kind=\"{}\",slot=\"{}\",rows=\"{}\"}} 1",
        state.model.version, state.model.kind, state.slot, state.model.rows
    );
    out.push_str("# HELP bluegreen_gate_refusals_total Models the quality gate refused, from the history, by the command that asked.\n");
    out.push_str("# TYPE bluegreen_gate_refusals_total counter\n");
    for (action, n) in state.gate_refusals.by_action() {
        let _ = writeln!(
            out,
            "bluegreen_gate_refusals_total{{action=\"{action}\"}} {n}"
        );
    }
    out.push_str(
        "# HELP bluegreen_training_failures_total Trainings that failed, from the history.\n",
    );
    out.push_str("# TYPE bluegreen_training_failures_total counter\n");
    let _ = writeln!(
        out,
        "bluegreen_training_failures_total {}",
        state.gate_refusals.failed_trainings()
    );
    out.push_str("# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n");
    out.push_str("# TYPE process_start_time_seconds gauge\n");
    let _ = writeln!(out, "process_start_time_seconds {:.3}", m.started);
    if let Some(live) = state.gate_refusals.live() {
        out.push_str("# HELP bluegreen_live_rmse The active model's RMSE on the last rows add-data appended, in label units (issue 11).\n");
        out.push_str("# TYPE bluegreen_live_rmse gauge\n");
        let _ = writeln!(
            out,
            "bluegreen_live_rmse{{model=\"{}\",rows=\"{}\"}} {}",
            live.model, live.rows, live.rmse
        );
        if let Some(ratio) = live.ratio {
            out.push_str("# HELP bluegreen_live_rmse_ratio Live RMSE over the model's holdout RMSE: a drift signal, about 1 while new data looks like the training data.\n");
            out.push_str("# TYPE bluegreen_live_rmse_ratio gauge\n");
            let _ = writeln!(
                out,
                "bluegreen_live_rmse_ratio{{model=\"{}\"}} {ratio}",
                live.model
            );
        }
    }
    if let Some(shadow) = state.shadow.get() {
        shadow.render(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn method_not_allowed(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let path = request.uri().path();
    let what = format!("method {} not allowed on {path}", request.method());
    if v1::not_found(&state, path).is_some() || v2::not_found(&state, path).is_some() {
        let hint = if path.ends_with("/infer") || path.ends_with(":predict") {
            "send the request with POST"
        } else {
            "send the request with GET"
        };
        return ProtocolError::new(StatusCode::METHOD_NOT_ALLOWED, what, hint.to_string())
            .into_response();
    }
    ApiError(StatusCode::METHOD_NOT_ALLOWED, what).into_response()
}

async fn not_found(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let path = request.uri().path();
    if let Some(error) = v2::not_found(&state, path).or_else(|| v1::not_found(&state, path)) {
        return error.into_response();
    }
    ApiError(StatusCode::NOT_FOUND, format!("no such path {path:?}")).into_response()
}
