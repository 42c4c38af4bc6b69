//! Request paths as the routes see them: what NGINX treats as one location is one route.
//!
//! NGINX matches locations after merging runs of slashes and resolving `.` and `..`
//! segments, but `proxy_pass` without a URI passes the client's path to the slot unchanged
//! (NGINX docs, `merge_slashes` and `proxy_pass`). So the original's clients, whose
//! NGINX mapped every path to `/inference`, send `POST //` (a Locust host ending in `/`), and
//! a slot that routed the raw path answered 404 (issue 8, §1). The slot normalises instead of
//! NGINX, so direct requests to a slot get the same answer as requests through NGINX.
//!
//! What each variant gets, on purpose:
//! - runs of `/` count as one: `//`, `///` → `/`; `//inference` → `/inference`;
//! - `.` segments are dropped and `..` removes the segment before it, never going above the
//!   root: `/model/../inference` → `/inference`;
//! - a trailing `/` is dropped: `/inference/`, `/healthz/` → `/inference`, `/healthz`;
//! - `%XX` escapes are not decoded: no client escapes a route's plain letters, so such a path
//!   gets the 404 that names it (NGINX itself refuses a malformed escape with a 400);
//! - the query string is kept as it is.

use axum::http::uri::{PathAndQuery, Uri};

/// The normalised form of `path` (see the module doc), or `None` when `path` already is in
/// that form. The common case, a path that is already normal, costs one scan of its bytes.
pub fn normalise(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let slash_then = |next: u8| bytes.windows(2).any(|w| w[0] == b'/' && w[1] == next);
    let trailing = bytes.len() > 1 && bytes.ends_with(b"/");
    if !trailing && !slash_then(b'/') && !slash_then(b'.') {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let normal = format!("/{}", segments.join("/"));
    (normal != path).then_some(normal)
}

/// `uri` with its path normalised, keeping the query; `None` when nothing changes.
pub fn normalise_uri(uri: &Uri) -> Option<Uri> {
    let path = normalise(uri.path())?;
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_of_a_route_reaches_it() {
        for (variant, route) in [
            ("//", "/"),
            ("///", "/"),
            ("/./", "/"),
            ("//inference", "/inference"),
            ("/inference/", "/inference"),
            ("/inference//", "/inference"),
            ("//inference//", "/inference"),
            ("/./inference", "/inference"),
            ("/model/../inference", "/inference"),
            ("/../inference", "/inference"),
            ("/inference/..", "/"),
            ("/healthz/", "/healthz"),
            ("//metrics", "/metrics"),
        ] {
            assert_eq!(normalise(variant).as_deref(), Some(route), "{variant}");
        }
    }

    #[test]
    fn normal_paths_and_other_paths_are_left_alone() {
        for path in [
            "/",
            "/inference",
            "/healthz",
            "/a/b",
            "/.well-known",
            "/%69nference",
            "/x.",
        ] {
            assert_eq!(normalise(path), None, "{path}");
        }
    }

    #[test]
    fn the_query_is_kept() {
        let uri: Uri = "//inference/?a=1&b=//".parse().unwrap();
        assert_eq!(
            normalise_uri(&uri).unwrap().to_string(),
            "/inference?a=1&b=//"
        );
        assert!(normalise_uri(&"/inference?x=/".parse().unwrap()).is_none());
    }
}
