//! Switch mode "socket" (issue 10): the slot's side of it, and moving an installation from
//! one mode to the other. The flips themselves under load are in `flips.rs`, kills of a
//! deploy in `faults/deploy_kill.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use bluegreen::config::Config;
use bluegreen::layout::Layout;
use bluegreen::slot::Slot;

use crate::util::{serve_activated, stop, Env, Served, EXAMPLE};

const SOCKET: &str = "[nginx]\nswitch = \"socket\"";

/// One keep-alive request on `conn`; returns the answer's `Connection` header, if any.
fn ask(conn: &mut BufReader<UnixStream>) -> Option<String> {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{EXAMPLE}",
        EXAMPLE.len()
    );
    conn.get_mut().write_all(request.as_bytes()).unwrap();
    let r = crate::util::read_response(conn).unwrap();
    assert_eq!(r.status, 200);
    r.header("connection").map(str::to_string)
}

fn connect(path: &std::path::Path) -> BufReader<UnixStream> {
    let stream = UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    BufReader::new(stream)
}

/// Starts `serve --slot blue` on its own unix socket; returns it and its output lines.
fn serve_blue(env: &Env) -> (Served, mpsc::Receiver<String>) {
    let mut child = env
        .cmd(&["serve", "--slot", "blue"])
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
    (Served(Some(child)), rx)
}

fn wait_for(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the slot never said {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn a_slot_that_rests_ends_every_connection_after_its_next_answer() {
    let env = Env::with_extra(SOCKET);
    env.ok(&["init"]);
    let config = Config::from_file(&env.config).unwrap();
    let layout = Layout::new(&config.state_dir);
    let socket = layout.slot_socket(Slot::Blue);
    let (served, lines) = serve_blue(&env);
    let first = wait_for(&lines, "blue: ");
    assert!(
        first.contains("active: serving v0001-")
            && first.contains(&format!("unix:{}", socket.display())),
        "{first}"
    );
    // Active: connections stay open between requests.
    let mut idle = connect(&socket);
    assert_eq!(ask(&mut idle), None);
    assert_eq!(ask(&mut idle), None);

    // The link moves to green: blue ends every connection after its next answer, the idle
    // one too (never before it: NGINX may be sending a request on it at that instant), and
    // new ones.
    bluegreen::switch::write(&config, &layout, Slot::Green).unwrap();
    wait_for(&lines, "now resting");
    for mut conn in [idle, connect(&socket)] {
        assert_eq!(ask(&mut conn).as_deref(), Some("close"));
        let mut rest = Vec::new();
        let read = conn.read_to_end(&mut rest);
        assert!(
            matches!(read, Ok(0)),
            "closed after the answer, with a clean end of stream: {read:?} {rest:?}"
        );
    }

    // Back to blue: connections stay open again.
    bluegreen::switch::write(&config, &layout, Slot::Blue).unwrap();
    wait_for(&lines, "now active");
    let mut again = connect(&socket);
    assert_eq!(ask(&mut again), None);
    assert_eq!(ask(&mut again), None);
    assert!(stop(served).success());
}

#[test]
fn a_unix_socket_passed_by_systemd_is_served_only_at_the_slots_path() {
    let env = Env::with_extra(SOCKET);
    env.ok(&["init"]);
    let config = Config::from_file(&env.config).unwrap();
    let path = Layout::new(&config.state_dir).slot_socket(Slot::Blue);
    let listener = UnixListener::bind(&path).unwrap();
    let child = Served(Some(serve_activated(&env, &listener, &[])));
    drop(listener);
    // The socket was open before the server started: this waits in its backlog.
    let mut conn = connect(&path);
    assert_eq!(ask(&mut conn), None);
    assert!(stop(child).success());

    // A TCP socket, as the socket unit had before the mode changed, is refused with a hint.
    let tcp = std::net::TcpListener::bind(env.blue).unwrap();
    let out = serve_activated(&env, &tcp, &[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("was handed a socket on {}", env.blue))
            && err.contains(&format!("unix:{}", path.display()))
            && err.contains("nginx.switch = \"socket\"")
            && err.contains("daemon-reload"),
        "{err}"
    );
}

#[test]
fn a_mode_change_not_applied_yet_is_named_and_no_deploy_runs_the_other_way() {
    let env = Env::new();
    env.ok(&["init"]);
    env.ok(&["train"]);
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("[nginx]\n", "[nginx]\nswitch = \"socket\"\n"),
    )
    .unwrap();
    let err = env.fails(&["deploy"], 1);
    assert!(
        err.contains("nginx.switch = \"socket\"")
            && err.contains("routes the reload way")
            && err.contains("hint: `bluegreen restart`"),
        "{err}"
    );
    let err = env.fails(&["rollback"], 1);
    assert!(err.contains("routes the reload way"), "{err}");
    let status = env.status_json();
    assert_eq!(status["switch"], "socket");
    // The include still names blue's address, which is where NGINX routes.
    assert_eq!(status["include"], "blue");
    let notes = status["notes"].to_string();
    assert!(notes.contains("still routes the reload way"), "{notes}");
}

/// Under `up` a mode change is a restart of `up`: `bluegreen restart` cannot move the slots'
/// sockets it holds, and says so; the next `up` writes the include the new way before
/// NGINX starts, and traffic stays on the slot it was on.
#[test]
fn up_applies_a_mode_change_when_it_starts_again_and_keeps_the_active_slot() {
    let env = Env::new();
    let up = env.up_idle();
    env.ok(&["add-data", "--sample", "2"]);
    let v2 = env.wait_for_new_version("v0001", Duration::from_secs(30));
    assert_eq!(env.predict().header("x-slot"), Some("green"));
    let reload = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        reload.replace("[nginx]\n", "[nginx]\nswitch = \"socket\"\n"),
    )
    .unwrap();
    let err = env.fails(&["restart"], 1);
    assert!(
        err.contains("nginx.switch") && err.contains("stop bluegreen up"),
        "{err}"
    );
    assert!(up.stop().success());

    let up = env.up();
    let r = env.predict();
    assert_eq!(r.header("x-slot"), Some("green"));
    assert_eq!(r.header("x-model-version"), Some(v2.as_str()));
    let status = env.status_json();
    assert_eq!(status["switch"], "socket");
    assert_eq!(status["active"], "green");
    assert!(status["slots"][1]["address"]
        .as_str()
        .unwrap()
        .ends_with("sockets/green.sock"));
    assert_eq!(status["slots"][1]["health"], "healthy");
    env.ok(&["rollback"]);
    assert_eq!(env.predict().header("x-slot"), Some("blue"));
    assert!(up.stop().success());
    // Stopped, `up` leaves no socket file behind; the links stay: the active slot, and the
    // resting one (where previews and the shadow mirror go, issue 11).
    let sockets = env.state().join("sockets");
    let mut left: Vec<String> = std::fs::read_dir(&sockets)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["active.sock", "resting.sock"]);

    // And back: the include names blue's address again.
    std::fs::write(&env.config, reload).unwrap();
    let _up = env.up();
    assert_eq!(env.predict().header("x-slot"), Some("blue"));
    assert_eq!(env.status_json()["switch"], "reload");
}

/// Under systemd the slots' socket units listen where the config says, in either mode: the
/// generator writes their `ListenStream=` from it (the config is the one place).
#[test]
fn the_generator_writes_each_socket_units_address_from_the_config() {
    let env = Env::new();
    let out = env.dir.path().join("generator");
    let dir = out.to_str().unwrap();
    env.ok(&[
        "systemd-generator",
        dir,
        "/nonexistent/early",
        "/nonexistent/late",
    ]);
    let dropin = |slot: &str| {
        std::fs::read_to_string(out.join(format!("bluegreen@{slot}.socket.d/50-listen.conf")))
            .unwrap()
    };
    for (slot, addr) in [("blue", env.blue), ("green", env.green)] {
        let text = dropin(slot);
        assert!(
            text.contains(&format!("[Socket]\nListenStream=\nListenStream={addr}\n")),
            "{text}"
        );
    }
    let reload = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        reload.replace("[nginx]\n", "[nginx]\nswitch = \"socket\"\n"),
    )
    .unwrap();
    env.ok(&["systemd-generator", dir]);
    for slot in ["blue", "green"] {
        let text = dropin(slot);
        let path = env.state().join(format!("sockets/{slot}.sock"));
        assert!(
            text.contains(&format!("ListenStream=\nListenStream={}\n", path.display())),
            "{text}"
        );
    }
}

/// A slot address edited under `up` is refused by `restart` in both switch modes, and not
/// saved as the last good config: `up` applies `slots.*` only when it starts. In socket mode
/// `restart` used to pass it (rc 0) and save it, while reload mode refused it.
#[test]
fn restart_refuses_a_slot_address_change_in_socket_mode_as_in_reload_mode() {
    for extra in [SOCKET, ""] {
        let env = Env::with_extra(extra);
        let _up = env.up();
        let last_good = env.state().join("config.last-good.toml");
        let saved = std::fs::read_to_string(&last_good).unwrap();
        let moved = format!("127.0.0.1:{}", crate::util::free_port());
        env.set_key("slots", "blue", toml::Value::from(moved.as_str()));
        let err = env.fails(&["restart"], 1);
        assert!(
            err.contains("config key `slots.blue`") && err.contains("stop bluegreen up"),
            "{extra:?}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&last_good).unwrap(),
            saved,
            "{extra:?}: a refused restart saves nothing"
        );
        assert_eq!(env.predict().status, 200);
    }
}
