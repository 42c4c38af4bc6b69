//! `kill -9` of `bluegreen deploy` at any instant (issue 8 §6): swept over time (0, 10, …
//! 300 ms after the start) and over every step boundary (a deploy prints a line as each step
//! ends; the kill follows the line at once), under concurrent load. After every kill:
//! - traffic was served throughout (no failed request);
//! - `bluegreen status` names the slot NGINX really routes to, and so does the include (in
//!   switch mode "socket", the link the include names);
//! - the history holds every switch that happened, and no intent is left behind.
//!
//! Both switch modes (issue 10). In socket mode NGINX is never reloaded, so even plain
//! keep-alive clients, which never retry, must lose nothing.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use bluegreen::history::{self, Record};

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{get, read, Env};

#[derive(Debug, Clone, Copy)]
pub(super) enum Kill {
    /// This long after the deploy started.
    After(Duration),
    /// As soon as the deploy printed its line number `n` (from 0).
    AtLine(usize),
}

/// The slot NGINX routes to: every one of several answers must come from the same slot.
pub(super) fn routed(env: &Env) -> String {
    let slots: Vec<String> = (0..6)
        .map(|_| {
            get(env.public, "/readyz")
                .header("x-slot")
                .expect("every answer names its slot")
                .to_string()
        })
        .collect();
    assert!(
        slots.iter().all(|s| *s == slots[0]),
        "NGINX routes to both slots at once: {slots:?}"
    );
    slots[0].clone()
}

/// The slot the include names, or in socket mode the link it names, read from the files.
fn include_names(env: &Env) -> String {
    let text = read(&env.state().join("nginx/upstream.conf"));
    if let Some(slot) = text.lines().find_map(|l| l.strip_prefix("# active slot: ")) {
        return slot.to_string();
    }
    let link = env.state().join("sockets/active.sock");
    assert!(
        text.contains(&format!("server unix:{} ", link.display())),
        "{text}"
    );
    let target = std::fs::read_link(&link).unwrap();
    target.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The switches in the history.
pub(super) fn switches(env: &Env) -> Vec<Record> {
    history::read_all(&env.state().join("deploys.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|r| r.outcome.switched())
        .collect()
}

/// A stored version that neither slot serves, so that the deploy restarts the resting slot.
pub(super) fn fresh_version(env: &Env, versions: &[String]) -> String {
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

/// Runs the binary with `args` and kills it as `kill` says; returns the lines it printed.
pub(super) fn killed(env: &Env, args: &[&str], kill: Kill) -> Vec<String> {
    let mut child = env
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let stdout = child.stdout.take().unwrap();
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

/// The versions the slots' links name, blue then green.
fn links(env: &Env) -> Vec<Option<String>> {
    ["blue", "green"]
        .iter()
        .map(|slot| {
            let link = std::fs::read_link(env.state().join(format!("slots/{slot}.json"))).ok()?;
            Some(link.file_stem()?.to_string_lossy().into_owned())
        })
        .collect()
}

/// What the test knows to be true: where traffic went, what the slots' links named, and how
/// many records and switches the history held, after the previous kill.
struct Truth {
    slot: String,
    links: Vec<Option<String>>,
    switches: usize,
    records: usize,
}

impl Truth {
    fn now(env: &Env) -> Truth {
        Truth {
            links: links(env),
            slot: routed(env),
            switches: switches(env).len(),
            records: history::read_all(&env.state().join("deploys.jsonl"))
                .unwrap()
                .len(),
        }
    }

    /// After a kill: runs `status` and checks everything the module doc promises; returns
    /// the outcomes of the records that appeared.
    fn check(&mut self, env: &Env, what: &str) -> String {
        let status = env.status_json();
        let now = routed(env);
        let context = format!("{what}; status: {status:#}");
        assert_eq!(status["active"].as_str(), Some(now.as_str()), "{context}");
        assert_eq!(status["include"].as_str(), Some(now.as_str()), "{context}");
        assert_eq!(include_names(env), now, "{context}");
        assert!(
            !env.state().join("run/deploy-intent.json").exists(),
            "{context}"
        );
        if now != self.slot {
            self.switches += 1;
            self.slot = now.clone();
        }
        let records = switches(env);
        assert_eq!(
            records.len(),
            self.switches,
            "every switch is recorded: {context}"
        );
        if let Some(last) = records.last() {
            assert_eq!(last.to_slot.map(|s| s.to_string()), Some(now), "{context}");
        }
        let all = history::read_all(&env.state().join("deploys.jsonl")).unwrap();
        let fresh: Vec<&str> = all[self.records..]
            .iter()
            .map(|r| r.outcome.as_str())
            .collect();
        self.records = all.len();
        // Unless a switch was recorded, both links are as they were: a killed deploy's new
        // link on the resting slot is undone.
        let links = links(env);
        if !fresh
            .iter()
            .any(|o| *o == "recovered" || *o == "deployed" || *o == "rolled-back")
        {
            assert_eq!(
                links, self.links,
                "the slots' links are as before: {context}"
            );
        }
        self.links = links;
        if fresh.is_empty() {
            "no record".to_string()
        } else {
            fresh.join(", ")
        }
    }
}

#[test]
fn a_deploy_killed_at_any_instant_leaves_traffic_status_and_history_true() {
    kill_sweep("reload", &[Client::Fresh, Client::Retrying]);
}

#[test]
fn a_deploy_killed_at_any_instant_in_socket_mode_leaves_traffic_status_and_history_true() {
    kill_sweep("socket", &[Client::Fresh, Client::KeepAlive]);
}

/// Kills deploys and rollbacks at every instant in switch mode `mode`, under load from two
/// clients of each of `clients`, which must see no failure.
fn kill_sweep(mode: &str, clients: &[Client]) {
    let env = Env::with_extra(&format!("batch_size = 1000\n[nginx]\nswitch = \"{mode}\""));
    // Three models before `up` starts. Its trainer runs once at start and deploys the
    // newest (it passed the gate and is not active); after that nothing triggers it, so no
    // deploy but the test's own runs.
    env.ok(&["init"]);
    env.ok(&["add-data", "--sample", "4"]);
    env.ok(&["train"]);
    env.ok(&["train"]);
    let _up = env.up();
    let first = env.wait_for_new_version("v0001", Duration::from_secs(30));
    assert!(first.starts_with("v0003-"), "{first}");
    let mut versions: Vec<String> = std::fs::read_dir(env.state().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .map(|n| n.trim_end_matches(".json").to_string())
        .collect();
    versions.sort();
    assert_eq!(versions.len(), 3);

    // One whole deploy and one rollback, to count the lines they print: one per step.
    let out = env.ok(&["deploy", &fresh_version(&env, &versions)]);
    let deploy_lines = out.lines().count();
    assert!(deploy_lines >= 8, "a line per step: {out}");
    let out = env.ok(&["rollback"]);
    let rollback_lines = out.lines().count();
    assert!(rollback_lines >= 4, "a line per step: {out}");

    let load = Load::start(env.public, clients, 2);
    let mut kills: Vec<Kill> = (0..=300)
        .step_by(10)
        .map(|ms| Kill::After(Duration::from_millis(ms)))
        .collect();
    kills.extend((0..deploy_lines).map(Kill::AtLine));
    let mut truth = Truth::now(&env);
    let mut report = Vec::new();
    for kill in kills {
        let version = fresh_version(&env, &versions);
        let printed = killed(&env, &["deploy", &version], kill);
        let what = format!("deploy killed {kill:?} after {printed:?}");
        report.push(format!("deploy {kill:?}: {}", truth.check(&env, &what)));
    }
    for n in 0..rollback_lines {
        let printed = killed(&env, &["rollback"], Kill::AtLine(n));
        let what = format!("rollback killed at line {n} after {printed:?}");
        report.push(format!(
            "rollback AtLine({n}): {}",
            truth.check(&env, &what)
        ));
    }
    std::thread::sleep(Duration::from_millis(200));
    let results = load.finish();
    println!("records after each kill:\n{}", report.join("\n"));
    assert_no_failures(&results);
}
