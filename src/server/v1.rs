//! KServe's v1 protocol, TF Serving's REST predict API in its row ("instances") form
//! (issue #9):
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /v1/models` | `{"models": ["<name>"]}` |
//! | `GET /v1/models/<name>` | `{"name": "<name>", "ready": true}` |
//! | `POST /v1/models/<name>:predict` with `{"instances": [row, …]}` | `{"predictions": [number, …]}` |
//!
//! A row is a list of the features in the model's order or an object keyed by their names,
//! as in `POST /`'s `data`; TF Serving's optional `signature_name` is taken and ignored.
//! `<name>` is `[model] name`; another name is a 404. Errors are
//! the protocol's `{"error": "…"}`, the hint inside the message.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

use super::rows::{self, Refusal};
use super::shadow::Mirrored;
use super::{body_refusal, predict_rows, test_fault, AppState, ProtocolError};

/// The v1 routes for the model `name`: literal paths; other names reach [`not_found`].
pub fn routes(name: &str) -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/models", get(list))
        .route(&format!("/v1/models/{name}"), get(ready))
        .route(&format!("/v1/models/{name}:predict"), post(predict))
}

async fn list(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(serde_json::json!({ "models": [state.name] })).into_response()
}

/// The slot answers only once its model is loaded (see `v2::live`).
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(serde_json::json!({ "name": state.name, "ready": true })).into_response()
}

fn hint(state: &AppState) -> String {
    format!(
        "send {{\"instances\": [row, ...]}} to POST /v1/models/{}:predict: each row a list of {} numbers in the order GET /model lists the features, or an object keyed by feature name",
        state.name,
        state.model.features.len()
    )
}

/// A 404 in the protocol's shape for a `/v1` path no route took; `None` outside `/v1`.
pub fn not_found(state: &AppState, path: &str) -> Option<ProtocolError> {
    let rest = path.strip_prefix("/v1")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let what = match rest.strip_prefix("/models/") {
        Some(model) => {
            let name = model.split([':', '/']).next().unwrap_or_default();
            if name != state.name {
                format!("unknown model {name:?}")
            } else {
                format!("no such path {path:?}")
            }
        }
        None => format!("no such path {path:?}"),
    };
    Some(ProtocolError::new(StatusCode::NOT_FOUND, what, hint(state)))
}

#[derive(Serialize)]
struct Predictions {
    predictions: Vec<f64>,
}

async fn predict(
    State(state): State<Arc<AppState>>,
    mirrored: Option<Extension<Mirrored>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = match test_fault(&state).await {
        Ok(()) => body.map_err(body_refusal).and_then(|body| {
            let rows = read(&body, &state.model.features)?;
            predict_rows(&state, &rows, "instances", mirrored.map(|Extension(m)| m))
        }),
        Err(fault) => Err(fault),
    };
    match answer {
        Ok(predictions) => axum::Json(Predictions { predictions }).into_response(),
        Err(refusal) => ProtocolError::from_refusal(refusal, hint(&state)).into_response(),
    }
}

/// `{"instances": [row, …]}` and nothing else, into one row-major block.
fn read(body: &[u8], features: &[String]) -> Result<Vec<f64>, Refusal> {
    if let Some(rows) = rows::read_common(body, "instances", features.len()) {
        return Ok(rows);
    }
    let rows::Strict(value) =
        serde_json::from_slice(body).map_err(|e| Refusal::unparsed::<rows::Strict>(body, &e))?;
    let Some(object) = value.as_object() else {
        return Err(Refusal::unprocessable(format!(
            "the body must be an object with an \"instances\" field, not {}",
            rows::kind(&value)
        )));
    };
    // TF Serving's REST API documents `signature_name` beside `instances`, and its clients
    // send it (often "serving_default"); a model here has one signature, so it is ignored.
    if let Some(unknown) = object
        .keys()
        .find(|k| !["instances", "signature_name"].contains(&k.as_str()))
    {
        return Err(Refusal::unprocessable(format!(
            "the body has an unknown key {unknown:?}; it takes \"instances\" (and TF Serving's \"signature_name\", which is ignored)"
        )));
    }
    if let Some(name) = object.get("signature_name").filter(|v| !v.is_string()) {
        return Err(Refusal::unprocessable(format!(
            "\"signature_name\" must be a string, not {}",
            rows::kind(name)
        )));
    }
    let Some(instances) = object.get("instances") else {
        return Err(Refusal::unprocessable(
            "the body has no \"instances\" field".to_string(),
        ));
    };
    rows::read_rows("instances", instances, features)
}
