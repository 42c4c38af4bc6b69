//! The page's files, embedded in the binary (`include_bytes!`), so that the .deb, a copy of
//! the binary and an offline host all serve the same page with nothing fetched from
//! elsewhere. The page's own files are in `web/`; uPlot's are vendored, unchanged, in
//! `web/vendor/uplot/` (its `VENDORED.md` says which version and how it was fetched).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// One file of the page.
#[derive(Clone, Copy)]
pub struct Asset {
    /// Where the slot serves it. The page itself is `/-`: the slot reads `/-/` as `/-`, as
    /// it drops every trailing slash (`server::path`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Every file the page loads.
pub const ASSETS: [Asset; 5] = [
    Asset {
        path: "/-",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/index.html"),
    },
    Asset {
        path: "/-/dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/dashboard.js"),
    },
    Asset {
        path: "/-/dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/dashboard.css"),
    },
    Asset {
        path: "/-/vendor/uplot/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/-/vendor/uplot/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/vendor/uplot/uPlot.min.css"),
    },
];

/// Headers every answer of the dashboard carries: a page that loads only its own files and
/// may not be framed by another site; no caching, since a deploy may change the page.
pub fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // uPlot sizes its elements through their style attributes.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Serves one file.
pub async fn serve(asset: Asset) -> Response {
    hardened(([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response())
}
