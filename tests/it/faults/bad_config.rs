//! A bad configuration when a slot starts anyway (issue 8 §3): the slot serves on the last
//! good configuration and says so loudly, on its STATUS= line and in its log; `status` says
//! it too; `up` refuses to start. Without a last good configuration the slot stops, naming
//! both reasons.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;

use crate::util::{post, price, Env, EXAMPLE};

/// Makes the config file bad in the way issue 8 names: `batch_size = 0`.
fn break_config(env: &Env) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("batch_size = 0\n{text}")).unwrap();
}

#[test]
fn a_slot_started_on_a_bad_config_serves_on_the_last_good_one_and_says_why() {
    let env = Env::with_extra("[limits]\nmax_rows = 3");
    env.ok(&["init"]); // saves the last good configuration
    break_config(&env);

    let notify = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let child = env
        .cmd(&["serve", "--slot", "blue"])
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).unwrap();
    let message = String::from_utf8_lossy(&buf[..n]).to_string();
    let stop = |mut child: std::process::Child| {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(child.wait().unwrap().success());
        err
    };
    let ready = message.lines().any(|l| l == "READY=1");
    if !ready {
        panic!("no READY=1: {message}\nstderr: {}", stop(child));
    }
    let status = message
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_default()
        .to_string();
    assert!(status.contains("serving v0001-"), "{status}");
    assert!(
        status.contains("CONFIG IS BAD (")
            && status.contains("`batch_size` is invalid")
            && status.contains("running on the last good one (")
            && status.contains("config.last-good.toml"),
        "{status}"
    );
    // It serves, with the last good configuration's values (at most 3 rows per request).
    let r = post(env.blue, EXAMPLE);
    assert_eq!(r.status, 200);
    assert!((price(&r) - 30.23).abs() < 0.01);
    let four = format!(
        "{{\"data\": [{row}, {row}, {row}, {row}]}}",
        row = "[0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15]"
    );
    assert_eq!(post(env.blue, &four).status, 413);

    // `status` says it too, in words and in JSON.
    let out = env.ok(&["status"]);
    assert!(out.starts_with("!! CONFIG IS BAD ("), "{out}");
    assert!(
        out.contains("slots that start now run on the last good one"),
        "{out}"
    );
    let json = env.status_json();
    assert!(
        json["config_error"]
            .as_str()
            .unwrap_or_default()
            .contains("`batch_size`"),
        "{json}"
    );

    // And the log (the journal, under systemd).
    let err = stop(child);
    assert!(err.contains("blue: CONFIG IS BAD ("), "{err}");

    // `up` does not start on a bad configuration, last good one or not.
    let err = env.fails(&["up"], 1);
    assert!(err.contains("`batch_size` is invalid"), "{err}");
}

#[test]
fn a_config_that_does_not_parse_falls_back_to_the_copy_the_unit_names() {
    let env = Env::new();
    env.ok(&["init"]);
    let copy = env.dir.path().join("elsewhere.toml");
    std::fs::rename(env.state().join("config.last-good.toml"), &copy).unwrap();
    std::fs::write(&env.config, "this is [not toml\n").unwrap();
    let out = env
        .cmd(&["status", "--json"])
        .env("BLUEGREEN_LAST_GOOD_CONFIG", &copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = json["config_error"].as_str().unwrap();
    assert!(
        error.contains("is not valid") && error.contains("elsewhere.toml"),
        "{error}"
    );
}

#[test]
fn without_a_last_good_config_a_slot_stops_naming_both_reasons() {
    let env = Env::new();
    env.ok(&["init"]);
    std::fs::remove_file(env.state().join("config.last-good.toml")).unwrap();
    break_config(&env);
    let err = env.fails(&["serve", "--slot", "blue", "--listen", "127.0.0.1:0"], 1);
    assert!(
        err.contains("`batch_size` is invalid")
            && err.contains("config.last-good.toml cannot stand in for it")
            && err.contains("No such file"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}
