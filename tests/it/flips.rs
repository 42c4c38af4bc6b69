//! Five consecutive flips under load. Clients that open a connection per request, and
//! keep-alive clients that retry a request whose reused connection died before any answer,
//! must see no failure at all. Plain keep-alive clients can lose a request per flip or so:
//! NGINX's graceful reload closes idle keep-alive connections, and a request sent at that
//! instant meets a closed socket. Their failures are counted per flip and reported.

use std::time::Duration;

use crate::load::{assert_no_failures, Client, Load};
use crate::util::Env;

#[test]
fn five_flips_under_load_fail_no_request() {
    let env = Env::new();
    let _up = env.up();
    let mut version = env.predict().header("x-model-version").unwrap().to_string();
    let load = Load::start(
        env.public,
        &[
            Client::Fresh,
            Client::KeepAlive,
            Client::Careful,
            Client::Retrying,
        ],
        2,
    );
    std::thread::sleep(Duration::from_millis(200));
    let flips = 5;
    let mut seen = vec![version.clone()];
    for _ in 0..flips {
        env.ok(&["add-data", "--sample", "2"]);
        version = env.wait_for_new_version(&version, Duration::from_secs(30));
        seen.push(version.clone());
        std::thread::sleep(Duration::from_millis(200));
    }
    let results = load.finish();
    let mut report = String::new();
    for (kind, tally) in &results {
        report += &format!(
            "{kind:?}: {} ok, {} failed ({:.2} per flip), statuses {:?}, errors {:?}\n",
            tally.ok,
            tally.failures(),
            tally.failures() as f64 / flips as f64,
            tally.bad_status,
            tally
                .failed
                .iter()
                .map(|(_, e)| e.as_str())
                .collect::<Vec<_>>()
        );
    }
    println!("flip report over {flips} flips:\n{report}");
    for (kind, tally) in &results {
        assert!(
            tally.bad_status.is_empty(),
            "every answer is a 200: {report}"
        );
        assert!(tally.ok > 100, "{kind:?} made too few requests: {report}");
        assert_eq!(
            tally.versions, seen,
            "{kind:?} saw every version in order: {report}"
        );
        if matches!(kind, Client::Fresh | Client::Retrying) {
            assert_eq!(
                tally.failures(),
                0,
                "{kind:?} must see no failure: {report}"
            );
        }
    }
    // The flips, without add-data's measurements of the live RMSE (issue 11).
    let history: Vec<_> = bluegreen::history::last(&env.state().join("deploys.jsonl"), 20)
        .unwrap()
        .into_iter()
        .filter(|r| r.outcome != bluegreen::history::Outcome::Measured)
        .collect();
    assert_eq!(history.len(), flips);
    assert!(history
        .iter()
        .all(|r| r.outcome == bluegreen::history::Outcome::Deployed));
}

/// Issue 10: in switch mode "socket" a flip renames a link instead of reloading NGINX, so not
/// even plain keep-alive clients, which never retry, lose a request: 16 of them and 8 that
/// open a connection per request (`Connection: close`), over five flips and a rollback.
#[test]
fn flips_in_socket_mode_fail_no_request_even_for_plain_keep_alive_clients() {
    let env = Env::with_extra("[nginx]\nswitch = \"socket\"");
    let _up = env.up();
    let mut version = env.predict().header("x-model-version").unwrap().to_string();
    let nginx_master = env.nginx_master();
    let workers = nginx_workers(nginx_master);
    let load = Load::issue8(env.public);
    std::thread::sleep(Duration::from_millis(300));
    let flips = 5;
    let mut seen = vec![version.clone()];
    for _ in 0..flips {
        env.ok(&["add-data", "--sample", "2"]);
        version = env.wait_for_new_version(&version, Duration::from_secs(30));
        seen.push(version.clone());
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = env.ok(&["rollback"]);
    assert!(out.contains("let go of every connection"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    println!("socket mode, {flips} flips and a rollback under load: {results:?}");
    println!(
        "NGINX's error log:\n{}",
        std::fs::read_to_string(env.state().join("nginx/error.log")).unwrap_or_default()
    );
    assert_no_failures(&results);
    for (kind, tally) in &results {
        // Every flip reached every client, and the rollback took them back one version.
        let mut expected = seen.clone();
        expected.dedup();
        assert_eq!(
            tally.versions, expected,
            "{kind:?} saw every version in order"
        );
    }
    // NGINX was never reloaded: the same master and workers served throughout.
    assert_eq!(env.nginx_master(), nginx_master);
    assert_eq!(nginx_workers(nginx_master), workers);
    let history = bluegreen::history::last(&env.state().join("deploys.jsonl"), 10).unwrap();
    let steps: Vec<&str> = history[0].steps.iter().map(|s| s.name.as_str()).collect();
    assert!(
        steps.contains(&"link") && steps.contains(&"drain") && !steps.contains(&"reload"),
        "{steps:?}"
    );
}

/// The worker processes of the NGINX master `master`, sorted.
fn nginx_workers(master: i32) -> Vec<i32> {
    let mut workers: Vec<i32> = crate::util::processes()
        .into_iter()
        .filter(|(pid, cmdline)| {
            cmdline.starts_with("nginx: worker") && parent(*pid) == Some(master)
        })
        .map(|(pid, _)| pid)
        .collect();
    workers.sort();
    workers
}

fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
