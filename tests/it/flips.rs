//! Five consecutive flips under load. Clients that open a connection per request, and
//! keep-alive clients that retry a request whose reused connection died before any answer,
//! must see no failure at all. Plain keep-alive clients can lose a request per flip or so:
//! NGINX's graceful reload closes idle keep-alive connections, and a request sent at that
//! instant meets a closed socket. Their failures are counted per flip and reported.

use std::time::Duration;

use crate::load::{Client, Load};
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
    let history = bluegreen::history::last(&env.state().join("deploys.jsonl"), 10).unwrap();
    assert_eq!(history.len(), flips);
    assert!(history
        .iter()
        .all(|r| r.outcome == bluegreen::history::Outcome::Deployed));
}
