//! Slow clients cannot hold a slot's or NGINX's connection for long (issue 8, §9): a slot closes a
//! connection whose request head has not arrived within `limits.header_read_timeout_secs`
//! (trickled headers, or nothing at all), and answers 408 to a body that has not arrived within
//! `limits.body_read_timeout_secs`, while other clients are served as usual.

use std::io::{BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{assert_json_error, serve, stop, Env, EXAMPLE};

/// Longer than any timeout in the test's config: a connection still open by then is held.
const PATIENCE: Duration = Duration::from_secs(20);

/// True once the server has closed `stream`: a read sees end of file or a reset.
fn closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    stream.set_nonblocking(true).unwrap();
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// A client that sends `bytes` one at a time, `gap` apart, and never more than `bytes`;
/// returns how many it had sent when the server closed the connection, or panics after
/// PATIENCE if the server never did.
fn trickle(addr: SocketAddr, bytes: &'static [u8], gap: Duration) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        let mut sent = 0;
        while started.elapsed() < PATIENCE {
            if closed(&stream) {
                return sent;
            }
            if sent < bytes.len() {
                if stream.write_all(&bytes[sent..sent + 1]).is_err() {
                    return sent;
                }
                sent += 1;
            }
            std::thread::sleep(gap);
        }
        panic!("the server still holds a slow client's connection after {PATIENCE:?}");
    })
}

#[test]
fn a_slot_closes_slow_and_silent_connections_and_answers_a_slow_body_with_408() {
    let env = Env::with_extra("[limits]\nheader_read_timeout_secs = 3\nbody_read_timeout_secs = 1");
    env.ok(&["init"]);
    let (slot, addr) = serve(&env, None);
    let load = Load::start(addr, &[Client::Fresh, Client::KeepAlive], 2);

    // Slowloris: heads trickled a byte every 100 ms (40 s to finish), and connections that
    // send nothing at all.
    const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: slot\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let slowloris: Vec<_> = (0..10)
        .map(|_| trickle(addr, HEAD, Duration::from_millis(100)))
        .chain((0..10).map(|_| trickle(addr, b"", Duration::from_millis(100))))
        .collect();
    for client in slowloris {
        let sent = client.join().unwrap();
        assert!(
            sent < HEAD.len(),
            "the head was never whole, yet the slot waited for it"
        );
    }

    // A whole head, then the body a byte every 300 ms: a 408 in JSON, and the connection closed.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: slot\r\nContent-Length: {}\r\n\r\n",
        EXAMPLE.len()
    )
    .unwrap();
    let reader = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for byte in EXAMPLE.as_bytes() {
            if stream.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let r = crate::util::read_response(&mut BufReader::new(&reader)).unwrap();
    let error = assert_json_error(&r, 408, "a slow body");
    assert!(
        error.contains("within 1 s (limits.body_read_timeout_secs)"),
        "{error}"
    );
    assert_eq!(r.header("connection"), Some("close"));
    drop(reader);
    writer.join().unwrap();

    let results = load.finish();
    assert_no_failures(&results);
    assert!(stop(slot).success());
}

/// Opens `count` connections to `addr` that each send `bytes` (possibly nothing) and then
/// nothing more; returns once the server has closed every one of them, or panics after
/// PATIENCE.
fn stalled(addr: SocketAddr, count: usize, bytes: &'static [u8]) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut open: Vec<TcpStream> = (0..count)
            .map(|_| {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(bytes).unwrap();
                stream
            })
            .collect();
        let started = Instant::now();
        while !open.is_empty() {
            assert!(
                started.elapsed() < PATIENCE,
                "NGINX still holds {} of {count} stalled connections after {PATIENCE:?}",
                open.len()
            );
            std::thread::sleep(Duration::from_millis(100));
            open.retain(|s| !closed(s));
        }
    })
}

/// The same through NGINX (issue 8, §9): its own timeouts for a request's head and body follow
/// the slots' (`limits.*_read_timeout_secs`), not NGINX's 60 s, so a crowd of connections that
/// never finish their head, or stall in their body, is closed within those times while other
/// clients are answered as usual.
#[test]
fn nginx_closes_slow_and_silent_connections_while_other_clients_are_answered() {
    let env = Env::with_extra("[limits]\nheader_read_timeout_secs = 3\nbody_read_timeout_secs = 1");
    let _up = env.up();
    let addr = env.public;
    let load = Load::issue8(addr);

    const PARTIAL: &[u8] = b"POST / HTTP/1.1\r\nHost: bluegreen\r\nContent-Type: appl";
    const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: bluegreen\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    const STALLED_BODY: &[u8] =
        b"POST / HTTP/1.1\r\nHost: bluegreen\r\nContent-Length: 100\r\n\r\n{\"data\": [[";
    let crowd = [
        stalled(addr, 1000, b""),
        stalled(addr, 1000, PARTIAL),
        stalled(addr, 100, STALLED_BODY),
    ];
    // Heads trickled a byte every 100 ms (30 s to finish): NGINX's clock for the head runs
    // from the connection's opening, whatever arrives meanwhile.
    let trickled: Vec<_> = (0..10)
        .map(|_| trickle(addr, HEAD, Duration::from_millis(100)))
        .collect();
    for client in trickled {
        let sent = client.join().unwrap();
        assert!(
            sent < HEAD.len(),
            "the head was never whole, yet NGINX waited for it"
        );
    }
    for stalled in crowd {
        stalled.join().unwrap();
    }
    // The load ran beside all of it.
    let results = load.finish();
    println!("beside 2,110 slow connections through NGINX: {results:?}");
    assert_no_failures(&results);
}
