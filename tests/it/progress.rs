//! Progress (issue 12): `add-data` and `train` on a large file show the bytes and rows read
//! and their rate on a terminal (a pseudo-terminal from util-linux's `script`), `deploy` and
//! `restart` a spinner while a slot restarts; nothing of it reaches standard output or
//! standard error when they are pipes, as under systemd and in scripts.

use std::process::{Command, Output};

use crate::util::{read, stdout, Env};

/// Rows in the large file: enough for the bar to be drawn many times.
const ROWS: usize = 20_000;

/// An initialised environment (with `extra` config) and a CSV of `ROWS` rows beside it.
fn with_large_file(extra: &str) -> (Env, String) {
    let env = Env::with_extra(extra);
    env.ok(&["init"]);
    let text = read(&env.csv());
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let mut big = format!("{header}\n");
    for i in 0..ROWS {
        big.push_str(rows[i % rows.len()]);
        big.push('\n');
    }
    let path = env.dir.path().join("large.csv");
    std::fs::write(&path, big).unwrap();
    (env, path.to_str().unwrap().to_string())
}

/// Runs `bluegreen args…` with a pseudo-terminal as its standard output and error, and
/// returns all it wrote there, escape sequences included.
fn on_a_terminal(env: &Env, args: &[&str]) -> String {
    let mut command = format!(
        "'{}' --config '{}'",
        env!("CARGO_BIN_EXE_bluegreen"),
        env.config.display()
    );
    for arg in args {
        command.push_str(&format!(" '{arg}'"));
    }
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .current_dir(env.dir.path())
        .env("TERM", "xterm")
        .env_remove("BLUEGREEN_CONFIG")
        .output()
        .expect("script; hint: `apt-get install bsdutils` (util-linux's script)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bluegreen {args:?} under script: {text}"
    );
    text
}

/// Fails unless `out` holds plain lines, on standard output only: no bar, no spinner.
fn assert_plain(out: &Output) {
    let (text, err) = (
        stdout(out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    for stream in [&text, &err] {
        assert!(!stream.contains('\r'), "a carriage return: {stream:?}");
        assert!(!stream.contains('\x1b'), "an escape sequence: {stream:?}");
        assert!(!stream.contains(".csv ["), "a bar: {stream}");
        assert!(!stream.contains("to be ready ("), "a spinner: {stream}");
    }
    assert_eq!(err, "", "nothing on standard error");
}

#[test]
fn a_terminal_sees_the_bytes_and_rows_read_and_their_rate() {
    let (env, large) = with_large_file("");
    let screen = on_a_terminal(&env, &["add-data", &large]);
    assert!(screen.contains("reading "), "{screen}");
    assert!(screen.contains("large.csv ["), "{screen}");
    assert!(screen.contains(" lines"), "{screen}");
    assert!(screen.contains("MiB"), "{screen}");
    // The bar is cleared; the summary stays.
    assert!(
        screen.contains(&format!("appended {ROWS} rows")),
        "{screen}"
    );

    // linear: the rows appended since the newest model, from its statistics.
    let screen = on_a_terminal(&env, &["train"]);
    assert!(screen.contains("reading boston.csv ["), "{screen}");
    assert!(screen.contains(" rows"), "{screen}");
    assert!(screen.contains("trained v0002"), "{screen}");
}

/// Without the ledger (`crate::ledger`: removed, or the file changed by hand) `train --if-due`
/// and `status` hash the whole file to see what changed: that pass has its bar too.
#[test]
fn the_pass_that_sees_what_changed_shows_it_too() {
    let (env, large) = with_large_file("batch_size = 100000");
    env.ok(&["add-data", &large]);
    let ledger = env.state().join("run/data-ledger.json");
    assert!(ledger.exists(), "add-data keeps a ledger");
    for args in [&["status"][..], &["train", "--if-due"]] {
        // `status` may write none after its pass; `train` must make one of its own either way.
        let _ = std::fs::remove_file(&ledger);
        let screen = on_a_terminal(&env, args);
        assert!(
            screen.contains("reading boston.csv to see what changed ["),
            "{args:?}: {screen}"
        );
        assert!(screen.contains(" rows"), "{args:?}: {screen}");
    }
}

#[test]
fn a_kind_that_reads_the_whole_file_shows_it_too() {
    let (env, large) = with_large_file("[model]\nkind = \"lasso\"\n");
    env.ok(&["add-data", &large]);
    let screen = on_a_terminal(&env, &["train"]);
    assert!(screen.contains("reading boston.csv ["), "{screen}");
    // The whole file, header and all: 506 + ROWS rows.
    assert!(screen.contains(" rows"), "{screen}");
    assert!(screen.contains("trained v0002"), "{screen}");
}

#[test]
fn pipes_get_the_log_lines_and_nothing_of_the_bar() {
    let (env, large) = with_large_file("");
    // TERM says a terminal could draw it: what keeps the bar away is that these are pipes.
    let mut outputs = Vec::new();
    for args in [vec!["add-data", large.as_str()], vec!["train"]] {
        let out = env.cmd(&args).env("TERM", "xterm").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stdout(&out));
        outputs.push(out);
    }
    for out in &outputs {
        assert_plain(out);
    }
    assert!(stdout(&outputs[0]).starts_with(&format!("appended {ROWS} rows")));
    // The log lines as they always were, one per step.
    let train = stdout(&outputs[1]);
    let starts: Vec<&str> = train.lines().map(|l| &l[..l.len().min(12)]).collect();
    assert_eq!(
        starts,
        ["training a l", "trained v000", "quality gate"],
        "{train}"
    );
}

#[test]
fn a_deploy_and_a_restart_show_their_waits_on_a_terminal_only() {
    let env = Env::new();
    let _up = env.up_idle();
    env.ok(&["train"]);
    let screen = on_a_terminal(&env, &["deploy"]);
    assert!(
        screen.contains("waiting for green to be ready ("),
        "{screen}"
    );
    assert!(screen.contains("green is ready"), "{screen}");

    env.ok(&["train"]);
    let out = env.cmd(&["deploy"]).env("TERM", "xterm").output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert_plain(&out);
    assert!(stdout(&out).contains("blue is ready"), "{}", stdout(&out));

    // The resting slot first, then the active one.
    let screen = on_a_terminal(&env, &["restart"]);
    let green = screen.find("waiting for green to be ready (");
    let blue = screen.find("waiting for blue to be ready (");
    assert!(
        green.is_some() && blue.is_some() && green < blue,
        "{screen}"
    );
}
