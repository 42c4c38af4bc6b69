//! `[fleet] role` (issue 13): a server never trains and deploys only what it is given; a
//! trainer hands each model that passed its gate to `fleet.on_new_model`, records the outcome,
//! and deploys locally only after that command succeeded, if at all.

use std::time::Duration;

use bluegreen::history::{self, Action, Outcome, Record};

use crate::util::{stdout, Env};

fn history(env: &Env) -> Vec<Record> {
    history::last(&env.state().join("deploys.jsonl"), 100).unwrap()
}

fn releases(env: &Env) -> Vec<Record> {
    history(env)
        .into_iter()
        .filter(|r| r.action == Action::Release)
        .collect()
}

fn models(env: &Env) -> usize {
    std::fs::read_dir(env.state().join("models"))
        .unwrap()
        .count()
}

fn newest(env: &Env) -> String {
    env.status_json()["newest_model"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A trainer whose `on_new_model` is a script that logs its arguments and environment to
/// `hook.log`, and fails with status 2 while a file `fail` exists beside it.
fn trainer(deploy_locally: bool) -> Env {
    let env = Env::with_extra(&format!(
        "[fleet]\nrole = \"trainer\"\non_new_model = [\"/bin/sh\", \"@HOOK@\", \"{{version}}\"]\ndeploy_locally = {deploy_locally}\n"
    ));
    let hook = env.dir.path().join("hook/hook.sh");
    std::fs::create_dir(hook.parent().unwrap()).unwrap();
    std::fs::write(
        &hook,
        "d=$(dirname \"$0\")\necho \"$1 $BLUEGREEN_VERSION $BLUEGREEN_ARTIFACT\" >> \"$d/hook.log\"\n[ ! -e \"$d/fail\" ] || exit 2\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace("@HOOK@", hook.to_str().unwrap())).unwrap();
    env
}

fn hook_log(env: &Env) -> Vec<String> {
    match std::fs::read_to_string(env.dir.path().join("hook/hook.log")) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

fn active_model(env: &Env) -> String {
    let status = env.status_json();
    let active = status["active"].as_str().unwrap().to_string();
    status["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slot"] == active.as_str())
        .unwrap()["model"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_bad_fleet_setting_stops_every_command_with_its_key_and_a_hint() {
    let env = Env::new();
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{text}[fleet]\nrole = \"leader\"\n")).unwrap();
    let err = env.fails(&["status"], 1);
    assert!(
        err.contains("unknown variant `leader`")
            && err.contains("`standalone`, `trainer`, `server`"),
        "{err}"
    );
    std::fs::write(
        &env.config,
        format!("{text}[fleet]\nrole = \"trainer\"\ndeploy_locally = false\n"),
    )
    .unwrap();
    let err = env.fails(&["deploy"], 1);
    assert!(
        err.contains("config key `fleet.on_new_model` is invalid") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn a_server_never_trains_and_deploys_only_the_version_it_is_given() {
    let env = Env::with_extra("[fleet]\nrole = \"server\"\n");
    env.ok(&["init"]);
    assert_eq!(models(&env), 1);

    let err = env.fails(&["train"], 1);
    assert!(
        err.contains("fleet role is \"server\": it never trains") && err.contains("hint:"),
        "{err}"
    );
    let out = env.ok(&["add-data", "--sample", "4"]);
    assert!(out.contains("never trains on them"), "{out}");
    // What the data triggers run (the path units and `up`'s watcher): nothing is due here.
    let out = stdout(&env.exits(&["train", "--if-due"], 0));
    assert!(out.contains("never trains"), "{out}");
    assert_eq!(models(&env), 1, "a server wrote a model");
    let err = env.fails(&["deploy"], 1);
    assert!(
        err.contains("deploys only the version it is given")
            && err.contains("bluegreen deploy VERSION"),
        "{err}"
    );

    // Given a model, it deploys it.
    let source = Env::new();
    source.ok(&["init"]);
    source.ok(&["add-data", "--sample", "2"]);
    source.ok(&["train"]);
    let version = newest(&source);
    let file = env.dir.path().join("model.export");
    std::fs::write(&file, source.run(&["export", &version]).stdout).unwrap();
    env.ok(&["import", file.to_str().unwrap()]);
    let _up = env.up();
    env.ok(&["deploy", &version]);
    assert_eq!(
        env.predict().header("x-model-version"),
        Some(version.as_str())
    );
}

#[test]
fn a_trainer_releases_each_passed_model_once_records_it_and_may_leave_this_host_alone() {
    let env = trainer(false);
    env.ok(&["init"]);
    let first = newest(&env);
    env.ok(&["add-data", "--sample", "2"]);
    env.exits(&["train", "--if-due"], 10);
    let v2 = newest(&env);

    // The trigger path's deploy: runs the command, deploys nothing here (no NGINX needed).
    let out = env.ok(&["deploy"]);
    assert!(out.contains(&format!("released {v2}")), "{out}");
    assert!(out.contains("deploy_locally is false"), "{out}");
    let artifact = env.state().join(format!("models/{v2}.json"));
    assert_eq!(
        hook_log(&env),
        [format!("{v2} {v2} {}", artifact.display())]
    );
    assert_eq!(active_model(&env), first, "deploy_locally = false");
    let r = releases(&env);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].outcome, Outcome::Released);
    assert_eq!(r[0].to_version.as_deref(), Some(v2.as_str()));
    assert!(r[0].gate.as_ref().unwrap().passed);

    // Once released, a version is not handed on again.
    let out = env.ok(&["deploy"]);
    assert!(out.contains("already"), "{out}");
    assert_eq!(hook_log(&env).len(), 1);

    // A failing command: recorded, said, and the next deploy tries again.
    env.ok(&["add-data", "--sample", "2"]);
    env.exits(&["train", "--if-due"], 10);
    let v3 = newest(&env);
    std::fs::write(env.dir.path().join("hook/fail"), "").unwrap();
    let err = env.fails(&["deploy"], 1);
    assert!(
        err.contains(&format!("fleet.on_new_model for {v3} exited with status 2"))
            && err.contains("nothing was deployed on this host")
            && err.contains("hint:"),
        "{err}"
    );
    let last = releases(&env).pop().unwrap();
    assert_eq!(last.outcome, Outcome::Failed);
    assert!(last.reason.unwrap().contains("status 2"));
    std::fs::remove_file(env.dir.path().join("hook/fail")).unwrap();
    env.ok(&["deploy"]);
    assert_eq!(releases(&env).pop().unwrap().outcome, Outcome::Released);
    assert_eq!(hook_log(&env).len(), 3);

    // A model the gate refused is never handed on.
    env.ok(&[
        "add-data",
        "--row",
        "0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9",
        "--row",
        "0.2,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9",
    ]);
    env.exits(&["train", "--if-due"], 3);
    let out = env.ok(&["deploy"]);
    assert!(out.contains(&format!("{v3} was released at")), "{out}");
    assert_eq!(releases(&env).len(), 3);
    assert_eq!(hook_log(&env).len(), 3);
}

#[test]
fn a_trainer_that_deploys_locally_does_so_after_its_command_on_the_automatic_path() {
    let env = trainer(true);
    let up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    env.ok(&["add-data", "--sample", "2"]);
    let v2 = env.wait_for_new_version(&v1, Duration::from_secs(30));
    let records = history(&env);
    // add-data's measurement of the live RMSE (issue 11) aside.
    let actions: Vec<(&str, Outcome)> = records
        .iter()
        .filter(|r| r.outcome != Outcome::Measured)
        .map(|r| (r.action.as_str(), r.outcome))
        .collect();
    assert_eq!(
        actions,
        [
            ("release", Outcome::Released),
            ("deploy", Outcome::Deployed)
        ]
    );
    assert!(records
        .iter()
        .filter(|r| r.outcome != Outcome::Measured)
        .all(|r| r.to_version.as_deref() == Some(v2.as_str())));
    assert_eq!(hook_log(&env).len(), 1);
    drop(up);
}

#[test]
fn a_command_that_outlives_its_timeout_is_stopped_and_counted_failed() {
    let env = Env::with_extra(
        "[fleet]\nrole = \"trainer\"\non_new_model = [\"sleep\", \"600\"]\non_new_model_timeout_secs = 1\n",
    );
    env.ok(&["init"]);
    let err = env.fails(&["deploy"], 1);
    assert!(
        err.contains("did not finish within 1 s (fleet.on_new_model_timeout_secs)"),
        "{err}"
    );
    assert_eq!(releases(&env).pop().unwrap().outcome, Outcome::Failed);
    // The command was stopped, not left behind.
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| cmdline.as_slice() == b"sleep\x00600\x00")
        .count();
    assert_eq!(left, 0, "the timed-out command is still running");
}
