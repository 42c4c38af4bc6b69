//! `up`, `deploy`, `rollback` and `status` end to end, with real NGINX; and the failure
//! cases, each under a load that must see no failed request.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bluegreen::history::{self, Outcome};

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{price, read, Env};

fn history(env: &Env) -> Vec<history::Record> {
    history::last(&env.state().join("deploys.jsonl"), 100).unwrap()
}

fn include_names(env: &Env) -> String {
    let text = read(&env.state().join("nginx/upstream.conf"));
    text.lines()
        .find_map(|l| l.strip_prefix("# active slot: "))
        .unwrap()
        .to_string()
}

/// Trains (on the same data: no trigger for `up`'s trainer), and runs a deploy that must
/// fail at `step`; returns its stderr.
fn failing_deploy(env: &Env, step: &str) -> String {
    env.ok(&["train"]);
    let err = env.fails(&["deploy"], 1);
    assert!(err.contains(&format!("failed at step \"{step}\"")), "{err}");
    assert_eq!(include_names(env), "blue", "traffic stays on blue");
    err
}

/// Stops the load and checks that every answer was a 200 from `version`.
fn assert_only(load: Load, version: &str) {
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    assert_no_failures(&results);
    assert!(
        results
            .iter()
            .all(|(_, t)| t.versions == [version.to_string()]),
        "{results:?}"
    );
}

#[test]
fn up_answers_flips_on_new_data_shows_it_and_rolls_back() {
    let env = Env::new();
    let up = env.up();
    let r = env.predict();
    assert_eq!(r.status, 200);
    assert!((price(&r) - 30.23).abs() < 0.01, "{}", price(&r));
    let v1 = r.header("x-model-version").unwrap().to_string();
    assert!(v1.starts_with("v0001-"));
    assert_eq!(r.header("x-slot"), Some("blue"));

    let out = env.ok(&["add-data", "--sample", "2"]);
    assert!(out.contains("training is due"), "{out}");
    let v2 = env.wait_for_new_version(&v1, Duration::from_secs(30));
    assert!(v2.starts_with("v0002-"), "{v2}");
    let r = env.predict();
    assert_eq!(r.header("x-slot"), Some("green"));
    assert!((price(&r) - 30.30).abs() < 0.01, "{}", price(&r));

    let status = env.status_json();
    assert_eq!(status["active"], "green");
    assert_eq!(status["supervisor"], "bluegreen up");
    assert_eq!(status["slots"][0]["model"].as_str(), Some(v1.as_str()));
    assert_eq!(status["slots"][0]["health"], "healthy");
    assert_eq!(status["slots"][1]["serving"].as_str(), Some(v2.as_str()));
    assert_eq!(status["data_rows"], 508);
    assert_eq!(status["rows_since_newest"], 0);
    let deploys = status["last_deploys"].as_array().unwrap();
    assert_eq!(deploys.len(), 1);
    assert_eq!(deploys[0]["outcome"], "deployed");
    assert_eq!(deploys[0]["from_slot"], "blue");
    assert_eq!(deploys[0]["to_version"].as_str(), Some(v2.as_str()));
    let steps: Vec<&str> = deploys[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for step in ["gate", "restart", "probe", "include", "reload", "confirm"] {
        assert!(steps.contains(&step), "{steps:?}");
    }
    let table = env.ok(&["status"]);
    assert!(table.contains("active   green"), "{table}");
    assert!(table.contains("resting  blue"), "{table}");
    assert!(table.contains("deployed"), "{table}");

    let started = Instant::now();
    let out = env.ok(&["rollback"]);
    let took = started.elapsed();
    // No timing assertion (PLAN.md): with the fault tests' 24 clients running beside it on
    // two cores this took up to 3 s; how long a rollback takes is the benchmarks' to say.
    println!("rollback took {took:?}");
    assert!(
        out.contains(&format!("rolled back to {v1} on blue")),
        "{out}"
    );
    let r = env.predict();
    assert_eq!(r.header("x-model-version"), Some(v1.as_str()));
    assert_eq!(r.header("x-slot"), Some("blue"));
    assert_eq!(history(&env).last().unwrap().outcome, Outcome::RolledBack);

    // Deploying the newest again is instant too: green still serves it, warm.
    let out = env.ok(&["deploy"]);
    assert!(out.contains("green already serves"), "{out}");
    assert_eq!(env.predict().header("x-model-version"), Some(v2.as_str()));

    assert!(up.stop().success());
    assert!(
        std::net::TcpStream::connect(env.public).is_err(),
        "NGINX must be gone"
    );
    assert!(
        std::net::TcpStream::connect(env.blue).is_err(),
        "blue must be gone"
    );
    assert!(
        std::net::TcpStream::connect(env.green).is_err(),
        "green must be gone"
    );
}

#[test]
fn a_slot_that_never_becomes_ready_leaves_traffic_where_it_was() {
    let env = Env::with_extra("batch_size = 1000");
    // Something else holds green's port: green can start neither now nor in the deploy.
    let squatter = TcpListener::bind(env.green).unwrap();
    let _up = env.up_idle();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = Load::start(env.public, &[Client::Fresh, Client::Retrying], 2);

    let err = failing_deploy(&env, "restart");
    assert!(
        err.contains(&format!("traffic stays on blue ({v1})")),
        "{err}"
    );
    let record = history(&env).pop().unwrap();
    assert_eq!(record.outcome, Outcome::Failed);
    assert!(record.reason.unwrap().starts_with("restart:"));

    // A corrupt artifact is refused before anything is touched.
    let corrupt = env.state().join("models/v0099-20261126T000000Z.json");
    std::fs::write(&corrupt, b"{\"format\": 1,").unwrap();
    let err = env.fails(&["deploy", "v0099-20261126T000000Z"], 1);
    assert!(err.contains("is corrupt"), "{err}");
    // An unknown version is refused with the versions there are.
    let err = env.fails(&["deploy", "v0098-20261126T000000Z"], 1);
    assert!(
        err.contains("there is no model \"v0098-20261126T000000Z\"; the stored models are v0001-"),
        "{err}"
    );
    assert!(
        err.contains(", v0002-") && err.contains(", v0099-"),
        "{err}"
    );
    // Green is down, so there is nothing to roll back to.
    let err = env.fails(&["rollback"], 1);
    assert!(
        err.contains("the resting slot green cannot take traffic"),
        "{err}"
    );
    assert_only(load, &v1);

    // Once the port is free, the same deploy goes through.
    drop(squatter);
    std::fs::remove_file(corrupt).unwrap();
    env.ok(&["deploy"]);
    assert_eq!(env.predict().header("x-slot"), Some("green"));
}

#[test]
fn a_config_that_nginx_refuses_leaves_traffic_where_it_was() {
    let env = Env::with_extra("batch_size = 1000");
    let _up = env.up_idle();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let site = env.state().join("nginx/site.conf");
    let good = read(&site);
    std::fs::write(&site, format!("{good}\nthis_is_not_a_directive on;\n")).unwrap();
    let load = Load::start(env.public, &[Client::Fresh, Client::Retrying], 2);

    let err = failing_deploy(&env, "nginx-test");
    assert!(err.contains("this_is_not_a_directive"), "{err}");
    assert_only(load, &v1);

    std::fs::write(&site, good).unwrap();
    let out = env.ok(&["deploy"]);
    assert!(
        out.contains("green already serves"),
        "the resting slot kept the new model: {out}"
    );
    assert_eq!(env.predict().header("x-slot"), Some("green"));
}

#[test]
fn the_gate_refuses_a_model_trained_on_poisoned_rows() {
    let env = Env::new();
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let load = Load::start(env.public, &[Client::Fresh, Client::Retrying], 2);

    let poison = "0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9";
    env.ok(&["add-data", "--row", poison, "--row", poison]);
    // The trainer in `up` trains, the gate refuses, and nothing is deployed; an explicit
    // deploy of that model is refused too, and recorded.
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.status_json()["newest_model"].as_str() == Some(v1.as_str()) {
        assert!(Instant::now() < deadline, "the trainer never trained");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A plain deploy deploys the newest model that passed the gate: the active one.
    let out = env.ok(&["deploy"]);
    assert!(out.contains(&format!("{v1} already serves")), "{out}");
    let err = env.fails(&["deploy", "v0002"], 3);
    assert!(
        err.contains("the quality gate refused v0002-") && err.contains("worse than"),
        "{err}"
    );
    let record = history(&env).pop().unwrap();
    assert_eq!(record.outcome, Outcome::Refused);
    let gate = record.gate.unwrap();
    assert!(gate.candidate_rmse.unwrap() > 10.0 * gate.active_rmse.unwrap());

    assert_only(load, &v1);
    assert_eq!(include_names(&env), "blue");
}

#[test]
fn two_deploys_at_once_flip_once() {
    let env = Env::with_extra("batch_size = 1000");
    let _up = env.up_idle();
    let load = Load::start(env.public, &[Client::Fresh, Client::Retrying], 2);
    env.ok(&["train"]);
    let children: Vec<_> = (0..2)
        .map(|_| env.cmd(&["deploy"]).stdout(Stdio::piped()).spawn().unwrap())
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    let both = outputs.join("\n---\n");
    assert_eq!(both.matches("deployed v0002-").count(), 1, "{both}");
    assert_eq!(
        both.matches("already serves on the active slot green")
            .count(),
        1,
        "{both}"
    );
    let deploys: Vec<_> = history(&env)
        .into_iter()
        .filter(|r| r.outcome == Outcome::Deployed)
        .collect();
    assert_eq!(deploys.len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
    assert_eq!(env.predict().header("x-slot"), Some("green"));
}

#[test]
fn a_deploy_without_an_active_slot_says_to_run_init() {
    let env = Env::new();
    env.ok(&["init"]);
    std::fs::remove_file(env.state().join("nginx/upstream.conf")).unwrap();
    let err = env.fails(&["deploy"], 1);
    assert!(
        err.contains("no slot is active; hint: run `bluegreen init`"),
        "{err}"
    );
}

#[test]
fn a_deploy_that_may_not_wait_names_the_one_holding_the_lock() {
    let env = Env::new();
    env.ok(&["init"]);
    let lock = std::fs::File::create(env.state().join("run/deploy.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let err = env.fails(&["deploy", "--no-wait"], 1);
    assert!(err.contains("another deploy (pid"), "{err}");
    assert!(err.contains("hint: wait for it to finish"), "{err}");
    drop(held);
}

#[test]
fn up_restarts_a_slot_that_was_killed() {
    let env = Env::new();
    let _up = env.up();
    assert_eq!(env.predict().status, 200);
    let config = env.config.display().to_string();
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&config) && cmdline.contains("serve --slot blue")
        })
        .expect("the blue slot's process");
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut outage_answers = Vec::new();
    loop {
        let r = env.predict();
        if r.status == 200 && killed.elapsed() > Duration::from_millis(50) {
            break;
        }
        if r.status != 200 {
            outage_answers.push((r.status, r.json()));
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "blue never came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // NGINX's own 502, in JSON: nothing listened on the slot's address for a moment.
    for (status, json) in &outage_answers {
        assert_eq!(*status, 502);
        let hint = json.as_ref().unwrap()["hint"].as_str().unwrap().to_string();
        assert!(hint.contains("bluegreen status"), "{hint}");
    }
    println!(
        "blue was back {:?} after kill -9; {} answers were 502 meanwhile",
        killed.elapsed(),
        outage_answers.len()
    );
    assert_eq!(env.predict().header("x-slot"), Some("blue"));
}

#[test]
fn a_version_is_named_by_a_unique_prefix_and_an_unknown_one_lists_the_stored_ones() {
    let env = Env::with_extra("batch_size = 1000");
    let _up = env.up_idle();
    env.ok(&["train"]);
    let mut versions: Vec<String> = std::fs::read_dir(env.state().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .map(|n| n.trim_end_matches(".json").to_string())
        .collect();
    versions.sort();
    let listed = versions.join(", ");

    let err = env.fails(&["deploy", "v9999"], 1);
    assert!(
        err.contains(&format!(
            "there is no model \"v9999\"; the stored models are {listed}; hint:"
        )),
        "{err}"
    );
    let err = env.fails(&["deploy", "v000"], 1);
    assert!(
        err.contains(&format!(
            "\"v000\" names 2 models: {listed}; hint: give more"
        )),
        "{err}"
    );
    assert!(history(&env).is_empty(), "nothing was tried");

    let out = env.ok(&["deploy", "v0002"]);
    assert!(
        out.contains(&format!("deployed {} to green", versions[1])),
        "{out}"
    );
    assert_eq!(
        env.predict().header("x-model-version"),
        Some(versions[1].as_str())
    );
}
