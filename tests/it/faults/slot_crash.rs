//! `kill -9` of a slot under `bluegreen up` (issue 8 §4, §5).
//!
//! `up` holds each slot's listening socket and hands it to every incarnation of the slot, so
//! while the slot is down connections wait in the kernel's backlog instead of being refused,
//! and NGINX resends the requests the dead slot dropped before answering. A slot that fails
//! to come back is tried again with a backoff, forever.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{kill9, read_response, Env};

/// Waits (up to 10 s) for a process serving `slot` that is not one of `gone`; returns it.
fn next_incarnation(env: &Env, slot: &str, gone: &[i32]) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh: Vec<i32> = env
            .pids(&format!("serve --slot {slot} "))
            .into_iter()
            .filter(|p| !gone.contains(p))
            .collect();
        if let Some(pid) = fresh.first() {
            return *pid;
        }
        assert!(
            Instant::now() < deadline,
            "up started no new {slot} process after {gone:?} died"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (up to 30 s) until the slot at `addr` answers `/readyz` directly, calling
/// `meanwhile` between tries.
fn wait_ready(addr: std::net::SocketAddr, meanwhile: impl Fn()) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while bluegreen::http::request(addr, "GET", "/readyz", None, Duration::from_millis(500))
        .map_or(true, |r| r.status != 200)
    {
        assert!(Instant::now() < deadline, "{addr} never became ready again");
        meanwhile();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_of_the_active_slot_under_load_fails_no_request() {
    let env = Env::new();
    let _up = env.up();
    let load = Load::issue8(env.public);
    std::thread::sleep(Duration::from_millis(300));
    let mut killed = Vec::new();
    for _ in 0..3 {
        let pid = env.slot_pid("blue");
        kill9(pid);
        killed.push(pid);
        next_incarnation(&env, "blue", &killed);
        wait_ready(env.blue, || {});
        std::thread::sleep(Duration::from_millis(300));
    }
    let results = load.finish();
    println!("3 × kill -9 of the active slot: {results:?}");
    assert_no_failures(&results);
    assert_eq!(env.predict().header("x-slot"), Some("blue"));
}

/// Waits (up to 30 s) until blue answers `/readyz` on its unix socket (switch mode "socket").
fn wait_ready_on_socket(env: &Env) {
    use std::io::{BufReader, Write};
    let path = env.state().join("sockets/blue.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = || -> std::io::Result<bool> {
        let mut conn = std::os::unix::net::UnixStream::connect(&path)?;
        conn.set_read_timeout(Some(Duration::from_millis(500)))?;
        conn.write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
        Ok(read_response(&mut BufReader::new(conn))?.status == 200)
    };
    while !ready().unwrap_or(false) {
        assert!(Instant::now() < deadline, "blue never became ready again");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 64 keep-alive clients and 16 that close their connection after each request: NGINX then
/// keeps dozens of idle connections per worker to the active slot, all of which die at once.
fn load_64(env: &Env) -> Load {
    Load::mixed(env.public, &[(Client::KeepAlive, 64), (Client::Fresh, 16)])
}

/// 3 × `kill -9` of the active slot under [`load_64`], in switch mode `mode`.
///
/// In socket mode this failed 3–9 requests in 3 kills while the include listed the slot 8
/// times: a write on a dead cached unix-socket connection fails at once (EPIPE), so NGINX
/// retries at once, on the next dead cached connection, and runs out of `server` lines
/// before its event loop has seen those connections close (`nginx::server_lines`).
fn kill_sweep_64(mode: &str) {
    let env = Env::with_extra(&format!("[nginx]\nswitch = \"{mode}\""));
    let _up = env.up();
    let load = load_64(&env);
    std::thread::sleep(Duration::from_millis(500));
    let mut killed = Vec::new();
    for _ in 0..3 {
        let pid = env.slot_pid("blue");
        kill9(pid);
        killed.push(pid);
        next_incarnation(&env, "blue", &killed);
        match mode {
            "socket" => wait_ready_on_socket(&env),
            _ => wait_ready(env.blue, || {}),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let results = load.finish();
    println!("3 × kill -9 of the active slot, {mode} mode, 64 + 16 clients: {results:?}");
    assert_no_failures(&results);
    assert_eq!(env.predict().header("x-slot"), Some("blue"));
}

#[test]
fn kill_9_of_the_active_slot_in_socket_mode_under_64_connections_fails_no_request() {
    kill_sweep_64("socket");
}

#[test]
fn kill_9_of_the_active_slot_in_reload_mode_under_64_connections_fails_no_request() {
    kill_sweep_64("reload");
}

/// 3 × `bluegreen restart` under [`load_64`] in socket mode: each restarts the resting slot,
/// then the active one, which closes its cached connections as it stops.
#[test]
fn restart_in_socket_mode_under_64_connections_fails_no_request() {
    let env = Env::with_extra("[nginx]\nswitch = \"socket\"");
    let _up = env.up();
    let load = load_64(&env);
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        env.exits(&["restart"], 0);
        std::thread::sleep(Duration::from_millis(300));
    }
    let results = load.finish();
    println!("3 × restart, socket mode, 64 + 16 clients: {results:?}");
    assert_no_failures(&results);
}

/// Points `link` at `target` in one step, as a deploy does.
fn relink(link: &Path, target: &Path) {
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

/// Opens the FIFO for writing and closes it at once: a process blocked opening it for
/// reading then reads an empty file, and fails.
fn release(fifo: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(fifo);
}

/// Issue 8 §5: kill -9 the active slot, then kill its replacement before it is ready. Today
/// `up` gave up after that one try, and every request got a 503 for good.
///
/// To kill a replacement *before* it is ready, every time, the slot's model link points at
/// a FIFO meanwhile: a replacement blocks opening its model, alive and not ready, until it is
/// killed.
#[test]
fn a_slot_whose_replacements_die_before_they_are_ready_is_started_again_until_it_comes_back() {
    let env = Env::new();
    let up = env.up();
    let link = env.state().join("slots/blue.json");
    let model = std::fs::read_link(&link).unwrap();
    let fifo = env.state().join("hang.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    relink(&link, &fifo);

    let mut killed = vec![env.slot_pid("blue")];
    kill9(killed[0]);
    for _ in 0..3 {
        let replacement = next_incarnation(&env, "blue", &killed);
        kill9(replacement);
        killed.push(replacement);
    }
    // Still trying: a fourth start is on its way.
    next_incarnation(&env, "blue", &killed);

    relink(&link, &model);
    release(&fifo);
    wait_ready(env.blue, || release(&fifo));
    let r = env.predict();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-slot"), Some("blue"));
    drop(up);
}
