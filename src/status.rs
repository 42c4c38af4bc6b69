//! What the system looks like now, as one [`Status`]: which slot NGINX routes to and with
//! which model, whether each slot answers, how much data there is and whether training is
//! due, whether a deploy is pending or a model was refused, a rollout's state (a candidate
//! waiting for `promote`, a canary split, a rollout in progress with its phases' figures, the
//! active model's live accuracy; issue 11), and the last records of the history.
//!
//! One function, [`gather`], computes it for both of its readers: `bluegreen status` (the
//! table, and `--json`) and the dashboard's `/-/api/status` (issue 12), which serve the same
//! JSON. What differs is how the running system is asked ([`Probe`]): `status` asks NGINX and
//! each slot over HTTP ([`Ask`]); the dashboard runs inside a slot, which under systemd has
//! no network of its own (`PrivateNetwork=yes`), so it asks nothing and the page asks each
//! slot through NGINX instead.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::data::{self, Learned, Scan, Schema};
use crate::history::{self, Action, Intent, Outcome, Phase, Record};
use crate::http;
use crate::layout::Layout;
use crate::rollout::live::LiveAccuracy;
use crate::rollout::report::{PhaseReport, PhaseSoFar};
use crate::slot::Slot;
use crate::state::{State, StateError};
use crate::supervisor;
use crate::switch::{self, Endpoint, Mode};

/// How long [`Ask`] waits for a slot or NGINX to answer.
const ASK_TIMEOUT: Duration = Duration::from_millis(800);

/// The whole report; its JSON is `bluegreen status --json` and `/-/api/status`.
#[derive(Serialize)]
pub struct Status {
    /// Set when the configuration file is bad: why, and the last good one shown instead.
    pub config_error: Option<String>,
    pub state_dir: String,
    pub supervisor: &'static str,
    pub public_port: u16,
    /// How a switch moves traffic (`nginx.switch`): "reload" or "socket".
    pub switch: Mode,
    /// The slot NGINX answers from, or, when NGINX does not answer, the one the include
    /// names.
    pub active: Option<Slot>,
    /// The slot the NGINX include names.
    pub include: Option<Slot>,
    /// The slot NGINX answered `GET /readyz` from, through the public port.
    pub nginx_routes: Option<Slot>,
    /// During a canary step: the share of traffic (percent) the resting slot gets by its
    /// upstream weight (issue 11).
    pub canary_percent: Option<u8>,
    /// The candidate that waits for `bluegreen promote` or `bluegreen abort` (issue 11).
    pub waiting: Option<Waiting>,
    /// A rollout that runs now, or was interrupted and not reconciled yet: its phase, the
    /// figures of the phases it finished and those of the phase it is in (issue 11).
    pub rollout: Option<Rollout>,
    /// The active model's live accuracy on the rows `add-data` appended last (issue 11).
    pub live: Option<LiveAccuracy>,
    pub slots: Vec<SlotStatus>,
    pub data_rows: Option<usize>,
    pub newest_model: Option<String>,
    /// The newest model whose gate verdict was "passed": what `bluegreen deploy` deploys.
    pub newest_passed: Option<String>,
    /// The newest model, when the gate refused it.
    pub newest_refused: Option<Refusal>,
    /// The last training, when it failed and no model was trained since (issue 8 §7).
    pub training_failed: Option<TrainingFailure>,
    /// A model that passed the gate and waits for a deploy (the next trigger deploys it).
    pub pending_deploy: Option<String>,
    /// The newest model that passed the gate, when it is not active because its rollout
    /// stopped it (a phase breached or could not judge, or `bluegreen abort`): the trigger
    /// does not deploy it again, so this says why it does not serve (issue 11).
    pub newest_stopped: Option<Stopped>,
    pub rows_since_newest: Option<usize>,
    /// The data is no longer what the newest model learned from (rows removed or edited).
    pub data_changed: bool,
    /// Why the data cannot be read (a partial last line, a wrong header), if so.
    pub data_error: Option<String>,
    /// What changed since the newest model, and whether training is due, for people.
    #[serde(skip)]
    pub data_summary: Option<String>,
    pub batch_size: usize,
    pub training_due: bool,
    pub models: usize,
    /// What `status` had to say besides: a reconciled deploy, disagreements, skipped files.
    pub notes: Vec<String>,
    /// The last records of the history: switches, refusals, failures, recoveries, rollout
    /// steps; add-data's measurements are left out (the newest is `live`).
    pub last_deploys: Vec<Record>,
}

/// A candidate ready and probed on the resting slot, waiting for `bluegreen promote` or
/// `bluegreen abort` (`rollout.promote = "manual"`, issue 11).
#[derive(Serialize)]
pub struct Waiting {
    pub version: String,
    pub slot: Slot,
    /// When it began waiting (RFC 3339, UTC): the end of the deploy that left it on its
    /// slot, or of the promote that failed and left it waiting again.
    pub since: String,
    /// The slot that keeps the traffic meanwhile.
    pub traffic_on: Slot,
}

/// A rollout in progress, as its intent says (issue 11).
#[derive(Serialize)]
pub struct Rollout {
    /// `deploy` or `promote`.
    pub action: Action,
    /// The process running it.
    pub pid: u32,
    pub phase: Phase,
    /// The candidate.
    pub version: Option<String>,
    /// When it began (RFC 3339, UTC).
    pub since: String,
    /// The figures of the phases it finished.
    pub phases: Vec<PhaseReport>,
    /// The phase it is in, with its figures so far, as the rollout read them last (every
    /// half second); `None` between phases. Its `as_of` says how fresh they are: a rollout
    /// killed mid-phase leaves them until a command reconciles it (`status` does, when it
    /// may take the deploy lock).
    pub current: Option<PhaseSoFar>,
}

/// The newest model, refused by the quality gate, and why.
#[derive(Serialize)]
pub struct Refusal {
    pub version: String,
    pub reason: String,
}

/// A model a rollout stopped: when, and why (the history's reason).
#[derive(Serialize)]
pub struct Stopped {
    pub version: String,
    /// When that rollout began (RFC 3339, UTC).
    pub time: String,
    /// `aborted` or `inconclusive`.
    pub outcome: Outcome,
    pub reason: String,
}

/// The last training, which failed.
#[derive(Serialize)]
pub struct TrainingFailure {
    /// When it began (RFC 3339, UTC).
    pub time: String,
    /// The step that failed and the whole cause, as the history records it.
    pub reason: String,
    /// What to do about it, whatever the cause (the reason has the cause's own hint).
    pub hint: &'static str,
}

const TRAINING_FAILED_HINT: &str = "fix what the reason names; the trigger tries again when data arrives, and `bluegreen train` tries now";

/// One slot as [`gather`] found it.
#[derive(Serialize)]
pub struct SlotStatus {
    pub slot: Slot,
    /// "active", "resting", or "-" when no slot is active yet.
    pub role: &'static str,
    pub address: String,
    /// The version the slot's symlink names.
    pub model: Option<String>,
    /// The version the running server reports, if it answers.
    pub serving: Option<String>,
    pub health: String,
}

/// How [`gather`] learns what the running system does, beyond the state folder's files.
pub trait Probe {
    /// The slot NGINX answers from on the public port; `Err` says in words why there is
    /// none to tell.
    fn nginx_routes(&self, config: &Config) -> Result<Option<Slot>, String>;
    /// What the slot at `addr` serves, if it answers, and its health in words, given the
    /// version its link names.
    fn slot(&self, addr: &Endpoint, linked: Option<&str>) -> (Option<String>, String);
    /// The data file at `path` at a glance, against what the newest model learned from
    /// ([`data::survey`]); `Err` says in words why it cannot be read.
    fn data(&self, path: &Path, schema: &Schema, learned: Option<Learned>) -> Result<Scan, String>;
}

/// Asks NGINX and each slot over HTTP, and counts the data rows: `bluegreen status`.
pub struct Ask;

impl Probe for Ask {
    fn nginx_routes(&self, config: &Config) -> Result<Option<Slot>, String> {
        let public = SocketAddr::from(([127, 0, 0, 1], config.public_port));
        match http::request(public, "GET", "/readyz", None, ASK_TIMEOUT) {
            Ok(r) => {
                let slot = r.header("x-slot").and_then(|s| s.parse::<Slot>().ok());
                match slot {
                    Some(slot) => Ok(Some(slot)),
                    None => Err(format!(
                        "NGINX on port {} answers {} from no slot: no slot answers it",
                        config.public_port, r.status
                    )),
                }
            }
            Err(e) => Err(format!(
                "NGINX does not answer on port {}: {}",
                config.public_port,
                in_words(&e, &Endpoint::Tcp(public))
            )),
        }
    }

    /// "healthy" only when it answers and serves its link's model; a slot that serves
    /// another one has not been restarted since its link moved.
    fn slot(&self, addr: &Endpoint, linked: Option<&str>) -> (Option<String>, String) {
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

    fn data(&self, path: &Path, schema: &Schema, learned: Option<Learned>) -> Result<Scan, String> {
        // The ledger answers without reading the file when it vouches for it (issue 10,
        // crate::ledger); status only reads it. The data file is state_dir/data/<file>.
        let state_dir = path
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        let ledger = crate::layout::Layout::new(state_dir).data_ledger();
        data::survey_path(path, schema, learned, &ledger)
            .map(|survey| survey.scan)
            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
    }
}

/// `config` with each slot's address where the slot really listens: `up` holds the slots'
/// sockets from its start, so an edited `slots.*` is not applied until `up` starts again
/// (`bluegreen restart` refuses it), and the slots and the include stay at the old address.
/// Status probes them there and notes the change waiting (a fresh-user review: a healthy slot
/// was shown "down: nothing listens on" the new address).
fn applied(
    config: &Config,
    supervisor: &dyn supervisor::Supervisor,
    notes: &mut Vec<String>,
) -> Config {
    let mut applied = config.clone();
    for slot in Slot::ALL {
        let wanted = config.slot_addr(slot);
        let Some(Endpoint::Tcp(held)) = supervisor.listens(slot) else {
            continue;
        };
        if held == wanted {
            continue;
        }
        notes.push(format!(
            "the config puts {slot} on {wanted}, but it listens on {held}, which {} has held since it started: the change is not applied; hint: stop and start `bluegreen up` to apply it, or set slots.{slot} back",
            supervisor.name()
        ));
        match slot {
            Slot::Blue => applied.slots.blue = held,
            Slot::Green => applied.slots.green = held,
        }
    }
    applied
}

/// The report, from the state folder as [`State::read`] finds it and what `probe` learns;
/// `notes` come first among its notes (a reconciled deploy, say).
pub fn gather(
    config: &Config,
    probe: &dyn Probe,
    mut notes: Vec<String>,
) -> Result<Status, StateError> {
    let layout = Layout::new(&config.state_dir);
    let supervisor = supervisor::detect(config, &layout);
    let applied = applied(config, supervisor.as_ref(), &mut notes);
    let config = &applied;
    let state = State::read(config)?;
    let nginx_routes = probe.nginx_routes(config).unwrap_or_else(|note| {
        notes.push(note);
        None
    });
    if let Some(route) = state.route().filter(|r| r.mode != config.nginx.switch) {
        notes.push(format!(
            "the config says nginx.switch = \"{}\", but NGINX still routes the {} way; hint: `bluegreen restart` applies the change (under systemd, `systemctl daemon-reload` first)",
            config.nginx.switch, route.mode
        ));
    }
    let include = state.active();
    let canary_percent = state.split();
    // During a canary step NGINX answers from both slots, so either is right.
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
        let (serving, health) = probe.slot(&addr, model.as_deref());
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
    let schema = Schema::of(&config.data);
    let scan = csv
        .exists()
        .then(|| probe.data(&csv, &schema, newest.map(|m| m.learned())));
    let (scan, data_error) = match scan {
        Some(Ok(scan)) => (Some(scan), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let newest_refused = newest.and_then(|m| {
        let gate = m.gate.as_ref().filter(|g| !g.passed)?;
        Some(Refusal {
            version: m.version.clone(),
            reason: gate.reason.clone(),
        })
    });
    let history = state.history();
    let training_failed = history
        .iter()
        .rev()
        .find(|r| r.action == Action::Train)
        .filter(|r| r.outcome == Outcome::Failed)
        .filter(|r| newest.is_none_or(|m| m.trained_at < r.time))
        .map(|r| TrainingFailure {
            time: r.time.clone(),
            reason: r.reason.clone().unwrap_or_default(),
            hint: TRAINING_FAILED_HINT,
        });
    let waiting = state.waiting().and_then(|w| {
        Some(Waiting {
            version: w.to_version.clone()?,
            slot: w.to_slot?,
            since: w.ended(),
            traffic_on: w.from_slot?,
        })
    });
    // An intent that cannot be read is the reconcile's to report, not this reading's.
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
            current: i.so_far,
        });
    // The model a rollout is deploying now is not waiting for a trigger.
    let pending_deploy = state.pending().map(|m| m.version.clone()).filter(|v| {
        rollout
            .as_ref()
            .is_none_or(|r| r.version.as_ref() != Some(v))
    });
    // The newest model that passed, whose latest record is its rollout stopping it.
    let newest_stopped = state
        .newest_passed()
        .map(|m| m.version.clone())
        .filter(|v| state.active_version() != Some(v.as_str()) && pending_deploy.is_none())
        .filter(|_| rollout.is_none() && waiting.is_none())
        .and_then(|v| {
            let r = history
                .iter()
                .rev()
                .find(|r| r.to_version.as_deref() == Some(v.as_str()))?;
            matches!(r.outcome, Outcome::Aborted | Outcome::Inconclusive).then(|| Stopped {
                version: v,
                time: r.time.clone(),
                outcome: r.outcome,
                reason: r.reason.clone().unwrap_or_default(),
            })
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
        config_error: None,
        state_dir: layout.root().display().to_string(),
        supervisor: supervisor.name(),
        public_port: config.public_port,
        switch: config.nginx.switch,
        active,
        include,
        nginx_routes,
        canary_percent,
        waiting,
        rollout,
        live,
        slots,
        data_rows: scan.map(|s| s.rows),
        data_summary: scan.map(|s| {
            let since = s.since_text(newest.map(|m| m.version.as_str()));
            format!("{since} ({})", s.verdict(config.batch_size))
        }),
        newest_model: newest.map(|m| m.version.clone()),
        newest_passed: state.newest_passed().map(|m| m.version.clone()),
        newest_refused,
        training_failed,
        pending_deploy,
        newest_stopped,
        training_due: scan.is_some_and(|s| s.due(config.batch_size)),
        rows_since_newest: scan.map(|s| s.rows_since()),
        data_changed: scan.is_some_and(|s| s.since == data::Since::Changed),
        data_error,
        batch_size: config.batch_size,
        models: state.versions().len(),
        notes,
        last_deploys: history[history.len().saturating_sub(5)..].to_vec(),
    })
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
