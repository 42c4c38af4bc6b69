//! `bluegreen serve --slot blue|green`: one slot's inference server.
//!
//! It loads the model through the slot's symlink, binds the slot's endpoint (a loopback
//! address, or in switch mode "socket" a unix socket, `crate::switch`), and only then tells
//! the supervisor `READY=1` with a `STATUS=` line naming its role (active or resting, kept
//! current by `status`) and its model, so that `systemctl restart` (Type=notify) and
//! `bluegreen up` return only for a slot that can really answer. Under systemd the listening
//! socket may come from `bluegreen@.socket` (socket activation), under `bluegreen up` from
//! `up` itself (`--listen-fd`); either must be on the slot's configured endpoint. SIGTERM or
//! SIGINT stop it gracefully: no new connections, requests in flight finish, then exit 0.

use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};
use sd_notify::NotifyState;
use tokio::net::{TcpListener, TcpSocket, UnixListener, UnixSocket};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::ServeArgs;
use crate::config::{Config, Fallback};
use crate::dashboard;
use crate::history::RefusalTail;
use crate::layout::Layout;
use crate::model::Artifact;
use crate::server::{self, AppState};
use crate::switch::{self, Endpoint, Mode};
use tracing::{info, warn};

mod status;

/// `fallback`: set when the configuration file is bad and `config` is the last good one; the
/// slot serves anyway and says so loudly, in the journal and its STATUS= (issue 8 §3).
pub fn execute(
    config: &Config,
    args: &ServeArgs,
    fallback: Option<&Fallback>,
) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&config.state_dir);
    let slot = args.slot;
    crate::log::context(vec![("slot", slot.to_string())]);
    let link = layout.slot_link(slot);
    if !link.exists() {
        anyhow::bail!(
            "slot {slot} has no model: {} does not exist or points nowhere; hint: run `bluegreen init`, or `bluegreen deploy`",
            link.display()
        );
    }
    let model =
        Artifact::load(&link).with_context(|| format!("slot {slot} cannot load its model"))?;
    if !model.is_finite() {
        anyhow::bail!(
            "slot {slot} cannot serve {}: its parameters are not finite numbers; hint: deploy another model",
            model.version
        );
    }
    let endpoint = match args.listen {
        Some(addr) => Endpoint::Tcp(addr),
        None => switch::endpoint(config, slot),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let inherited = match args.listen_fd {
            Some(fd) => Some((
                from_fd(fd)?,
                "bluegreen up",
                "restart `bluegreen up`: it binds the addresses in the config when it starts"
                    .to_string(),
            )),
            None => inherited_listener()?.map(|l| {
                (
                    l,
                    "systemd",
                    format!("`systemctl daemon-reload`: bluegreen's generator makes bluegreen@{slot}.socket listen where the config says ([slots] {slot}, nginx.switch), then `bluegreen restart`"),
                )
            }),
        };
        let listener = match inherited {
            Some((listener, by, fix)) => {
                let got = listener.endpoint()?;
                if got != endpoint {
                    anyhow::bail!(
                        "slot {slot} was handed a socket on {got} by {by}, but it listens on {endpoint} (nginx.switch = \"{}\"); hint: {fix}",
                        config.nginx.switch
                    );
                }
                listener
            }
            None => listen(&endpoint).with_context(|| {
                format!("slot {slot} cannot listen on {endpoint}; hint: is another server using it? see `bluegreen status`")
            })?,
        };
        let bound = listener.endpoint()?;
        let version = model.version.clone();
        let state = AppState::new(model, &config.model.name, slot, config.limits.max_rows);
        if let Some(fault) = state.fault() {
            warn!("{slot}: TEST FAULT armed ({})", fault.describe());
        }
        if config.rollout.shadow_seconds > 0 {
            load_reference(&layout, slot, &state);
        }
        count_refusals(&layout, state.clone());
        let router = server::router(
            state.clone(),
            config.limits.max_body_bytes,
            server::Timeouts::from_config(config),
        )
        .merge(dashboard::routes(
            config,
            state.clone(),
            fallback.map(|f| f.summary("the slot serving this page runs on")),
        ));
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        };
        let version_for_log = version.clone();
        let mut status = status::Status::new(config, slot, version, bound);
        if let Some(fallback) = fallback {
            let loud = fallback.summary("running on");
            warn!("{slot}: {loud}");
            status = status.with_note(loud);
        }
        // Only in socket mode does a resting slot let go of NGINX's connections: in reload
        // mode NGINX's reload retires the workers that hold them (see `crate::switch`).
        let socket_mode = config.nginx.switch == Mode::Socket;
        let app = state.clone();
        let status = status.follow(move |rests| app.set_closing(socket_mode && rests));
        info!(version = version_for_log, "{slot}: {status}");
        sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)])
            .context("cannot notify the supervisor (NOTIFY_SOCKET)")?;
        if let Some(interval) = sd_notify::watchdog_enabled() {
            tokio::spawn(watchdog(interval / 2));
        }
        match listener {
            Listener::Tcp(l) => server::run(l, router, shutdown).await?,
            Listener::Unix(l) => server::run(l, router, shutdown).await?,
        }
        info!("{slot}: stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The slot's listening socket.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Where it listens.
    fn endpoint(&self) -> std::io::Result<Endpoint> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(Endpoint::Tcp),
            Listener::Unix(l) => {
                let addr = l.local_addr()?;
                let path = addr.as_pathname().ok_or_else(|| {
                    std::io::Error::other("the unix socket has no path (unnamed or abstract)")
                })?;
                Ok(Endpoint::Unix(path.to_path_buf()))
            }
        }
    }
}

/// The listening socket systemd passed (socket activation, `bluegreen@.socket`), if any.
/// systemd keeps that socket open while the slot restarts, so connections wait in its
/// backlog instead of being refused.
fn inherited_listener() -> anyhow::Result<Option<Listener>> {
    let mut fds = sd_notify::listen_fds().context("cannot read the sockets systemd passed")?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        anyhow::bail!("systemd passed more than one socket; a slot listens on one");
    }
    Ok(Some(from_fd(fd)?))
}

/// Takes ownership of an inherited listening socket, TCP or unix.
fn from_fd(fd: RawFd) -> anyhow::Result<Listener> {
    // SAFETY: F_GETFD only asks whether the number names an open descriptor.
    if fd < 3 || unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } == -1 {
        anyhow::bail!("file descriptor {fd} is not an inherited socket");
    }
    // SAFETY: the descriptor is open (checked above), was handed to this process alone to
    // listen on, and nothing else in the program takes ownership of it.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let family = getsockname::<SockaddrStorage>(owned.as_raw_fd())
        .with_context(|| format!("file descriptor {fd} is not a socket"))?
        .family();
    if family == Some(AddressFamily::Unix) {
        let listener = std::os::unix::net::UnixListener::from(owned);
        listener.set_nonblocking(true)?;
        return Ok(Listener::Unix(
            UnixListener::from_std(listener)
                .with_context(|| format!("file descriptor {fd} is not a unix listening socket"))?,
        ));
    }
    let listener = std::net::TcpListener::from(owned);
    listener.set_nonblocking(true)?;
    Ok(Listener::Tcp(
        TcpListener::from_std(listener)
            .with_context(|| format!("file descriptor {fd} is not a TCP listening socket"))?,
    ))
}

/// Pending connections the kernel may queue for the slot (it caps this at
/// `net.core.somaxconn`, 4096 on current kernels).
///
/// `TcpListener::bind` asks for 128. That is too few behind NGINX: when many clients are
/// busy at once, NGINX opens a burst of new upstream connections (beyond its `keepalive`
/// cache), the queue overflows, the kernel drops SYNs, and those requests wait for the
/// 1 s SYN retransmit: `bench/run` measured a p99 of 0.2–0.9 s at 256 connections (ceiling:
/// 12–18 ms) with `TcpExtListenOverflows` counting the drops. (Under systemd the socket
/// unit's `Backlog=` applies instead.)
pub(crate) const BACKLOG: u32 = 4096;

fn listen(endpoint: &Endpoint) -> std::io::Result<Listener> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            // As TcpListener::bind does: a restarted slot must rebind at once despite
            // TIME_WAIT.
            socket.set_reuseaddr(true)?;
            socket.bind(*addr)?;
            socket.listen(BACKLOG).map(Listener::Tcp)
        }
        Endpoint::Unix(path) => listen_unix(path, BACKLOG).map(Listener::Unix),
    }
}

/// Binds a unix stream socket at `path` (a file left there by a process that is gone is
/// replaced) and listens with room for `backlog` connections. The socket file gets mode
/// 0600: only this user may connect (its folder is closed to others anyway; see
/// `crate::switch`).
pub(crate) fn listen_unix(path: &std::path::Path, backlog: u32) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match fs_err::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let socket = UnixSocket::new_stream()?;
    socket.bind(path)?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    socket.listen(backlog)
}

/// Keeps the slot's count of gate refusals current from the history, once a second, on a
/// thread of its own: off the request path, and cheap, since each pass reads only what was
/// appended (issue 8 §7).
fn count_refusals(layout: &Layout, state: std::sync::Arc<AppState>) {
    let mut tail = RefusalTail::new(&layout.history());
    let _ = std::thread::Builder::new()
        .name("history".into())
        .spawn(move || loop {
            // A history that cannot be read leaves the count where it was.
            let _ = tail.refresh(state.gate_refusals());
            std::thread::sleep(Duration::from_secs(1));
        });
}

/// For a rollout's shadow phase (issue 11): loads the other slot's model, the active one when
/// this slot is the candidate, to compare predictions with (`crate::server::shadow`). A peer
/// that cannot be loaded, or has other features, only means nothing is compared; said once.
fn load_reference(layout: &Layout, slot: crate::slot::Slot, state: &AppState) {
    let peer = layout.slot_link(slot.other());
    match Artifact::load(&peer) {
        Ok(reference) if reference.features == state.model().features => {
            info!(
                "{slot}: shadow requests are compared with {} ({})",
                reference.version,
                slot.other()
            );
            state.set_reference(reference);
        }
        Ok(reference) => warn!(
            "{slot}: {} on {} has other features; shadow requests will not be compared",
            reference.version,
            slot.other()
        ),
        Err(e) => warn!(
            "{slot}: cannot load {}'s model to compare shadow requests with: {}",
            slot.other(),
            crate::history::chain(&e)
        ),
    }
}

/// Pings the systemd watchdog while the runtime is alive to run this task.
async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let _ = sd_notify::notify(&[NotifyState::Watchdog]);
    }
}
