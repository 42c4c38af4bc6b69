//! The command line itself: help, and configuration errors that name the key.

use crate::util::Env;

#[test]
fn help_documents_exit_codes() {
    let env = Env::new();
    let out = env.ok(&["train", "--help"]);
    assert!(
        out.contains("10  with --if-due: a deploy is wanted"),
        "{out}"
    );
    let out = env.ok(&["deploy", "--help"]);
    assert!(out.contains("3   the quality gate refused"), "{out}");
    // The rollout's statuses (issue 11): both commands that run a rollout say them all.
    for command in ["deploy", "promote"] {
        let out = env.ok(&[command, "--help"]);
        for status in [
            "4   the rollout's analysis stopped",
            "5   a rollout phase had too few requests",
        ] {
            assert!(out.contains(status), "{command}: {status:?} in {out}");
        }
    }
}

#[test]
fn a_bad_config_value_is_refused_with_its_key_and_a_hint() {
    let env = Env::new();
    std::fs::write(&env.config, "batch_size = 0\n").unwrap();
    let err = env.fails(&["status"], 1);
    assert!(err.contains("config key `batch_size` is invalid"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    std::fs::write(&env.config, "[slots]\nblue = 8081\n").unwrap();
    let err = env.fails(&["status"], 1);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn commands_before_init_say_what_to_do() {
    let env = Env::new();
    let err = env.fails(&["add-data", "--sample", "2"], 1);
    assert!(err.contains("bluegreen init"), "{err}");
    let err = env.fails(&["serve", "--slot", "blue"], 1);
    assert!(err.contains("slot blue has no model"), "{err}");
}

#[test]
fn up_without_nginx_says_how_to_install_it() {
    let env = Env::new();
    let text = std::fs::read_to_string(&env.config).unwrap();
    let nginx = crate::util::nginx_binary();
    std::fs::write(
        &env.config,
        text.replace(&nginx.display().to_string(), "/nonexistent/nginx"),
    )
    .unwrap();
    let err = env.fails(&["up"], 1);
    assert!(
        err.contains("cannot run NGINX (/nonexistent/nginx)"),
        "{err}"
    );
    assert!(err.contains("apt install nginx"), "{err}");
}

/// Runs a command whose standard output is a pipe whose reader has gone before the command
/// writes a byte, as `bluegreen … | head -1` does once `head` has its line.
fn with_closed_stdout(env: &Env, args: &[&str]) -> std::process::Output {
    let mut child = env
        .cmd(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn every_command_exits_quietly_when_its_output_pipe_is_closed() {
    let env = Env::with_extra("batch_size = 2");
    let cases: [(&[&str], i32); 9] = [
        (&["nginx-site"], 0),
        (&["--help"], 0),
        (&["init"], 0),
        (&["status"], 0),
        (&["status", "--json"], 0),
        (&["add-data", "--sample", "2"], 0),
        (&["train", "--if-due"], 10),
        (&["train"], 0),
        (&["deploy", "v9999"], 1),
    ];
    for (args, code) in cases {
        let out = with_closed_stdout(&env, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    }
    // The work was done, though nobody read about it.
    let status = env.status_json();
    assert_eq!(status["data_rows"], 508);
    assert_eq!(status["models"], 3);

    // A rollback and a deploy finish their switch too. (At start, `up`'s trainer deploys
    // v0003: it passed the gate and is not active.)
    let _up = env.up();
    env.wait_for_new_version("v0001", std::time::Duration::from_secs(30));
    let out = with_closed_stdout(&env, &["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(env.predict().header("x-slot"), Some("blue"));
    let out = with_closed_stdout(&env, &["deploy"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(env.predict().header("x-slot"), Some("green"));
    let mut history = bluegreen::history::read_all(&env.state().join("deploys.jsonl")).unwrap();
    // add-data's measurements of the live RMSE (issue 11) aside.
    history.retain(|r| r.outcome != bluegreen::history::Outcome::Measured);
    assert_eq!(history.len(), 3, "{history:?}");
}

#[test]
fn commands_make_the_folders_they_need_or_say_which_command_will() {
    let env = Env::new();
    let err = env.fails(&["train"], 1);
    assert!(
        err.contains("there is no training data at") && err.contains("hint: run `bluegreen init`"),
        "{err}"
    );
    assert!(
        !env.state().exists(),
        "a command that cannot run writes nothing"
    );

    env.ok(&["init"]);
    std::fs::remove_dir_all(env.state().join("run")).unwrap();
    let out = env.ok(&["train"]);
    assert!(out.contains("trained v0002-"), "{out}");
    std::fs::remove_dir_all(env.state().join("run")).unwrap();
    // Without NGINX the deploy fails, but at NGINX, not at a missing folder.
    let err = env.fails(&["deploy", "--no-wait"], 1);
    assert!(err.contains("NGINX pid file"), "{err}");
    assert!(env.state().join("run/deploy.lock").exists());
}
