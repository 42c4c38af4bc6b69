//! The shadow mirror's share (issue 11, "mirroring must not slow clients down"): NGINX copies
//! only `rollout.shadow_percent` of live requests to the candidate, drawn per request; the
//! copies not drawn end inside NGINX. Under concurrent load, keep-alive and
//! `Connection: close` clients alike, the candidate gets about that share and no client
//! request fails; a rollout's shadow phase reports the copies it judged against the live
//! requests and the share; a bad share is refused naming its key.

use std::time::{Duration, Instant};

use bluegreen::history::Outcome;
use bluegreen::rollout::report::PhaseKind;

use crate::faults::bad_candidate::wait_for_record;
use crate::load::{assert_no_failures, Client, Load};
use crate::rollout::metric;
use crate::util::Env;

/// Turns the mirror on with `percent`, as a shadow phase does (`bluegreen::switch::set_shadow`
/// and a reload), and returns once no NGINX worker from before accepts.
pub fn mirror(env: &Env, percent: f64) {
    let config = bluegreen::config::Config::from_file(&env.config).unwrap();
    let layout = bluegreen::layout::Layout::new(&config.state_dir);
    assert!(bluegreen::switch::set_shadow(&layout, Some(percent)).unwrap());
    let nginx = bluegreen::nginx::Nginx::local(&config, &layout);
    let before = nginx.workers();
    nginx.reload().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while nginx.still_accepting(&before) > 0 {
        assert!(Instant::now() < deadline, "NGINX did not reload");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connections to `port` on 127.0.0.1 that this host closed in the last minute (TIME_WAIT on
/// the connecting side, from /proc/net/tcp: `st` 06, the remote address in hex).
fn closed_connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"06")
        })
        .count()
}

/// Whether `copies` of `sent` requests is about `percent`: within 6 standard deviations of
/// the binomial draw, and never more than 8 points off.
fn about(copies: u64, sent: u64, percent: f64) -> bool {
    let p = percent / 100.0;
    let n = sent as f64;
    let slack = (6.0 * (p * (1.0 - p) / n).sqrt()).min(0.08);
    (copies as f64 / n - p).abs() <= slack
}

#[test]
fn the_mirror_copies_about_its_share_to_the_candidate_under_load_and_no_client_fails() {
    let env = Env::with_extra("[rollout]\nshadow_seconds = 1\nshadow_percent = 20");
    let _up = env.up_idle();
    let config = bluegreen::config::Config::from_file(&env.config).unwrap();
    mirror(&env, config.rollout.shadow_percent);
    // Keep-alive clients, then clients that open a connection per request: NGINX draws each
    // request, however it came.
    for kind in [Client::KeepAlive, Client::Fresh] {
        let copies_before = metric(env.green, "bluegreen_shadow_requests_total");
        let rows_before = metric(env.green, "bluegreen_shadow_rows_total");
        let load = Load::start(env.public, &[kind], 12);
        std::thread::sleep(Duration::from_secs(3));
        let results = load.finish();
        assert_no_failures(&results);
        let sent: u64 = results.iter().map(|(_, t)| t.ok).sum();
        // NGINX ends a client's request once its copy is done: every copy is counted now.
        let copies = (metric(env.green, "bluegreen_shadow_requests_total") - copies_before) as u64;
        let rows = (metric(env.green, "bluegreen_shadow_rows_total") - rows_before) as u64;
        assert!(sent >= 500, "{kind:?}: only {sent} requests");
        assert!(
            about(copies, sent, 20.0),
            "{kind:?}: {copies} copies of {sent} requests is not about 20%"
        );
        assert_eq!(rows, copies, "{kind:?}: one row per copy, each compared");
    }
    assert_eq!(metric(env.green, "bluegreen_shadow_errors_total"), 0.0);
    // The copies reuse NGINX's connections to the candidate: it answers them without a body,
    // which NGINX needs to keep a connection a mirror's subrequest used.
    let copies = metric(env.green, "bluegreen_shadow_requests_total") as usize;
    let closed = closed_connections_to(env.green.port());
    assert!(
        closed * 10 < copies,
        "NGINX closed {closed} connections to the candidate for {copies} copies"
    );
}

#[test]
fn a_shadow_phase_reports_the_copies_it_judged_and_the_share_it_mirrored() {
    let env = Env::with_extra(
        "[rollout]\nshadow_seconds = 4\nshadow_percent = 25\nmax_latency_ratio = 50.0",
    );
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    // NGINX reloads when the shadow begins and at the switch, closing idle keep-alive
    // connections: the keep-alive clients retry a request whose reused connection died.
    let load = Load::mixed(env.public, &[(Client::Retrying, 8), (Client::Fresh, 8)]);
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["add-data", "--sample", "2"]);
    let v2 = env.wait_for_new_version(&v1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());

    let record = wait_for_record(&env, "deploy", |r| {
        r.to_version.as_deref() == Some(v2.as_str()) && r.outcome == Outcome::Deployed
    });
    let report = &record.rollout[0];
    assert!(report.passed, "{report:?}");
    let shadow = &report.figures;
    assert_eq!(shadow.phase, PhaseKind::Shadow);
    assert_eq!(shadow.mirror_percent, Some(25.0));
    let live = shadow.live_requests.unwrap();
    assert!(live >= 500, "{shadow:?}");
    assert!(about(shadow.requests, live, 25.0), "{shadow:?}");
    // The divergence is a mean over the rows of the copies judged, one row each (give or
    // take the copies in flight when the phase read the candidate's counters last).
    let rows = shadow.rows.unwrap();
    assert!(
        rows > 0 && rows.abs_diff(shadow.requests) <= 16,
        "{shadow:?}"
    );
    assert!(shadow.mean_divergence.unwrap() < 0.5, "{shadow:?}");
    let table = env.ok(&["status"]);
    let line = format!(
        "{} copies of {live} live requests ({:.1}%, shadow_percent 25)",
        shadow.requests,
        shadow.requests as f64 * 100.0 / live as f64
    );
    assert!(table.contains(&line), "{line}\n{table}");
}

/// The shadow compares the candidate with the model the active slot serves now, also when
/// the candidate's slot already served the candidate and needed no restart for it: a slot
/// loads that reference when it starts. Before, `deploy v1` back onto blue, which still
/// served v1, compared v1 with v1 (blue's reference from before v2 went live): divergence 0.
#[test]
fn the_shadow_compares_with_the_model_active_now_even_when_the_slot_needed_no_restart() {
    let env = Env::with_extra(
        "[rollout]\nshadow_seconds = 2\nshadow_percent = 100\nmax_latency_ratio = 50.0",
    );
    let _up = env.up_idle();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = Load::mixed(env.public, &[(Client::Retrying, 8), (Client::Fresh, 8)]);
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["add-data", "--sample", "2"]);
    env.ok(&["train"]);
    env.ok(&["deploy"]);
    let v2 = env.predict().header("x-model-version").unwrap().to_string();
    assert_ne!(v1, v2);
    // Blue rests, still serving v1; its reference is v1 too (green's model when it started).
    env.ok(&["deploy", &v1]);
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
    let record = bluegreen::history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        record.to_version.as_deref(),
        Some(v1.as_str()),
        "{record:#?}"
    );
    assert_eq!(record.outcome, Outcome::Deployed, "{record:#?}");
    let shadow = &record.rollout[0].figures;
    assert_eq!(shadow.phase, PhaseKind::Shadow);
    // v1 and v2 learned from different rows: their predictions differ on every row.
    assert!(shadow.rows.unwrap() > 0, "{shadow:?}");
    assert!(shadow.mean_divergence.unwrap() > 1e-6, "{shadow:?}");
}

#[test]
fn a_shadow_that_sees_too_few_copies_is_inconclusive_and_the_hint_names_the_share() {
    let env = Env::with_extra("[rollout]\nshadow_seconds = 1\nshadow_percent = 1");
    let _up = env.up_idle();
    env.ok(&["train"]);
    // No client: no copy, so nothing to judge.
    let err = env.fails(&["deploy"], 5);
    assert!(
        err.contains("shadow inconclusive: 0 mirrored requests reached the candidate")
            && err.contains("hint: ")
            && err.contains("raise rollout.shadow_percent"),
        "{err}"
    );
}

#[test]
fn a_bad_shadow_percent_is_refused_naming_its_key_and_writes_nothing() {
    for (value, says) in [
        ("0", "above 0 and at most 100"),
        ("-5", "above 0 and at most 100"),
        ("100.5", "above 0 and at most 100"),
        ("nan", "above 0 and at most 100"),
        ("12.345", "more than two decimals"),
    ] {
        let env = Env::with_extra(&format!("[rollout]\nshadow_percent = {value}"));
        for command in ["check", "up"] {
            let err = env.fails(&[command], 1);
            assert!(
                err.contains("`rollout.shadow_percent`")
                    && err.contains(says)
                    && err.contains("hint: "),
                "{command} with shadow_percent = {value}: {err}"
            );
        }
        assert!(
            !env.state().exists(),
            "shadow_percent = {value}: a refused config writes nothing"
        );
    }
}
