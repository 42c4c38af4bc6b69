//! Rollouts (issue 11) under `bluegreen up`, with real NGINX and concurrent load: a candidate
//! that waits for an operator (`promote = "manual"`), its preview through NGINX, `promote` and
//! `abort`; a good candidate through every phase, each recorded with its figures; a phase
//! without enough traffic to judge, which stops the rollout; the running phase's figures in
//! `status`, and what a rollout tells systemd; canary steps refused in socket mode; and the
//! live accuracy of `add-data`.

use std::net::Ipv4Addr;
use std::time::Duration;

use bluegreen::history::{Action, Outcome};
use bluegreen::rollout::report::PhaseKind;

use crate::faults::bad_candidate::{linked, wait_for_record};
use crate::load::{assert_no_failures, Client, Load};
use crate::util::{assert_json_error, get, preview, preview_from, Env};

/// Loopback, but not this host's own address as NGINX sees it (127.0.0.1): the site lets
/// only 127.0.0.1 and ::1 preview, so a client bound to this address is one NGINX must
/// refuse unless `nginx.preview_from` lists it, as any other address.
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn load(env: &Env) -> Load {
    Load::mixed(env.public, &[(Client::Retrying, 8), (Client::Fresh, 8)])
}

#[test]
fn a_manual_candidate_waits_is_previewed_survives_a_restart_and_is_promoted_or_aborted() {
    let env = Env::with_extra("[rollout]\npromote = \"manual\"");
    let up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));

    // New data: the trainer's deploy stops once v2 is ready on green.
    env.ok(&["add-data", "--sample", "2"]);
    let waiting = wait_for_record(&env, "waiting deploy", |r| r.outcome == Outcome::Waiting);
    let v2 = waiting.to_version.clone().unwrap();
    let steps: Vec<&str> = waiting.steps.iter().map(|s| s.name.as_str()).collect();
    assert!(steps.ends_with(&["restart", "probe"]), "{steps:?}");
    assert_eq!(env.predict().header("x-model-version"), Some(v1.as_str()));
    let status = env.status_json();
    assert_eq!(status["waiting"]["version"].as_str(), Some(v2.as_str()));
    assert_eq!(status["waiting"]["slot"], "green");
    assert_eq!(status["active"], "blue");
    assert!(status["pending_deploy"].is_null(), "{status:#}");
    let table = env.ok(&["status"]);
    assert!(
        table.contains(&format!("waiting  {v2} on green")),
        "{table}"
    );

    // A preview from loopback reaches the candidate; without the header, the active slot.
    let r = preview(env.public, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-model-version"), Some(v2.as_str()));
    assert_eq!(r.header("x-slot"), Some("green"));
    assert_eq!(
        preview(env.public, "/readyz").header("x-slot"),
        Some("green")
    );
    // From an address that is neither this host's own nor in nginx.preview_from: refused,
    // in JSON.
    let r = preview_from(OTHER, env.public, "/");
    let error = assert_json_error(&r, 403, "a preview from another address");
    assert!(error.contains("nginx.preview_from"), "{error}");

    // A deploy or rollback now would undo the wait: refused, naming what to do.
    let err = env.fails(&["deploy"], 1);
    assert!(
        err.contains("bluegreen promote") && err.contains(&v2),
        "{err}"
    );
    let err = env.fails(&["rollback"], 1);
    assert!(err.contains("bluegreen abort"), "{err}");

    // The wait survives `up` stopping and starting again (its trainer runs at start).
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
    assert!(up.stop().success());
    let up = env.up();
    let load = self::load(&env);
    let status = env.status_json();
    assert_eq!(status["waiting"]["version"].as_str(), Some(v2.as_str()));
    assert_eq!(env.predict().header("x-model-version"), Some(v1.as_str()));
    assert_eq!(
        preview(env.public, "/").header("x-model-version"),
        Some(v2.as_str())
    );

    let out = env.ok(&["promote"]);
    assert!(out.contains(&format!("promoted {v2} on green")), "{out}");
    assert_eq!(env.predict().header("x-model-version"), Some(v2.as_str()));
    assert!(env.status_json()["waiting"].is_null());
    let err = env.fails(&["promote"], 1);
    assert!(err.contains("no candidate waits"), "{err}");

    // Another candidate: aborted. Blue goes back to v1, so a rollback still means v1.
    env.ok(&["add-data", "--sample", "2"]);
    let waiting = wait_for_record(&env, "second wait", |r| {
        r.outcome == Outcome::Waiting && r.to_version.as_deref() != Some(v2.as_str())
    });
    let v3 = waiting.to_version.clone().unwrap();
    assert_eq!(linked(&env, "blue"), v3);
    let out = env.ok(&["abort"]);
    assert!(out.contains(&format!("aborted {v3}")), "{out}");
    assert_eq!(linked(&env, "blue"), v1);
    assert_eq!(env.predict().header("x-model-version"), Some(v2.as_str()));
    assert_eq!(
        get(env.blue, "/readyz").header("x-model-version"),
        Some(v1.as_str())
    );
    // The trigger does not deploy the aborted model again.
    env.exits(&["train", "--if-due"], 0);
    env.ok(&["rollback"]);
    assert_eq!(env.predict().header("x-model-version"), Some(v1.as_str()));

    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    assert_no_failures(&results);
    drop(up);

    // Every decision is in the history.
    let records = bluegreen::history::read_all(&env.state().join("deploys.jsonl")).unwrap();
    let story: Vec<(Action, Outcome)> = records
        .iter()
        .filter(|r| r.action != Action::AddData)
        .map(|r| (r.action, r.outcome))
        .collect();
    assert_eq!(
        story,
        [
            (Action::Deploy, Outcome::Waiting),
            (Action::Promote, Outcome::Deployed),
            (Action::Deploy, Outcome::Waiting),
            (Action::Abort, Outcome::Aborted),
            (Action::Rollback, Outcome::RolledBack),
        ]
    );
}

/// Sets `[nginx] preview_from = [entry]` in the environment's config file.
fn set_preview_from(env: &Env, entry: &str) {
    env.set_key(
        "nginx",
        "preview_from",
        toml::Value::Array(vec![toml::Value::from(entry)]),
    );
}

#[test]
fn nginx_preview_from_lets_an_address_preview_once_restart_applied_it() {
    let env = Env::with_extra("[rollout]\npromote = \"manual\"");
    let _up = env.up();
    env.ok(&["add-data", "--sample", "2"]);
    let waiting = wait_for_record(&env, "waiting deploy", |r| r.outcome == Outcome::Waiting);
    let candidate = waiting.to_version.unwrap();
    let r = preview_from(OTHER, env.public, "/");
    assert_json_error(&r, 403, "a preview from an address not listed");
    // Without the header, the active slot answers anyone.
    let r = crate::util::from(OTHER, env.public, "POST", "/", crate::util::EXAMPLE);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-slot"), Some("blue"));

    // A network with host bits set is refused, with its key, and nothing is touched.
    let include = env.state().join("nginx/preview.conf");
    let before = crate::util::read(&include);
    set_preview_from(&env, "127.0.0.2/8");
    let err = env.fails(&["restart"], 1);
    assert!(
        err.contains("nginx.preview_from") && err.contains("host bits"),
        "{err}"
    );
    assert_eq!(crate::util::read(&include), before);

    set_preview_from(&env, "127.0.0.2");
    // Applied while the candidate waits: the slots restart, the candidate still waits.
    let out = env.ok(&["restart"]);
    assert!(
        out.contains("NGINX reloaded with what the config renders now: the previews' include"),
        "{out}"
    );
    assert_eq!(
        env.status_json()["waiting"]["version"].as_str(),
        Some(candidate.as_str())
    );
    assert!(
        crate::util::read(&include).contains("\n127.0.0.2/32 1;\n"),
        "{}",
        crate::util::read(&include)
    );
    let r = preview_from(OTHER, env.public, "/");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-slot"), Some("green"));
    assert_eq!(r.header("x-model-version"), Some(candidate.as_str()));
    // Others are still refused.
    let r = preview_from(Ipv4Addr::new(127, 0, 0, 3), env.public, "/");
    assert_json_error(&r, 403, "a preview from 127.0.0.3");
}

#[test]
fn a_good_candidate_goes_through_shadow_canary_steps_and_watch_each_recorded() {
    // Latency is not what this test is about: a generous ratio keeps a busy test machine's
    // scheduling out of the verdicts. Every request mirrored, so that 2 s of shadow see the
    // 100 copies a verdict needs.
    let env = Env::with_extra(
        "[rollout]\nshadow_seconds = 2\nshadow_percent = 100\nsteps = [10, 50, 100]\nstep_seconds = 2\nwatch_seconds = 2\nmax_latency_ratio = 50.0",
    );
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));

    env.ok(&["add-data", "--sample", "2"]);
    let v2 = env.wait_for_new_version(&v1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    assert_no_failures(&results);
    for (kind, tally) in &results {
        assert_eq!(tally.versions[0], v1, "{kind:?}");
        assert!(tally.versions.contains(&v2), "{kind:?}");
    }

    let status = env.status_json();
    let record = status["last_deploys"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(record["outcome"], "deployed");
    let phases: Vec<(String, u64, bool)> = record["rollout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().unwrap().to_string(),
                p["percent"].as_u64().unwrap(),
                p["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        phases,
        [
            ("shadow".to_string(), 0, true),
            ("canary".to_string(), 10, true),
            ("canary".to_string(), 50, true),
            ("watch".to_string(), 100, true),
        ]
    );
    let shadow = &record["rollout"][0];
    assert!(shadow["rows"].as_u64().unwrap() > 0, "{shadow:#}");
    // Two linear models of almost the same data: close, not equal.
    let mean = shadow["mean_divergence"].as_f64().unwrap();
    assert!(mean > 0.0 && mean < 0.5, "{shadow:#}");
    for (i, step) in record["rollout"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .skip(1)
    {
        assert!(
            step["requests"].as_u64().unwrap() > 0,
            "phase {i}: {step:#}"
        );
        assert_eq!(step["errors"], 0, "phase {i}: {step:#}");
    }
    let steps: Vec<&str> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for step in [
        "shadow",
        "canary-10",
        "canary-50",
        "reload",
        "confirm",
        "watch",
    ] {
        assert!(steps.contains(&step), "{steps:?}");
    }
    let table = env.ok(&["status"]);
    for line in ["shadow ", "canary 10%", "canary 50%", "watch "] {
        assert!(table.contains(line), "{line}: {table}");
    }
    assert!(!table.contains("STOPPED"), "{table}");
}

#[test]
fn canary_steps_are_refused_in_socket_mode_shadow_and_watch_are_not() {
    let env = Env::with_extra("[rollout]\nsteps = [10, 100]\n[nginx]\nswitch = \"socket\"");
    let err = env.fails(&["deploy"], 1);
    assert!(
        err.contains("rollout.steps") && err.contains("not available") && err.contains("hint"),
        "{err}"
    );
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    // Every request mirrored, so that 1 s of shadow sees the 100 copies a verdict needs.
    let env = Env::with_extra(
        "[rollout]\nshadow_seconds = 1\nshadow_percent = 100\nwatch_seconds = 1\nmax_latency_ratio = 50.0\n[nginx]\nswitch = \"socket\"",
    );
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    // Traffic for the phases to judge.
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["add-data", "--sample", "2"]);
    env.wait_for_new_version(&v1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
    let record = bluegreen::history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .into_iter()
        .rfind(|r| r.action == Action::Deploy)
        .unwrap();
    let phases: Vec<PhaseKind> = record.rollout.iter().map(|p| p.figures.phase).collect();
    assert_eq!(phases, [PhaseKind::Shadow, PhaseKind::Watch], "{record:#?}");
}

#[test]
fn add_data_measures_the_active_models_live_rmse_on_the_new_rows() {
    let env = Env::with_extra("batch_size = 1000");
    let _up = env.up_idle();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    // The original demo's two example rows; then two whose label is far off.
    let out = env.ok(&["add-data", "--sample", "2"]);
    assert!(out.contains("live RMSE") && out.contains(&v1), "{out}");
    let status = env.status_json();
    let live = &status["live"];
    assert_eq!(live["model"].as_str(), Some(v1.as_str()));
    assert_eq!(live["rows"], 2);
    let calm = live["ratio"].as_f64().unwrap();
    env.ok(&[
        "add-data",
        "--row",
        "0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15,90",
        "--row",
        "0.2,0,8,0,0.5,6,87,4.9,4,301,21,390,15,95",
    ]);
    let status = env.status_json();
    let drift = status["live"]["ratio"].as_f64().unwrap();
    assert!(drift > 5.0 * calm && drift > 5.0, "{calm} then {drift}");
    let table = env.ok(&["status"]);
    assert!(table.contains("drift    live RMSE"), "{table}");
    // Recorded in the history, and on every slot's /metrics (read from it once a second).
    let record = bluegreen::history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (record.action, record.outcome),
        (Action::AddData, Outcome::Measured)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = String::from_utf8(get(env.public, "/metrics").body).unwrap();
        let ratio = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("bluegreen_live_rmse_ratio{{model=\"{v1}\"}} ")))
            .map(|v| v.parse::<f64>().unwrap());
        if ratio.is_some_and(|r| (r - drift).abs() < 1e-9) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A counter or gauge of a slot's `/metrics`, 0 when it is absent.
pub fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let text = String::from_utf8(get(addr, "/metrics").body).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn the_shadow_compares_the_predictions_of_every_protocol_binary_tensors_too() {
    let env = Env::with_extra("[rollout]\nshadow_seconds = 1");
    let _up = env.up_idle();
    // Every request copied, as a shadow phase with shadow_percent = 100 does.
    crate::shadow::mirror(&env, 100.0);

    let row: Vec<f64> = serde_json::from_str::<serde_json::Value>(crate::util::EXAMPLE).unwrap()
        ["data"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let json = |path: &str, body: serde_json::Value| {
        let body = body.to_string();
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    // Triton's binary tensor data: the JSON, then the row as 13 little-endian f64s.
    let head = serde_json::json!({"inputs": [{"name": "input-0", "shape": [1, 13],
        "datatype": "FP64", "parameters": {"binary_data_size": 104}}]})
    .to_string();
    let mut binary = format!(
        "POST /v2/models/bluegreen/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: {}\r\nContent-Length: {}\r\n\r\n{head}",
        head.len(),
        head.len() + 104
    )
    .into_bytes();
    binary.extend(row.iter().flat_map(|v| v.to_le_bytes()));
    let requests = [
        ("POST /", json("/", serde_json::json!({"data": [row]}))),
        (
            "OIP v2, JSON",
            json(
                "/v2/models/bluegreen/infer",
                serde_json::json!({"inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": row}]}),
            ),
        ),
        ("OIP v2, binary tensor data", binary),
        (
            "KServe v1",
            json(
                "/v1/models/bluegreen:predict",
                serde_json::json!({"instances": [row]}),
            ),
        ),
    ];
    for (what, request) in requests {
        let rows = metric(env.green, "bluegreen_shadow_rows_total");
        let r = crate::util::raw(env.public, &request);
        assert_eq!(
            r.status,
            200,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("x-slot"), Some("blue"), "{what}");
        // NGINX ends the client's request once its copy is answered; the count follows.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while metric(env.green, "bluegreen_shadow_rows_total") < rows + 1.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the candidate compared no row"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert_eq!(metric(env.green, "bluegreen_shadow_errors_total"), 0.0);
    assert_eq!(metric(env.green, "bluegreen_shadow_requests_total"), 4.0);
    // The same model on both slots: no divergence.
    assert_eq!(metric(env.green, "bluegreen_shadow_divergence_max"), 0.0);
}

/// The deploys and promotes of the history, in order, as (action, outcome).
fn story(env: &Env) -> Vec<(Action, Outcome)> {
    bluegreen::history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| matches!(r.action, Action::Deploy | Action::Promote))
        .map(|r| (r.action, r.outcome))
        .collect()
}

#[test]
fn a_canary_step_without_traffic_stops_inconclusive_and_the_previous_slot_keeps_serving() {
    let env =
        Env::with_extra("[rollout]\nsteps = [50, 100]\nstep_seconds = 2\nmax_latency_ratio = 50.0");
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();

    // The trainer's deploy after `add-data`, with no client sending a request: the step has
    // nothing to judge, so traffic does not move on.
    env.ok(&["add-data", "--sample", "2"]);
    let record = wait_for_record(&env, "inconclusive deploy", |r| {
        r.action == Action::Deploy && r.outcome != Outcome::InProgress
    });
    assert_eq!(record.outcome, Outcome::Inconclusive, "{record:#?}");
    let v2 = record.to_version.clone().unwrap();
    assert_eq!(record.rollout.len(), 1, "{record:#?}");
    let step = &record.rollout[0];
    assert_eq!(
        (step.figures.phase, step.figures.percent),
        (PhaseKind::Canary, 50)
    );
    assert!(step.inconclusive && !step.passed, "{step:?}");
    assert!(step.figures.requests < 100, "{step:?}");
    assert!(
        step.reason.starts_with(&format!(
            "{} requests reached the candidate",
            step.figures.requests
        )) && step.reason.contains("fewer than the 100 a verdict needs"),
        "{}",
        step.reason
    );
    let reason = record.reason.clone().unwrap();
    assert!(
        reason.starts_with("canary 50% inconclusive: ")
            && reason.ends_with("all traffic back on blue"),
        "{reason}"
    );

    // The previous slot is active and serves; the candidate's slot is back on v1.
    let r = env.predict();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-model-version"), Some(v1.as_str()));
    assert_eq!(r.header("x-slot"), Some("blue"));
    let include = crate::util::read(&env.state().join("nginx/upstream.conf"));
    assert!(include.contains("# active slot: blue\n") && !include.contains("weight="));
    assert_eq!(linked(&env, "green"), v1);
    let status = env.status_json();
    assert_eq!(status["active"], "blue");
    assert!(status["canary_percent"].is_null(), "{status:#}");
    assert!(status["rollout"].is_null(), "{status:#}");
    // Settled: the trigger does not start the same rollout again at its next wake-up.
    assert!(status["pending_deploy"].is_null(), "{status:#}");
    env.exits(&["train", "--if-due"], 0);
    let table = env.ok(&["status"]);
    assert!(
        table.contains(" inconclusive ") && table.contains("INCONCLUSIVE: 0 requests reached"),
        "{table}"
    );
    // Why the newest model that passed does not serve, once the history scrolled on.
    assert_eq!(
        status["newest_stopped"]["version"].as_str(),
        Some(v2.as_str())
    );
    assert_eq!(status["newest_stopped"]["outcome"], "inconclusive");
    assert!(
        table.contains(&format!("  stopped  {v2} by its rollout (inconclusive, "))
            && table.contains(&format!("`bluegreen deploy {v2}` rolls it out again")),
        "{table}"
    );

    // By hand: exit 5, and the hint says what to do.
    let err = env.fails(&["deploy", &v2], 5);
    for words in [
        format!("the rollout could not judge {v2}: canary 50% inconclusive: "),
        "hint: send traffic through NGINX while the phase runs".to_string(),
        "lengthen rollout.step_seconds".to_string(),
        "or move traffic without analysis (rollout.steps = [100]); ".to_string(),
        format!("then `bluegreen deploy {v2}`"),
    ] {
        assert!(err.contains(&words), "{words:?} in {err}");
    }
    // Only the keys that analyse something now: no shadow, no watch is configured here.
    assert!(
        !err.contains("rollout.watch_seconds") && !err.contains("rollout.shadow_seconds"),
        "{err}"
    );

    // Promoted by hand, a candidate that cannot be judged is not dropped: it waits again.
    env.set_key("rollout", "promote", toml::Value::from("manual"));
    let out = env.ok(&["deploy", &v2]);
    assert!(out.contains("waits on green"), "{out}");
    let err = env.fails(&["promote"], 5);
    assert!(
        err.contains("all traffic back on blue; green waits again; recorded in the history")
            && err.contains("; then `bluegreen promote` once traffic flows, or `bluegreen abort`"),
        "{err}"
    );
    assert_eq!(err.matches("waits again").count(), 1, "said once: {err}");
    let status = env.status_json();
    assert_eq!(status["waiting"]["version"].as_str(), Some(v2.as_str()));
    // It waits again since the failed promote ended, not since that promote (or the deploy)
    // began.
    let promote = bluegreen::history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(promote.action, Action::Promote);
    assert!(promote.duration_ms >= 1000.0, "{promote:#?}");
    assert_eq!(
        status["waiting"]["since"].as_str(),
        Some(promote.ended().as_str()),
        "{status:#}"
    );
    assert!(promote.ended() > promote.time, "{promote:#?}");
    assert_eq!(status["active"], "blue");
    assert_eq!(linked(&env, "green"), v2);
    assert_eq!(env.predict().header("x-model-version"), Some(v1.as_str()));

    // With traffic, the same step judges it, and it is promoted.
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));
    let out = env.ok(&["promote"]);
    assert!(out.contains(&format!("promoted {v2} on green")), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
    let records = bluegreen::history::read_all(&env.state().join("deploys.jsonl")).unwrap();
    let promoted = records.last().unwrap();
    let step = &promoted.rollout[0];
    assert!(
        step.passed && !step.inconclusive && step.figures.requests >= 100,
        "{step:?}"
    );
    assert_eq!(
        story(&env),
        [
            (Action::Deploy, Outcome::Inconclusive),
            (Action::Deploy, Outcome::Inconclusive),
            (Action::Deploy, Outcome::Waiting),
            (Action::Promote, Outcome::Inconclusive),
            (Action::Promote, Outcome::Deployed),
        ]
    );
}

#[test]
fn status_shows_the_running_phases_figures_and_a_killed_rollout_leaves_none_behind() {
    let env = Env::with_extra(
        "[rollout]\nsteps = [50, 100]\nstep_seconds = 30\nmax_latency_ratio = 50.0",
    );
    let _up = env.up_idle();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    env.ok(&["train"]);
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));

    // The deploy as bluegreen-deploy.service runs it: with a NOTIFY_SOCKET (systemd's, here
    // the test's), to which a rollout reports at every reading.
    let socket_path = env.dir.path().join("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let mut deploy = env
        .cmd(&["deploy"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // `status --json` shows the canary step's figures so far, and they grow as it polls.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<serde_json::Value> = Vec::new();
    while seen.len() < 2 {
        assert!(
            deploy.try_wait().unwrap().is_none(),
            "the deploy ended before status showed its figures: {seen:#?}"
        );
        assert!(std::time::Instant::now() < deadline, "{seen:#?}");
        let status = env.status_json();
        let current = &status["rollout"]["current"];
        if current["requests"].as_u64().is_some_and(|n| n > 0)
            && seen
                .last()
                .is_none_or(|s| s["requests"].as_u64() < current["requests"].as_u64())
        {
            assert_eq!(status["rollout"]["phase"], "canary", "{status:#}");
            // What the rollout deploys is not also "pending" for the next trigger.
            assert!(status["pending_deploy"].is_null(), "{status:#}");
            assert_eq!(current["phase"], "canary", "{status:#}");
            assert_eq!(current["percent"], 50, "{status:#}");
            assert_eq!(current["of_seconds"], 30, "{status:#}");
            assert!(current["seconds"].as_f64().unwrap() < 30.0, "{status:#}");
            assert!(current["as_of"].is_string(), "{status:#}");
            seen.push(current.clone());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = env.ok(&["status"]);
    assert!(
        table.contains("is in phase canary") && table.contains(" s of 30 so far, "),
        "{table}"
    );

    // Killed mid-step: the next `status` reconciles, and nothing of the cut step is left.
    crate::util::kill9(deploy.id() as i32);
    deploy.wait().unwrap();
    let status = env.status_json();
    assert!(status["rollout"].is_null(), "{status:#}");
    assert!(status["canary_percent"].is_null(), "{status:#}");
    assert_eq!(status["active"], "blue");
    assert!(
        status["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("reconciled an interrupted deploy"),
        "{status:#}"
    );
    assert!(!env.state().join("run/deploy-intent.json").exists());
    let table = env.ok(&["status"]);
    assert!(!table.contains("so far"), "{table}");
    let record = bluegreen::history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(record.outcome, Outcome::Interrupted, "{record:#?}");
    assert!(
        record.rollout.is_empty(),
        "a step cut short is not judged: {record:#?}"
    );
    assert_eq!(env.predict().header("x-model-version"), Some(v1.as_str()));
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());

    // What systemd heard: at every reading, a start deadline 5 minutes on, and the figures.
    systemd.set_nonblocking(true).unwrap();
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = systemd.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(messages.len() >= seen.len(), "{messages:#?}");
    for message in &messages {
        assert!(
            message.contains("EXTEND_TIMEOUT_USEC=300000000\n")
                && message.contains("STATUS=rollout: canary 50%"),
            "{message}"
        );
    }
}

/// Waits until `status --json` shows the running rollout in `phase` with requests counted.
fn wait_for_phase(env: &Env, deploy: &mut std::process::Child, phase: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            deploy.try_wait().unwrap().is_none(),
            "the deploy ended before its {phase} phase"
        );
        let status = env.status_json();
        let current = &status["rollout"]["current"];
        if current["phase"] == phase && current["requests"].as_u64().is_some_and(|n| n > 0) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A candidate waits since the command that left it waiting ended: the deploy, or a promote
/// killed mid-phase (`kill -9`), once the next command reconciled it; `promote` says the same
/// time as `status`. Before, both said when that deploy or promote began.
#[test]
fn a_candidate_waits_since_the_deploy_or_the_killed_promote_ended() {
    let env = Env::with_extra(
        "[rollout]\npromote = \"manual\"\nsteps = [50, 100]\nstep_seconds = 60\nmax_latency_ratio = 50.0",
    );
    let _up = env.up_idle();
    env.ok(&["train"]);
    env.ok(&["deploy"]);
    let deployed = bluegreen::history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(deployed.outcome, Outcome::Waiting, "{deployed:#?}");
    let since = env.status_json()["waiting"]["since"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(since, deployed.ended());

    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));
    let mut promote = env
        .cmd(&["promote"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_phase(&env, &mut promote, "canary");
    let killed = bluegreen::model::now_rfc3339();
    crate::util::kill9(promote.id() as i32);
    let out = promote.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("(waiting since {since})")), "{said}");

    std::thread::sleep(Duration::from_millis(500));
    // The next command reconciles: traffic back, the candidate waiting again, since now.
    let status = env.status_json();
    let again = status["waiting"]["since"].as_str().unwrap();
    assert!(
        again > killed.as_str(),
        "{again} after the kill at {killed}: {status:#}"
    );
    assert_eq!(status["active"], "blue", "{status:#}");
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
}

/// A deploy stopped by a signal in a rollout's phase (Ctrl-C, `systemctl stop`, systemd's
/// own stop at a start timeout) puts all traffic back on the previous slot before it exits,
/// and records why: nothing is left mirrored or split with no deploy to watch it. Before,
/// the signal ended the process at once and the split stayed until the next command.
#[test]
fn a_rollout_stopped_by_a_signal_puts_traffic_back_before_it_exits() {
    let env = Env::with_extra(
        "[rollout]\nshadow_seconds = 60\nsteps = [50, 100]\nstep_seconds = 60\nmax_latency_ratio = 50.0\nmax_divergence = 1000.0",
    );
    let _up = env.up_idle();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    env.ok(&["train"]);
    let load = load(&env);
    std::thread::sleep(Duration::from_millis(300));
    let nginx = env.state().join("nginx");

    for (signal, phase, step, stopped) in [
        (
            nix::sys::signal::Signal::SIGTERM,
            "shadow",
            "shadow",
            "stopped by SIGTERM",
        ),
        (
            nix::sys::signal::Signal::SIGINT,
            "canary",
            "canary",
            "stopped by SIGINT",
        ),
    ] {
        if phase == "canary" {
            // Straight to the canary step this time.
            env.set_key("rollout", "shadow_seconds", toml::Value::from(0));
        }
        let mut deploy = env
            .cmd(&["deploy"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_phase(&env, &mut deploy, phase);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(deploy.id() as i32), signal).unwrap();
        let out = deploy.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // The deploy exited by itself, after its own clean-up, not killed by the signal.
        assert!(
            out.status.code().is_some_and(|c| c != 0),
            "{:?}\n{err}",
            out.status
        );
        assert!(err.contains(stopped) && err.contains("blue"), "{err}");

        // Traffic is back on blue with nothing mirrored or split, before any other command.
        let include = std::fs::read_to_string(nginx.join("upstream.conf")).unwrap();
        assert!(!include.contains("weight="), "{include}");
        let shadow = std::fs::read_to_string(nginx.join("shadow.conf")).unwrap();
        assert!(
            shadow
                .lines()
                .all(|l| l.starts_with('#') || l.trim().is_empty()),
            "{shadow}"
        );
        let record = bluegreen::history::read_all(&env.state().join("deploys.jsonl"))
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(record.outcome, Outcome::Failed, "{record:#?}");
        assert!(
            record
                .reason
                .as_deref()
                .is_some_and(|r| r.contains(stopped)),
            "{record:#?}"
        );
        assert!(
            record
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with(&format!("{step}: "))),
            "{record:#?}"
        );
        let status = env.status_json();
        assert!(status["rollout"].is_null(), "{status:#}");
        assert!(status["canary_percent"].is_null(), "{status:#}");
        assert_eq!(status["active"], "blue", "{status:#}");
        assert_eq!(env.predict().header("x-model-version"), Some(v1.as_str()));
    }

    // A promoted candidate, stopped the same way, waits again.
    env.set_key("rollout", "promote", toml::Value::from("manual"));
    env.ok(&["deploy"]);
    let candidate = env.status_json()["waiting"]["version"].clone();
    assert!(candidate.is_string());
    let mut promote = env
        .cmd(&["promote"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_phase(&env, &mut promote, "canary");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(promote.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = promote.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the candidate waits again"), "{err}");
    let status = env.status_json();
    assert_eq!(status["waiting"]["version"], candidate, "{status:#}");
    assert_eq!(status["active"], "blue", "{status:#}");
    assert_eq!(env.predict().header("x-model-version"), Some(v1.as_str()));
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
}

/// The deploy unit lets the deploy extend its start timeout (sd_notify's messages are
/// refused from a unit without `NotifyAccess=`), and takes the rollout's exit statuses as
/// the rollout working, not as a failed unit.
#[test]
fn the_deploy_unit_accepts_the_rollouts_timeout_extensions_and_exit_statuses() {
    let unit = crate::util::read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/bluegreen-deploy.service"),
    );
    let lines: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(lines.contains(&"Type=oneshot"), "{unit}");
    assert!(lines.contains(&"NotifyAccess=main"), "{unit}");
    assert!(lines.contains(&"TimeoutStartSec=10min"), "{unit}");
    let success = lines
        .iter()
        .find_map(|l| l.strip_prefix("SuccessExitStatus="))
        .unwrap();
    for code in [3, 4, 5] {
        assert!(
            success.split(' ').any(|c| c == code.to_string()),
            "{code} in {success}"
        );
    }
}
