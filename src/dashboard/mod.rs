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
//! JSON 405. And nothing here answers a request that did not come through the site's `/-`
//! location, which marks what it passes with [`VIA_HEADER`]: a site older than this
//! bluegreen (a conffile the admin had edited keeps its old text on upgrade) would send
//! `/-/` through `location /`, past the access rules, and the slot then answers 403 instead
//! of the page. NGINX passes no client header to a slot (`proxy_pass_request_headers off`),
//! so a client cannot set it through `location /`. What is computed from files (the history, the models, the data) runs on
//! tokio's blocking threads, never on the prediction path, and is bounded and cached: the
//! status at most once a second, the history's last 200 records from its last 512 KiB, a
//! model's figures once per version, predicted-against-actual once per pair of versions and
//! data file, on at most 300 holdout rows. The dashboard's own requests are not counted in
//! the slot's metrics.

pub mod access;
mod api;
mod assets;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;

use crate::config::Config;
use crate::server::AppState;

/// The header the site's `/-` location sets on what it passes to a slot (value
/// [`VIA_VALUE`]).
pub const VIA_HEADER: &str = "x-bluegreen-dashboard";
/// Its value.
pub const VIA_VALUE: &str = "nginx";

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
    router
        .route_layer(middleware::from_fn(through_nginx))
        .with_state(site)
}

/// Lets through only what the site's `/-` location passed on (see the module doc).
async fn through_nginx(request: Request, next: Next) -> Response {
    let via = request.headers().get(VIA_HEADER);
    if via.is_some_and(|v| v == VIA_VALUE) {
        return next.run(request).await;
    }
    let body = serde_json::json!({
        "error": "the dashboard answers only through NGINX's `/-` location, which checks who may see it; this request came another way (straight to a slot, or through an NGINX site older than this bluegreen)",
        "hint": "open http://<host>:<public_port>/-/; if that is what you did, the NGINX site is out of date: `bluegreen nginx-site > /etc/nginx/sites-available/bluegreen`, then `systemctl reload nginx`",
    });
    assets::hardened((axum::http::StatusCode::FORBIDDEN, axum::Json(body)).into_response())
}
