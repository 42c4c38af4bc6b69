//! `bluegreen restart`: applies a configuration change to the running slots (issue 8 §3).
//!
//! It checks first (`bluegreen check`) and touches nothing if anything is wrong; then it
//! restarts the slots one at a time, the resting one first, so that a slot that cannot start
//! on the new configuration is found while the active one still serves. Each restart waits for
//! `READY=1` (the supervisor's restart returns only then) and a probe of the slot itself:
//! `/readyz` names its model, and a prediction equals the artifact's own. The supervisor is
//! whoever runs the slots: `bluegreen up` over its control socket, or systemd
//! (`systemctl restart bluegreen@<slot>.service`).
//!
//! No request fails meanwhile: while a slot restarts, its listening socket stays open (held
//! by `bluegreen@.socket` or by `up`), and NGINX resends a request that a stopping slot closed
//! before answering (`tests/it/restart.rs`, bench/run section 6).
//!
//! It also applies a change of `nginx.switch` under systemd (issue 10; `crate::switch`): after
//! `systemctl daemon-reload` the slots' socket units are configured for the new endpoints,
//! and a restart of a socket unit moves its socket there (with its slot). So the resting
//! slot restarts with its socket; then the active one, and at once the include (and the link)
//! are written the new way and NGINX reloads, once. Between the active slot's old socket
//! closing and NGINX's reload, NGINX has nowhere to send requests: that short window is the
//! cost of a mode change (the VM test measures it).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::deploy::Deployer;
use crate::layout::Layout;
use crate::model::Artifact;
use crate::progress::Progress;
use crate::site;
use crate::slot::Slot;
use crate::state::State;
use crate::supervisor::{self, Supervisor};
use tracing::{info, warn};

pub fn execute(config: &Config) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&config.state_dir);
    let supervisor = supervisor::detect(config, &layout);
    preflight(config, supervisor.as_ref())?;
    let deployer = Deployer::new(config, supervisor.as_ref());
    // A deploy restarts and flips slots: the two must not interleave. And a switch that was
    // interrupted is finished first, so that the active slot is the one NGINX routes to.
    let _lock = deployer.lock(config.lock_timeout())?;
    if let Some(record) = deployer.reconcile()? {
        info!(
            "reconciled an interrupted {} first: {}",
            record.action,
            record.reason.as_deref().unwrap_or(record.outcome.as_str())
        );
    }
    // NGINX's part of the config (the site's limits and timeouts, `[dashboard] allow`, the
    // dashboard's way to each slot) is put into effect here, with one reload, and only when
    // a file changed: a reload closes clients' idle keep-alive connections.
    let applied = site::apply(config, supervisor.nginx())
        .context("nothing was restarted: cannot apply NGINX's configuration")?;
    if !applied.written.is_empty() {
        let files: Vec<String> = applied
            .written
            .iter()
            .map(|f| {
                format!(
                    "{} ({}: {})",
                    f.kind,
                    f.path.display(),
                    f.first_difference()
                )
            })
            .collect();
        info!(
            "NGINX reloaded with what the config renders now: {}",
            files.join("; ")
        );
    }
    for file in &applied.left {
        warn!(
            "{} {} differs from what the config renders ({}), but it was edited by hand: left as it is; hint: merge `bluegreen nginx-site` into it (`bluegreen nginx-site | diff {} -`), then `nginx -t` and `systemctl reload nginx`",
            file.kind,
            file.path.display(),
            file.first_difference(),
            file.path.display()
        );
    }
    let state = State::read(config)?;
    let route = state
        .route()
        .context("no slot is active; hint: run `bluegreen init`")?;
    let active = route.slot;
    let started = Instant::now();
    let changing = route.mode != config.nginx.switch;
    for (slot, role) in [(active.other(), "resting"), (active, "active")] {
        info!(
            "restarting {slot} ({role}) through {} and waiting for READY=1",
            supervisor.name()
        );
        let model = model(&state, slot)?;
        let spinner = Progress::waiting(format!("waiting for {slot} to be ready"));
        let restarted = if changing {
            supervisor.restart_with_socket(slot)
        } else {
            supervisor.restart(slot)
        };
        drop(spinner);
        restarted.with_context(|| format!("restart stopped at {slot} ({role})"))?;
        if changing && slot == active {
            info!(
                "nginx.switch was \"{}\", is \"{}\": writing the NGINX include that way and reloading NGINX",
                route.mode, config.nginx.switch
            );
            deployer
                .apply_mode(active)
                .context("the mode change stopped before NGINX reloaded; hint: fix the cause, then `bluegreen restart` again")?;
        }
        deployer.probe(slot, &model).with_context(|| {
            format!(
                "{slot} ({role}) restarted but does not serve {}",
                model.version
            )
        })?;
        info!("{slot} is ready and serves {}", model.version);
    }
    if route.mode != config.nginx.switch {
        deployer
            .confirm_route(active)
            .context("NGINX does not answer from the active slot after the mode change")?;
        info!(
            "NGINX answers from {active} the {} way",
            config.nginx.switch
        );
    }
    super::out(&format!(
        "restarted {} (resting), then {active} (active), in {} ms\n",
        active.other(),
        started.elapsed().as_millis()
    ))?;
    supervisor
        .applied()
        .context("the slots were restarted on the new configuration")?;
    Ok(ExitCode::SUCCESS)
}

/// What must hold before a restart touches anything: the supervisor can apply the
/// configuration by restarting slots, and `bluegreen check` passes.
fn preflight(config: &Config, supervisor: &dyn Supervisor) -> anyhow::Result<()> {
    supervisor
        .can_apply(config)
        .context("nothing was restarted")?;
    check(config).context("nothing was restarted")
}

/// `bluegreen check` (issue 8 §3): the configuration, the state (data, models, each slot's
/// link, the include) and NGINX's configuration (`nginx -t`). Its report is printed, and the
/// configuration is saved as the last good one when all passed.
fn check(config: &Config) -> anyhow::Result<()> {
    let report = super::check::run(config.source.as_deref());
    report.print();
    super::check::finish(&report)?;
    if !report.ok() {
        bail!("`bluegreen check` found problems (above)");
    }
    Ok(())
}

/// The model `slot` serves after a restart: the artifact its link points at, which must load
/// and hold finite numbers, as `serve` requires.
fn model(state: &State, slot: Slot) -> anyhow::Result<Artifact> {
    let version = state.version(slot).with_context(|| {
        format!("slot {slot} has no model; hint: run `bluegreen init`, or `bluegreen deploy`")
    })?;
    let model = state
        .load(version)
        .with_context(|| format!("slot {slot} could not load its model"))?;
    if !model.is_finite() {
        bail!(
            "slot {slot} could not serve {version}: its parameters are not finite numbers; hint: deploy another model"
        );
    }
    Ok(model)
}
