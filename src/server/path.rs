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
//! - `.` segments are dropped and `..` removes the segment before it:
//!   `/model/../inference` → `/inference`;
//! - a trailing `/` is dropped: `/inference/`, `/healthz/` → `/inference`, `/healthz`;
//! - `%XX` escapes are not decoded for routing: no client escapes a route's plain letters, so
//!   such a path gets the 404 that names it;
//! - the query string is kept as it is.
//!
//! And what NGINX refuses with a 400 before choosing a location, the slot refuses with a 400
//! in JSON ([`BadPath`]), so that a client gets the same answer from both: a `%` not followed
//! by two hex digits, an escaped NUL (`%00`), and a `..` that would climb above the root once
//! escapes are decoded (`/..`, `/%2e%2e`, `/a/..%2f..`; `ngx_http_parse_complex_uri` in
//! NGINX's `src/http/ngx_http_parse.c`). NGINX passes the path on as the client spelled it,
//! so the slot decides on the decoded path exactly as NGINX does: `/a%2fb/../..` is `/` to
//! both.

use axum::http::uri::{PathAndQuery, Uri};

/// Why a path is refused with a 400, as NGINX refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("has a \"%\" that is not followed by two hex digits")]
    Escape,
    #[error("holds an escaped NUL byte (%00)")]
    Nul,
    #[error("climbs above the root with a \"..\" segment (escapes decoded)")]
    AboveRoot,
}

/// The normalised form of `path` (see the module doc), or `None` when `path` already is in
/// that form; an error for a path NGINX would refuse. The common case, a path that is already
/// normal, costs one scan of its bytes.
pub fn normalise(path: &str) -> Result<Option<String>, BadPath> {
    let bytes = path.as_bytes();
    let slash_then = |next: u8| bytes.windows(2).any(|w| w[0] == b'/' && w[1] == next);
    let trailing = bytes.len() > 1 && bytes.ends_with(b"/");
    let escaped = memchr::memchr(b'%', bytes).is_some();
    if !trailing && !slash_then(b'/') && !slash_then(b'.') && !escaped {
        return Ok(None);
    }
    if escaped {
        climbs_above_root(&decode(bytes)?)?;
    } else {
        climbs_above_root(bytes)?;
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
    Ok((normal != path).then_some(normal))
}

/// `path` with its `%XX` escapes decoded; an error for a malformed escape or a NUL.
fn decode(path: &[u8]) -> Result<Vec<u8>, BadPath> {
    let hex = |at: usize| path.get(at).is_some_and(u8::is_ascii_hexdigit);
    for at in memchr::memchr_iter(b'%', path) {
        if !hex(at + 1) || !hex(at + 2) {
            return Err(BadPath::Escape);
        }
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(path).collect();
    if decoded.contains(&0) {
        return Err(BadPath::Nul);
    }
    Ok(decoded)
}

/// Fails when a `..` segment of `path` has no segment before it to remove.
fn climbs_above_root(path: &[u8]) -> Result<(), BadPath> {
    let mut depth = 0usize;
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => depth = depth.checked_sub(1).ok_or(BadPath::AboveRoot)?,
            _ => depth += 1,
        }
    }
    Ok(())
}

/// `uri` with its path normalised, keeping the query; `None` when nothing changes, an error
/// for a path NGINX would refuse.
pub fn normalise_uri(uri: &Uri) -> Result<Option<Uri>, BadPath> {
    let Some(path) = normalise(uri.path())? else {
        return Ok(None);
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
        return Ok(None);
    };
    parts.path_and_query = Some(path_and_query);
    Ok(Uri::from_parts(parts).ok())
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
            ("/inference/..", "/"),
            ("/a%2fb/../..", "/"),
            ("/healthz/", "/healthz"),
            ("//metrics", "/metrics"),
        ] {
            assert_eq!(
                normalise(variant).unwrap().as_deref(),
                Some(route),
                "{variant}"
            );
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
            assert_eq!(normalise(path), Ok(None), "{path}");
        }
    }

    #[test]
    fn paths_nginx_refuses_are_refused() {
        for (path, why) in [
            ("/..", BadPath::AboveRoot),
            ("/../inference", BadPath::AboveRoot),
            ("/./..", BadPath::AboveRoot),
            ("/inference/../..", BadPath::AboveRoot),
            ("/%2e%2e", BadPath::AboveRoot),
            ("/a/%2E%2e/%2e%2e", BadPath::AboveRoot),
            ("/%2f..", BadPath::AboveRoot),
            ("/inference/..%2f..", BadPath::AboveRoot),
            ("/%zz", BadPath::Escape),
            ("/%", BadPath::Escape),
            ("/%4", BadPath::Escape),
            ("/%00", BadPath::Nul),
            ("/inference%00", BadPath::Nul),
        ] {
            assert_eq!(normalise(path), Err(why), "{path}");
        }
    }

    #[test]
    fn the_query_is_kept() {
        let uri: Uri = "//inference/?a=1&b=//".parse().unwrap();
        assert_eq!(
            normalise_uri(&uri).unwrap().unwrap().to_string(),
            "/inference?a=1&b=//"
        );
        assert_eq!(normalise_uri(&"/inference?x=/".parse().unwrap()), Ok(None));
    }
}
