//! `kill -9` of NGINX's master under `bluegreen up` (issue 8 §5).
//!
//! Today `up` exits, the dead master's workers keep the port and answer 503, and the next
//! `up` takes them for its own NGINX. Now `up` stops the stray workers and starts NGINX
//! again on the public socket it holds, so connections wait instead of being refused; and it
//! accepts readiness only from the NGINX it started.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::load::{Client, Load};
use crate::util::{kill9, Env};

#[test]
fn kill_9_of_nginx_under_load_keeps_serving_and_a_second_up_starts_cleanly() {
    let env = Env::new();
    let up = env.up();
    let load = Load::mixed(
        env.public,
        &[
            (Client::KeepAlive, 16),
            (Client::Fresh, 8),
            (Client::Retrying, 4),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let first = env.nginx_master();
    let first_group = env.nginx_processes(&[first]);
    assert!(
        first_group.len() >= 2,
        "a master and its workers: {first_group:?}"
    );
    kill9(first);
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        let now = std::fs::read_to_string(env.state().join("nginx/nginx.pid")).unwrap_or_default();
        match now.trim().parse::<i32>() {
            Ok(pid) if pid != first && env.predict().status == 200 => break pid,
            _ => {}
        }
        assert!(Instant::now() < deadline, "NGINX never came back");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500));
    let results = load.finish();
    let mut report = String::new();
    for (kind, tally) in &results {
        report += &format!(
            "{kind:?}: {} ok, {} failed: statuses {:?}, errors {:?}\n",
            tally.ok,
            tally.failures(),
            tally.bad_status,
            tally
                .failed
                .iter()
                .map(|(_, e)| e.as_str())
                .collect::<Vec<_>>()
        );
    }
    println!("kill -9 of the NGINX master under load:\n{report}");
    for (kind, tally) in &results {
        assert!(tally.ok > 0, "{kind:?} got no answer: {report}");
        assert!(
            tally.bad_status.is_empty(),
            "no 5xx, no 503 from strays: {report}"
        );
        // Connections wait in the held socket while NGINX restarts: a client that opens one
        // per request, or retries a reused one that closed before any answer, loses nothing.
        // Plain keep-alive clients can lose the request they sent on an idle connection at
        // the instant a stray worker closed it, as at every NGINX reload (README, "The API").
        if *kind != Client::KeepAlive {
            assert_eq!(tally.failures(), 0, "{kind:?}: {report}");
        }
    }
    // The dead master's workers are gone within worker_shutdown_timeout (5 s here).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.nginx_processes(&[first]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "stray workers of the dead master remain: {:?}",
            env.nginx_processes(&[first])
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert!(up.stop().success());
    assert!(
        env.nginx_processes(&[first, second]).is_empty(),
        "no NGINX process is left after up stopped"
    );
    assert!(std::net::TcpStream::connect(env.public).is_err());
    let _again = env.up();
    assert_eq!(env.predict().status, 200);
}

/// A server that holds the public port and answers every request as NGINX in front of blue
/// would: what stray workers of a dead `up` looked like to the next one.
fn impostor(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nX-Slot: blue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
}

#[test]
fn up_refuses_a_public_port_that_another_server_holds() {
    let env = Env::new();
    impostor(TcpListener::bind(env.public).unwrap());
    let out = env.run(&["up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on 0.0.0.0:{} (public_port)",
            env.public.port()
        )) && stderr.contains("hint: ")
            && stderr.contains("Address already in use"),
        "{stderr}"
    );
    assert!(
        env.pids("serve --slot").is_empty(),
        "no slot was left running"
    );
}
