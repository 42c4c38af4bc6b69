//! NGINX sends a request again when its attempt failed before any answer (issue 8, §4).
//!
//! The slot's socket is held open by the test, as systemd holds `bluegreen@blue.socket` and
//! `up` holds its slots' listeners. The first process on it dies in the middle of two
//! requests: it reads one and closes the connection (the kernel's FIN), and closes the other
//! with the request unread (a reset), as the kernel does for a process killed with kill -9.
//! NGINX's retries then wait in the held socket for the restarted slot, a real
//! `bluegreen serve` on the same socket, and every client gets its answer.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{serve_activated, Env, Served};

/// Reads one whole request (head and Content-Length body) from `stream`.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                return got;
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "NGINX closed the connection inside a request");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn requests_a_slot_died_in_the_middle_of_are_sent_again_and_answered() {
    let env = Env::new();
    let _up = env.up();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    // Keep-alive clients that resend a request when NGINX's reload (how this test points it at
    // the held socket) closed their idle connection: a 502 still counts as a failure.
    let load = Load::start(env.public, &[Client::Fresh, Client::Retrying], 3);
    std::thread::sleep(Duration::from_millis(200));

    let dying = held.try_clone().unwrap();
    let crash = std::thread::spawn(move || {
        let mut requests = Vec::new();
        // Read, then closed: NGINX sees the connection end before any answer.
        let (mut first, _) = dying.accept().unwrap();
        requests.push(read_request(&mut first));
        drop(first);
        // Closed with the request unread in the socket: the kernel resets the connection.
        let (second, _) = dying.accept().unwrap();
        let mut peek = [0u8; 16];
        second.peek(&mut peek).unwrap();
        requests.push(peek.to_vec());
        drop(second);
        requests
    });
    env.point_nginx_at(addr);
    let requests = crash.join().unwrap();
    assert!(
        requests.iter().all(|r| r.starts_with(b"POST / ")),
        "{requests:?}"
    );

    // The restarted slot, on the socket that stayed open.
    let _slot = Served(Some(serve_activated(
        &env,
        &held,
        &["--listen", &addr.to_string()],
    )));
    std::thread::sleep(Duration::from_millis(1000));
    let results = load.finish();
    assert_no_failures(&results);
}
