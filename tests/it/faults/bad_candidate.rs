//! A candidate that passed the quality gate but is bad live (issue 11): its predictions
//! diverge from the active model's, it answers errors, or it slows down once it has all the
//! traffic. Each is found by a rollout phase and stopped, under concurrent load that loses
//! no request: traffic stays on (or goes back to) the previous slot, the candidate's slot goes
//! back to its previous model, and the history holds the phase's figures.
//!
//! The errors and the slowdown come from the test-only fault hook (`BLUEGREEN_TEST_FAULT`,
//! honoured by debug builds only; `bluegreen::rollout::fault`).

use std::time::{Duration, Instant};

use bluegreen::history::{self, Action, Outcome, Record};
use bluegreen::rollout::report::PhaseKind;

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{read, Env};

/// Waits until the history holds a record that `wanted` accepts; returns it.
pub fn wait_for_record(env: &Env, what: &str, wanted: impl Fn(&Record) -> bool) -> Record {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = history::read_all(&env.state().join("deploys.jsonl")).unwrap();
        if let Some(r) = records.into_iter().rev().find(|r| wanted(r)) {
            return r;
        }
        assert!(Instant::now() < deadline, "no {what} in the history");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The version `slot`'s link names.
pub fn linked(env: &Env, slot: &str) -> String {
    let link = std::fs::read_link(env.state().join(format!("slots/{slot}.json"))).unwrap();
    link.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The load these tests run beside the rollout: keep-alive clients (that retry a request
/// whose reused connection died, as NGINX reloads at every phase in reload mode) and clients
/// that open a connection per request.
fn load(env: &Env) -> Load {
    Load::mixed(env.public, &[(Client::Retrying, 8), (Client::Fresh, 8)])
}

/// Two labelled rows far from the Boston data's: a model trained with them predicts
/// otherwise, by several label units, but not so badly that a lenient gate refuses it.
const SHIFTED: [&str; 2] = [
    "0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15,400",
    "0.2,0,8,0,0.5,6.5,60,4.9,4,301,21,390,8,450",
];

#[test]
fn a_diverging_candidate_that_passes_a_lenient_gate_is_stopped_by_the_shadow_phase() {
    let env = Env::with_extra(
        "[gate]\ntolerance = 1000.0\n[rollout]\nshadow_seconds = 3\nmax_divergence = 0.5\nmax_latency_ratio = 50.0",
    );
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));

    env.ok(&["add-data", "--row", SHIFTED[0], "--row", SHIFTED[1]]);
    let record = wait_for_record(&env, "aborted deploy", |r| {
        r.action == Action::Deploy && r.outcome == Outcome::Aborted
    });
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    println!("{record:#?}\n{results:?}");
    assert_no_failures(&results);
    // Clients got the active slot's answers only.
    assert!(results.iter().all(|(_, t)| t.versions == [v1.clone()]));

    let v2 = record.to_version.clone().unwrap();
    assert!(
        record.gate.as_ref().unwrap().passed,
        "the gate let it through"
    );
    let shadow = &record.rollout[0];
    assert_eq!(record.rollout.len(), 1, "stopped at the shadow phase");
    assert_eq!(shadow.figures.phase, PhaseKind::Shadow);
    assert!(!shadow.passed);
    assert!(
        shadow.figures.requests > 0 && shadow.figures.rows.unwrap() > 0,
        "{shadow:?}"
    );
    assert!(shadow.figures.mean_divergence.unwrap() > 0.5, "{shadow:?}");
    assert!(
        shadow.reason.contains("mean divergence"),
        "{}",
        shadow.reason
    );
    assert!(record.reason.as_ref().unwrap().starts_with("shadow: "));

    // Traffic never moved; the mirror is off; green is back on the model it had.
    assert_eq!(env.predict().header("x-model-version"), Some(v1.as_str()));
    assert_eq!(linked(&env, "green"), v1);
    // The mirror is off: the shadow file holds no directive.
    let shadow = read(&env.state().join("nginx/shadow.conf"));
    assert!(
        shadow
            .lines()
            .all(|l| l.starts_with('#') || l.trim().is_empty()),
        "{shadow}"
    );
    // status shows the figures; the trigger does not deploy the candidate again.
    let table = env.ok(&["status"]);
    assert!(
        table.contains("aborted") && table.contains("divergence mean"),
        "{table}"
    );
    let status = env.status_json();
    assert!(status["pending_deploy"].is_null(), "{status:#}");
    // Exit 0, not 10: no deploy is wanted, the aborted candidate is settled.
    env.exits(&["train", "--if-due"], 0);
    assert_eq!(
        env.status_json()["newest_passed"].as_str(),
        Some(v2.as_str())
    );
}

#[test]
fn a_candidate_answering_errors_is_stopped_at_the_first_canary_step() {
    let env = Env::with_extra(
        "[rollout]\nsteps = [10, 50, 100]\nstep_seconds = 8\nmax_latency_ratio = 50.0",
    );
    // The new model's slot answers its probe, then 500 to every prediction.
    let _up = env.up_with_env(&[("BLUEGREEN_TEST_FAULT", "v0002:errors-after=1")]);
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));

    env.ok(&["add-data", "--sample", "2"]);
    let record = wait_for_record(&env, "aborted deploy", |r| {
        r.action == Action::Deploy && r.outcome == Outcome::Aborted
    });
    // Deployed again by hand, it is stopped again, and `deploy` exits 4.
    let v2 = record.to_version.clone().unwrap();
    let err = env.fails(&["deploy", &v2], 4);
    assert!(
        err.contains(&format!("the rollout stopped {v2}: canary 10%"))
            && err.contains("hint: the candidate breached a limit of [rollout]")
            && err.contains(&format!("then `bluegreen deploy {v2}`")),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    println!("{record:#?}\n{results:?}");
    // NGINX sent each 500 of the candidate again, to the active slot: no client saw one.
    assert_no_failures(&results);
    assert!(results.iter().all(|(_, t)| t.versions == [v1.clone()]));

    assert_eq!(record.rollout.len(), 1, "stopped at the first step");
    let step = &record.rollout[0];
    assert_eq!(
        (step.figures.phase, step.figures.percent),
        (PhaseKind::Canary, 10)
    );
    assert!(!step.passed && step.figures.errors > 0, "{step:?}");
    assert!(step.reason.contains("error rate"), "{}", step.reason);
    assert!(
        step.figures.seconds < 8.0,
        "stopped as soon as the errors were clear"
    );
    let steps: Vec<&str> = record.steps.iter().map(|s| s.name.as_str()).collect();
    assert!(
        steps.contains(&"canary-10") && steps.contains(&"abort"),
        "{steps:?}"
    );
    // All traffic is on blue again: the include names it alone.
    let include = read(&env.state().join("nginx/upstream.conf"));
    assert!(include.contains("# active slot: blue\n") && !include.contains("weight="));
    assert_eq!(env.status_json()["canary_percent"], serde_json::Value::Null);
    assert_eq!(linked(&env, "green"), v1);
}

#[test]
fn a_regression_during_the_watch_rolls_back_automatically() {
    let env = Env::with_extra("[rollout]\nwatch_seconds = 10\nmax_latency_ratio = 2.0");
    // The new model's slot answers 40 ms slower once it has answered 50 predictions: after
    // the probe and the switch, during the watch.
    let _up = env.up_with_env(&[("BLUEGREEN_TEST_FAULT", "v0002:slow-after=50:40")]);
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));

    env.ok(&["add-data", "--sample", "2"]);
    let record = wait_for_record(&env, "aborted deploy", |r| {
        r.action == Action::Deploy && r.outcome == Outcome::Aborted
    });
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    println!("{record:#?}\n{results:?}");
    assert_no_failures(&results);
    let v2 = record.to_version.clone().unwrap();
    // The clients had the new model, then the old one again.
    assert!(results.iter().any(|(_, t)| t.versions.contains(&v2)));

    let watch = record.rollout.last().unwrap();
    assert_eq!(watch.figures.phase, PhaseKind::Watch);
    assert!(!watch.passed, "{watch:?}");
    assert!(watch.figures.latency_ratio.unwrap() > 2.0, "{watch:?}");
    assert!(watch.reason.contains("p99"), "{}", watch.reason);
    let steps: Vec<&str> = record.steps.iter().map(|s| s.name.as_str()).collect();
    assert!(
        steps.contains(&"confirm") && steps.contains(&"watch"),
        "{steps:?}"
    );

    let r = env.predict();
    assert_eq!(r.header("x-model-version"), Some(v1.as_str()));
    assert_eq!(r.header("x-slot"), Some("blue"));
    assert_eq!(
        linked(&env, "green"),
        v1,
        "a rollback still means the previous model"
    );
    let status = env.status_json();
    assert_eq!(status["active"], "blue");
    assert_eq!(
        status["last_deploys"].as_array().unwrap().last().unwrap()["outcome"],
        "aborted"
    );
}

/// Blue's answers on its own port so far, from its `/metrics`.
fn answered(env: &Env) -> u64 {
    let metrics = crate::util::get(env.blue, "/metrics");
    bluegreen::rollout::metrics::Reading::parse(&String::from_utf8_lossy(&metrics.body)).requests
}

/// The watch judges the new slot against the previous one under the same load: the previous
/// slot's window from the deploy's start to the switch (here a canary step long), not its
/// whole life. Every answer becomes 30 ms slower once blue has given its first `FAST` (the
/// host got busier, say), the candidate's from the start: blue's life is fast, its last
/// seconds before the switch as slow as the candidate. Against blue's life the watch rolled
/// back a candidate no slower than blue was just before; against that window it passes.
#[test]
fn the_watch_compares_with_the_previous_slot_under_the_same_load_not_its_whole_life() {
    // Enough that blue's slow answers before the switch (a few hundred) stay under 1% of its
    // life, so that its life's p99 is a fast answer.
    const FAST: u64 = 60_000;
    let env = Env::with_extra(
        "[rollout]\nsteps = [50, 100]\nstep_seconds = 3\nwatch_seconds = 3\nmax_latency_ratio = 2.0",
    );
    let fault = format!("v0001:slow-after={FAST}:30,v0002:slow-after=1:30");
    let mut up = env.up_with_env(&[("BLUEGREEN_TEST_FAULT", fault.as_str())]);
    up.wait_for_line("no deploy is wanted");
    env.ok(&["train"]);

    let fast = Load::start(env.blue, &[Client::KeepAlive], 8);
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered(&env) < FAST {
        assert!(
            Instant::now() < deadline,
            "blue answered {} of {FAST}",
            answered(&env)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_no_failures(&fast.finish());

    // A light load (about 130 requests a second at 30 ms each): enough for each phase to
    // judge, few enough that blue's slow answers stay a small share of its life.
    let load = Load::mixed(env.public, &[(Client::Retrying, 2), (Client::Fresh, 2)]);
    std::thread::sleep(Duration::from_millis(100));
    let out = env.ok(&["deploy"]);
    let results = load.finish();
    assert_no_failures(&results);
    let record = history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .pop()
        .unwrap();
    println!("{out}\n{record:#?}");
    assert_eq!(record.outcome, Outcome::Deployed, "{record:#?}");
    let watch = record.rollout.last().unwrap();
    assert_eq!(watch.figures.phase, PhaseKind::Watch);
    let window = watch
        .figures
        .reference_seconds
        .expect("a window, not blue's life");
    assert!(window >= 3.0, "the window holds the canary step: {watch:?}");
    // Both sides slow by the same 30 ms: the candidate is judged no slower than blue was.
    assert!(watch.figures.reference_p99_ms.unwrap() >= 30.0, "{watch:?}");
    assert!(watch.figures.latency_ratio.unwrap() < 2.0, "{watch:?}");
    assert!(
        out.contains("(the previous slot's last "),
        "the figures say which window: {out}"
    );
}
