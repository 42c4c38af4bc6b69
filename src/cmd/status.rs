//! `bluegreen status [--json]`: the whole story at a glance — which slot NGINX routes to and
//! with which model, whether each slot answers, how much data there is and whether training
//! is due, whether a deploy is pending or a model was refused, and the last records of the
//! history.
//!
//! Before it reads anything, `status` reconciles a deploy or rollback that was killed
//! half-way, as the next deploy would (issue 8 §6, `crate::deploy`), so what it shows is
//! what NGINX does. When it cannot (another deploy runs, or this user may not take the
//! deploy lock), it says so, and still names the slot NGINX answers from.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::config::{Config, Fallback};
use crate::data;
use crate::deploy::Deployer;
use crate::history::{self, Action, Intent, Outcome, Phase, Record};
use crate::http;
use crate::layout::Layout;
use crate::lock::LockError;
use crate::rollout::live::LiveAccuracy;
use crate::rollout::report::PhaseReport;
use crate::slot::Slot;
use crate::state::State;
use crate::supervisor::{self, Supervisor};
use crate::switch::{self, Endpoint, Mode};

/// How long `status` waits for a slot or NGINX to answer.
const ASK_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Serialize)]
struct Status {
    /// Set when the configuration file is bad: why, and the last good one shown instead.
    config_error: Option<String>,
    state_dir: String,
    supervisor: &'static str,
    public_port: u16,
    /// How a switch moves traffic (`nginx.switch`): "reload" or "socket".
    switch: Mode,
    /// The slot NGINX answers from, or, when NGINX does not answer, the one the include
    /// names.
    active: Option<Slot>,
    /// The slot the NGINX include names.
    include: Option<Slot>,
    /// The slot NGINX answered `GET /readyz` from, through the public port.
    nginx_routes: Option<Slot>,
    /// During a canary step: the share of traffic (percent) the resting slot gets by its
    /// upstream weight (issue 11).
    canary_percent: Option<u8>,
    /// The candidate that waits for `bluegreen promote` or `bluegreen abort` (issue 11).
    waiting: Option<Waiting>,
    /// A rollout that runs now, or was interrupted and not reconciled yet: its phase and the
    /// figures of the phases it finished (issue 11).
    rollout: Option<Rollout>,
    /// The active model's live accuracy on the rows `add-data` appended last (issue 11).
    live: Option<LiveAccuracy>,
    slots: Vec<SlotStatus>,
    data_rows: Option<usize>,
    newest_model: Option<String>,
    /// The newest model whose gate verdict was "passed": what `bluegreen deploy` deploys.
    newest_passed: Option<String>,
    /// The newest model, when the gate refused it.
    newest_refused: Option<Refusal>,
    /// A model that passed the gate and waits for a deploy (the next trigger deploys it).
    pending_deploy: Option<String>,
    rows_since_newest: Option<usize>,
    /// The data is no longer what the newest model learned from (rows removed or edited).
    data_changed: bool,
    /// Why the data cannot be read (a partial last line, a wrong header), if so.
    data_error: Option<String>,
    /// What changed since the newest model, and whether training is due, for people.
    #[serde(skip)]
    data_summary: Option<String>,
    batch_size: usize,
    training_due: bool,
    models: usize,
    /// What `status` had to say besides: a reconciled deploy, disagreements, skipped files.
    notes: Vec<String>,
    /// The last records of the history: switches, refusals, failures, recoveries.
    last_deploys: Vec<Record>,
}

#[derive(Serialize)]
struct Waiting {
    version: String,
    slot: Slot,
    /// When its deploy began.
    since: String,
    /// The slot that keeps the traffic meanwhile.
    traffic_on: Slot,
}

#[derive(Serialize)]
struct Rollout {
    action: Action,
    pid: u32,
    phase: Phase,
    version: Option<String>,
    since: String,
    phases: Vec<PhaseReport>,
}

#[derive(Serialize)]
struct Refusal {
    version: String,
    reason: String,
}

#[derive(Serialize)]
struct SlotStatus {
    slot: Slot,
    role: &'static str,
    address: String,
    /// The version the slot's symlink names.
    model: Option<String>,
    /// The version the running server reports, if it answers.
    serving: Option<String>,
    health: String,
}

/// `fallback`: the configuration file is bad and `config` is the last good one (issue 8 §3).
pub fn execute(
    config: &Config,
    args: &StatusArgs,
    fallback: Option<&Fallback>,
) -> anyhow::Result<ExitCode> {
    let mut status = gather(config)?;
    status.config_error = fallback.map(|f| f.summary("slots that start now run on"));
    if args.json {
        super::out(&format!("{}\n", serde_json::to_string_pretty(&status)?))?;
    } else {
        super::out(&table(&status))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn gather(config: &Config) -> anyhow::Result<Status> {
    let layout = Layout::new(&config.state_dir);
    let supervisor = supervisor::detect(config, &layout);
    let mut notes = Vec::new();
    notes.extend(reconcile(config, &layout, supervisor.as_ref()));
    let state = State::read(config).context("cannot read the state folder")?;
    let public = SocketAddr::from(([127, 0, 0, 1], config.public_port));
    let nginx_routes = match http::request(public, "GET", "/readyz", None, ASK_TIMEOUT) {
        Ok(r) => {
            let slot = r.header("x-slot").and_then(|s| s.parse::<Slot>().ok());
            if slot.is_none() {
                notes.push(format!(
                    "NGINX on port {} answers {} from no slot: no slot answers it",
                    config.public_port, r.status
                ));
            }
            slot
        }
        Err(e) => {
            notes.push(format!(
                "NGINX does not answer on port {}: {}",
                config.public_port,
                in_words(&e, &Endpoint::Tcp(public))
            ));
            None
        }
    };
    if let Some(route) = state.route().filter(|r| r.mode != config.nginx.switch) {
        notes.push(format!(
            "the config says nginx.switch = \"{}\", but NGINX still routes the {} way; hint: `bluegreen restart` applies the change (under systemd, `systemctl daemon-reload` first)",
            config.nginx.switch, route.mode
        ));
    }
    let include = state.active();
    let canary_percent = state.split();
    if let (Some(routes), Some(named), None) = (nginx_routes, include, canary_percent) {
        if routes != named {
            notes.push(format!(
                "NGINX routes to {routes}, but its include names {named}: a switch was interrupted and is not reconciled yet; the next deploy, rollback or status does it"
            ));
        }
    }
    let active = nginx_routes.or(include);
    let mut slots = Vec::new();
    for slot in Slot::ALL {
        let addr = switch::endpoint(config, slot);
        let model = state.version(slot).map(str::to_string);
        let (serving, health) = probe(&addr, model.as_deref());
        slots.push(SlotStatus {
            slot,
            role: match active {
                Some(a) if a == slot => "active",
                Some(_) => "resting",
                None => "-",
            },
            address: addr.to_string(),
            model,
            serving,
            health,
        });
    }
    for skipped in state.skipped() {
        notes.push(format!("skipped {}", history::chain(skipped)));
    }
    let newest = state.newest();
    let csv = layout.data_csv(&config.data);
    let schema = data::Schema::of(&config.data);
    let scan = csv
        .exists()
        .then(|| data::scan(&csv, &schema, newest.map(|m| m.learned())));
    let (scan, data_error) = match scan {
        Some(Ok(scan)) => (Some(scan), None),
        Some(Err(e)) => (None, Some(format!("{:#}", anyhow::Error::from(e)))),
        None => (None, None),
    };
    let newest_refused = newest.and_then(|m| {
        let gate = m.gate.as_ref().filter(|g| !g.passed)?;
        Some(Refusal {
            version: m.version.clone(),
            reason: gate.reason.clone(),
        })
    });
    // The last records of what was done; add-data's measurements are shown as `live`.
    let done: Vec<&Record> = state
        .history()
        .iter()
        .filter(|r| r.outcome != Outcome::Measured)
        .collect();
    let last_deploys: Vec<Record> = done[done.len().saturating_sub(5)..]
        .iter()
        .map(|r| (*r).clone())
        .collect();
    let waiting = state.waiting().and_then(|w| {
        Some(Waiting {
            version: w.to_version.clone()?,
            slot: w.to_slot?,
            since: w.time.clone(),
            traffic_on: w.from_slot?,
        })
    });
    let rollout = Intent::read(&layout.deploy_intent())
        .ok()
        .flatten()
        .filter(|i| i.phase != Phase::Waiting)
        .map(|i| Rollout {
            action: i.record.action,
            pid: i.pid,
            phase: i.phase,
            version: i.record.to_version.clone(),
            since: i.record.time.clone(),
            phases: i.record.rollout,
        });
    // The newest measurement of the model that is active now.
    let live = state.active_version().and_then(|active| {
        history::newest(&layout.history(), |r| {
            r.live.as_ref().is_some_and(|l| l.model == active)
        })
        .ok()
        .flatten()
        .and_then(|r| r.live)
    });
    Ok(Status {
        canary_percent,
        waiting,
        rollout,
        live,
        config_error: None,
        state_dir: layout.root().display().to_string(),
        supervisor: supervisor.name(),
        public_port: config.public_port,
        switch: config.nginx.switch,
        active,
        include,
        nginx_routes,
        slots,
        data_rows: scan.map(|s| s.rows),
        data_summary: scan.map(|s| {
            let since = s.since_text(newest.map(|m| m.version.as_str()));
            format!("{since} ({})", s.verdict(config.batch_size))
        }),
        newest_model: newest.map(|m| m.version.clone()),
        newest_passed: state.newest_passed().map(|m| m.version.clone()),
        newest_refused,
        pending_deploy: state.pending().map(|m| m.version.clone()),
        training_due: scan.is_some_and(|s| s.due(config.batch_size)),
        rows_since_newest: scan.map(|s| s.rows_since()),
        data_changed: scan.is_some_and(|s| s.since == data::Since::Changed),
        data_error,
        batch_size: config.batch_size,
        models: state.versions().len(),
        notes,
        last_deploys,
    })
}

/// Reconciles an interrupted switch when there is one and this process may; returns what
/// the operator should know. Its progress goes to standard error, so `--json` stays JSON.
fn reconcile(config: &Config, layout: &Layout, supervisor: &dyn Supervisor) -> Option<String> {
    if !layout.deploy_intent().exists() {
        return None;
    }
    let say = super::warn;
    let deployer = Deployer::new(config, supervisor, &say);
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

/// Asks a slot which model it serves. "healthy" only when it answers and serves its link's
/// model; a slot that serves another one has not been restarted since its link moved.
fn probe(addr: &Endpoint, linked: Option<&str>) -> (Option<String>, String) {
    match http::request_to(addr, "GET", "/readyz", None, ASK_TIMEOUT) {
        Ok(r) if r.status == 200 => {
            let serving = r
                .json()
                .and_then(|j| j["model"].as_str().map(str::to_string));
            let health = if serving.as_deref() == linked {
                "healthy".to_string()
            } else {
                format!(
                    "serves {} but is linked to {}",
                    serving.as_deref().unwrap_or("?"),
                    linked.unwrap_or("nothing")
                )
            };
            (serving, health)
        }
        Ok(r) => (None, format!("unhealthy: /readyz answered {}", r.status)),
        Err(e) => (None, format!("down: {}", in_words(&e, addr))),
    }
}

/// What an error of a request to `addr` means, in words rather than an errno ("Resource
/// temporarily unavailable (os error 11)" is how a read timeout shows; issue 8 §9).
fn in_words(e: &io::Error, addr: &Endpoint) -> String {
    use io::ErrorKind as K;
    match e.kind() {
        K::WouldBlock | K::TimedOut => format!("no answer within {} ms", ASK_TIMEOUT.as_millis()),
        K::ConnectionRefused | K::NotFound => format!("nothing listens on {addr}"),
        K::PermissionDenied => {
            format!("this user may not connect to {addr}; hint: run `bluegreen status` as root")
        }
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe => {
            "it closed the connection without an answer".to_string()
        }
        K::InvalidData => "its answer is not HTTP".to_string(),
        kind => kind.to_string(),
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
            "  rollout  {} of {} (pid {}, since {}) is in phase {:?}",
            r.action,
            r.version.as_deref().unwrap_or("?"),
            r.pid,
            r.since,
            r.phase
        );
        for phase in &r.phases {
            let _ = writeln!(t, "             {}", phase.line());
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
    if let Some(v) = &s.pending_deploy {
        let _ = writeln!(
            t,
            "  pending  {v} passed the gate but is not active: the next trigger deploys it, or run `bluegreen deploy`"
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
