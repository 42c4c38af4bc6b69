//! `kill -9` of `bluegreen promote` at any instant (issue 11): at each line it prints (one per
//! step and phase: shadow, canary step, switch, watch) and at times after its start, under
//! concurrent load. After every kill, `status` (which reconciles) and the files agree with
//! what NGINX does:
//! - NGINX answers from one slot, the one `status` calls active and the include names, with
//!   no canary split and the mirror off;
//! - either the switch was completed (traffic on the candidate, recorded) or traffic is back
//!   on the previous slot and the candidate waits again, as `status` shows;
//! - the history holds every switch; no request failed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use bluegreen::history::{self, Record};

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{get, read, Env};

#[derive(Debug, Clone, Copy)]
enum Kill {
    After(Duration),
    AtLine(usize),
}

/// The slot NGINX routes to: several answers in a row must all come from it.
fn routed(env: &Env) -> String {
    let slots: Vec<String> = (0..6)
        .map(|_| {
            get(env.public, "/readyz")
                .header("x-slot")
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        slots.iter().all(|s| *s == slots[0]),
        "NGINX routes to both: {slots:?}"
    );
    slots[0].clone()
}

fn switches(env: &Env) -> Vec<Record> {
    history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|r| r.outcome.switched())
        .collect()
}

fn killed(env: &Env, args: &[&str], kill: Kill) -> Vec<String> {
    let mut child = env
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    match kill {
        Kill::After(after) => std::thread::sleep(after),
        Kill::AtLine(n) => {
            let mut reader = BufReader::new(stdout);
            while lines.len() <= n {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                lines.push(line.trim_end().to_string());
            }
        }
    }
    let _ = child.kill();
    child.wait().unwrap();
    lines
}

/// A stored version neither slot serves.
fn fresh_version(env: &Env, versions: &[String]) -> String {
    let status = env.status_json();
    let linked: Vec<&str> = status["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["model"].as_str())
        .collect();
    versions
        .iter()
        .find(|v| !linked.contains(&v.as_str()))
        .unwrap()
        .clone()
}

#[test]
fn a_promote_killed_at_any_instant_leaves_routing_status_and_history_agreeing() {
    let env = Env::with_extra(
        "batch_size = 1000\n[rollout]\npromote = \"manual\"\nshadow_seconds = 1\nsteps = [50, 100]\nstep_seconds = 1\nwatch_seconds = 1\nmax_latency_ratio = 50.0\nmax_divergence = 100.0",
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
    let out = env.ok(&["promote"]);
    let lines = out.lines().count();
    assert!(
        out.contains("shadow") && out.contains("canary") && out.contains("watching"),
        "{out}"
    );

    let load = Load::mixed(env.public, &[(Client::Retrying, 4), (Client::Fresh, 4)]);
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
        assert!(
            !read(&env.state().join("nginx/shadow.conf")).contains("mirror /"),
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
