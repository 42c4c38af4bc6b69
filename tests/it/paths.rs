//! The original's clients (issue 8, §1): its NGINX sent every path to `/inference`, and its
//! Locust load test, given a host ending in `/`, posts to `//`. Every spelling of a route that
//! NGINX takes for the same location reaches that route, through NGINX and straight at a slot,
//! while many clients post at once.

use std::time::Duration;

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{assert_json_error, get, price, request, Env, EXAMPLE};

/// Spellings of the prediction routes, each answered with a price.
const PREDICT: [&str; 12] = [
    "/",
    "//",
    "///",
    "/./",
    "/inference",
    "//inference",
    "/inference/",
    "/inference//",
    "//inference//",
    "/./inference",
    "/model/../inference",
    "/inference?source=locust",
];

#[test]
fn every_spelling_of_a_route_is_answered_through_nginx_under_load() {
    let env = Env::new();
    let _up = env.up();
    for addr in [env.public, env.blue] {
        for path in PREDICT {
            let r = request(addr, "POST", path, EXAMPLE);
            assert_eq!(r.status, 200, "POST {path} via {addr}: {:?}", r.json());
            assert!((price(&r) - 30.23).abs() < 0.01, "POST {path}");
            assert_eq!(r.header("x-slot"), Some("blue"), "POST {path}");
        }
        for path in [
            "//healthz",
            "/healthz/",
            "/readyz//",
            "//model/",
            "/metrics/",
        ] {
            assert_eq!(get(addr, path).status, 200, "GET {path} via {addr}");
        }
        // Other paths stay unknown, however they are spelled, and say so in JSON.
        for path in ["/nope", "//nope/", "/inference/x", "/%69nference"] {
            let r = request(addr, "POST", path, EXAMPLE);
            let error = assert_json_error(&r, 404, path);
            assert!(error.contains("no such path"), "{path}: {error}");
        }
    }
    let load = Load::start_paths(env.public, &[Client::Fresh, Client::KeepAlive], 4, &PREDICT);
    std::thread::sleep(Duration::from_millis(1500));
    let results = load.finish();
    assert_no_failures(&results);
    for (kind, tally) in &results {
        assert!(
            tally.ok >= PREDICT.len() as u64 * 4,
            "{kind:?} posted to every path: {tally:?}"
        );
    }
}

/// Paths NGINX refuses with a 400 before choosing a location: a `..` that climbs above the
/// root once `%XX` escapes are decoded, a malformed escape, an escaped NUL. A slot asked
/// directly answers them the same way, in JSON; a path that stays below the root once decoded
/// is answered by both.
#[test]
fn a_path_nginx_refuses_is_a_400_in_json_from_a_slot_too() {
    let env = Env::new();
    let _up = env.up();
    for path in [
        "/..",
        "/../",
        "/../inference",
        "/./..",
        "/inference/../..",
        "/..?source=locust",
        "/%2e%2e",
        "/.%2E",
        "/a/%2e%2e/%2e%2e",
        "/%2f..",
        "/inference/..%2f..",
        "/%zz",
        "/%",
        "/inference%4",
        "/%00",
        "/inference%00",
    ] {
        for addr in [env.public, env.blue] {
            let r = request(addr, "POST", path, EXAMPLE);
            assert_json_error(&r, 400, &format!("POST {path} via {addr}"));
        }
    }
    for path in ["/a%2fb/../..", "/inference/.."] {
        for addr in [env.public, env.blue] {
            let r = request(addr, "POST", path, EXAMPLE);
            assert_eq!(r.status, 200, "POST {path} via {addr}: {:?}", r.json());
        }
    }
    let r = request(env.blue, "POST", "/%2e%2e", EXAMPLE);
    let error = r.json().unwrap()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("\"/%2e%2e\" climbs above the root"),
        "{error}"
    );
}
