//! `kill -9` of `bluegreen promote` at any instant (issue 11): at each line it prints (one per
//! step and phase: shadow, canary step, switch, watch) and at times after its start, under
//! concurrent load. After every kill, `status` (which reconciles) and the files agree with
//! what NGINX does:
//! - NGINX answers from one slot, the one `status` calls active and the include names, with
//!   no canary split and the mirror off;
//! - either the switch was completed (traffic on the candidate, recorded) or traffic is back
//!   on the previous slot and the candidate waits again, as `status` shows;
//! - the history holds every switch; no request failed.

use std::time::Duration;

use super::deploy_kill::{fresh_version, killed, routed, switches, Kill};
use crate::load::{assert_no_failures, Client, Load};
use crate::util::{read, Env};

#[test]
fn a_promote_killed_at_any_instant_leaves_routing_status_and_history_agreeing() {
    // Every request mirrored, so that 1 s of shadow sees the 100 copies a verdict needs.
    let env = Env::with_extra(
        "batch_size = 1000\n[rollout]\npromote = \"manual\"\nshadow_seconds = 1\nshadow_percent = 100\nsteps = [50, 100]\nstep_seconds = 1\nwatch_seconds = 1\nmax_latency_ratio = 50.0\nmax_divergence = 100.0",
    );
    env.ok(&["init"]);
    env.ok(&["add-data", "--sample", "4"]);
    env.ok(&["train"]);
    env.ok(&["train"]);
    let _up = env.up();
    let mut versions: Vec<String> = std::fs::read_dir(env.state().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .map(|n| n.trim_end_matches(".json").to_string())
        .collect();
    versions.sort();
    // `up`'s trainer made the newest wait at start; a whole promote counts its lines.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while env.status_json()["waiting"].is_null() {
        assert!(std::time::Instant::now() < deadline, "nothing waits");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Under load from here on: each phase needs requests to judge the candidate.
    let load = Load::mixed(env.public, &[(Client::Retrying, 4), (Client::Fresh, 4)]);
    std::thread::sleep(Duration::from_millis(300));
    let out = env.ok(&["promote"]);
    let lines = out.lines().count();
    assert!(
        out.contains("shadow") && out.contains("canary") && out.contains("watching"),
        "{out}"
    );

    let mut kills: Vec<Kill> = (0..lines).map(Kill::AtLine).collect();
    kills.extend([300, 1300, 2300, 3300].map(|ms| Kill::After(Duration::from_millis(ms))));
    let mut slot = routed(&env);
    let mut switched = switches(&env).len();
    let mut report = Vec::new();
    for kill in kills {
        let version = fresh_version(&env, &versions);
        let out = env.ok(&["deploy", &version]);
        assert!(out.contains("waits"), "{out}");
        let printed = killed(&env, &["promote"], kill);
        let status = env.status_json();
        let now = routed(&env);
        let what = format!("promote killed {kill:?} after {printed:?}; status {status:#}");
        assert_eq!(status["active"].as_str(), Some(now.as_str()), "{what}");
        assert_eq!(status["include"].as_str(), Some(now.as_str()), "{what}");
        assert!(status["canary_percent"].is_null(), "{what}");
        let include = read(&env.state().join("nginx/upstream.conf"));
        assert!(
            include.contains(&format!("# active slot: {now}\n")) && !include.contains("weight="),
            "{what}"
        );
        // The mirror is off: the shadow file holds no directive.
        assert!(
            read(&env.state().join("nginx/shadow.conf"))
                .lines()
                .all(|l| l.starts_with('#') || l.trim().is_empty()),
            "{what}"
        );
        if now != slot {
            switched += 1;
            slot = now.clone();
            assert!(status["waiting"].is_null(), "{what}");
            report.push(format!("{kill:?}: switched"));
        } else {
            // Traffic stayed, or came back: the candidate waits again. Drop it for the next.
            assert_eq!(
                status["waiting"]["version"].as_str(),
                Some(version.as_str()),
                "{what}"
            );
            env.ok(&["abort"]);
            report.push(format!("{kill:?}: waits again"));
        }
        let records = switches(&env);
        assert_eq!(records.len(), switched, "every switch is recorded: {what}");
        assert_eq!(
            records
                .last()
                .and_then(|r| r.to_slot)
                .map(|s| s.to_string()),
            Some(slot.clone()),
            "{what}"
        );
        assert!(
            !env.state().join("run/deploy-intent.json").exists(),
            "no intent left: {what}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let results = load.finish();
    println!("after each kill:\n{}", report.join("\n"));
    assert_no_failures(&results);
}
