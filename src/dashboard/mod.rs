//! The dashboard (issue 12): a read-only page at `http://<host>:8080/-/` with the slots, the
//! deploy timeline, model quality across versions, predicted against actual values, live
//! traffic per slot and the data's growth.
//!
//! No daemon of its own: the active slot serves it, since NGINX already sends it everything
//! (the site's `/-` location; `crate::nginx`). Three parts:
//! - [`assets`]: the page (`web/`: plain HTML, CSS and JS, no build step) and the vendored
//!   uPlot charting library (`web/vendor/uplot/`), embedded in the binary, so the page needs
//!   nothing from the Internet;
//! - [`api`]: the JSON it draws from, under `/-/api/`; `/-/api/status` is what
//!   `bluegreen status --json` prints (one function, `crate::status::gather`, makes both);
//! - [`access`]: who may see it, which NGINX enforces.
//!
//! Per-slot traffic comes from each slot itself: NGINX sends `/-/slots/<slot>/api/slot` to
//! that slot's `/-/api/slot` (`crate::server::Live`), so the page sees both slots, not only
//! the active one.
//!
//! Nothing here changes state: every route answers GET and HEAD only, anything else gets a
//! JSON 405. What is computed from files (the history, the models, the data) runs on
//! tokio's blocking threads, never on the prediction path, and is bounded and cached: the
//! status at most once a second, the history's last 200 records from its last 512 KiB, a
//! model's figures once per version, predicted-against-actual once per pair of versions and
//! data file, on at most 300 holdout rows. The dashboard's own requests are not counted in
//! the slot's metrics.

pub mod access;
mod api;
mod assets;

use std::sync::Arc;

use axum::routing::{get, MethodRouter};
use axum::Router;

use crate::config::Config;
use crate::server::AppState;

/// True for the paths the dashboard owns: `/-` and everything under `/-/`.
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/-" || path.starts_with("/-/")
}

/// The dashboard's routes, for the slot that `slot` describes. `config_error` says why the
/// slot runs on the last good configuration, if it does (issue 8 §3); the page shows it.
pub fn routes(config: &Config, slot: Arc<AppState>, config_error: Option<String>) -> Router {
    let site = Arc::new(api::Site::new(config, slot, config_error));
    let read_only = |route: MethodRouter<Arc<api::Site>>| route.fallback(api::read_only);
    let mut router = Router::new()
        .route("/-/api/status", read_only(get(api::status)))
        .route("/-/api/history", read_only(get(api::history)))
        .route("/-/api/models", read_only(get(api::models)))
        .route("/-/api/predictions", read_only(get(api::predictions)))
        .route("/-/api/slot", read_only(get(api::slot)));
    for asset in assets::ASSETS {
        router = router.route(asset.path, read_only(get(move || assets::serve(asset))));
    }
    router.with_state(site)
}
