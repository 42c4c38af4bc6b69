//! A slot stopped with SIGTERM (a restart, an upgrade, `bluegreen up` stopping) finishes the
//! requests in flight and closes its idle keep-alive connections cleanly (issue 8, §4): an
//! idle connection sees the end of the stream, never a reset, and a request whose body was
//! still arriving gets its answer.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::util::{price, serve, Env, EXAMPLE};

fn request(keep_alive: bool) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: slot\r\nConnection: {}\r\nContent-Length: {}\r\n\r\n{EXAMPLE}",
        if keep_alive { "keep-alive" } else { "close" },
        EXAMPLE.len()
    )
}

#[test]
fn sigterm_answers_the_request_in_flight_and_closes_idle_connections_cleanly() {
    let env = Env::new();
    env.ok(&["init"]);
    let (mut slot, addr) = serve(&env, None);
    // Idle keep-alive connections: each has had one answer and waits for the next request.
    let mut idle: Vec<BufReader<TcpStream>> = (0..8)
        .map(|_| {
            let stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut conn = BufReader::new(stream);
            conn.get_mut().write_all(request(true).as_bytes()).unwrap();
            assert_eq!(crate::util::read_response(&mut conn).unwrap().status, 200);
            conn
        })
        .collect();
    // A request in flight: answered once on this connection, then a second one whose head and
    // half its body are sent before the SIGTERM, and the rest after.
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut busy = BufReader::new(stream);
    busy.get_mut().write_all(request(true).as_bytes()).unwrap();
    assert_eq!(crate::util::read_response(&mut busy).unwrap().status, 200);
    let second = request(true);
    let (before, after) = second.split_at(second.len() - EXAMPLE.len() / 2);
    busy.get_mut().write_all(before.as_bytes()).unwrap();
    // The slot has no signal for "head read"; 300 ms is ample for it to read 100 bytes.
    std::thread::sleep(Duration::from_millis(300));

    let pid = slot.pid();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();

    for (i, conn) in idle.iter_mut().enumerate() {
        let mut rest = Vec::new();
        let read = conn.read_to_end(&mut rest);
        assert!(
            matches!(read, Ok(0)),
            "idle connection {i}: expected a clean end of stream, got {read:?} {rest:?}"
        );
    }
    busy.get_mut().write_all(after.as_bytes()).unwrap();
    let r = crate::util::read_response(&mut busy).unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!((price(&r) - 30.23).abs() < 0.01);
    assert_eq!(r.header("connection"), Some("close"));
    let status = slot.0.take().unwrap().wait().unwrap();
    assert!(status.success(), "{status}");
}
