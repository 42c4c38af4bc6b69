//! NGINX: the site config, the include that names the active slot, and driving the master.
//!
//! The include (`state_dir/nginx/upstream.conf`) is the one source of truth for which slot is
//! active: it is what NGINX routes by, so nothing else can disagree with it. A switch writes
//! a new include whole, has `nginx -t` check the complete configuration, and sends SIGHUP to
//! the master; NGINX then starts new workers with the new upstream and lets the old ones
//! finish their requests (bounded by `worker_shutdown_timeout`).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::Config;
use crate::fsutil;
use crate::layout::Layout;
use crate::slot::Slot;

#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the NGINX include {path} names no known slot (expected a `server` line with {blue} or {green})")]
    UnknownUpstream {
        path: PathBuf,
        blue: SocketAddr,
        green: SocketAddr,
    },
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
        let text = fs::read_to_string(&self.pid_file).map_err(|source| NginxError::Io {
            action: "read the NGINX pid file",
            path: self.pid_file.clone(),
            source,
        })?;
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

/// The include that defines `upstream bluegreen_active` for `slot`.
pub fn render_include(config: &Config, slot: Slot) -> String {
    format!(
        "# Written by bluegreen; every deploy and rollback replaces it. Do not edit.\n\
         # active slot: {slot}\n\
         upstream bluegreen_active {{\n    \
             # max_fails=0: with one server, NGINX must never mark it down and refuse\n    \
             # requests for fail_timeout after the slot is back.\n    \
             server {} max_fails=0;\n    \
             # Idle connections kept open to the slot, per NGINX worker. Past this many\n    \
             # requests in flight, each extra one opens and closes a connection of its own:\n    \
             # with 64, 256 clients made ~10,000 new connections a second (bench/run).\n    \
             keepalive 256;\n    \
             keepalive_requests 100000;\n\
         }}\n",
        config.slot_addr(slot)
    )
}

/// The active slot, read from the include; `None` when there is no include yet.
pub fn read_active(config: &Config, include: &Path) -> Result<Option<Slot>, NginxError> {
    let text = match fs::read_to_string(include) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NginxError::Io {
                action: "read",
                path: include.to_path_buf(),
                source,
            })
        }
    };
    let slot = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.strip_prefix("server "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|addr| addr.trim_end_matches(';').parse::<SocketAddr>().ok())
        .find_map(|addr| config.slot_at(addr));
    slot.map(Some).ok_or_else(|| NginxError::UnknownUpstream {
        path: include.to_path_buf(),
        blue: config.slots.blue,
        green: config.slots.green,
    })
}

/// Writes the include for `slot` whole.
pub fn write_include(config: &Config, include: &Path, slot: Slot) -> Result<(), NginxError> {
    fsutil::write_atomic(include, render_include(config, slot).as_bytes()).map_err(|source| {
        NginxError::Io {
            action: "write",
            path: include.to_path_buf(),
            source,
        }
    })
}

/// The site: NGINX's public server, proxying everything to the active slot.
pub fn render_site(config: &Config, include: &Path) -> String {
    let body = config.limits.max_body_bytes;
    format!(
        r#"# bluegreen: the public entry point for the model's API.
# `upstream bluegreen_active` comes from the include below, which `bluegreen deploy` and
# `bluegreen rollback` rewrite before they reload NGINX; see `bluegreen status`.
include {include};

server {{
    listen {port};
    server_name _;

    # Bodies up to the slots' own limit stay in memory: no temp files, and a request the
    # slot would refuse as too large is refused here with the same status.
    client_max_body_size {body};
    client_body_buffer_size {body};

    location / {{
        proxy_pass http://bluegreen_active;
        # Keep-alive to the slot: HTTP/1.1 with the client's Connection header cleared.
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_connect_timeout 2s;
        proxy_read_timeout 60s;
        # Answers are small; never spill one to a temp file.
        proxy_max_temp_file_size 0;
        # The slot's own statuses (400, 404, 405, 413, 422) pass through unchanged. Only
        # when no slot answers at all does NGINX speak, and then in JSON too.
        error_page 502 503 504 = @unavailable;
    }}

    location @unavailable {{
        default_type application/json;
        return 503 '{{"error": "the model server is not answering; hint: run bluegreen status"}}';
    }}
}}
"#,
        include = include.display(),
        port = config.public_port,
    )
}

/// The main configuration for the NGINX that `bluegreen up` runs in the foreground.
pub fn render_local_main(config: &Config, layout: &Layout) -> String {
    let dir = layout.nginx_dir();
    let d = dir.display();
    format!(
        r#"# Written by `bluegreen up` at every start; NGINX for development and tests.
daemon off;
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
    fn include_round_trips_and_unknown_addresses_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default();
        let include = dir.path().join("upstream.conf");
        assert_eq!(read_active(&config, &include).unwrap(), None);
        for slot in Slot::ALL {
            write_include(&config, &include, slot).unwrap();
            assert_eq!(read_active(&config, &include).unwrap(), Some(slot));
        }
        fs::write(
            &include,
            "upstream bluegreen_active { server 127.0.0.1:9999; }",
        )
        .unwrap();
        let err = read_active(&config, &include).unwrap_err().to_string();
        assert!(err.contains("names no known slot"), "{err}");
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
