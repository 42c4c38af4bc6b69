//! `bluegreen status [--json]`: the whole story at a glance — which slot NGINX routes to and
//! with which model, whether each slot answers, how much data there is and whether training
//! is due, whether a deploy is pending or a model was refused, and the last records of the
//! history. `crate::status` gathers it (the dashboard serves the same JSON); this command
//! prints it.
//!
//! Before it reads anything, `status` reconciles a deploy or rollback that was killed
//! half-way, as the next deploy would (issue 8 §6, `crate::deploy`), so what it shows is
//! what NGINX does. When it cannot (another deploy runs, or this user may not take the
//! deploy lock), it says so, and still names the slot NGINX answers from.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::StatusArgs;
use crate::config::{Config, Fallback};
use crate::deploy::Deployer;
use crate::history;
use crate::layout::Layout;
use crate::lock::LockError;
use crate::status::{self, Ask, Status};
use crate::supervisor::{self, Supervisor};

/// `fallback`: the configuration file is bad and `config` is the last good one (issue 8 §3).
pub fn execute(
    config: &Config,
    args: &StatusArgs,
    fallback: Option<&Fallback>,
) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&config.state_dir);
    let supervisor = supervisor::detect(config, &layout);
    let notes = reconcile(config, &layout, supervisor.as_ref());
    let mut status = status::gather(config, &Ask, notes.into_iter().collect())
        .context("cannot read the state folder")?;
    status.config_error = fallback.map(|f| f.summary("slots that start now run on"));
    if args.json {
        super::out(&format!("{}\n", serde_json::to_string_pretty(&status)?))?;
    } else {
        super::out(&table(&status))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reconciles an interrupted switch when there is one and this process may; returns what
/// the operator should know. Its progress goes to standard error, so `--json` stays JSON.
fn reconcile(config: &Config, layout: &Layout, supervisor: &dyn Supervisor) -> Option<String> {
    if !layout.deploy_intent().exists() {
        return None;
    }
    let deployer = Deployer::new(config, supervisor);
    let _lock = match deployer.lock(Duration::ZERO) {
        Ok(lock) => lock,
        Err(LockError::Busy { holder, .. }) => {
            return Some(format!("a deploy or rollback (pid {holder}) is running"))
        }
        Err(e) => {
            return Some(format!(
                "a deploy or rollback was interrupted, and this user cannot reconcile it ({}); hint: run `bluegreen status` as root, or the next deploy does it",
                history::chain(&e)
            ))
        }
    };
    match deployer.reconcile() {
        Ok(Some(record)) => Some(format!(
            "reconciled an interrupted {}: {}",
            record.action,
            record.reason.as_deref().unwrap_or(record.outcome.as_str())
        )),
        Ok(None) => None,
        Err(e) => Some(format!(
            "an interrupted deploy or rollback could not be reconciled: {}",
            history::chain(&e)
        )),
    }
}

fn table(s: &Status) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    if let Some(error) = &s.config_error {
        let _ = writeln!(t, "!! {error}\n");
    }
    let _ = writeln!(
        t,
        "bluegreen: state in {}, slots run by {}, NGINX on port {}, switch by {}\n",
        s.state_dir, s.supervisor, s.public_port, s.switch
    );
    let width = s
        .slots
        .iter()
        .map(|slot| slot.address.len())
        .max()
        .unwrap_or(0)
        .max(16);
    let _ = writeln!(
        t,
        "  {:<8} {:<6} {:<width$} {:<24} HEALTH",
        "ROLE", "SLOT", "ADDRESS", "MODEL"
    );
    for slot in &s.slots {
        let _ = writeln!(
            t,
            "  {:<8} {:<6} {:<width$} {:<24} {}",
            slot.role,
            slot.slot,
            slot.address,
            slot.model.as_deref().unwrap_or("-"),
            slot.health
        );
    }
    t.push('\n');
    match (s.canary_percent, s.include) {
        (Some(p), Some(active)) => {
            let _ = writeln!(
                t,
                "  nginx    routes {}% to {active} and {p}% to {} (canary step)",
                100 - p,
                active.other()
            );
        }
        _ => {
            if let Some(slot) = s.nginx_routes {
                let _ = writeln!(t, "  nginx    routes to {slot}");
            }
        }
    }
    if let Some(w) = &s.waiting {
        let _ = writeln!(
            t,
            "  waiting  {} on {} since {}; traffic stays on {}: preview with the header `X-Bluegreen-Preview: 1`, then `bluegreen promote` or `bluegreen abort`",
            w.version, w.slot, w.since, w.traffic_on
        );
    }
    if let Some(r) = &s.rollout {
        let _ = writeln!(
            t,
            "  rollout  {} of {} (pid {}, since {}) is in phase {}",
            r.action,
            r.version.as_deref().unwrap_or("?"),
            r.pid,
            r.since,
            // As `status --json` names it.
            serde_json::to_value(r.phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        for phase in &r.phases {
            let _ = writeln!(t, "             {}", phase.line());
        }
        if let Some(current) = &r.current {
            let _ = writeln!(t, "             {}", current.line());
        }
    }
    if let Some(live) = &s.live {
        let _ = writeln!(t, "  drift    {}", live.line());
    }
    let _ = match (s.data_rows, &s.data_summary, &s.data_error) {
        (Some(rows), Some(summary), _) => writeln!(t, "  data     {rows} rows, {summary}"),
        (_, _, Some(error)) => writeln!(t, "  data     cannot be read: {error}"),
        _ => writeln!(t, "  data     none yet (hint: run `bluegreen init`)"),
    };
    let _ = write!(
        t,
        "  models   {} stored, newest {}",
        s.models,
        s.newest_model.as_deref().unwrap_or("-")
    );
    let _ = match &s.newest_passed {
        Some(v) if Some(v) != s.newest_model.as_ref() => {
            writeln!(t, "; the newest that passed the gate is {v}")
        }
        _ => writeln!(t),
    };
    if let Some(r) = &s.newest_refused {
        let _ = writeln!(
            t,
            "  refused  {} by the quality gate: {}",
            r.version, r.reason
        );
    }
    if let Some(f) = &s.training_failed {
        let _ = writeln!(t, "  failed   training at {}: {}", f.time, f.reason);
        let _ = writeln!(t, "           hint: {}", f.hint);
    }
    if let Some(v) = &s.pending_deploy {
        let _ = writeln!(
            t,
            "  pending  {v} passed the gate but is not active: the next trigger deploys it, or run `bluegreen deploy`"
        );
    }
    if let Some(x) = &s.newest_stopped {
        let _ = writeln!(
            t,
            "  stopped  {} by its rollout ({}, {}): {}",
            x.version, x.outcome, x.time, x.reason
        );
        let _ = writeln!(
            t,
            "           hint: the trigger does not deploy it again; `bluegreen deploy {}` rolls it out again",
            x.version
        );
    }
    for note in &s.notes {
        let _ = writeln!(t, "  note     {note}");
    }
    t.push('\n');
    if s.last_deploys.is_empty() {
        let _ = writeln!(t, "  no deploys yet");
        return t;
    }
    let _ = writeln!(t, "  history:");
    for r in &s.last_deploys {
        let slots = match (r.from_slot, r.to_slot) {
            (Some(f), Some(t)) => format!("{f}→{t}"),
            _ => "-".to_string(),
        };
        let versions = format!(
            "{}→{}",
            r.from_version.as_deref().unwrap_or("-"),
            r.to_version.as_deref().unwrap_or("-")
        );
        let _ = write!(
            t,
            "    {}  {:<8} {:<11} {:<12} {:>7.0} ms  {}",
            r.time, r.action, slots, r.outcome, r.duration_ms, versions
        );
        let _ = match &r.reason {
            Some(reason) => writeln!(t, "  ({reason})"),
            None => writeln!(t),
        };
        for phase in &r.rollout {
            let _ = writeln!(t, "        {}", phase.line());
        }
        if let Some(live) = &r.live {
            let _ = writeln!(t, "        {}", live.line());
        }
    }
    t
}
