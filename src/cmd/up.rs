//! `bluegreen up`: the whole system in the foreground, without systemd.
//!
//! It plays systemd's part for a laptop and for the tests, and does it the same way:
//! - each slot is a child process (`bluegreen serve`) with a `NOTIFY_SOCKET` of its own, so
//!   readiness travels over the very sd_notify path that `Type=notify` uses; a slot that dies
//!   is restarted, as `Restart=on-failure` would;
//! - NGINX runs as a child with a configuration generated under `state_dir/nginx`;
//! - the data folder is watched with inotify, and when the CSV changes the trainer runs
//!   `bluegreen train --if-due` and, if it trained, `bluegreen deploy`: the same commands the
//!   systemd trainer unit runs;
//! - `bluegreen deploy` (from the trainer or a terminal) asks for slot restarts over a Unix
//!   control socket (`state_dir/run/up.sock`), which is how it knows `up` is running.
//!
//! Children get their own process group, so Ctrl-C in the terminal reaches only `up`, which
//! then stops them in order: trainer, NGINX (gracefully), slots.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixDatagram, UnixListener};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::{sleep, timeout, Instant};

use crate::config::Config;
use crate::http;
use crate::layout::Layout;
use crate::nginx::{self, Nginx};
use crate::slot::Slot;
use crate::state::State;

fn say(line: &str) {
    super::say(&format!("[up] {line}"));
}

pub fn execute(config: &Config) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&config.state_dir);
    if std::os::unix::net::UnixStream::connect(layout.control_socket()).is_ok() {
        bail!(
            "bluegreen up is already running for {}; hint: use that one (`bluegreen status`), or stop it first",
            layout.root().display()
        );
    }
    let nginx = Nginx::local(config, &layout);
    check_nginx(&nginx)?;
    super::init::ensure(config, &say)?;
    write_nginx_files(config, &layout)?;
    // One thread: children are spawned from it, and PR_SET_PDEATHSIG (set in each child)
    // fires when the spawning *thread* exits, so it must be the one that lives longest.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config, layout, nginx))
}

fn check_nginx(nginx: &Nginx) -> anyhow::Result<()> {
    match std::process::Command::new(&nginx.binary)
        .arg("-v")
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "cannot run NGINX ({}): {e}; hint: install it with `sudo apt install nginx-light` (or nginx), or set nginx.binary in the config",
            nginx.binary.display()
        ),
    }
}

fn write_nginx_files(config: &Config, layout: &Layout) -> anyhow::Result<()> {
    let dir = layout.nginx_dir();
    std::fs::create_dir_all(dir.join("tmp"))
        .with_context(|| format!("cannot create {}", dir.join("tmp").display()))?;
    let site = nginx::render_site(config, &layout.upstream_include());
    for (name, text) in [
        ("site.conf", site),
        ("nginx.conf", nginx::render_local_main(config, layout)),
    ] {
        crate::fsutil::write_atomic(&dir.join(name), text.as_bytes())
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    Ok(())
}

/// How `up` runs a `bluegreen` subcommand: this same executable and the same config file.
#[derive(Clone)]
struct SelfCommand {
    exe: PathBuf,
    config: Option<PathBuf>,
}

impl SelfCommand {
    fn new(config: &Config) -> anyhow::Result<SelfCommand> {
        Ok(SelfCommand {
            exe: std::env::current_exe().context("cannot find the bluegreen executable")?,
            config: config.source.clone(),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        if let Some(path) = &self.config {
            cmd.arg("--config").arg(path);
        }
        cmd.args(args);
        child_setup(&mut cmd);
        cmd
    }
}

/// Own process group (Ctrl-C reaches only `up`), and death with `up` if it is killed.
fn child_setup(cmd: &mut Command) {
    cmd.process_group(0).kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only makes one async-signal-safe
    // system call (prctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
}

async fn run(config: &Config, layout: Layout, nginx: Nginx) -> anyhow::Result<ExitCode> {
    let me = SelfCommand::new(config)?;
    let control = layout.control_socket();
    let _ = std::fs::remove_file(&control);
    let mut slots = HashMap::new();
    for slot in Slot::ALL {
        let path = layout.notify_socket(slot);
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path)
            .with_context(|| format!("cannot bind the notify socket {}", path.display()))?;
        let (tx, rx) = mpsc::channel(4);
        let actor = SlotActor {
            slot,
            me: me.clone(),
            notify_path: path,
            socket,
            ready_timeout: config.ready_timeout(),
        };
        tokio::spawn(actor.run(rx));
        slots.insert(slot, tx);
    }
    let slots = Arc::new(slots);
    let active = State::read(config)?.active().unwrap_or(Slot::Blue);
    let started = Instant::now();
    say(&format!(
        "starting {active} (active) and waiting for READY=1"
    ));
    if let Err(why) = restart(&slots, active).await {
        stop_slots(&slots).await;
        bail!("the active slot {active} did not start: {why}");
    }
    // The resting slot is not needed to serve; without it only a rollback is impossible,
    // and the next deploy restarts it anyway. So it is a warning, not a failure.
    let resting = active.other();
    say(&format!(
        "starting {resting} (resting) and waiting for READY=1"
    ));
    if let Err(why) = restart(&slots, resting).await {
        say(&format!(
            "warning: the resting slot {resting} did not start: {why}; serving from {active} alone until the next deploy"
        ));
    }
    let mut nginx_child = match start_nginx(config, &nginx, active).await {
        Ok(child) => child,
        Err(e) => {
            stop_slots(&slots).await;
            return Err(e);
        }
    };
    let listener = UnixListener::bind(&control)
        .with_context(|| format!("cannot bind the control socket {}", control.display()))?;
    tokio::spawn(serve_control(listener, slots.clone()));
    let wake = Arc::new(Notify::new());
    watch_data(&layout, wake.clone())?;
    let trainer = tokio::spawn(trainer(me.clone(), wake.clone()));
    wake.notify_one();
    say(&format!(
        "bluegreen is up in {:.1}s: http://127.0.0.1:{}/ → {active}; add data with `bluegreen add-data --sample 2`, see `bluegreen status`; Ctrl-C stops",
        started.elapsed().as_secs_f64(),
        config.public_port
    ));

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let outcome = tokio::select! {
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
        status = nginx_child.wait() => Err(anyhow::anyhow!(
            "NGINX exited unexpectedly ({}); see {} and the lines above",
            describe(status.ok()),
            layout.nginx_dir().join("error.log").display()
        )),
    };
    say("stopping: trainer, NGINX, slots");
    trainer.abort();
    let _ = trainer.await;
    stop_child(&mut nginx_child, Signal::SIGQUIT, Duration::from_secs(15)).await;
    stop_slots(&slots).await;
    let _ = std::fs::remove_file(&control);
    for slot in Slot::ALL {
        let _ = std::fs::remove_file(layout.notify_socket(slot));
    }
    outcome?;
    say("stopped");
    Ok(ExitCode::SUCCESS)
}

type Slots = Arc<HashMap<Slot, mpsc::Sender<SlotCmd>>>;

async fn restart(slots: &Slots, slot: Slot) -> Result<(), String> {
    let (reply, answer) = oneshot::channel();
    slots[&slot]
        .send(SlotCmd::Restart(reply))
        .await
        .map_err(|_| "the slot's supervisor has stopped".to_string())?;
    answer
        .await
        .map_err(|_| "the slot's supervisor has stopped".to_string())?
}

async fn stop_slots(slots: &Slots) {
    for tx in slots.values() {
        let (reply, done) = oneshot::channel();
        if tx.send(SlotCmd::Stop(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn start_nginx(config: &Config, nginx: &Nginx, active: Slot) -> anyhow::Result<Child> {
    let check = Command::from(nginx.command())
        .arg("-t")
        .arg("-q")
        .output()
        .await;
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => bail!(
            "NGINX refused the generated configuration {}:\n{}",
            nginx.conf.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!("cannot run NGINX: {e}"),
    }
    let mut cmd = Command::from(nginx.command());
    child_setup(&mut cmd);
    let mut child = cmd.spawn().context("cannot start NGINX")?;
    let public = SocketAddr::from(([127, 0, 0, 1], config.public_port));
    say(&format!(
        "started NGINX (pid {}), waiting for it on {public}",
        child.id().unwrap_or(0)
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "NGINX exited at start ({}); hint: is port {} already in use? (`ss -ltnp sport = :{}`)",
                describe(Some(status)),
                config.public_port,
                config.public_port
            );
        }
        let probe = tokio::task::spawn_blocking(move || {
            http::request(public, "GET", "/readyz", None, Duration::from_millis(500))
        })
        .await?;
        if let Ok(r) = probe {
            if r.header("x-slot") == Some(active.as_str()) {
                return Ok(child);
            }
        }
        if Instant::now() > deadline {
            let _ = child.start_kill();
            bail!("NGINX did not answer on {public} within 10 s");
        }
        sleep(Duration::from_millis(50)).await;
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    status.map_or("status unknown".to_string(), |s| s.to_string())
}

/// Sends `sig`, waits up to `grace`, then kills.
async fn stop_child(child: &mut Child, sig: Signal, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
    if timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

enum SlotCmd {
    Restart(oneshot::Sender<Result<(), String>>),
    Stop(oneshot::Sender<()>),
}

/// Owns one slot's process: starts and restarts it on request, restarts it when it dies.
struct SlotActor {
    slot: Slot,
    me: SelfCommand,
    notify_path: PathBuf,
    socket: UnixDatagram,
    ready_timeout: Duration,
}

impl SlotActor {
    async fn run(self, mut commands: mpsc::Receiver<SlotCmd>) {
        let mut child: Option<Child> = None;
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(SlotCmd::Restart(reply)) => {
                        let result = self.start(&mut child).await;
                        let _ = reply.send(result);
                    }
                    Some(SlotCmd::Stop(reply)) => {
                        if let Some(c) = child.as_mut() {
                            stop_child(c, Signal::SIGTERM, Duration::from_secs(10)).await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                status = wait(&mut child) => {
                    say(&format!("{} exited unexpectedly ({}); restarting it in 200 ms", self.slot, describe(status)));
                    child = None;
                    // As systemd's RestartSec: a pause, so a slot that dies at once does
                    // not spin.
                    sleep(Duration::from_millis(200)).await;
                    if let Err(why) = self.start(&mut child).await {
                        say(&format!("{} did not come back: {why}", self.slot));
                    }
                }
                // Drain STATUS=, STOPPING=1 and the like between starts.
                _ = self.socket.recv(&mut buf) => {}
            }
        }
    }

    /// Stops the running process, if any, and starts a new one; Ok once it sent READY=1.
    async fn start(&self, child: &mut Option<Child>) -> Result<(), String> {
        if let Some(mut old) = child.take() {
            stop_child(&mut old, Signal::SIGTERM, Duration::from_secs(10)).await;
        }
        let mut buf = vec![0u8; 4096];
        while self.socket.try_recv(&mut buf).is_ok() {}
        let mut cmd = self.me.command(&["serve", "--slot", self.slot.as_str()]);
        cmd.env("NOTIFY_SOCKET", &self.notify_path);
        let mut new = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
        let deadline = sleep(self.ready_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                received = self.socket.recv(&mut buf) => {
                    let Ok(n) = received else { continue };
                    let message = String::from_utf8_lossy(&buf[..n]);
                    if message.lines().any(|l| l == "READY=1") {
                        *child = Some(new);
                        return Ok(());
                    }
                }
                status = new.wait() => {
                    return Err(format!("it exited before READY=1 ({})", describe(status.ok())));
                }
                _ = &mut deadline => {
                    let _ = new.kill().await;
                    return Err(format!("no READY=1 within {:?}; it was stopped", self.ready_timeout));
                }
            }
        }
    }
}

async fn wait(child: &mut Option<Child>) -> Option<ExitStatus> {
    match child {
        Some(c) => c.wait().await.ok(),
        None => std::future::pending().await,
    }
}

/// Answers `restart <slot>` on the control socket with `ok` or `error <why>`.
async fn serve_control(listener: UnixListener, slots: Slots) {
    while let Ok((stream, _)) = listener.accept().await {
        let slots = slots.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match line.trim().split_once(' ') {
                Some(("restart", name)) => match name.parse::<Slot>() {
                    Ok(slot) => {
                        say(&format!("restarting {slot} for a deploy"));
                        match restart(&slots, slot).await {
                            Ok(()) => "ok".to_string(),
                            Err(why) => format!("error {why}"),
                        }
                    }
                    Err(e) => format!("error {e}"),
                },
                _ if line.trim().is_empty() => return,
                _ => format!("error unknown command {:?}", line.trim()),
            };
            let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

/// Wakes the trainer whenever the data CSV is written and closed, or renamed into place.
fn watch_data(layout: &Layout, wake: Arc<Notify>) -> anyhow::Result<()> {
    use inotify::{Inotify, WatchMask};
    let dir = layout.data_dir();
    let name = layout
        .data_csv()
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let mut inotify = Inotify::init().context("cannot start inotify")?;
    inotify
        .watches()
        .add(&dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    std::thread::Builder::new()
        .name("watch-data".into())
        .spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(events) = inotify.read_events_blocking(&mut buffer) {
                if events.into_iter().any(|e| e.name == Some(name.as_os_str())) {
                    wake.notify_one();
                }
            }
        })
        .context("cannot start the data watcher")?;
    Ok(())
}

/// Runs `train --if-due` and, when it trained, `deploy` — once per wake-up. A change that
/// arrives while they run leaves a stored permit in `wake`, so it is never lost.
async fn trainer(me: SelfCommand, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let trained = me
            .command(&["train", "--if-due"])
            .status()
            .await
            .map(|s| s.code());
        match trained {
            Ok(Some(code)) if code == super::train::EXIT_TRAINED_IF_DUE as i32 => {
                match me.command(&["deploy"]).status().await {
                    Ok(s) if s.success() => {}
                    Ok(s) => say(&format!("deploy did not complete ({s}); see above")),
                    Err(e) => say(&format!("cannot run deploy: {e}")),
                }
            }
            Ok(Some(0)) => {}
            Ok(Some(code)) if code == super::train::EXIT_REFUSED as i32 => {}
            Ok(code) => say(&format!("training failed (exit {code:?}); see above")),
            Err(e) => say(&format!("cannot run training: {e}")),
        }
    }
}
