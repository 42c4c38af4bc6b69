//! `bluegreen check` (issue 8 §3): the configuration, the state and NGINX's configuration,
//! each problem named with its key or file and a hint; the last good configuration saved only
//! when everything passed.

use std::fs;

use crate::util::{read, stdout, Env};

fn last_good(env: &Env) -> std::path::PathBuf {
    env.state().join("config.last-good.toml")
}

/// Runs `check`, which must fail; returns its stderr, where the problems are.
fn problems(env: &Env) -> String {
    env.fails(&["check"], 1)
}

/// Asserts that `err` reports a problem about `subject` saying `what`, with a hint.
fn reports(err: &str, subject: &str, what: &str) {
    let found = err
        .split("\nerror: ")
        .any(|p| p.contains(subject) && p.contains(what) && p.contains("\n  hint: "));
    assert!(
        found,
        "no problem about {subject:?} saying {what:?} with a hint in:\n{err}"
    );
}

#[test]
fn a_running_system_passes_and_its_config_is_saved_as_the_last_good_one() {
    let env = Env::with_extra("batch_size = 3");
    let _up = env.up();
    fs::remove_file(last_good(&env)).unwrap(); // `up` saved one at start (init); check saves anew
    let out = env.exits(&["check"], 0);
    let text = stdout(&out);
    assert!(text.contains("bluegreen.toml: ok"), "{text}");
    assert!(
        text.contains("ok: 506 rows, 1 model(s), blue active (v0001-"),
        "{text}"
    );
    assert!(
        text.contains("`nginx -t` passed; includes")
            && text.contains(&format!("listens on {}", env.public.port())),
        "{text}"
    );
    assert!(
        text.contains("saved as the last good configuration"),
        "{text}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = read(&last_good(&env));
    assert!(saved.contains("batch_size = 3"), "{saved}");
    assert!(
        saved.contains(&format!(
            "state_dir = \"{}\"",
            fs::canonicalize(env.state()).unwrap().display()
        )),
        "paths are saved absolute:\n{saved}"
    );
}

/// An include that NGINX reads, gone from the state folder: `nginx -t` fails on it, and the
/// hint is the command that writes it again (not `restart`, which refuses while check fails).
#[test]
fn a_missing_include_is_written_again_by_the_init_the_hint_names() {
    let env = Env::new();
    let _up = env.up();
    let include = env.state().join("nginx/dashboard.conf");
    fs::remove_file(&include).unwrap();
    let err = problems(&env);
    reports(&err, "nginx", "dashboard.conf");
    assert!(err.contains("`bluegreen init` writes it again"), "{err}");
    env.ok(&["init"]);
    assert!(include.exists());
    env.exits(&["check"], 0);

    // `init` does not write the site of `up`'s own NGINX: `up` does, at start.
    let site = env.state().join("nginx/site.conf");
    let kept = read(&site);
    fs::remove_file(&site).unwrap();
    let err = problems(&env);
    assert!(
        err.contains("stop `up` (Ctrl-C) and start it again") && !err.contains("bluegreen init"),
        "{err}"
    );
    fs::write(&site, kept).unwrap();
    env.exits(&["check"], 0);
}

#[test]
fn every_bad_key_is_named_with_its_default_and_nothing_is_saved() {
    let env = Env::new();
    env.ok(&["init"]);
    let before = read(&last_good(&env));
    let text = read(&env.config);
    fs::write(
        &env.config,
        format!("batch_size = 0\nkeep_models = 1\n{text}[gate]\ntolerance = -1\n"),
    )
    .unwrap();
    let err = problems(&env);
    reports(&err, "key `batch_size`", "must be at least 1 row");
    assert!(err.contains("remove the line for its default (2)"), "{err}");
    reports(&err, "key `keep_models`", "at least 2");
    reports(&err, "key `gate.tolerance`", "not a finite number >= 0");
    assert!(err.contains("check failed: 3 problem(s)"), "{err}");
    assert_eq!(
        read(&last_good(&env)),
        before,
        "a failed check saves nothing"
    );
}

/// Values of the wrong type are all listed, in the file's order, with their places: toml
/// stops at the first, so before this `check` named one at a time. The values' own checks
/// wait for them (with a key set aside they would judge its default), and say so.
#[test]
fn every_value_of_the_wrong_type_is_listed_at_once_in_the_files_order() {
    let env = Env::new();
    env.ok(&["init"]);
    let before = read(&last_good(&env));
    let text = read(&env.config);
    let bad = format!(
        "batch_size = 0\nkeep_models = \"5\"\n{text}[rollout]\nsteps = \"10, 100\"\npromote = 5\n[data]\nfeatures = [\"CRIM\", 3]\n"
    );
    fs::write(&env.config, &bad).unwrap();
    let line = |n: usize| format!("(at line {}, column", text.lines().count() + n);
    let err = problems(&env);
    let cases = [
        (
            "keep_models",
            "write it without quotes: 5 (at line 2, column 15)".to_string(),
        ),
        (
            "rollout.steps",
            format!("write it as a list: [10, 100] {} 9)", line(4)),
        ),
        (
            "rollout.promote",
            format!(
                "expected `auto` or `manual`, in double quotes {} 11)",
                line(5)
            ),
        ),
        (
            "data.features",
            format!(
                "invalid type: integer `3`, expected text in double quotes {} 21)",
                line(7)
            ),
        ),
    ];
    for (key, what) in &cases {
        reports(&err, &format!("key `{key}`: "), what);
    }
    let order: Vec<usize> = cases
        .iter()
        .map(|(key, _)| err.find(&format!("key `{key}`")).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "in the file's order: {err}"
    );
    assert!(
        !err.contains("batch_size") && err.contains("note: the values' own checks"),
        "{err}"
    );
    assert!(err.contains("check failed: 4 problem(s)"), "{err}");
    assert_eq!(
        read(&last_good(&env)),
        before,
        "a failed check saves nothing"
    );
    // With every value of its type, the checks of the values run.
    let fixed = bad
        .replace("keep_models = \"5\"", "keep_models = 5")
        .replace("steps = \"10, 100\"", "steps = [10, 100]")
        .replace("promote = 5", "promote = \"manual\"")
        .replace("[\"CRIM\", 3]", "[\"CRIM\", \"ZN\"]");
    fs::write(&env.config, fixed).unwrap();
    let err = problems(&env);
    reports(&err, "key `batch_size`", "must be at least 1 row");
    // A key that cannot be set aside stops the search, and check says the rest waits.
    fs::write(&env.config, "[model]\nkind.x = 1\n[data]\nlabel = 5\n").unwrap();
    let err = problems(&env);
    reports(&err, "key `model.kind`", "expected one of");
    assert!(
        !err.contains("data.label")
            && err.contains(
                "note: the file's other values are read once the problems above are fixed"
            ),
        "{err}"
    );
}

#[test]
fn a_config_that_does_not_parse_or_does_not_exist_is_named_with_its_place() {
    let env = Env::new();
    fs::write(&env.config, "[slots]\nblue = 8081\n").unwrap();
    let err = problems(&env);
    reports(&err, "bluegreen.toml", "line 2");
    assert!(
        err.contains("note: the state and NGINX are checked once"),
        "{err}"
    );

    let missing = env.dir.path().join("nope.toml");
    let out = env
        .cmd(&["check"])
        .args(["--config", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    reports(&err, "nope.toml", "cannot read it");
}

#[test]
fn each_kind_of_broken_state_is_named_with_its_file() {
    let env = Env::new();
    // No state at all: one error that says to run `init`, not a warning per file of NGINX's
    // that the state would hold.
    let err = problems(&env);
    reports(&err, "state", "does not exist");
    assert!(err.contains("bluegreen init"), "{err}");
    assert!(!err.contains("warning:"), "{err}");
    // A file where the folder should be.
    fs::write(env.state(), "").unwrap();
    let err = problems(&env);
    reports(&err, "state", "is not a folder");
    assert!(!err.contains("warning:"), "{err}");
    fs::remove_file(env.state()).unwrap();

    env.ok(&["init"]);
    let state = env.state();
    // A broken data line, a missing link, a corrupt model a slot serves, no include.
    let csv = env.csv();
    let mut data = read(&csv);
    data.push_str("1,2,3\n");
    fs::write(&csv, data).unwrap();
    fs::remove_file(state.join("slots/green.json")).unwrap();
    let model = fs::canonicalize(state.join("slots/blue.json")).unwrap();
    fs::write(&model, "{\"format\": 1,").unwrap();
    fs::remove_file(state.join("nginx/upstream.conf")).unwrap();
    fs::remove_file(state.join("nginx/dashboard.conf")).unwrap();
    let err = problems(&env);
    assert!(
        err.contains("dashboard.conf (the dashboard's include): is missing or unreadable")
            && err.contains("`bluegreen init` writes it again"),
        "{err}"
    );
    reports(&err, "boston.csv", "line 508");
    reports(&err, "slots/green.json", "slot green has no model link");
    reports(&err, "slots/blue.json", "slot blue cannot load its model");
    reports(&err, "upstream.conf", "does not exist");

    // An include that names an address no slot has any more.
    fs::write(
        state.join("nginx/upstream.conf"),
        "upstream bluegreen_active { server 127.0.0.1:9; }\n",
    )
    .unwrap();
    reports(&problems(&env), "upstream.conf", "names no known slot");
}

#[test]
fn a_corrupt_model_no_slot_serves_is_a_warning_only() {
    let env = Env::new();
    let _up = env.up();
    fs::write(env.state().join("models/v0009-20260101T000000Z.json"), "{").unwrap();
    let out = env.exits(&["check"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: ")
            && err.contains("v0009-20260101T000000Z.json")
            && err.contains("hint: no slot serves it"),
        "{err}"
    );
    assert!(stdout(&out).contains("check passed"));
}

#[test]
fn nginx_is_tested_and_must_route_this_state_on_public_port() {
    let env = Env::new();
    let _up = env.up();
    // A changed public_port that the running NGINX (up's, written at its start) does not
    // listen on.
    let text = read(&env.config);
    let port = crate::util::free_port();
    fs::write(
        &env.config,
        text.replace(
            &format!("public_port = {}", env.public.port()),
            &format!("public_port = {port}"),
        ),
    )
    .unwrap();
    let err = problems(&env);
    reports(
        &err,
        "the NGINX of `bluegreen up`",
        &format!("listens on no port {port}"),
    );
    fs::write(&env.config, &text).unwrap();
    env.exits(&["check"], 0);

    // A site that routes to another include than this state's: NGINX would not follow
    // this state's deploys.
    let site = env.state().join("nginx/site.conf");
    let good = read(&site);
    let include = env.state().join("nginx/upstream.conf");
    let elsewhere = env.dir.path().join("elsewhere.conf");
    fs::copy(&include, &elsewhere).unwrap();
    fs::write(
        &site,
        good.replace(
            &include.display().to_string(),
            &elsewhere.display().to_string(),
        ),
    )
    .unwrap();
    let err = problems(&env);
    reports(&err, "nginx.conf", "does not include");
    assert!(err.contains("upstream.conf"), "{err}");

    // A configuration NGINX itself refuses: `nginx -t` names the file and line.
    fs::write(&site, format!("{good}\nno_such_directive on;\n")).unwrap();
    let err = problems(&env);
    reports(&err, "nginx.conf", "`nginx -t` failed");
    assert!(
        err.contains("unknown directive \"no_such_directive\""),
        "{err}"
    );
    fs::write(&site, good).unwrap();
}

/// Every numeric key has an upper bound; each of these passed `check` before (a fresh-user
/// review), and `upstream_timeout_secs` was even written into NGINX's site by `restart`.
#[test]
fn values_past_their_bounds_are_refused_naming_the_key_and_the_bound() {
    let cases = [
        (
            "[model]\nkind = \"random_forest\"\nn_trees = 100000000",
            "model.n_trees",
            "at most 10000 trees",
        ),
        (
            "[model]\nkind = \"knn\"\nk = 100000",
            "model.k",
            "at most 10000 neighbours",
        ),
        (
            "[fleet]\non_new_model_timeout_secs = 0",
            "fleet.on_new_model_timeout_secs",
            "at least 1 second",
        ),
        (
            "[nginx]\npid_file = \"\"",
            "nginx.pid_file",
            "must not be empty",
        ),
        (
            "[nginx]\nupstream_timeout_secs = 100000000000",
            "nginx.upstream_timeout_secs",
            "at most 3600 seconds",
        ),
        (
            "[limits]\nbody_read_timeout_secs = 99999999999",
            "limits.body_read_timeout_secs",
            "at most 3600 seconds",
        ),
        (
            "[limits]\nmax_body_bytes = 99999999999999",
            "limits.max_body_bytes",
            "at most 268435456 bytes",
        ),
    ];
    for (extra, key, bound) in cases {
        let env = Env::with_extra(extra);
        let err = problems(&env);
        reports(&err, &format!("key `{key}`"), bound);
        assert!(!env.state().exists(), "a refused config writes nothing");
    }
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_key() {
    let env = Env::new();
    let text = read(&env.config);
    let cases = [
        (
            text.replace("blue = \"127.0.0.1:", "blue = \"localhost:"),
            "key `slots.blue`: invalid socket address syntax",
        ),
        (
            format!("public_port = 70000\n{}", text.replace("public_port", "#")),
            "key `public_port`: invalid value: integer `70000`, expected a whole number, not negative and at most 65535",
        ),
        (
            format!("public_port = \"8080\"\n{}", text.replace("public_port", "#")),
            "key `public_port`: invalid type: string \"8080\", expected a whole number, not negative and at most 65535; write it without quotes: 8080",
        ),
    ];
    for (config, says) in cases {
        fs::write(&env.config, config).unwrap();
        reports(&problems(&env), says, "line ");
    }
}

/// A command refused for a bad config says the cause first, then what to do.
#[test]
fn a_command_refused_for_a_bad_config_says_the_cause_before_the_hint() {
    let env = Env::with_extra("batch_size = 0");
    let err = env.fails(&["train"], 1);
    let cause = err.find("config key `batch_size` is invalid: must be at least 1 row");
    let hint = err.find("hint: fix the file");
    assert!(
        matches!((cause, hint), (Some(c), Some(h)) if c < h),
        "the cause, then the hint: {err}"
    );
}
