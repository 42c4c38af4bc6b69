//! The log (issue 12): a slot logs the requests it refuses, at a bounded rate, and says how
//! many it left out; lines written to a pipe carry no colour codes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{request, stop, Env, Served};

/// A slot on an ephemeral port whose every output line is sent to the returned channel.
fn serve_logged(env: &Env) -> (Served, SocketAddr, mpsc::Receiver<String>) {
    let mut child = env
        .cmd(&["serve", "--slot", "blue", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let addr = first
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    (Served(Some(child)), addr, rx)
}

/// The number in "N more refused request(s) were not logged".
fn suppressed(line: &str) -> Option<u64> {
    let (n, _) = line.split_once(" more refused request(s) were not logged")?;
    n.parse().ok()
}

#[test]
fn a_flood_of_bad_requests_is_logged_at_a_bounded_rate_and_every_one_is_counted() {
    let env = Env::new();
    env.ok(&["init"]);
    let (served, addr, lines) = serve_logged(&env);

    const FLOOD: u64 = 400;
    let started = Instant::now();
    for i in 0..FLOOD {
        let r = request(addr, "GET", &format!("/nope/{i}"), "");
        assert_eq!(r.status, 404);
    }
    let flood = started.elapsed();
    // The limit gives a token back every 200 ms: this one is logged, and first says how many
    // were left out before it.
    std::thread::sleep(Duration::from_millis(400));
    let r = request(addr, "POST", "/", "not json");
    assert_eq!(r.status, 400);
    assert!(stop(served).success());
    // Every line, up to the end of the slot's output: the reader may lag behind the exit.
    let lines: Vec<String> = lines.iter().collect();

    let logged: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("refused a request: "))
        .collect();
    let left_out: u64 = lines.iter().filter_map(|l| suppressed(l)).sum();
    // Each refusal is either logged or counted: nothing is lost silently.
    assert_eq!(logged.len() as u64 + left_out, FLOOD + 1, "{lines:#?}");
    // A burst of 20, then 5 a second over the flood, then the last one.
    let bound = 20 + (flood.as_secs_f64() * 5.0).ceil() as usize + 1;
    assert!(
        logged.len() >= 21 && logged.len() <= bound,
        "{} refusals logged of {}; at most {bound} allowed: {lines:#?}",
        logged.len(),
        FLOOD + 1
    );
    // Each line says what the client was told, and which slot refused it.
    assert!(
        logged[0].contains("no such path \"/nope/0\"")
            && logged[0].contains("status=404")
            && logged[0].contains("slot=blue"),
        "{}",
        logged[0]
    );
    let last = logged.last().unwrap();
    assert!(
        last.contains("not valid JSON") && last.contains("status=400"),
        "{last}"
    );
    // Written to a pipe: no colour codes.
    assert!(!lines.iter().any(|l| l.contains('\x1b')), "{lines:#?}");
}

#[test]
fn bluegreen_log_filters_by_level_and_information_goes_to_stdout() {
    let env = Env::new();
    env.ok(&["init"]);
    let out = env.cmd(&["train"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("trained v0002"),
        "{text}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Warnings and errors only: the training runs, and says nothing.
    let out = env
        .cmd(&["train"])
        .env("BLUEGREEN_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(env.state().join("models").read_dir().unwrap().count() >= 3);
}

#[test]
fn the_protocols_refusals_are_logged_too() {
    let env = Env::new();
    env.ok(&["init"]);
    let (served, addr, lines) = serve_logged(&env);
    let r = request(addr, "POST", "/v2/models/bluegreen/infer", "not json");
    assert_eq!(r.status, 400);
    let r = request(addr, "POST", "/v1/models/bluegreen:predict", "not json");
    assert_eq!(r.status, 400);
    assert!(stop(served).success());
    let refused: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("refused a request: ") && l.contains("status=400"))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
}
