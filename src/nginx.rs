//! NGINX: the site config, the include that names the active slot, and driving the master.
//!
//! The include (`state_dir/nginx/upstream.conf`) is what NGINX routes by, and so where the
//! active slot is read (`crate::switch`, which also says what the include lists in each
//! switch mode). In reload mode a switch writes a new include whole, has `nginx -t` check the
//! complete configuration, and sends SIGHUP to the master; NGINX then starts new workers with
//! the new upstream and lets the old ones finish their requests (bounded by
//! `worker_shutdown_timeout`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::Config;
use crate::layout::Layout;
use crate::switch::Mode;

#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    /// The pid file could not be read; the `fs-err` source names it and why.
    #[error("cannot read the NGINX pid file; hint: is NGINX running? (`systemctl status nginx`)")]
    PidFile(#[source] io::Error),
    /// A file bluegreen writes for NGINX (the site, the dashboard's include, the site's
    /// record) could not be written; the `fs-err` source names it.
    #[error("cannot write NGINX's configuration")]
    Write(#[source] io::Error),
    #[error("cannot run {binary:?}: {source}; hint: install NGINX (`apt install nginx`) or set nginx.binary in the config")]
    Missing {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`nginx -t` refused the configuration:\n{output}")]
    TestFailed { output: String },
    #[error("the NGINX pid file {path} does not hold a pid; hint: is NGINX running? (`systemctl status nginx`)")]
    BadPid { path: PathBuf },
    #[error("cannot signal the NGINX master (pid {pid}): {source}; hint: is NGINX running?")]
    Signal {
        pid: i32,
        #[source]
        source: nix::Error,
    },
}

/// How to reach one NGINX instance: the system's, or the one `bluegreen up` runs.
#[derive(Debug, Clone)]
pub struct Nginx {
    pub binary: PathBuf,
    pub conf: PathBuf,
    pub pid_file: PathBuf,
    /// For `up`'s own NGINX: its prefix folder and error log, passed as `-p` and `-e` so
    /// that nothing is read from or written to the system's NGINX paths.
    pub local: Option<(PathBuf, PathBuf)>,
}

impl Nginx {
    /// The system's NGINX, as the config names it.
    pub fn system(config: &Config) -> Nginx {
        Nginx {
            binary: config.nginx.binary.clone(),
            conf: config.nginx.conf.clone(),
            pid_file: config.nginx.pid_file.clone(),
            local: None,
        }
    }

    /// The NGINX that `bluegreen up` runs, with everything under `state_dir/nginx`.
    pub fn local(config: &Config, layout: &Layout) -> Nginx {
        let dir = layout.nginx_dir();
        Nginx {
            binary: config.nginx.binary.clone(),
            conf: dir.join("nginx.conf"),
            pid_file: dir.join("nginx.pid"),
            local: Some((dir.clone(), dir.join("error.log"))),
        }
    }

    /// A command for this NGINX with its config (and prefix) arguments.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        if let Some((prefix, error_log)) = &self.local {
            cmd.arg("-p").arg(prefix).arg("-e").arg(error_log);
        }
        cmd.arg("-c").arg(&self.conf);
        cmd
    }

    /// Runs `nginx -t` on the whole configuration.
    pub fn test(&self) -> Result<(), NginxError> {
        let output = self
            .command()
            .arg("-t")
            .arg("-q")
            .output()
            .map_err(|source| NginxError::Missing {
                binary: self.binary.clone(),
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(NginxError::TestFailed {
                output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// The master's pid, from its pid file.
    pub fn master_pid(&self) -> Result<Pid, NginxError> {
        let text = fs_err::read_to_string(&self.pid_file).map_err(NginxError::PidFile)?;
        text.trim()
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 1)
            .map(Pid::from_raw)
            .ok_or_else(|| NginxError::BadPid {
                path: self.pid_file.clone(),
            })
    }

    /// Sends SIGHUP to the master: reload the configuration gracefully.
    pub fn reload(&self) -> Result<Pid, NginxError> {
        let pid = self.master_pid()?;
        kill(pid, Signal::SIGHUP).map_err(|source| NginxError::Signal {
            pid: pid.as_raw(),
            source,
        })?;
        Ok(pid)
    }

    /// The master's worker processes (all its children), by pid.
    pub fn workers(&self) -> Vec<i32> {
        let Ok(master) = self.master_pid() else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| parent_pid(*pid) == Some(master.as_raw()))
            .collect()
    }

    /// How many workers of the master are still finishing requests from before a reload.
    /// NGINX retitles such a worker "nginx: worker process is shutting down", at the moment
    /// it closes its listening sockets.
    pub fn old_workers(&self) -> usize {
        self.workers()
            .into_iter()
            .filter(|pid| shutting_down(*pid))
            .count()
    }

    /// How many of the workers in `before` (taken before a reload) still accept new
    /// connections: alive, and not yet shutting down. Until this is 0 a client may still
    /// reach the old upstream, even after one answer came from the new one.
    pub fn still_accepting(&self, before: &[i32]) -> usize {
        let now = self.workers();
        before
            .iter()
            .filter(|pid| now.contains(pid) && !shutting_down(**pid))
            .count()
    }
}

fn shutting_down(pid: i32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("shutting down"))
        .unwrap_or(false)
}

fn parent_pid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// How many times the include lists the active slot, which is how many attempts NGINX makes
/// at one request (`proxy_next_upstream_tries` in the site).
///
/// NGINX tries each `server` line of an upstream at most once per request, so with the slot
/// listed once a failed attempt has nowhere to go. A prediction is a pure function of its
/// request, so NGINX may send it again when an attempt failed before any answer (issue 8, §4):
/// e.g. on a kept-alive connection the slot closed at that instant, then on one that waits in
/// the slot's held socket while a crashed slot restarts. NGINX accepts the same address on
/// several `server` lines (`nginx -t`).
///
/// Why 8 and not 3: when a slot is killed, every idle connection an NGINX worker keeps to it
/// dies at once, and a retry takes the next one from the worker's cache before the worker has
/// seen that it closed; each such attempt uses up a line too (the round-robin balancer marks a
/// line tried whether its connection was cached or new). With 3 lines, `kill -9` of the active
/// slot under 16 keep-alive and 8 `Connection: close` clients failed 2–5 requests in 3 kills
/// (`tests/it/faults/slot_crash.rs`); with 8, none in 5 runs, nor in bench/run's 20 kills.
pub const ATTEMPTS: usize = 8;

/// Idle connections each NGINX worker keeps open to the active slot (`keepalive`).
pub const KEEPALIVE: usize = 256;

/// How many `server` lines the include lists for the active slot: one per connection a
/// worker may hold idle ([`KEEPALIVE`]), plus [`ATTEMPTS`].
///
/// NGINX takes a line for every attempt, cached connection or new, and never a line twice
/// per request (the round-robin balancer; past the last one: "no live upstreams", a 502).
/// An attempt that failed on a cached connection does not count against
/// `proxy_next_upstream_tries` (`ngx_http_upstream_next` adds the try back), but it does use
/// up a line. When the slot dies, every idle connection of the cache is dead; over TCP NGINX
/// sees that only when it reads, after its event loop has run their close handlers. Over a
/// unix socket (switch mode "socket") the write fails at once (EPIPE), so NGINX retries at
/// once on the next dead cached connection, and the next, in one go: with 8 lines, `kill -9`
/// of the active slot under 64 keep-alive and 16 `Connection: close` clients failed 1–9
/// requests in 3 kills (NGINX's log: seven `writev() failed (32: Broken pipe)`, then `no live
/// upstreams`). With a line per cached connection, a request always gets past the whole
/// cache to a new connection, which waits in the held socket for the slot's next incarnation.
pub const SERVER_LINES: usize = KEEPALIVE + ATTEMPTS;

/// How long NGINX keeps an idle connection to a slot (`keepalive_timeout` in the upstream),
/// in seconds. Slots close connections idle for `limits.header_read_timeout_secs`, which the
/// config requires to be longer: NGINX, not the slot, closes an idle connection, so NGINX never
/// sends a request on a connection the slot is closing at that very moment.
pub const UPSTREAM_IDLE_SECS: u64 = 2;

/// The include: `upstream bluegreen_active`, each of `active`'s servers (an address, or
/// `unix:PATH`, with an upstream weight during a canary step) listed [`SERVER_LINES`] times
/// ([`ATTEMPTS`] times each during a canary step), and `upstream bluegreen_resting`, the
/// resting slot `resting`, where a preview and the shadow mirror go (issue 11); under a
/// comment line saying `note`. Which servers those are is `crate::switch`'s to say.
pub fn render_include(active: &[(String, Option<u32>)], resting: &str, note: &str) -> String {
    let line = |server: &str, weight: Option<u32>| {
        let weight = weight.map(|w| format!(" weight={w}")).unwrap_or_default();
        format!("    server {server}{weight} max_fails=0;\n")
    };
    // During a canary step, ATTEMPTS lines per slot: with SERVER_LINES each, the weighted
    // balancer sent a request the candidate answered 500 back to other candidate lines until
    // its tries ran out (faults::bad_candidate), rather than to the active slot.
    let lines = if active.len() == 1 {
        SERVER_LINES
    } else {
        ATTEMPTS
    };
    let servers: String = active
        .iter()
        .flat_map(|(server, weight)| (0..lines).map(move |_| line(server, *weight)))
        .collect();
    let resting_servers: String = (0..ATTEMPTS).map(|_| line(resting, None)).collect();
    let listed = if active.len() == 1 {
        format!("The active slot, {SERVER_LINES} times")
    } else {
        format!("Each slot of the canary split, {ATTEMPTS} times")
    };
    format!(
        "# Written by bluegreen; every deploy and rollback replaces it. Do not edit.\n\
         # {note}\n\
         upstream bluegreen_active {{\n    \
             # {listed}: NGINX tries each line at most once per\n    \
             # request, so a request whose attempt failed before any answer is retried on the\n    \
             # next line (proxy_next_upstream in the site); a line per idle connection kept\n    \
             # (keepalive), since when the slot dies they all fail, plus {ATTEMPTS} for new\n    \
             # connections. max_fails=0: NGINX must never mark the slot down and refuse\n    \
             # requests for fail_timeout after it is back. During a canary step (issue 11)\n    \
             # both slots are here, their weights splitting the traffic.\n\
         {servers}    \
             # Idle connections kept open to the slot, per NGINX worker. Past this many\n    \
             # requests in flight, each extra one opens and closes a connection of its own:\n    \
             # with 64, 256 clients made ~10,000 new connections a second (bench/run).\n    \
             keepalive {KEEPALIVE};\n    \
             keepalive_requests 100000;\n    \
             # Shorter than the slots' own idle limit (limits.header_read_timeout_secs), so\n    \
             # that NGINX, not the slot, closes an idle connection.\n    \
             keepalive_timeout {UPSTREAM_IDLE_SECS}s;\n\
         }}\n\
         upstream bluegreen_resting {{\n    \
             # The resting slot: a request with X-Bluegreen-Preview: 1 from an allowed address,\n    \
             # and the shadow mirror's copies, go here (issue 11).\n\
         {resting_servers}    \
             keepalive 16;\n    \
             keepalive_timeout {UPSTREAM_IDLE_SECS}s;\n\
         }}\n"
    )
}

/// The location the shadow mirror's copies go to (issue 11); internal, like the error pages.
pub const SHADOW_LOCATION: &str = "/_bluegreen/shadow";

/// The location a live request drawn for the shadow is redirected to while a shadow phase
/// runs (issue 11): it is proxied as in `location /`, and `mirror` copies it to
/// [`SHADOW_LOCATION`]. Internal.
pub const SHADOW_MIRRORED: &str = "/_bluegreen/mirrored";

/// The variable that says whether a live request is drawn for the shadow: `1` for
/// `rollout.shadow_percent` of them, `0` for the rest. Defined by the share file
/// ([`render_shadow_share`]) in NGINX's http context, where the packaged site is one of any
/// number of sites: hence the `bluegreen_` prefix, as for every name the site defines there.
pub const SHADOW_SAMPLED: &str = "$bluegreen_shadow_sampled";

/// The shadow file (`state_dir/nginx/shadow.conf`), which the site includes in its
/// `location /`: while a shadow phase runs, a request drawn by [`SHADOW_SAMPLED`] goes on in
/// [`SHADOW_MIRRORED`], the others stay; nothing otherwise.
///
/// The draw is made before any mirror: NGINX's `mirror` cannot be conditional (its contexts
/// are http, server and location, not `if`; NGINX docs), and a mirror subrequest made for
/// every request and dropped unless drawn still cost NGINX about a quarter more CPU per
/// request at 0.01% copied (bench/run section 7, while this design was chosen). `rewrite …
/// last` inside `if` is one of the two uses of `if` in a location that NGINX's wiki ("If is
/// Evil") calls 100% safe.
pub fn render_shadow(on: bool) -> String {
    let head =
        "# Written by bluegreen (issue 11) with shadow-share.conf: the shadow mirror, on only\n\
                # while a rollout's shadow phase runs. Do not edit.\n";
    if on {
        format!("{head}if ({SHADOW_SAMPLED}) {{\n    rewrite ^ {SHADOW_MIRRORED} last;\n}}\n")
    } else {
        head.to_string()
    }
}

/// The share file (`state_dir/nginx/shadow-share.conf`), which the site includes in NGINX's
/// http context beside the include: which live requests the shadow copies to the candidate,
/// [`SHADOW_SAMPLED`]. `percent` is `rollout.shadow_percent` while a shadow phase runs (a
/// share of live requests, 0.01 to 100 with at most two decimals, as `Settings` checks);
/// `None` otherwise, when no copy is made and none would go on.
///
/// `split_clients` (NGINX docs, ngx_http_split_clients_module) hashes a string with
/// MurmurHash2 and gives the variable the value of the bucket the hash falls in; buckets are
/// percentages with at most two decimals. The string is the connection's serial number and
/// the request's number on it (`$connection`, `$connection_requests`; NGINX docs), which no
/// two requests share, so each is drawn on its own, on a keep-alive connection as on a new
/// one. Not `$request_id`: until NGINX 1.29 it took 16 bytes from OpenSSL's `RAND_bytes`
/// for every request, which NGINX's own change to SipHash (c5f2afd) calls 50–100 times
/// slower than needed; with it the draw alone cost 1.04–1.17× the CPU per request
/// (bench/run section 7, NGINX 1.22).
pub fn render_shadow_share(percent: Option<f64>) -> String {
    let head = "# Written by bluegreen (issue 11) with shadow.conf: the share of live requests a\n\
                # rollout's shadow phase copies to the candidate. Do not edit.\n";
    let buckets = match percent {
        Some(p) => format!("    {p:.2}% 1;\n    * 0;\n"),
        None => "    * 0;\n".to_string(),
    };
    format!(
        "{head}split_clients \"${{connection}}:${{connection_requests}}\" {SHADOW_SAMPLED} {{\n{buckets}}}\n"
    )
}

/// Where the site's `error_page`s send NGINX's own answers: internal locations, one per
/// status. Not named locations (`@…`): NGINX refuses to enter one for a request whose request
/// line it could not read ("empty URI in redirect to named location", a 500 instead of the
/// 400 or 414), while an internal redirect to a URI works at any stage.
const ERROR_PREFIX: &str = "/_bluegreen/error/";

/// An answer NGINX makes itself, without a slot: the status NGINX raises, the status the
/// client gets, and the JSON body's `error` and `hint`.
struct OwnAnswer {
    raised: u16,
    sent: u16,
    error: String,
    hint: String,
}

/// Every status NGINX itself answers with in this site (ngx_http_special_response.c lists
/// them). 408 is not among them: NGINX closes a connection whose client is too slow without
/// an answer. The texts hold no `'`, `$` or `\`, which NGINX would read inside `return '…'`.
fn own_answers(config: &Config) -> Vec<OwnAnswer> {
    let slot_wait = config.nginx.upstream_timeout_secs;
    let answer = |raised, sent, error: String, hint: &str| OwnAnswer {
        raised,
        sent,
        error,
        hint: hint.to_string(),
    };
    let dashboard_hint = &format!(
        "open it on the server itself, http://127.0.0.1:{}/-/, or add your network to [dashboard] allow in the config and run `bluegreen restart`",
        config.public_port
    );
    vec![
        answer(
            400,
            400,
            "NGINX could not read the request: its request line, a header (HTTP/1.1 needs Host) or its chunked body is malformed".into(),
            "send one HTTP/1.1 request: POST / with a JSON body {data: [[numbers], ...]}",
        ),
        answer(
            403,
            403,
            "the dashboard (/-/) is open to this host and to the addresses in [dashboard] allow only".into(),
            dashboard_hint,
        ),
        answer(
            404,
            404,
            "no such path".into(),
            "predictions are POST / or POST /inference",
        ),
        answer(
            405,
            405,
            "NGINX does not allow this method here".into(),
            "predictions are POST / or POST /inference; the dashboard (/-/) takes GET and HEAD",
        ),
        answer(
            413,
            413,
            format!(
                "the request body is larger than {} bytes (limits.max_body_bytes)",
                config.limits.max_body_bytes
            ),
            "send fewer rows per request",
        ),
        answer(
            414,
            414,
            "the request line is longer than 8 KB (large_client_header_buffers)".into(),
            "send the rows in the JSON body of POST /, not in the URI",
        ),
        // NGINX's own code for a header line or cookie over one large buffer (8 KB), sent as
        // a plain 400 unless error_page says otherwise; 431 is the status for it (RFC 6585).
        answer(
            494,
            431,
            "a request header, or a cookie, is longer than 8 KB (large_client_header_buffers)".into(),
            "send fewer or smaller headers: this API reads none but Content-Type and Content-Length",
        ),
        answer(
            500,
            500,
            "NGINX failed while handling the request".into(),
            "see the NGINX error log, then `bluegreen status`",
        ),
        answer(
            501,
            501,
            "the request uses a Transfer-Encoding NGINX does not implement".into(),
            "send the body with Content-Length, or with Transfer-Encoding: chunked",
        ),
        answer(
            502,
            502,
            "no model server answered: the active slot refused or dropped the connection".into(),
            "retry shortly, the slot may be restarting; see `bluegreen status` on the server",
        ),
        answer(
            503,
            503,
            "no model server is available".into(),
            "retry shortly; see `bluegreen status` on the server",
        ),
        answer(
            504,
            504,
            format!("the model server did not answer within {slot_wait} s (nginx.upstream_timeout_secs)"),
            "send fewer rows per request; see `bluegreen status` on the server",
        ),
        answer(
            505,
            505,
            "the request uses an HTTP version NGINX does not support".into(),
            "send HTTP/1.1",
        ),
    ]
}

/// The directives of the site's `location /` that send a live request to the slots, which
/// the shadow's mirrored location repeats (issue 11): keep-alive, the only headers a slot
/// reads, short timeouts, retries.
fn proxy_to_slots(config: &Config) -> String {
    format!(
        r#"        # Keep-alive to the slot: HTTP/1.1 with the client's Connection header cleared.
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        # A slot reads the body and its type, nothing else, so no other client header reaches
        # it: NGINX bounds header sizes, but the slot's parser also takes at most 100 header
        # lines, and would answer more with an empty 431 instead of JSON.
        proxy_pass_request_headers off;
        proxy_set_header Content-Type $content_type;
        # The Open Inference Protocol's binary tensor data (Triton's extension, which
        # tritonclient uses by default) needs the length of the JSON before the bytes. An
        # empty value sends no header (NGINX docs, proxy_set_header).
        proxy_set_header Inference-Header-Content-Length $http_inference_header_content_length;
        # A slot answers in microseconds or refuses at once: connect and answer timeouts are
        # short, so a slot that hangs costs a client {slot_wait} s and a 504, not a minute.
        proxy_connect_timeout 2s;
        proxy_send_timeout {slot_wait}s;
        proxy_read_timeout {slot_wait}s;
        # An attempt that failed before any answer (the slot closed a kept-alive connection,
        # crashed or restarted) is sent again: predictions are pure, so POST may be retried
        # too. The include lists the active slot once per kept connection and {ATTEMPTS} more
        # (each slot {ATTEMPTS} times during a canary step) to give it somewhere to go. Retries
        # may start until the first attempt's answer was due, never after a read timeout.
        # A slot answers 500 only when it is broken, never for a client's fault (its error
        # policy): such an answer is retried too, so that a failing canary (issue 11) costs
        # clients nothing while the rollout sees its errors and stops it.
        proxy_next_upstream error timeout http_500 non_idempotent;
        proxy_next_upstream_tries {ATTEMPTS};
        proxy_next_upstream_timeout {slot_wait}s;
        # Answers are small; never spill one to a temp file.
        proxy_max_temp_file_size 0;
"#,
        slot_wait = config.nginx.upstream_timeout_secs,
    )
}

/// The site: NGINX's public server, proxying everything to the active slot.
pub fn render_site(config: &Config, include: &Path) -> String {
    let shadow = include.with_file_name("shadow.conf");
    let shadow_share = include.with_file_name("shadow-share.conf");
    let preview_local: String = crate::rollout::preview::LOCAL
        .iter()
        .map(|net| format!("    {net} 1;\n"))
        .collect();
    let preview_from = Layout::new(&config.state_dir).preview_include();
    let refused = serde_json::json!({
        "error": "X-Bluegreen-Preview is honoured only from this host (127.0.0.1, ::1) and the addresses in nginx.preview_from",
        "hint": "send the preview from the server itself, or add this address to nginx.preview_from and run `bluegreen restart`; without the header the active slot answers",
    })
    .to_string();
    let dashboard = render_dashboard(config);
    let body = config.limits.max_body_bytes;
    let answers = own_answers(config);
    let proxy = proxy_to_slots(config);
    // The shadow's mirrored location repeats the directives, not their explanations.
    let proxy_again: String = proxy
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let error_pages: String = answers
        .iter()
        .map(|a| {
            let to = if a.raised == a.sent {
                String::new()
            } else {
                format!("={} ", a.sent)
            };
            format!(
                "    error_page {} {to}{ERROR_PREFIX}{};\n",
                a.raised, a.sent
            )
        })
        .collect();
    let error_locations: String = answers
        .iter()
        .map(|a| {
            let json = serde_json::json!({ "error": a.error, "hint": a.hint }).to_string();
            format!(
                "    location = {ERROR_PREFIX}{sent} {{\n        internal;\n        return {sent} '{json}';\n    }}\n",
                sent = a.sent
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        r#"# bluegreen: the public entry point for the model's API.
# `upstream bluegreen_active` comes from the include below, which `bluegreen deploy` and
# `bluegreen rollback` rewrite before they reload NGINX; see `bluegreen status`.
include {include};
# Which live requests a rollout's shadow phase copies to the candidate (issue 11):
# $bluegreen_shadow_sampled, 1 for rollout.shadow_percent of them. Written with shadow.conf.
include {shadow_share};

# Preview (issue 11): a request with `X-Bluegreen-Preview: 1` from this host (127.0.0.1, ::1)
# or nginx.preview_from goes to the resting slot (`upstream bluegreen_resting`), where a
# candidate waits for `bluegreen promote`; from any other address it is refused (403).
# nginx.preview_from is in the include, which `bluegreen restart` rewrites when it changes.
geo $bluegreen_preview_from {{
    default 0;
{preview_local}    include {preview_from};
}}
map "$http_x_bluegreen_preview:$bluegreen_preview_from" $bluegreen_upstream {{
    default bluegreen_active;
    "1:1" bluegreen_resting;
}}
map "$http_x_bluegreen_preview:$bluegreen_preview_from" $bluegreen_preview_refused {{
    default 0;
    "1:0" 1;
}}

server {{
    listen {port};
    server_name _;

    if ($bluegreen_preview_refused) {{
        return 403 '{refused}';
    }}

    # Bodies up to the slots' own limit stay in memory: no temp files, and a request the
    # slot would refuse as too large is refused here with the same status. Being in memory,
    # a request can be sent again to the slot (proxy_next_upstream below).
    client_max_body_size {body};
    client_body_buffer_size {body};
    # A slow client cannot hold a connection for long, here as at the slots (issue 8, §9):
    # its request head must be in within limits.header_read_timeout_secs of the connection's
    # opening (NGINX does not restart that clock when a byte arrives), and its body may pause
    # at most limits.body_read_timeout_secs between two reads; then NGINX closes the
    # connection without an answer. With NGINX's defaults, 60 s each, a few thousand
    # connections that never finish their head filled the workers' worker_connections.
    client_header_timeout {header_wait}s;
    client_body_timeout {body_wait}s;
    # NGINX's defaults, stated: a request line or one header line longer than 8 KB is refused
    # (414, 431 below).
    client_header_buffer_size 1k;
    large_client_header_buffers 4 8k;

    # Everything NGINX answers itself is JSON, whatever the path looks like.
    types {{ }}
    default_type application/json;

    # NGINX's own answers, in JSON like the slots' (issue 8, §2). Here at server level, not in
    # a location: 400, 414 and 494 arise while NGINX reads the request head, before it chooses
    # a location, and then only the server's error_page applies. Without `=`, the status sent
    # is NGINX's own. A slot's own answers pass through untouched (proxy_intercept_errors is
    # off), so these are only what NGINX itself says. The targets are internal locations
    # (below), so a client asking for one of them gets the JSON 404.
{error_pages}
    location / {{
        # bluegreen_active, or bluegreen_resting for an allowed preview (above). A name in a
        # variable is looked up among the upstream groups (proxy_pass's docs).
        proxy_pass http://$bluegreen_upstream;
        # The shadow mirror, on only while a rollout's shadow phase runs (issue 11).
        include {shadow};
{proxy}    }}

    # A live request the shadow's share drew goes here while a shadow phase runs (issue 11;
    # shadow.conf redirects it): to the slots as in `location /`, with the URI as the client
    # sent it, and copied to the candidate by NGINX's mirror. A request not drawn never
    # makes the mirror's subrequest, which costs NGINX CPU even when it goes no further.
    location = {shadow_mirrored} {{
        internal;
        proxy_pass http://$bluegreen_upstream$request_uri;
        mirror {shadow_location};
        mirror_request_body on;
        # As in `location /`:
{proxy_again}    }}

    # The shadow mirror's copies of live requests go to the resting slot (issue 11). Their
    # answers are dropped, but NGINX ends the client's request, and so reads the next one on
    # a keep-alive connection, only once its copy is done: short timeouts bound what a slow
    # candidate can cost a client. No retries: a copy is measured once.
    location = {shadow_location} {{
        internal;
        proxy_pass http://bluegreen_resting$request_uri;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass_request_headers off;
        proxy_set_header Content-Type $content_type;
        proxy_set_header Inference-Header-Content-Length $http_inference_header_content_length;
        proxy_set_header X-Bluegreen-Shadow 1;
        proxy_connect_timeout 100ms;
        proxy_send_timeout 250ms;
        proxy_read_timeout 250ms;
        proxy_next_upstream off;
        proxy_max_temp_file_size 0;
    }}

{dashboard}
{error_locations}}}
"#,
        include = include.display(),
        preview_from = preview_from.display(),
        shadow = shadow.display(),
        shadow_share = shadow_share.display(),
        shadow_location = SHADOW_LOCATION,
        shadow_mirrored = SHADOW_MIRRORED,
        proxy = proxy,
        proxy_again = proxy_again,
        port = config.public_port,
        header_wait = config.limits.header_read_timeout_secs,
        body_wait = config.limits.body_read_timeout_secs,
    )
}

/// The site's `/-` location: the dashboard (issue 12, `crate::dashboard`), which the active
/// slot serves, open to this host and to `[dashboard] allow` only. NGINX checks the client's
/// address before any slot sees the request (ngx_http_access_module: the first matching
/// `allow` or `deny` wins); the list lives in an include that bluegreen rewrites when the
/// config changes (`dashboard::access`), since this site is a conffile rendered once.
///
/// A prefix location, `/-`, not `/-/`: the slot reads `/-/` as `/-`, so both must be behind
/// the same rules, and NGINX matches locations on the normalised path (slashes merged, dot
/// segments resolved, `%XX` decoded), so no spelling of a dashboard path reaches `location /`.
fn render_dashboard(config: &Config) -> String {
    let slot_wait = config.nginx.upstream_timeout_secs;
    let allow = Layout::new(&config.state_dir).dashboard_include();
    let local: String = crate::dashboard::access::LOCAL
        .iter()
        .map(|a| format!("        allow {a};\n"))
        .collect();
    format!(
        r#"    # The dashboard (issue 12): a read-only page and its JSON, served by the active slot.
    # Only this host and the networks in `[dashboard] allow` may see it; the include holds
    # their `allow` lines, and the locations of each slot's own counters (their addresses
    # follow nginx.switch); `bluegreen restart` rewrites it when the config changes.
    # Everyone else gets the JSON 403. `/-` as a prefix: `/-/`, which the slot reads as `/-`,
    # and everything below, however it is spelled.
    location /- {{
{local}        include {allow};
        deny all;

        proxy_pass http://bluegreen_active;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass_request_headers off;
        # Tells the slot this passed the rules above: it answers nothing under /- without it.
        proxy_set_header {via_header} {via_value};
        proxy_connect_timeout 2s;
        proxy_send_timeout {slot_wait}s;
        proxy_read_timeout {slot_wait}s;
        # The dashboard only reads, so a failed attempt is tried again, as for predictions.
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries {ATTEMPTS};
        proxy_next_upstream_timeout {slot_wait}s;
        proxy_max_temp_file_size 0;
    }}
"#,
        allow = allow.display(),
        via_header = crate::dashboard::VIA_HEADER,
        via_value = crate::dashboard::VIA_VALUE,
    )
}

/// The main configuration for the NGINX that `bluegreen up` runs in the foreground.
pub fn render_local_main(config: &Config, layout: &Layout) -> String {
    let dir = layout.nginx_dir();
    let d = dir.display();
    // In socket mode the workers connect to the slots' unix sockets, in a folder that only
    // `up`'s own user may enter. An NGINX started by any other user runs its workers as that
    // user; one started by root runs them as `nobody` unless told otherwise (the `user`
    // directive's docs), so it is told: root, as `up` itself.
    let user = if config.nginx.switch == Mode::Socket && nix::unistd::geteuid().is_root() {
        "user root;\n"
    } else {
        ""
    };
    format!(
        r#"# Written by `bluegreen up` at every start; NGINX for development and tests.
{user}daemon off;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
# Old workers get this long after a reload to finish requests, then they are closed.
worker_shutdown_timeout {shutdown}s;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/site.conf;
}}
"#,
        shutdown = config.nginx.worker_shutdown_timeout_secs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_nginx_makes_itself_is_json_with_an_error_and_a_hint() {
        let config = Config::default();
        let site = render_site(&config, Path::new("/x/upstream.conf"));
        for answer in own_answers(&config) {
            let page = format!("error_page {} ", answer.raised);
            assert!(site.contains(&page), "{page}");
            let start = format!("return {} '", answer.sent);
            let body = site
                .split(&start)
                .nth(1)
                .and_then(|rest| rest.split("';").next())
                .unwrap_or_else(|| panic!("no {start}"));
            // Inside '…' NGINX reads `$` as a variable and `\` as an escape.
            assert!(!body.contains(['$', '\\', '\'']), "{body}");
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(
                json["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{body}"
            );
            assert!(
                json["hint"].as_str().is_some_and(|h| !h.is_empty()),
                "{body}"
            );
        }
        assert!(site.contains(&format!("proxy_next_upstream_tries {ATTEMPTS};")));
    }

    #[test]
    fn the_repository_site_file_is_the_rendered_production_site() {
        let config = Config::default();
        let layout = Layout::new(&config.state_dir);
        let rendered = render_site(&config, &layout.upstream_include());
        let shipped = include_str!("../nginx/bluegreen.conf");
        assert_eq!(
            shipped, rendered,
            "nginx/bluegreen.conf is stale: run `cargo run -- --config /dev/null nginx-site > nginx/bluegreen.conf`"
        );
    }
}
