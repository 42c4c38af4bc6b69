//! `bluegreen up`: the whole system in the foreground, without systemd.
//!
//! It plays systemd's part for a laptop and for the tests, and does it the same way. One file
//! per job:
//! - [`slots`]: each slot is a child process (`bluegreen serve`) with a `NOTIFY_SOCKET` of
//!   its own, so readiness travels over the very sd_notify path that `Type=notify` uses; a
//!   slot that dies is restarted, as `Restart=on-failure` would;
//! - [`nginx`]: NGINX runs as a child with a configuration generated under `state_dir/nginx`;
//!   when its master dies, its stray workers are stopped and it is started again;
//! - [`listeners`]: `up` holds each slot's listening socket and the public one, and hands
//!   them to every incarnation of the slot and of NGINX, as systemd's socket units do;
//! - [`watch`] and [`trainer`]: the data folder is watched with inotify, and when the CSV
//!   changes the trainer runs `bluegreen train --if-due` and, if it trained,
//!   `bluegreen deploy`: the same commands the systemd trainer unit runs;
//! - [`control`]: `bluegreen deploy` (from the trainer or a terminal) asks for slot restarts
//!   over a Unix control socket (`state_dir/run/up.sock`), which is how it knows `up` is
//!   running;
//! - [`child`]: how children are started and stopped.
//!
//! This file is the orchestration: start in order, wait for Ctrl-C (or SIGTERM), stop in
//! order: trainer, NGINX (gracefully), slots.

pub mod child;
pub mod control;
pub mod listeners;
pub mod nginx;
pub mod slots;
pub mod trainer;
pub mod watch;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::config::Config;
use crate::layout::Layout;
use crate::nginx::Nginx;
use crate::slot::Slot;
use crate::state::State;
use child::SelfCommand;
use slots::Slots;
use tracing::{info, warn};

/// Runs the system until SIGINT or SIGTERM. The state folder and NGINX's files must exist
/// (`cmd::up` sees to that); this must run on a single-threaded runtime (see [`child::setup`]).
pub async fn run(config: &Config, layout: Layout, nginx: Nginx) -> anyhow::Result<ExitCode> {
    let me = SelfCommand::new(config)?;
    // First, so that a port someone else holds stops `up` before anything started.
    let front = nginx::Front::bind(config, nginx)?;
    let wake = Arc::new(Notify::new());
    watch::watch_data(&layout, &config.data, wake.clone())?;
    let slots = Slots::spawn(config, &layout, &me)?;
    let control = layout.control_socket();
    let _ = std::fs::remove_file(&control);
    let listener = UnixListener::bind(&control)
        .with_context(|| format!("cannot bind the control socket {}", control.display()))?;
    tokio::spawn(control::serve(
        listener,
        slots.clone(),
        control::Addresses::of(config),
    ));
    let outcome = serve(config, &me, &slots, front, wake).await;
    // Whatever happened, no slot outlives `up`, and no socket file names it.
    slots.stop().await;
    let _ = std::fs::remove_file(&control);
    for slot in Slot::ALL {
        let _ = std::fs::remove_file(layout.notify_socket(slot));
    }
    outcome?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// How to add data, in words that fit `[data]`: sample rows exist for the Boston demo only
/// (`add-data --sample`).
fn add_data_hint(data: &crate::config::Data) -> String {
    let schema = crate::data::Schema::of(data);
    if schema.is_boston() {
        "add data with `bluegreen add-data --sample 2`".to_string()
    } else {
        format!(
            "add data with `bluegreen add-data FILE` (CSV with the columns {}) or `--row \"v1,…\"`",
            schema.header()
        )
    }
}

/// Starts the slots (the active one first), NGINX and the trainer; serves until SIGINT or
/// SIGTERM; then stops the trainer and NGINX. The caller stops the slots.
async fn serve(
    config: &Config,
    me: &SelfCommand,
    slots: &Slots,
    mut front: nginx::Front,
    wake: Arc<Notify>,
) -> anyhow::Result<()> {
    let active = State::read(config)?.active().unwrap_or(Slot::Blue);
    let started = Instant::now();
    info!("starting {active} (active) and waiting for READY=1");
    if let Err(why) = slots.restart(active).await {
        bail!("the active slot {active} did not start: {why}");
    }
    // The resting slot is not needed to serve; without it only a rollback is impossible,
    // and its supervisor keeps trying to start it. So it is a warning, not a failure.
    let resting = active.other();
    info!("starting {resting} (resting) and waiting for READY=1");
    if let Err(why) = slots.restart(resting).await {
        warn!(
            "the resting slot {resting} did not start: {why}; serving from {active} alone meanwhile"
        );
    }
    front.start(Some(active)).await?;
    let (stop_nginx, stopped) = oneshot::channel();
    let front = tokio::spawn(front.supervise(stopped));
    let trainer = tokio::spawn(trainer::run(me.clone(), wake.clone()));
    wake.notify_one();
    info!(
        "bluegreen is up in {:.1}s: http://127.0.0.1:{}/ → {active}; {}, see `bluegreen status`; Ctrl-C stops",
        started.elapsed().as_secs_f64(),
        config.public_port,
        add_data_hint(&config.data)
    );

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    info!("stopping: trainer, NGINX, slots");
    trainer.abort();
    let _ = trainer.await;
    let _ = stop_nginx.send(());
    let _ = front.await;
    Ok(())
}
