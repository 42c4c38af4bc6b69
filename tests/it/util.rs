//! The test harness: a temp dir with its own config and ports, and the real binary.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bluegreen::http;

pub const EXAMPLE: &str =
    r#"{"data": [[0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]]}"#;

/// A free loopback port (the OS picks one; a tiny race with other tests is acceptable).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `N` free loopback ports, all different: each listener stays open until every port is
/// picked, since the OS may hand a port it just got back to the next `bind` (an environment
/// once got the same port for `public_port` and `slots.blue`).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// Where NGINX is: PATH first, then Debian's place for it.
pub fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .expect("these tests run real NGINX: install it (`apt install nginx-light`)")
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub public: SocketAddr,
    pub blue: SocketAddr,
    pub green: SocketAddr,
}

impl Env {
    pub fn new() -> Env {
        Env::with_extra("")
    }

    /// An environment whose config also holds `extra` TOML; its tables are merged with the
    /// environment's own (`[nginx]` keys join `binary` and the rest).
    pub fn with_extra(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let [p, b, g] = free_ports();
        let config = dir.path().join("bluegreen.toml");
        let base = format!(
            "state_dir = \"state\"\npublic_port = {p}\n[slots]\nblue = \"127.0.0.1:{b}\"\ngreen = \"127.0.0.1:{g}\"\n[nginx]\nbinary = \"{}\"\nworker_shutdown_timeout_secs = 5\n",
            nginx_binary().display()
        );
        let mut table: toml::Table = base.parse().unwrap();
        let extra: toml::Table = extra.parse().expect("extra config is TOML");
        for (key, value) in extra {
            match (table.get_mut(&key), value) {
                (Some(toml::Value::Table(ours)), toml::Value::Table(theirs)) => ours.extend(theirs),
                (_, value) => {
                    table.insert(key, value);
                }
            }
        }
        std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
        Env {
            public: SocketAddr::from(([127, 0, 0, 1], p)),
            blue: SocketAddr::from(([127, 0, 0, 1], b)),
            green: SocketAddr::from(([127, 0, 0, 1], g)),
            dir,
            config,
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Sets `[table] key = value` in the config file, keeping every other key.
    pub fn set_key(&self, table: &str, key: &str, value: toml::Value) {
        let mut config: toml::Table = read(&self.config).parse().unwrap();
        let section = config
            .entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        section.as_table_mut().unwrap().insert(key.into(), value);
        std::fs::write(&self.config, toml::to_string(&config).unwrap()).unwrap();
    }

    pub fn csv(&self) -> PathBuf {
        self.state().join("data/boston.csv")
    }

    /// The binary with `--config` set, run in the temp dir.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bluegreen"));
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.current_dir(self.dir.path());
        cmd.env_remove("BLUEGREEN_CONFIG")
            .env_remove("NOTIFY_SOCKET");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bluegreen {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit status `code` (the output is shown if it differs); returns the
    /// output.
    pub fn exits(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "bluegreen {args:?} exited {}:\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command that must fail with exit status `code`; returns its stderr, where the
    /// error and its hint are.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        String::from_utf8_lossy(&self.exits(args, code).stderr).into_owned()
    }

    /// Starts `bluegreen up` and waits for it to say it is up.
    pub fn up(&self) -> Up {
        self.up_with_env(&[])
    }

    /// Starts `bluegreen up` with `vars` in its environment (and so its slots'), and waits for
    /// it to say it is up.
    pub fn up_with_env(&self, vars: &[(&str, &str)]) -> Up {
        let mut cmd = self.cmd(&["up"]);
        cmd.envs(vars.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Echo `up`'s output, its information (stdout) and its warnings (stderr), as the
        // test harness shows it for a failed test, and look for the lines a test waits for.
        let echo = |stream: Box<dyn std::io::Read + Send>, tx: mpsc::Sender<String>| {
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("  | {line}");
                    let _ = tx.send(line);
                }
            })
        };
        echo(Box::new(stdout), tx.clone());
        echo(Box::new(stderr), tx);
        let mut up = Up {
            child,
            lines: rx,
            banner: String::new(),
        };
        up.banner = up.wait_for_line("bluegreen is up");
        up
    }

    /// Starts `bluegreen up` and waits until its trainer's first run found nothing to do,
    /// so that a test can train and deploy by hand without the trainer deploying too (it
    /// deploys a model that passed the gate and is not active, at its next trigger).
    pub fn up_idle(&self) -> Up {
        let mut up = self.up();
        up.wait_for_line("no deploy is wanted");
        up
    }

    /// POSTs the original's example row through NGINX.
    pub fn predict(&self) -> http::Response {
        post(self.public, EXAMPLE)
    }

    /// The pids of this environment's processes whose command line holds `pattern` (and this
    /// environment's config file, which `up` passes to every `bluegreen` it starts).
    pub fn pids(&self, pattern: &str) -> Vec<i32> {
        let config = self.config.display().to_string();
        processes()
            .into_iter()
            .filter(|(_, cmdline)| cmdline.contains(&config) && cmdline.contains(pattern))
            .map(|(pid, _)| pid)
            .collect()
    }

    /// The pid of the process that serves `slot`; panics if there is none.
    pub fn slot_pid(&self, slot: &str) -> i32 {
        let pids = self.pids(&format!("serve --slot {slot} "));
        assert_eq!(pids.len(), 1, "one process serves {slot}: {pids:?}");
        pids[0]
    }

    /// The pid of `up`'s NGINX master, from its pid file.
    pub fn nginx_master(&self) -> i32 {
        read(&self.state().join("nginx/nginx.pid"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Every NGINX process of this environment, master and workers alike: the members of
    /// the process groups of the masters that ran here (`up` starts each NGINX as the leader
    /// of a group of its own).
    pub fn nginx_processes(&self, masters: &[i32]) -> Vec<i32> {
        processes()
            .into_iter()
            .filter(|(pid, cmdline)| {
                cmdline.starts_with("nginx:")
                    && process_group(*pid).is_some_and(|g| masters.contains(&g))
            })
            .map(|(pid, _)| pid)
            .collect()
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// Waits until a deploy of a model other than `old` has completed (it is in the
    /// history), then checks that NGINX answers with it; returns the new version. An answer
    /// alone is not enough to wait for: until the deploy has seen every old NGINX worker stop
    /// accepting, a request may still reach one of them.
    pub fn wait_for_new_version(&self, old: &str, within: Duration) -> String {
        let history = self.state().join("deploys.jsonl");
        let deadline = Instant::now() + within;
        loop {
            let last = bluegreen::history::last(&history, 1).unwrap().pop();
            if let Some(record) = last {
                let to = record.to_version.clone().unwrap_or_default();
                if record.outcome == bluegreen::history::Outcome::Deployed && to != old {
                    let r = self.predict();
                    assert_eq!(r.header("x-model-version"), Some(to.as_str()));
                    return to;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no deploy away from {old} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Every process with its command line (arguments joined by spaces).
pub fn processes() -> Vec<(i32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

/// A process's group, from `/proc/PID/stat`.
pub fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Sends SIGKILL, as `kill -9` does.
pub fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// A command's standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn post(addr: SocketAddr, body: &str) -> http::Response {
    http::request(
        addr,
        "POST",
        "/",
        Some(body.as_bytes()),
        Duration::from_secs(5),
    )
    .unwrap()
}

pub fn get(addr: SocketAddr, path: &str) -> http::Response {
    http::request(addr, "GET", path, None, Duration::from_secs(5)).unwrap()
}

/// A running `bluegreen up`; stopped with SIGINT (as Ctrl-C would) when dropped.
pub struct Up {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The line that said it is up.
    pub banner: String,
}

impl Up {
    /// Waits (up to 60 s) for a line of `up`'s output (stdout or stderr) that contains
    /// `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("bluegreen up never said {needle:?}; its output is above");
                }
            }
        }
    }

    /// Stops it as Ctrl-C would and returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.interrupt()
    }

    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.interrupt();
        }
    }
}

pub fn price(r: &http::Response) -> f64 {
    r.json().unwrap()["Price"].as_f64().unwrap()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Any method, any path, with a body.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> http::Response {
    http::request(
        addr,
        method,
        path,
        Some(body.as_bytes()),
        Duration::from_secs(5),
    )
    .unwrap()
}

/// Sends `bytes` as they are on a new connection and reads one answer: for requests no
/// well-behaved client would send. A server may refuse early and close while the rest is
/// still being written; the answer is read all the same.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> http::Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    read_response(&mut BufReader::new(stream)).unwrap()
}

/// Reads one answer from a connection the test wrote its request to itself (raw bytes,
/// keep-alive): the head through `httparse`, then a `Content-Length` body, or everything to
/// the end of the stream. Slots and NGINX do not answer these tests chunked; a chunked
/// answer is refused here rather than misread.
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<http::Response> {
    use std::io::{Error, ErrorKind};
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if reader.read_until(b'\n', &mut head)? == 0 {
            let kind = if head.is_empty() {
                ErrorKind::UnexpectedEof
            } else {
                ErrorKind::InvalidData
            };
            return Err(Error::new(kind, "connection closed before a whole answer"));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(&head)
        .map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
    let status = parsed.code.unwrap_or_default();
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if find("transfer-encoding").is_some() {
        return Err(Error::new(ErrorKind::InvalidData, "a chunked answer"));
    }
    let mut body = Vec::new();
    match find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok(http::Response {
        status,
        headers,
        body,
    })
}

/// Asserts an answer NGINX or a slot made for a bad request: `status`, a JSON body with a
/// non-empty `error` and `hint`, and `Content-Type: application/json`. Returns the error.
pub fn assert_json_error(r: &http::Response, status: u16, what: &str) -> String {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "{what}: {body}");
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{what}: {body}"
    );
    let json = r
        .json()
        .unwrap_or_else(|| panic!("{what}: not JSON: {body}"));
    let hint = json["hint"].as_str().unwrap_or_default();
    assert!(!hint.is_empty(), "{what}: no hint in {body}");
    let error = json["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{what}: no error in {body}");
    error.to_string()
}

/// A `bluegreen serve` process, killed when dropped, so a failed assertion leaves none behind.
pub struct Served(pub Option<Child>);

impl Served {
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0.as_ref().unwrap().id() as i32)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `serve --slot blue` on a port the OS picks; returns the child and its address.
pub fn serve(env: &Env, notify: Option<&Path>) -> (Served, SocketAddr) {
    let mut cmd = env.cmd(&["serve", "--slot", "blue", "--listen", "127.0.0.1:0"]);
    if let Some(path) = notify {
        cmd.env("NOTIFY_SOCKET", path);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "blue: active: serving v0001-… on 127.0.0.1:PORT", then the line's fields.
    let addr = line
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (Served(Some(child)), addr)
}

/// Stops the server as systemd would (SIGTERM) and returns how it exited.
pub fn stop(mut served: Served) -> ExitStatus {
    let mut child = served.0.take().unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap()
}

/// Runs `serve --slot blue` the way systemd's socket activation does: `listener` as fd 3,
/// `LISTEN_FDS=1`, and `LISTEN_PID` set to the server's own pid (a shell's `$$`, kept by
/// its `exec`). `extra` are more arguments to `serve`.
pub fn serve_activated(env: &Env, listener: &impl std::os::fd::AsRawFd, extra: &[&str]) -> Child {
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_bluegreen"))
        .args([
            "--config",
            env.config.to_str().unwrap(),
            "serve",
            "--slot",
            "blue",
        ])
        .args(extra)
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec this only calls dup2 or fcntl (async-signal-safe) to put
    // the listener at fd 3 without close-on-exec; fd 3 is deliberately left open for exec.
    unsafe {
        cmd.pre_exec(move || {
            use nix::fcntl::{fcntl, FcntlArg, FdFlag};
            use std::os::fd::{BorrowedFd, IntoRawFd};
            let old = BorrowedFd::borrow_raw(fd);
            if fd == 3 {
                fcntl(old, FcntlArg::F_SETFD(FdFlag::empty()))?;
            } else {
                let _ = nix::unistd::dup2_raw(old, 3)?.into_raw_fd();
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

impl Env {
    /// Points `up`'s NGINX at `addr` instead of the active slot, as a test's stand-in for a
    /// slot: rewrites the include with that address on every `server` line and reloads.
    /// Returns once NGINX's new workers run (the old ones may still finish requests).
    pub fn point_nginx_at(&self, addr: SocketAddr) {
        let include = self.state().join("nginx/upstream.conf");
        let text = read(&include);
        let mut out = String::new();
        for line in text.lines() {
            match line.trim_start().strip_prefix("server ") {
                Some(rest) => {
                    let old = rest.split_whitespace().next().unwrap();
                    out += &line.replacen(old, &addr.to_string(), 1);
                }
                None => out += line,
            }
            out.push('\n');
        }
        std::fs::write(&include, out).unwrap();
        let config = bluegreen::config::Config::from_file(&self.config).unwrap();
        let nginx = bluegreen::nginx::Nginx::local(
            &config,
            &bluegreen::layout::Layout::new(&config.state_dir),
        );
        let before = nginx.workers();
        nginx.reload().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !nginx.workers().iter().any(|w| !before.contains(w)) {
            assert!(Instant::now() < deadline, "NGINX did not reload");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A request through NGINX with `X-Bluegreen-Preview: 1` (issue 11), to `addr`: GET `path`,
/// or POST the example row when `path` is `/`.
pub fn preview(addr: SocketAddr, path: &str) -> http::Response {
    raw(addr, preview_request(path).as_bytes())
}

/// One request from the local address `source` ([`connect_from`]) to `to`.
pub fn from(
    source: std::net::Ipv4Addr,
    to: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> http::Response {
    let mut stream = connect_from(source, to);
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut BufReader::new(stream)).unwrap()
}

/// [`preview`] from the local address `source` ([`connect_from`]).
pub fn preview_from(source: std::net::Ipv4Addr, addr: SocketAddr, path: &str) -> http::Response {
    let mut stream = connect_from(source, addr);
    stream.write_all(preview_request(path).as_bytes()).unwrap();
    read_response(&mut BufReader::new(stream)).unwrap()
}

fn preview_request(path: &str) -> String {
    if path == "/" {
        format!(
            "POST / HTTP/1.1\r\nHost: test\r\nX-Bluegreen-Preview: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{EXAMPLE}",
            EXAMPLE.len()
        )
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nX-Bluegreen-Preview: 1\r\nConnection: close\r\n\r\n")
    }
}

/// A connection to `to` from the local address `source` (bound before connecting), with a
/// 10 s read timeout: NGINX sees `source` as the client's address, for its access rules.
pub fn connect_from(source: std::net::Ipv4Addr, to: SocketAddr) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(to) = to else {
        panic!("the tests' NGINX listens on IPv4")
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)),
    )
    .unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
    let stream = TcpStream::from(fd);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}
