//! The Open Inference Protocol (v2) REST API, as KServe and Triton define it (KServe's
//! "Predict Protocol - Version 2", the OIP's `inference_rest.md`), so that that protocol's
//! standard clients (`tritonclient.http`, KServe's) work unchanged (issue #9):
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /v2/health/live`, `GET /v2/health/ready` | 200 `{"live": true}`, `{"ready": true}` |
//! | `GET /v2` | server metadata: name, version, extensions |
//! | `GET /v2/models/<name>[/versions/<v>]` | model metadata: versions, platform, inputs, outputs |
//! | `GET /v2/models/<name>[/versions/<v>]/ready` | `{"name": "<name>", "ready": true}` |
//! | `POST /v2/models/<name>[/versions/<v>]/infer` | the prediction of each row |
//!
//! The model has one input, [`INPUT`], an FP64 tensor of shape `[-1, features]` (FP32 is
//! taken too, each element then an `f32`), and one output, [`OUTPUT`], FP64 of shape `[-1]`.
//! `<name>` is `[model] name`; the one version is the artifact's. Another name or version is
//! a 404, and every error is the protocol's `{"error": "…"}`, the hint inside the message.
//!
//! Triton's binary tensor data extension (`extension_binary_data.md`) is implemented, since
//! `tritonclient` uses it by default: an input's bytes may follow the JSON object
//! (`parameters.binary_data_size`, with the `Inference-Header-Content-Length` request header
//! giving the JSON's length), and an output is sent as bytes when the request asks
//! (`binary_data_output`, or `binary_data` on the output). NGINX passes that header to the
//! slot (`src/nginx.rs`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::rows::Refusal;
use super::shadow::Mirrored;
use super::{body_refusal, predict_rows, test_fault, AppState, ProtocolError};
use crate::model::Artifact;

/// The name of the model's one input tensor: the rows, `[rows, features]`.
pub const INPUT: &str = "input-0";
/// The name of the model's one output tensor: a prediction per row, `[rows]`.
pub const OUTPUT: &str = "output-0";
/// The binary tensor data extension's header: the length of the JSON before the bytes.
const HEADER_LENGTH: &str = "inference-header-content-length";
/// What the binary tensor data extension is called in the server metadata.
const BINARY_EXTENSION: &str = "binary_tensor_data";

/// The v2 answers that never change while a slot runs, serialized once.
pub struct Answers {
    server_metadata: Bytes,
    model_metadata: Bytes,
    model_ready: Bytes,
}

impl Answers {
    /// The answers for `model`, served as `name`.
    pub fn new(name: &str, model: &Artifact) -> Answers {
        let json = |v: serde_json::Value| Bytes::from(v.to_string());
        Answers {
            server_metadata: json(serde_json::json!({
                "name": "bluegreen",
                "version": env!("CARGO_PKG_VERSION"),
                "extensions": [BINARY_EXTENSION],
            })),
            model_metadata: json(serde_json::json!({
                "name": name,
                "versions": [model.version],
                // "<project>_<format>", as the protocol's Platforms section asks.
                "platform": format!("smartcore_{}", model.kind),
                "inputs": [{
                    "name": INPUT,
                    "datatype": "FP64",
                    "shape": [-1, model.features.len() as i64],
                }],
                "outputs": [{ "name": OUTPUT, "datatype": "FP64", "shape": [-1] }],
            })),
            model_ready: json(serde_json::json!({ "name": name, "ready": true })),
        }
    }
}

/// The v2 routes for the model `name` at `version`: literal paths, so a request costs no
/// path parsing; other names and versions reach [`not_found`] through the fallback.
pub fn routes(name: &str, version: &str) -> Router<Arc<AppState>> {
    let mut router = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready));
    for model in [
        format!("/v2/models/{name}"),
        format!("/v2/models/{name}/versions/{version}"),
    ] {
        router = router
            .route(&model, get(model_metadata))
            .route(&format!("{model}/ready"), get(model_ready))
            .route(&format!("{model}/infer"), post(infer));
    }
    router
}

fn json(bytes: &Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes.clone(),
    )
        .into_response()
}

async fn server_metadata(State(state): State<Arc<AppState>>) -> Response {
    json(&state.v2.server_metadata)
}

/// The slot answers only once its model is loaded, so it is live and ready whenever it
/// answers at all (it sends READY=1 to its supervisor at the same moment).
async fn live() -> Response {
    axum::Json(serde_json::json!({ "live": true })).into_response()
}

async fn ready() -> Response {
    axum::Json(serde_json::json!({ "ready": true })).into_response()
}

async fn model_metadata(State(state): State<Arc<AppState>>) -> Response {
    json(&state.v2.model_metadata)
}

async fn model_ready(State(state): State<Arc<AppState>>) -> Response {
    json(&state.v2.model_ready)
}

/// What to do next after a bad inference request.
fn infer_hint(state: &AppState) -> String {
    format!(
        "send {{\"inputs\": [{{\"name\": \"{INPUT}\", \"shape\": [rows, {width}], \"datatype\": \"FP64\", \"data\": [numbers, row by row]}}]}}; each row holds the features in the order GET /v2/models/{name} and GET /model give",
        width = state.model.features.len(),
        name = state.name,
    )
}

/// A 404 in the protocol's shape for a `/v2` path no route took: another model, another
/// version, or no such API; `None` for a path outside `/v2`.
pub fn not_found(state: &AppState, path: &str) -> Option<ProtocolError> {
    let rest = path.strip_prefix("/v2")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let here = format!(
        "this server serves the model {:?} at version {:?}: GET /v2/models/{}",
        state.name, state.model.version, state.name
    );
    let what = match rest.strip_prefix("/models/").map(|m| m.split('/')) {
        Some(mut parts) => {
            let name = parts.next().unwrap_or_default();
            let after: Vec<&str> = parts.collect();
            if name != state.name {
                format!("unknown model {name:?}")
            } else if let ["versions", version, ..] = after.as_slice() {
                if *version != state.model.version {
                    format!("model {name:?} has no version {version:?} here")
                } else {
                    format!("no such path {path:?}")
                }
            } else {
                format!("no such path {path:?}")
            }
        }
        None => format!("no such path {path:?}"),
    };
    Some(ProtocolError::new(StatusCode::NOT_FOUND, what, here))
}

async fn infer(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match answer(&state, request).await {
        Ok(response) => response,
        Err(refusal) => ProtocolError::from_refusal(refusal, infer_hint(&state)).into_response(),
    }
}

/// `$inference_request`: what this server reads of it. Other keys (`model_name`, which
/// Triton's examples send) are ignored, as the protocol's objects allow.
#[derive(Deserialize)]
struct InferRequest<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    parameters: Parameters,
    inputs: Vec<RequestInput<'a>>,
    #[serde(default, borrow)]
    outputs: Vec<RequestOutput<'a>>,
}

#[derive(Deserialize)]
struct RequestInput<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    shape: Vec<u64>,
    #[serde(borrow)]
    datatype: Cow<'a, str>,
    #[serde(default)]
    parameters: Parameters,
    #[serde(default)]
    data: Option<Flat>,
}

#[derive(Deserialize)]
struct RequestOutput<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    parameters: Parameters,
}

/// The parameters this server reads: the binary tensor data extension's. Others are
/// ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Parameters {
    /// On the request: every output as bytes, unless an output says otherwise.
    binary_data_output: Option<bool>,
    /// On a requested output: this one as bytes, or not.
    binary_data: Option<bool>,
    /// On an input: its data is this many bytes after the JSON.
    binary_data_size: Option<u64>,
}

/// A tensor's `data`: numbers, flat or nested to any depth (the protocol allows both), in
/// row-major order.
struct Flat(Vec<f64>);

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Flat, D::Error> {
        let mut values = Vec::new();
        deserializer.deserialize_seq(Elements(&mut values))?;
        Ok(Flat(values))
    }
}

/// Appends the numbers of a list, and of the lists in it, to a vector.
struct Elements<'a>(&'a mut Vec<f64>);

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a list of numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Elements(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The element types the input takes.
#[derive(Clone, Copy)]
enum Datatype {
    Fp64,
    Fp32,
}

impl Datatype {
    fn size(self) -> usize {
        match self {
            Datatype::Fp64 => 8,
            Datatype::Fp32 => 4,
        }
    }
}

fn bad(what: String) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        what,
    }
}

/// The answer to `POST …/infer`, or why not.
async fn answer(state: &AppState, request: Request) -> Result<Response, Refusal> {
    test_fault(state).await?;
    let mirrored = request.extensions().get::<Mirrored>().copied();
    let header_length = match request.headers().get(HEADER_LENGTH) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "the Inference-Header-Content-Length header {value:?} is not a length in bytes"
                    ))
                })?,
        ),
        None => None,
    };
    let body = Bytes::from_request(request, &())
        .await
        .map_err(body_refusal)?;
    let (json, mut binary) = match header_length {
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(bad(format!(
                "the Inference-Header-Content-Length header says the JSON is {n} bytes, but the body has {}",
                body.len()
            )))
        }
        None => (&body[..], &[][..]),
    };
    let request: InferRequest = serde_json::from_slice(json).map_err(|e| {
        if let Some(what) = super::rows::out_of_range::<InferRequest>(json, &e) {
            return bad(what);
        }
        let more = if header_length.is_none() && e.to_string().contains("trailing") {
            " (binary tensor data needs the Inference-Header-Content-Length header)"
        } else {
            ""
        };
        bad(format!("the inference request is not valid: {e}{more}"))
    })?;
    let rows = read_input(state, request.inputs, &mut binary)?;
    if !binary.is_empty() {
        return Err(bad(format!(
            "the body has {} bytes after the JSON and the inputs' binary data",
            binary.len()
        )));
    }
    let predictions = predict_rows(state, &rows, "inputs[0]", mirrored)?;
    let mut as_bytes = request.parameters.binary_data_output.unwrap_or(false);
    for (i, output) in request.outputs.iter().enumerate() {
        if output.name != OUTPUT {
            return Err(bad(format!(
                "outputs[{i}] asks for {:?}; the model's one output is {OUTPUT:?}",
                output.name
            )));
        }
        if let Some(binary) = output.parameters.binary_data {
            as_bytes = binary;
        }
    }
    Ok(respond(
        state,
        request.id.as_deref(),
        &predictions,
        as_bytes,
    ))
}

/// The one input's rows, row-major, from its `data` or from `binary` (whose bytes it takes).
fn read_input(
    state: &AppState,
    inputs: Vec<RequestInput>,
    binary: &mut &[u8],
) -> Result<Vec<f64>, Refusal> {
    let count = inputs.len();
    let mut inputs = inputs.into_iter();
    let (Some(input), None) = (inputs.next(), inputs.next()) else {
        return Err(bad(format!(
            "the request has {count} inputs; the model takes one, {INPUT:?}"
        )));
    };
    if input.name != INPUT {
        return Err(bad(format!(
            "inputs[0] is named {:?}; the model's input is {INPUT:?}",
            input.name
        )));
    }
    let datatype = match &*input.datatype {
        "FP64" => Datatype::Fp64,
        "FP32" => Datatype::Fp32,
        other => {
            return Err(bad(format!(
                "inputs[0] ({INPUT}) has datatype {other:?}; it takes \"FP64\" or \"FP32\""
            )))
        }
    };
    let width = state.model.features.len();
    let rows = match input.shape[..] {
        [rows, columns] if columns == width as u64 => rows,
        _ => {
            return Err(bad(format!(
                "inputs[0] ({INPUT}) has shape {:?}; it takes [rows, {width}]: a row of {width} features ({}) per prediction",
                input.shape,
                state.model.features.join(", ")
            )))
        }
    };
    if rows > state.max_rows as u64 {
        return Err(Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            what: format!(
                "inputs[0] ({INPUT}) has {rows} rows; at most {} are allowed per request (limits.max_rows)",
                state.max_rows
            ),
        });
    }
    let count = rows as usize * width;
    let values = match (input.data, input.parameters.binary_data_size) {
        (Some(Flat(values)), None) => {
            if values.len() != count {
                return Err(bad(format!(
                    "inputs[0] ({INPUT}) has {} values in \"data\"; its shape {:?} holds {count}",
                    values.len(),
                    input.shape
                )));
            }
            match datatype {
                Datatype::Fp64 => values,
                // An FP32 tensor's elements are f32s: the same values its binary form gives.
                Datatype::Fp32 => values.into_iter().map(|v| v as f32 as f64).collect(),
            }
        }
        (None, Some(size)) => {
            let expected = count * datatype.size();
            if size != expected as u64 {
                return Err(bad(format!(
                    "inputs[0] ({INPUT}) has binary_data_size {size}; its shape {:?} of {} takes {expected} bytes",
                    input.shape, input.datatype
                )));
            }
            if binary.len() < expected {
                return Err(bad(format!(
                    "inputs[0] ({INPUT}) has binary_data_size {size}, but the body holds {} bytes after the JSON",
                    binary.len()
                )));
            }
            let (bytes, rest) = binary.split_at(expected);
            *binary = rest;
            match datatype {
                Datatype::Fp64 => bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect(),
                Datatype::Fp32 => bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64)
                    .collect(),
            }
        }
        (Some(_), Some(_)) => {
            return Err(bad(format!(
                "inputs[0] ({INPUT}) has both \"data\" and binary_data_size; send one"
            )))
        }
        (None, None) => {
            return Err(bad(format!(
                "inputs[0] ({INPUT}) has no \"data\" (nor binary_data_size)"
            )))
        }
    };
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "inputs[0] ({INPUT}) value {at} (row {}, {}) is not a finite {}",
            at / width,
            state.model.features[at % width],
            input.datatype
        )));
    }
    Ok(values)
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: [ResponseOutput<'a>; 1],
}

#[derive(Serialize)]
struct ResponseOutput<'a> {
    name: &'static str,
    datatype: &'static str,
    shape: [usize; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a [f64]>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

/// `$inference_response`, with the output in JSON or, after the JSON, as bytes.
fn respond(state: &AppState, id: Option<&str>, predictions: &[f64], as_bytes: bool) -> Response {
    let bytes = predictions.len() * 8;
    let answer = InferResponse {
        model_name: &state.name,
        model_version: &state.model.version,
        id,
        outputs: [ResponseOutput {
            name: OUTPUT,
            datatype: "FP64",
            shape: [predictions.len()],
            parameters: as_bytes.then_some(BinarySize {
                binary_data_size: bytes,
            }),
            data: (!as_bytes).then_some(predictions),
        }],
    };
    let mut body = serde_json::to_vec(&answer).expect("an inference response serializes");
    if !as_bytes {
        return (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
    }
    let json_length = body.len();
    body.reserve(bytes);
    for p in predictions {
        body.extend_from_slice(&p.to_le_bytes());
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::HeaderName::from_static(HEADER_LENGTH),
                HeaderValue::from(json_length),
            ),
        ],
        body,
    )
        .into_response()
}
