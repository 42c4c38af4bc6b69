//! The automatic path under `bluegreen up` (issue 8 §7): data arrives, `train --if-due`
//! runs, and a deploy follows when one is wanted. It never stalls silently: a refusal is
//! recorded, shown and counted; a deploy that did not finish is retried at the next
//! trigger; and what is deployed is the newest model that passed the gate.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use bluegreen::history::{self, Action, Outcome, Record};

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{get, stdout, Env};

const POISON: &str = "0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9";

fn history(env: &Env) -> Vec<Record> {
    history::read_all(&env.state().join("deploys.jsonl")).unwrap()
}

/// Waits until the history holds a record that `wanted` accepts; returns it.
fn wait_for_record(env: &Env, what: &str, wanted: impl Fn(&Record) -> bool) -> Record {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = history(env).into_iter().rev().find(|r| wanted(r)) {
            return r;
        }
        assert!(Instant::now() < deadline, "no {what} in the history");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `bluegreen_gate_refusals_total{action="train"}` on a slot's `/metrics`.
fn train_refusals(addr: SocketAddr) -> Option<u64> {
    let text = String::from_utf8(get(addr, "/metrics").body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("bluegreen_gate_refusals_total{action=\"train\"} "))
        .map(|n| n.parse().unwrap())
}

#[test]
fn a_refusal_on_the_automatic_path_is_recorded_shown_and_counted() {
    let env = Env::new();
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = Load::start(env.public, &[Client::Fresh, Client::Retrying], 2);
    assert_eq!(train_refusals(env.blue), Some(0));

    env.ok(&["add-data", "--row", POISON, "--row", POISON]);
    let refusal = wait_for_record(&env, "refusal by train", |r| {
        r.action == Action::Train && r.outcome == Outcome::Refused
    });
    let refused = refusal.to_version.clone().unwrap();
    assert!(refused.starts_with("v0002-"), "{refusal:?}");
    assert_eq!(refusal.from_version.as_deref(), Some(v1.as_str()));
    let reason = refusal.reason.clone().unwrap();
    assert!(reason.contains(&format!("worse than {v1}")), "{reason}");
    assert!(!refusal.gate.unwrap().passed);

    // `status` shows it, with its reason, in the table and in JSON.
    let status = env.status_json();
    assert_eq!(
        status["newest_refused"]["version"].as_str(),
        Some(refused.as_str())
    );
    assert_eq!(
        status["newest_refused"]["reason"].as_str(),
        Some(reason.as_str())
    );
    assert_eq!(status["newest_passed"].as_str(), Some(v1.as_str()));
    assert!(status["pending_deploy"].is_null(), "{status:#}");
    let table = env.ok(&["status"]);
    assert!(
        table.contains(&format!("refused  {refused} by the quality gate: {reason}")),
        "{table}"
    );
    assert!(table.contains("train    -           refused"), "{table}");

    // Both slots count it in their metrics, and so does what NGINX serves.
    for addr in [env.blue, env.green, env.public] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while train_refusals(addr) != Some(1) {
            assert!(
                Instant::now() < deadline,
                "{addr} never counted the refusal"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Exit 3 is what the trainer got, and what a systemd unit that does not take 3 as
    // success shows as failed, with the REFUSED line in its log.
    env.ok(&["add-data", "--row", POISON, "--row", POISON]);
    wait_for_record(&env, "second refusal", |r| {
        r.action == Action::Train && r.to_version.as_deref() != Some(refused.as_str())
    });
    let out = env.exits(&["train"], 3);
    assert!(stdout(&out).contains("quality gate: REFUSED: RMSE"));
    let refusals = history(&env)
        .iter()
        .filter(|r| r.outcome == Outcome::Refused)
        .count();
    assert_eq!(refusals, 3);

    std::thread::sleep(Duration::from_millis(200));
    let results = load.finish();
    assert_no_failures(&results);
    assert!(results.iter().all(|(_, t)| t.versions == [v1.clone()]));
}

/// The value of `bluegreen_training_failures_total` on a slot's `/metrics`.
fn training_failures(addr: SocketAddr) -> Option<u64> {
    let text = String::from_utf8(get(addr, "/metrics").body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("bluegreen_training_failures_total "))
        .map(|n| n.parse().unwrap())
}

/// A training that fails on the automatic path (exit 1 of `train --if-due`) is recorded in
/// the history with its whole cause, shown by `status` with a hint, and counted by the
/// slots. Before, `status` said only "training is due", with no note, record or metric.
#[test]
fn a_training_failure_on_the_automatic_path_is_recorded_shown_and_counted() {
    let env = Env::new();
    let mut up = env.up_idle();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    // The operator switches to knn with more neighbours than there are rows.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{config}[model]\nkind = \"knn\"\nk = 600\n"),
    )
    .unwrap();
    env.ok(&["add-data", "--sample", "2"]);
    let failure = wait_for_record(&env, "failed training", |r| {
        r.action == Action::Train && r.outcome == Outcome::Failed
    });
    up.wait_for_line("training failed (exit status 1); see above");
    assert_eq!(failure.from_version.as_deref(), Some(v1.as_str()));
    assert_eq!(
        failure.to_version, None,
        "no model was written: {failure:?}"
    );
    let reason = failure.reason.clone().unwrap();
    assert!(
        reason.starts_with("train: a knn model cannot predict: Find failed: k is > than the dataset size; hint: model.k = 600 is more neighbours"),
        "{reason}"
    );

    let status = env.status_json();
    assert_eq!(status["training_due"], true, "{status:#}");
    assert_eq!(
        status["training_failed"]["reason"].as_str(),
        Some(reason.as_str())
    );
    assert_eq!(
        status["training_failed"]["time"].as_str(),
        Some(failure.time.as_str())
    );
    assert!(status["training_failed"]["hint"]
        .as_str()
        .is_some_and(|h| h.contains("`bluegreen train`")));
    let table = env.ok(&["status"]);
    assert!(
        table.contains(&format!("failed   training at {}: {reason}", failure.time))
            && table.contains("           hint: "),
        "{table}"
    );
    assert!(table.contains("train    -           failed"), "{table}");

    for addr in [env.blue, env.green, env.public] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while training_failures(addr) != Some(1) {
            assert!(
                Instant::now() < deadline,
                "{addr} never counted the failed training"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Fixed, the next training succeeds, and status no longer shows the failure.
    std::fs::write(&env.config, &config).unwrap();
    env.exits(&["train", "--if-due"], 10);
    let status = env.status_json();
    assert!(status["training_failed"].is_null(), "{status:#}");
}

#[test]
fn a_deploy_that_failed_is_retried_at_the_next_trigger() {
    let env = Env::new();
    // Green's port is taken: the deploy of the first new model fails at its restart.
    let squatter = TcpListener::bind(env.green).unwrap();
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = Load::start(env.public, &[Client::Fresh, Client::Retrying], 2);

    env.ok(&["add-data", "--sample", "2"]);
    let failed = wait_for_record(&env, "failed deploy", |r| r.outcome == Outcome::Failed);
    let v2 = failed.to_version.unwrap();
    assert!(failed.reason.unwrap().starts_with("restart: "));
    assert_eq!(
        env.status_json()["pending_deploy"].as_str(),
        Some(v2.as_str())
    );

    // One row: training is not due, but the model that passed the gate is deployed now.
    drop(squatter);
    let out = env.ok(&["add-data", "--sample", "1"]);
    assert!(out.contains("1 more row needed"), "{out}");
    assert_eq!(env.wait_for_new_version(&v1, Duration::from_secs(30)), v2);
    assert!(env.status_json()["pending_deploy"].is_null());
    let out = env.exits(&["train", "--if-due"], 0);
    assert!(stdout(&out).contains("training not due"));

    std::thread::sleep(Duration::from_millis(200));
    assert_no_failures(&load.finish());
}

#[test]
fn the_trigger_deploys_the_newest_model_that_passed_the_gate_not_the_newest() {
    let env = Env::with_extra("batch_size = 1000");
    env.ok(&["init"]);
    env.ok(&["add-data", "--sample", "2"]);
    env.ok(&["train"]);
    env.ok(&["add-data", "--row", POISON, "--row", POISON]);
    env.exits(&["train"], 3);
    // `up`'s trainer runs at start: training is not due, but v0002 passed the gate and is
    // not active (v0003 is newer, and refused).
    let _up = env.up();
    let deployed = env.wait_for_new_version("v0001", Duration::from_secs(30));
    assert!(deployed.starts_with("v0002-"), "{deployed}");
    let out = env.ok(&["deploy"]);
    assert!(
        out.contains(&format!(
            "{deployed} already serves on the active slot green"
        )),
        "{out}"
    );
    assert!(history(&env).iter().all(|r| r.action == Action::Train
        || r.action == Action::AddData
        || r.to_version.as_deref() == Some(&deployed)));
}

#[test]
fn a_model_rolled_back_from_is_not_deployed_again_by_the_trigger() {
    let env = Env::new();
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    env.ok(&["add-data", "--sample", "2"]);
    env.wait_for_new_version(&v1, Duration::from_secs(30));
    env.ok(&["rollback"]);
    // The operator chose v0001: the newest model that passed the gate is not active, and
    // still no deploy is wanted.
    let out = env.exits(&["train", "--if-due"], 0);
    assert!(
        stdout(&out).contains("training not due"),
        "{}",
        stdout(&out)
    );
    let status = env.status_json();
    assert!(status["pending_deploy"].is_null(), "{status:#}");
    assert_eq!(status["active"].as_str(), Some("blue"));
}
