//! The switch: deploy a model to the resting slot and move traffic to it, or roll back; and
//! finish a switch whose process was killed half-way.
//!
//! A deploy runs under an exclusive lock, in this order, and prints one line as each step
//! ends:
//! 1. resolve: an interrupted switch is reconciled first (below); then the candidate (the
//!    newest model that passed the gate, or the version asked for) and the slots, from one
//!    [`State`]: the resting slot is the one the NGINX include does not name;
//! 2. gate: the quality gate judges the candidate against the active model;
//! 3. the intent is written (phase `restart`); the deploy waits until no NGINX worker from
//!    before the previous switch is left, since such a worker may still send the resting
//!    slot requests;
//! 4. restart: the resting slot's symlink is pointed at the candidate and the slot is
//!    restarted by the supervisor, which returns once the slot sent `READY=1`;
//! 5. probe: the slot is asked directly: `/readyz` names the new version, and a real
//!    prediction of a known row equals the artifact's own;
//! 6. include: the intent moves to phase `switch`, the new include is written and `nginx -t`
//!    checks the whole configuration;
//! 7. reload: the NGINX master gets SIGHUP; the deploy waits until every worker from before
//!    has stopped accepting connections;
//! 8. confirm: answers through NGINX are polled until they carry the new version;
//! 9. the record is appended to the history, then the intent is removed.
//!
//! In switch mode "socket" (`crate::switch`, issue 10), steps 3, 6 and 7 differ: step 3 waits
//! until the resting slot has no connection left instead of NGINX's old workers; step 6
//! (`link`) renames a new link to the target slot's socket over the old one, which is the
//! whole switch for NGINX (no `nginx -t`, no reload); step 7 (`drain`) waits until the old
//! slot, which watches the link, has closed every connection NGINX had to it. From then on no
//! request can reach it, as after step 7 in reload mode.
//!
//! Any failure in 4–8 leaves traffic on the previous slot or puts it back there (include
//! restored, NGINX reloaded again if it had been), puts the resting slot back on its old model,
//! and is recorded as `failed` with its whole error chain as the reason (issue 8 §8).
//!
//! # Crash consistency (issue 8 §6)
//! A deploy or rollback may be killed (`kill -9`, a power cut) at any instant. The intent
//! file (`run/deploy-intent.json`, written whole before each phase) says how far it got, and
//! the next deploy, rollback or status reconciles under the same lock, before it reads
//! anything else ([`Deployer::reconcile`]):
//! - phase `restart`: NGINX was not touched, so traffic never moved. The target slot's link is
//!   put back (and the slot restarted if it serves something else); recorded `interrupted`.
//! - phase `switch`: the include may name either slot and NGINX may have loaded
//!   either. The target was probed before this phase began, so the switch is completed: the
//!   target is probed again, the include is written naming it, NGINX reloads, and the deploy
//!   waits until no old worker accepts connections and NGINX answers from the target. After
//!   that, include and NGINX agree whatever state they were in. Recorded `recovered`. If the
//!   target no longer serves the model, the same is done towards the previous slot instead,
//!   recorded `interrupted`. In socket mode the link may name either slot, and NGINX follows
//!   whichever it names at each new connection; the switch is completed the same way, with
//!   the link instead of the include and the reload, and the wait for the other slot to let
//!   go of NGINX's connections.
//! - the record was already appended (killed before the intent was removed): only the intent
//!   is removed.
//!
//! Asking NGINX alone (`X-Slot` through the public port) cannot settle it: on SIGHUP the
//! master starts new workers first and only then tells the old ones to close their listening
//! sockets (<https://nginx.org/en/docs/control.html>), so for about 100 ms both accept and one
//! answer may come from either. A reload under the lock makes the state known instead of
//! guessing it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::switch::{self, Endpoint, Mode, SwitchError};

use crate::config::Config;
use crate::data::{self, DataError};
use crate::fsutil;
use crate::gate::{self, GateReport};
use crate::history::{self, Action, HistoryError, Intent, Outcome, Phase, Record};
use crate::http;
use crate::layout::Layout;
use crate::lock::{self, LockError};
use crate::model::{Artifact, ModelError, Store};
use crate::nginx::NginxError;
use crate::progress::Progress;
use crate::slot::Slot;
use crate::state::{ResolveError, State, StateError};
use crate::supervisor::{Supervisor, SupervisorError};

/// How long a probe of a slot waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a deploy or rollback did not switch. Every variant that may leave something to put
/// right says what the next command does about it.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("no stored model has passed the quality gate; hint: add data and run `bluegreen train`, or name a version")]
    NoPassedModel,
    #[error("there is no NGINX include yet, so no slot is active; hint: run `bluegreen init`")]
    NoActiveSlot,
    #[error("the config says nginx.switch = \"{configured}\", but NGINX still routes the {routed} way; hint: `bluegreen restart` applies the change (under systemd, `systemctl daemon-reload` first)")]
    ModeNotApplied { configured: Mode, routed: Mode },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Nginx(#[from] NginxError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the quality gate refused {version}: {}", report.reason)]
    Refused {
        version: String,
        report: Box<GateReport>,
    },
    #[error("{action} failed at step \"{step}\"; {after}")]
    Failed {
        action: Action,
        step: &'static str,
        /// Where traffic is now, or that the next command puts it right.
        after: String,
        #[source]
        source: Box<StepError>,
    },
    #[error("the {action} is done, but it is not in the history yet: the next deploy, rollback or status records it")]
    Unrecorded {
        action: Action,
        #[source]
        source: HistoryError,
    },
    #[error("the resting slot {slot} cannot take traffic; hint: deploy a model to it with `bluegreen deploy`")]
    RestingUnhealthy {
        slot: Slot,
        #[source]
        source: RestingError,
    },
    #[error("{version} waits on {slot} for `bluegreen promote` or `bluegreen abort` (rollout.promote = \"manual\"); hint: promote or abort it first")]
    Waiting { version: String, slot: Slot },
    #[error("no candidate waits for promotion; hint: with rollout.promote = \"manual\", `bluegreen deploy` makes one wait (see `bluegreen status`)")]
    NothingWaits,
    #[error("the waiting candidate {version} on {slot} cannot be promoted: traffic is no longer on {from}, where it was when the candidate was deployed; hint: `bluegreen abort`, then deploy again")]
    Moved {
        version: String,
        slot: Slot,
        from: Slot,
    },
    #[error("a {action} (pid {pid}) was interrupted at phase {phase:?}, and its switch cannot be finished; hint: fix the cause, then run `bluegreen status` again")]
    Reconcile {
        action: Action,
        pid: u32,
        phase: Phase,
        #[source]
        source: Box<StepError>,
    },
}

/// Why one step of a switch failed; the history keeps its whole chain.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Intent(HistoryError),
    #[error("cannot point the {slot} slot's link at {version}")]
    Link {
        slot: Slot,
        version: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Restart(SupervisorError),
    #[error(transparent)]
    Probe(ProbeError),
    #[error(transparent)]
    Model(ModelError),
    #[error(transparent)]
    Nginx(NginxError),
    #[error(transparent)]
    Switch(SwitchError),
    #[error("{left} connection(s) to {slot}'s socket {path} are still open after {after:?}; does the slot follow the link? (a slot learns its role by watching it)")]
    Drain {
        slot: Slot,
        path: std::path::PathBuf,
        left: usize,
        after: Duration,
    },
    #[error("all traffic could not be put back on {slot} (see above); the next deploy, rollback or status does it")]
    Restore { slot: Slot },
    #[error("stopped by {signal} (Ctrl-C, `systemctl stop` or a timeout) during the rollout, which put traffic back first; hint: run the same command again to start the rollout over (a deploy the trigger started is retried at its next run)")]
    Interrupted { signal: crate::rollout::Signal },
    #[error("{left} NGINX worker(s) from before the reload still accept connections after {after:?}; did NGINX load the new configuration? (see its error log)")]
    Reload { left: usize, after: Duration },
    #[error("NGINX on {addr} still answered {last} after {after:?}, not {slot}")]
    Confirm {
        addr: SocketAddr,
        slot: Slot,
        last: String,
        after: Duration,
    },
}

/// Why a slot does not serve the model it should.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{slot} does not answer {method} {path} on {addr}")]
    Unreachable {
        slot: Slot,
        method: &'static str,
        addr: Endpoint,
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{slot} answered GET /readyz with {status} naming {served:?}, not {expected}")]
    WrongModel {
        slot: Slot,
        status: u16,
        served: Option<String>,
        expected: String,
    },
    #[error("{slot} answered the probe row with {status} and Price {price:?}; {version} predicts {expected}")]
    WrongPrice {
        slot: Slot,
        status: u16,
        price: Option<f64>,
        version: String,
        expected: f64,
    },
    #[error("{version} cannot predict its own example row")]
    Predict {
        version: String,
        #[source]
        source: ModelError,
    },
}

/// Why the resting slot cannot take traffic back.
#[derive(Debug, thiserror::Error)]
pub enum RestingError {
    #[error("it has no model link")]
    NoModel,
    #[error(transparent)]
    Model(ModelError),
    #[error(transparent)]
    Probe(ProbeError),
}

/// What a successful call did.
#[derive(Debug)]
pub enum Done {
    Switched(Box<Record>),
    /// The candidate is ready on the resting slot and waits for `bluegreen promote`
    /// (`rollout.promote = "manual"`, issue 11).
    Waiting(Box<Record>),
    /// The rollout's analysis stopped the candidate; traffic is where it was (issue 11).
    Aborted(Box<Record>),
    /// A rollout phase had too few requests to judge the candidate; traffic is where it was
    /// and, after a promote, the candidate waits again (issue 11).
    Inconclusive(Box<Record>),
    /// The requested version already serves on the active slot.
    AlreadyActive {
        slot: Slot,
        version: String,
    },
}

/// A step that failed, and whether traffic and include were left in agreement.
pub(crate) struct Failure {
    pub(crate) step: &'static str,
    pub(crate) error: Box<StepError>,
    /// True when include and NGINX agree again (on the slot traffic was on before).
    pub(crate) restored: bool,
}

impl Failure {
    pub(crate) fn at(step: &'static str, error: StepError) -> Failure {
        let error = Box::new(error);
        Failure {
            step,
            error,
            restored: true,
        }
    }
}

/// Deploys, rolls back and reconciles for one state folder, through one supervisor; logs
/// each step as it ends (`tracing`, with the fields `step`, `slot`, `version` and
/// `duration_ms`: the step's own time, as the history records it).
pub struct Deployer<'a> {
    pub(crate) config: &'a Config,
    pub(crate) layout: Layout,
    supervisor: &'a dyn Supervisor,
}

impl<'a> Deployer<'a> {
    /// A deployer for `config`'s state folder.
    pub fn new(config: &'a Config, supervisor: &'a dyn Supervisor) -> Self {
        Deployer {
            config,
            layout: Layout::new(&config.state_dir),
            supervisor,
        }
    }

    /// Whoever runs the slots.
    pub(crate) fn supervisor(&self) -> &dyn Supervisor {
        self.supervisor
    }

    fn public_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.config.public_port))
    }

    /// The deploy lock, waiting up to `timeout` for another deploy to finish.
    pub fn lock(&self, timeout: Duration) -> Result<nix::fcntl::Flock<std::fs::File>, LockError> {
        lock::acquire(&self.layout.deploy_lock(), "deploy", timeout, |holder| {
            info!("waiting for another deploy (pid {holder}) to finish")
        })
    }

    /// Deploys `version` (a version or a unique prefix of one; default: the newest model
    /// that passed the gate) to the resting slot. A candidate of another schema than the
    /// active model's passes the gate only with `allow_schema_change`, and then the default
    /// is the newest model when the gate refused it for its schema alone (issue 9).
    pub fn deploy(
        &self,
        version: Option<&str>,
        allow_schema_change: bool,
    ) -> Result<Done, DeployError> {
        let _lock = self.lock(self.config.lock_timeout())?;
        self.reconcile()?;
        let state = State::read(self.config)?;
        self.not_waiting(&state)?;
        for skipped in state.skipped() {
            warn!(
                "skipping a model that cannot be read: {}",
                history::chain(skipped)
            );
        }
        let schema_refused = state
            .newest()
            .filter(|n| n.gate.as_ref().is_some_and(|g| g.schema_change.is_some()));
        let candidate = match version {
            Some(asked) => state.load(state.resolve(asked)?)?,
            None if allow_schema_change && schema_refused.is_some() => {
                schema_refused.cloned().expect("checked above")
            }
            None => match state.newest_passed() {
                Some(a) => a.clone(),
                None if state.versions().is_empty() => return Err(ResolveError::NoModels.into()),
                None => return Err(DeployError::NoPassedModel),
            },
        };
        let active = self.active(&state)?;
        let active_version = state.version(active).map(str::to_string);
        if active_version.as_deref() == Some(candidate.version.as_str()) {
            return Ok(Done::AlreadyActive {
                slot: active,
                version: candidate.version,
            });
        }
        let resting = active.other();
        self.nginx_ready()?;
        let mut record = Record::begin(
            Action::Deploy,
            (Some(active), active_version.clone()),
            (Some(resting), Some(candidate.version.clone())),
        );
        let ms = record.step("resolve");
        info!(
            step = "resolve",
            slot = %resting,
            version = candidate.version,
            duration_ms = ms,
            "deploying {} to {resting} (active: {active} with {})",
            candidate.version,
            active_version.as_deref().unwrap_or("no model")
        );

        let report = self.gate(&state, &candidate, allow_schema_change)?;
        record.gate = Some(report.clone());
        let ms = record.step("gate");
        if !report.passed {
            info!(
                step = "gate",
                version = candidate.version,
                duration_ms = ms,
                "quality gate: refused: {}",
                report.reason
            );
            record.finish(Outcome::Refused, Some(report.reason.clone()));
            if let Err(e) = self.append(&record) {
                warn!("the refusal is not in the history: {}", history::chain(&e));
            }
            return Err(DeployError::Refused {
                version: candidate.version,
                report: Box::new(report),
            });
        }
        info!(
            step = "gate",
            version = candidate.version,
            duration_ms = ms,
            "quality gate: passed: {}",
            report.reason
        );

        let mut intent = Intent {
            phase: Phase::Restart,
            pid: std::process::id(),
            record,
            target_link_before: state.version(resting).map(str::to_string),
            manual: false,
            so_far: None,
        };
        let result = self.switch(&candidate, active, resting, &mut intent);
        let record = self.conclude(intent, result)?;
        self.prune();
        Ok(match record.outcome {
            Outcome::Waiting => Done::Waiting(Box::new(record)),
            Outcome::Aborted => Done::Aborted(Box::new(record)),
            Outcome::Inconclusive => Done::Inconclusive(Box::new(record)),
            _ => Done::Switched(Box::new(record)),
        })
    }

    /// Fails when a candidate waits for `bluegreen promote`: a deploy or a rollback would
    /// undo it behind the operator's back.
    fn not_waiting(&self, state: &State) -> Result<(), DeployError> {
        match state.waiting() {
            Some(w) => Err(DeployError::Waiting {
                version: w.to_version.clone().unwrap_or_default(),
                slot: w.to_slot.unwrap_or(Slot::Green),
            }),
            None => Ok(()),
        }
    }

    /// Moves traffic back to the resting slot, which still serves the previous model.
    pub fn rollback(&self) -> Result<Record, DeployError> {
        let _lock = self.lock(self.config.lock_timeout())?;
        self.reconcile()?;
        let state = State::read(self.config)?;
        self.not_waiting(&state)?;
        let active = self.active(&state)?;
        let resting = active.other();
        let unhealthy = |source| DeployError::RestingUnhealthy {
            slot: resting,
            source,
        };
        let version = state
            .version(resting)
            .ok_or_else(|| unhealthy(RestingError::NoModel))?
            .to_string();
        let artifact = state
            .load(&version)
            .map_err(|e| unhealthy(RestingError::Model(e)))?;
        self.probe(resting, &artifact)
            .map_err(|e| unhealthy(RestingError::Probe(e)))?;
        self.nginx_ready()?;
        let mut record = Record::begin(
            Action::Rollback,
            (Some(active), state.version(active).map(str::to_string)),
            (Some(resting), Some(version.clone())),
        );
        let ms = record.step("probe");
        info!(
            step = "probe",
            slot = %resting,
            version,
            duration_ms = ms,
            "{resting} answers with {version}; switching traffic back to it"
        );
        let mut intent = Intent {
            phase: Phase::Switch,
            pid: std::process::id(),
            record,
            target_link_before: None,
            manual: false,
            so_far: None,
        };
        let result = self
            .flip(active, resting, &version, &mut intent)
            .map(|()| Outcome::RolledBack);
        self.conclude(intent, result)
    }

    /// The active slot, when the include routes in the configured switch mode's way: a switch
    /// in the other mode's way would leave NGINX and the include apart.
    pub(crate) fn active(&self, state: &State) -> Result<Slot, DeployError> {
        let route = state.route().ok_or(DeployError::NoActiveSlot)?;
        if route.mode != self.config.nginx.switch {
            return Err(DeployError::ModeNotApplied {
                configured: self.config.nginx.switch,
                routed: route.mode,
            });
        }
        Ok(route.slot)
    }

    /// Fails before anything is touched if NGINX is not there to reload (reload mode). In
    /// socket mode a switch asks nothing of NGINX.
    fn nginx_ready(&self) -> Result<(), DeployError> {
        if self.config.nginx.switch == Mode::Reload {
            self.supervisor.nginx().master_pid()?;
        }
        Ok(())
    }

    /// Records how a switch ended and removes its intent; turns a failure into the error
    /// that names its real cause.
    pub(crate) fn conclude(
        &self,
        mut intent: Intent,
        result: Result<Outcome, Failure>,
    ) -> Result<Record, DeployError> {
        let intent_path = self.layout.deploy_intent();
        let action = intent.record.action;
        let (from, from_version) = (intent.record.from_slot, intent.record.from_version.clone());
        let failure = match result {
            // A state, not a switch in progress: the intent stays (phase Waiting) for
            // `promote` or `abort`, and says what waits; its record goes to the history, or
            // the next reconcile appends it. A promoted candidate that a phase could not
            // judge waits again so (issue 11).
            Ok(outcome @ (Outcome::Waiting | Outcome::Inconclusive))
                if outcome == Outcome::Waiting || intent.manual =>
            {
                let reason = intent.record.reason.take();
                intent.record.finish(outcome, reason);
                intent.phase = Phase::Waiting;
                intent.so_far = None;
                intent
                    .write(&intent_path)
                    .map_err(|source| DeployError::Unrecorded { action, source })?;
                if let Err(e) = self.append(&intent.record) {
                    warn!(
                        "the wait is not in the history yet ({}); the next command records it",
                        history::chain(&e)
                    );
                }
                return Ok(intent.record);
            }
            Ok(outcome) => {
                // An aborted rollout's reason is already on its record.
                let reason = intent.record.reason.take();
                intent.record.finish(outcome, reason);
                self.keep(&mut intent)
                    .map_err(|source| DeployError::Unrecorded { action, source })?;
                return Ok(intent.record);
            }
            Err(failure) => failure,
        };
        let from_name = from.map_or("?".to_string(), |s| s.to_string());
        let from_version = from_version.unwrap_or_else(|| "no model".to_string());
        let after = if failure.restored && intent.manual && action == Action::Promote {
            // The candidate is still ready on its slot, and traffic where it was: it waits
            // again, for another promote or an abort (issue 11).
            intent.record.fail(failure.step, failure.error.as_ref());
            intent.phase = Phase::Waiting;
            intent.so_far = None;
            let kept = intent
                .write(&intent_path)
                .and_then(|()| self.append(&intent.record));
            match kept {
                Ok(()) => format!(
                    "traffic stays on {from_name} ({from_version}), and the candidate waits again"
                ),
                Err(e) => format!(
                    "traffic stays on {from_name} ({from_version}); the failure is not in the history ({})",
                    history::chain(&e)
                ),
            }
        } else if failure.restored {
            intent.record.fail(failure.step, failure.error.as_ref());
            match self.keep(&mut intent) {
                Ok(()) => format!("traffic stays on {from_name} ({from_version})"),
                Err(e) => format!(
                    "traffic stays on {from_name} ({from_version}); the failure is not in the history ({})",
                    history::chain(&e)
                ),
            }
        } else {
            // Include and NGINX may disagree: the intent stays, so that the next command
            // reconciles them; its record will say why.
            intent.record.reason = Some(format!(
                "{}: {}",
                failure.step,
                history::chain(failure.error.as_ref())
            ));
            let _ = intent.write(&intent_path);
            format!("NGINX could not be put back on {from_name} ({from_version}); the next deploy, rollback or status does it")
        };
        Err(DeployError::Failed {
            action,
            step: failure.step,
            after,
            source: failure.error,
        })
    }

    /// Appends a finished record and removes the intent. If the append fails, the intent
    /// keeps the finished record so that the next reconcile appends it; if even that cannot
    /// be written, the intent is removed (the record is lost, and the caller says so), since
    /// a stale phase would make the next reconcile act on a switch that is over.
    pub(crate) fn keep(&self, intent: &mut Intent) -> Result<(), HistoryError> {
        let path = self.layout.deploy_intent();
        match self.append(&intent.record) {
            Ok(()) => {
                if let Err(e) = Intent::clear(&path) {
                    warn!("{}", history::chain(&e));
                }
                info!("recorded in {}", self.layout.history().display());
                Ok(())
            }
            Err(e) => {
                if intent.write(&path).is_err() {
                    let _ = Intent::clear(&path);
                }
                Err(e)
            }
        }
    }

    pub(crate) fn append(&self, record: &Record) -> Result<(), HistoryError> {
        history::append(&self.layout.history(), record)
    }

    pub(crate) fn write_intent(&self, intent: &Intent) -> Result<(), StepError> {
        intent
            .write(&self.layout.deploy_intent())
            .map_err(StepError::Intent)
    }

    /// The gate's verdict on `candidate` against the active model.
    fn gate(
        &self,
        state: &State,
        candidate: &Artifact,
        allow_schema_change: bool,
    ) -> Result<GateReport, DeployError> {
        let active_version = state.active_version();
        match &candidate.gate {
            // `train` already judged the candidate against this very model with this
            // tolerance, on rows that cannot have changed since: the gate reads only rows
            // the active model was trained on, and the data only grows (`add-data`
            // appends). Reading and parsing all of it again was most of a deploy on large
            // data: 0.4–0.7 s of a 0.5–0.75 s deploy at 10^6 rows. A schema change is
            // judged again: `train` refuses it, a deploy may allow it.
            Some(verdict)
                if verdict.against.as_deref() == active_version
                    && verdict.tolerance == self.config.gate.tolerance
                    && verdict.schema_change.is_none() =>
            {
                Ok(verdict.clone())
            }
            _ => {
                let active_model = state.active_model()?;
                let data = data::read_dataset(
                    &self.layout.data_csv(&self.config.data),
                    &data::Schema::of(&self.config.data),
                )?;
                Ok(gate::check(
                    candidate,
                    active_model.as_ref(),
                    gate::Holdout::Rows(&data),
                    self.config.gate.tolerance,
                    allow_schema_change,
                ))
            }
        }
    }

    /// Steps 3–8, and the rollout's phases between them (`crate::rollout`). On error, traffic
    /// is on `active` again (unless the failure says not).
    fn switch(
        &self,
        candidate: &Artifact,
        active: Slot,
        resting: Slot,
        intent: &mut Intent,
    ) -> Result<Outcome, Failure> {
        let version = &candidate.version;
        let previous = intent.target_link_before.clone();
        // Before the slot restarts: the watch's reference window starts here.
        let baseline = crate::rollout::Baseline::take(self.config, active);
        // A slot loads the model it compares shadow copies with (the other slot's) when it
        // starts (`crate::cmd::serve`): before a shadow phase it restarts even if it already
        // serves the candidate, or it would compare with whatever the other slot served then.
        let already = previous.as_deref() == Some(version.as_str())
            && self.config.rollout.shadow_seconds == 0
            && self.probe(resting, candidate).is_ok();
        self.write_intent(intent)
            .map_err(|e| Failure::at("intent", e))?;
        if already {
            info!(slot = %resting, version, "{resting} already serves {version}; no restart needed");
        } else {
            match self.config.nginx.switch {
                Mode::Reload => {
                    let spinner =
                        Progress::waiting("waiting for NGINX workers from the last reload");
                    let waited = self.wait_for_old_workers();
                    drop(spinner);
                    let ms = intent.record.step("wait-old-workers");
                    let said = if waited > Duration::from_millis(50) {
                        format!(
                            "waited {:.1}s for NGINX workers from the last reload to finish",
                            waited.as_secs_f64()
                        )
                    } else {
                        "no NGINX worker from before the last reload is left".to_string()
                    };
                    info!(step = "wait-old-workers", duration_ms = ms, "{said}");
                }
                Mode::Socket => {
                    // Bounded: past it the restart ends those connections anyway, and NGINX
                    // resends what they carried to the active slot.
                    let spinner = Progress::waiting(format!(
                        "waiting for {resting}'s connections from before the last switch"
                    ));
                    let left = self.drain(resting).err();
                    drop(spinner);
                    let ms = intent.record.step("wait-drained");
                    let said = match left {
                        None => format!("{resting} has no connection left from before the last switch"),
                        Some(e) => format!("{resting} still has connections from before the last switch ({e}); its restart ends them"),
                    };
                    info!(step = "wait-drained", slot = %resting, duration_ms = ms, "{said}");
                }
            }
            let link = self.layout.slot_link(resting);
            fsutil::swap_symlink(&Layout::link_target(version), &link).map_err(|source| {
                Failure::at(
                    "restart",
                    StepError::Link {
                        slot: resting,
                        version: version.clone(),
                        source,
                    },
                )
            })?;
            info!(
                slot = %resting,
                version,
                "restarting {resting} through {} and waiting for READY=1",
                self.supervisor.name()
            );
            let spinner = Progress::waiting(format!("waiting for {resting} to be ready"));
            let restarted = self.supervisor.restart(resting);
            drop(spinner);
            let ms = intent.record.step("restart");
            if restarted.is_ok() {
                info!(step = "restart", slot = %resting, version, duration_ms = ms, "{resting} is ready");
            }
            if let Err(e) = restarted {
                self.restore_resting(resting, previous.as_deref());
                return Err(Failure::at("restart", StepError::Restart(e)));
            }
            if let Err(e) = self.probe(resting, candidate) {
                self.restore_resting(resting, previous.as_deref());
                return Err(Failure::at("probe", StepError::Probe(e)));
            }
            let ms = intent.record.step("probe");
            info!(
                step = "probe",
                slot = %resting,
                version,
                duration_ms = ms,
                "{resting} answers with {version} and predicts the probe row as the artifact does"
            );
        }
        self.roll(version, active, resting, intent, false, baseline)
    }

    /// Steps 6–8 for a flip from `from` to `to`, which must serve `version`.
    pub(crate) fn flip(
        &self,
        from: Slot,
        to: Slot,
        version: &str,
        intent: &mut Intent,
    ) -> Result<(), Failure> {
        intent.phase = Phase::Switch;
        self.write_intent(intent)
            .map_err(|e| Failure::at("intent", e))?;
        let changed = match switch::write(self.config, &self.layout, to) {
            Ok(changed) => changed,
            Err(e) => {
                // The include and the link are replaced by a rename: unless only the final
                // fsync failed, they still name `from`.
                let restored = switch::active(self.config, &self.layout).ok().flatten()
                    == Some(from)
                    || self.restore(from, false);
                let step = match self.config.nginx.switch {
                    Mode::Reload => "include",
                    Mode::Socket => "link",
                };
                return Err(Failure {
                    restored,
                    ..Failure::at(step, StepError::Switch(e))
                });
            }
        };
        if changed {
            if let Err(e) = self.supervisor.nginx().test() {
                let restored = self.restore(from, false);
                return Err(Failure {
                    restored,
                    ..Failure::at("nginx-test", StepError::Nginx(e))
                });
            }
            let ms = intent.record.step("include");
            info!(
                step = "include",
                slot = %to,
                duration_ms = ms,
                "wrote the include naming {to}; `nginx -t` accepts the configuration"
            );
            if let Err(e) = self.reload() {
                let restored = self.restore(from, true);
                return Err(Failure {
                    restored,
                    ..Failure::at("reload", e)
                });
            }
            // No new phase is written here: once the include may have changed, a reconcile
            // does the same whatever happened next (a reload under the lock), and every
            // intent write costs two fsyncs (10-25 ms on the test machine).
            let ms = intent.record.step("reload");
            info!(
                step = "reload",
                duration_ms = ms,
                "NGINX reloaded; no worker from before the reload accepts connections"
            );
        } else {
            let ms = intent.record.step("link");
            info!(
                step = "link",
                slot = %to,
                duration_ms = ms,
                "pointed {} at {to}'s socket; NGINX's new connections go to {to}",
                self.layout.active_socket().display()
            );
        }
        if self.config.nginx.switch == Mode::Socket {
            if let Err(e) = self.drain(from) {
                let restored = self.restore(from, false);
                return Err(Failure {
                    restored,
                    ..Failure::at("drain", e)
                });
            }
            let ms = intent.record.step("drain");
            info!(
                step = "drain",
                slot = %from,
                duration_ms = ms,
                "{from} let go of every connection NGINX had to it"
            );
        }
        if let Err(e) = self.confirm(to, Some(version)) {
            let restored = self.restore(from, true);
            return Err(Failure {
                restored,
                ..Failure::at("confirm", e)
            });
        }
        let ms = intent.record.step("confirm");
        info!(
            step = "confirm",
            slot = %to,
            version,
            duration_ms = ms,
            "NGINX answers from {to} with {version}"
        );
        Ok(())
    }

    /// Applies a change of `nginx.switch` to NGINX, traffic staying on `slot`: writes the
    /// include (and the link) the configured mode's way, has `nginx -t` check it and reloads.
    /// NGINX then connects to `slot`'s new endpoint, where connections wait until the slot
    /// listens there (`bluegreen restart` restarts it right after).
    pub fn apply_mode(&self, slot: Slot) -> Result<(), StepError> {
        switch::write(self.config, &self.layout, slot).map_err(StepError::Switch)?;
        self.supervisor.nginx().test().map_err(StepError::Nginx)?;
        self.reload()
    }

    /// NGINX answers from `slot` (polled up to `deploy.confirm_timeout_secs`).
    pub fn confirm_route(&self, slot: Slot) -> Result<(), StepError> {
        self.confirm(slot, None)
    }

    /// Waits (up to `deploy.confirm_timeout_secs`) until no connection to `slot`'s unix socket
    /// is open (socket mode): the slot, which watches the link, has let go of every
    /// connection NGINX had to it, and no new one can reach it through the link.
    fn drain(&self, slot: Slot) -> Result<(), StepError> {
        let path = self.layout.slot_socket(slot);
        let limit = self.config.confirm_timeout();
        let deadline = Instant::now() + limit;
        loop {
            // A socket that cannot be read about (no such file: the slot is not set up for
            // socket mode) has no connections to wait for.
            let left = switch::connections(&path).unwrap_or(0);
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StepError::Drain {
                    slot,
                    path,
                    left,
                    after: limit,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGHUP to the master, then waits until every worker from before the reload has
    /// stopped accepting connections, so that from now on no new request can reach the old
    /// upstream. NGINX keeps the old workers (and the old configuration) if it could not
    /// load the new one, so this is also how a reload that NGINX refused shows up.
    pub(crate) fn reload(&self) -> Result<(), StepError> {
        let nginx = self.supervisor.nginx();
        let before = nginx.workers();
        nginx.reload().map_err(StepError::Nginx)?;
        let limit = self.config.confirm_timeout();
        let deadline = Instant::now() + limit;
        loop {
            let left = nginx.still_accepting(&before);
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StepError::Reload { left, after: limit });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Puts traffic back on `slot`: the include (reload mode) or the link (socket mode), and
    /// reloads NGINX if the include changed and NGINX may have loaded the other one. Returns
    /// whether include, link and NGINX agree on `slot` again; says what went wrong if not.
    pub(crate) fn restore(&self, slot: Slot, nginx_may_have_loaded: bool) -> bool {
        let changed = match switch::write(self.config, &self.layout, slot) {
            Ok(changed) => changed,
            Err(e) => {
                warn!(
                    "could not put traffic back on {slot}: {}",
                    history::chain(&e)
                );
                return false;
            }
        };
        if changed && nginx_may_have_loaded {
            if let Err(e) = self.reload() {
                warn!(
                    "could not reload NGINX after restoring the include: {}",
                    history::chain(&e)
                );
                return false;
            }
        }
        true
    }

    /// After a failed restart or probe: point the slot back at its old model and start it
    /// again, so that a rollback to it stays possible. Best effort, and said.
    pub(crate) fn restore_resting(&self, slot: Slot, previous: Option<&str>) {
        let link = self.layout.slot_link(slot);
        let Some(version) = previous else {
            let _ = std::fs::remove_file(&link);
            return;
        };
        info!("putting {slot} back on {version}");
        let restored = fsutil::swap_symlink(&Layout::link_target(version), &link)
            .map_err(|e| history::chain(&e))
            .and_then(|()| {
                self.supervisor
                    .restart(slot)
                    .map_err(|e| history::chain(&e))
            });
        if let Err(e) = restored {
            warn!(
                "{slot} could not be restarted on {version}: {e}; it stays down until the next deploy"
            );
        }
    }

    /// Step 5: the slot names `candidate`'s version and predicts exactly what it does. Also
    /// what `bluegreen restart` asks of a restarted slot.
    pub fn probe(&self, slot: Slot, candidate: &Artifact) -> Result<(), ProbeError> {
        let addr = switch::endpoint(self.config, slot);
        let unreachable = |method, path| {
            let addr = addr.clone();
            move |source| ProbeError::Unreachable {
                slot,
                method,
                addr,
                path,
                source,
            }
        };
        let ready = http::request_to(&addr, "GET", "/readyz", None, PROBE_TIMEOUT)
            .map_err(unreachable("GET", "/readyz"))?;
        let served = ready
            .json()
            .and_then(|j| j["model"].as_str().map(str::to_string));
        if ready.status != 200 || served.as_deref() != Some(candidate.version.as_str()) {
            return Err(ProbeError::WrongModel {
                slot,
                status: ready.status,
                served,
                expected: candidate.version.clone(),
            });
        }
        // The artifact's example row (its first training row; for Boston, the original's).
        let body = serde_json::to_vec(&serde_json::json!({ "data": [&candidate.example] }))
            .expect("a row serializes");
        let answer = http::request_to(&addr, "POST", "/", Some(&body), PROBE_TIMEOUT)
            .map_err(unreachable("POST", "/"))?;
        let price = answer.json().and_then(|j| j["Price"].as_f64());
        let expected = candidate
            .predict_one(&candidate.example)
            .map_err(|source| ProbeError::Predict {
                version: candidate.version.clone(),
                source,
            })?;
        match price {
            Some(p)
                if answer.status == 200
                    && (p - expected).abs() <= 1e-9 * expected.abs().max(1.0) =>
            {
                Ok(())
            }
            _ => Err(ProbeError::WrongPrice {
                slot,
                status: answer.status,
                price,
                version: candidate.version.clone(),
                expected,
            }),
        }
    }

    /// Step 8: polls NGINX until its answers come from `slot` (with `version`, if given).
    pub(crate) fn confirm(&self, slot: Slot, version: Option<&str>) -> Result<(), StepError> {
        let addr = self.public_addr();
        let limit = self.config.confirm_timeout();
        let deadline = Instant::now() + limit;
        let mut last = String::from("nothing");
        while Instant::now() < deadline {
            match http::request(addr, "GET", "/readyz", None, Duration::from_secs(1)) {
                Ok(r)
                    if r.header("x-slot") == Some(slot.as_str())
                        && version.is_none_or(|v| r.header("x-model-version") == Some(v)) =>
                {
                    return Ok(())
                }
                Ok(r) => {
                    last = format!(
                        "{} from {} with {}",
                        r.status,
                        r.header("x-slot").unwrap_or("?"),
                        r.header("x-model-version").unwrap_or("?")
                    )
                }
                Err(e) => last = format!("no answer ({e})"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(StepError::Confirm {
            addr,
            slot,
            last,
            after: limit,
        })
    }

    /// Waits (bounded) until NGINX has no workers left from before its last reload.
    fn wait_for_old_workers(&self) -> Duration {
        let started = Instant::now();
        let limit = self.config.worker_shutdown_timeout() + Duration::from_secs(2);
        while self.supervisor.nginx().old_workers() > 0 && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }

    pub(crate) fn prune(&self) {
        let store = Store::new(&self.layout.models_dir());
        let protect: Vec<String> = Slot::ALL
            .into_iter()
            .filter_map(|s| self.layout.slot_version(s).ok().flatten())
            .collect();
        match store.prune(self.config.keep_models, &protect) {
            Ok(removed) if !removed.is_empty() => {
                info!("pruned {} old model(s)", removed.len())
            }
            Ok(_) => {}
            Err(e) => warn!("could not prune old models: {}", history::chain(&e)),
        }
    }

    /// Finishes a switch whose deploy or rollback was killed (see the module doc), and
    /// records what happened. The caller holds the deploy lock, so no switch is running.
    /// Returns the record it appended, if there was anything to do.
    pub fn reconcile(&self) -> Result<Option<Record>, DeployError> {
        let path = self.layout.deploy_intent();
        let Some(mut intent) = Intent::read(&path)? else {
            return Ok(None);
        };
        let records = history::recent(&self.layout.history(), 1, Some(&intent.record.time))?;
        if intent.phase == Phase::Waiting {
            // A candidate waiting for `promote` is a state, not an interruption: only its
            // record must be in the history (issue 11).
            if !intent.is_recorded(&records) {
                history::append(&self.layout.history(), &intent.record)?;
            }
            return Ok(None);
        }
        if intent.is_recorded(&records) {
            Intent::clear(&path)?;
            return Ok(None);
        }
        let action = intent.record.action;
        if intent.record.outcome != Outcome::InProgress {
            // The action finished but could not append its record.
            history::append(&self.layout.history(), &intent.record)?;
            Intent::clear(&path)?;
            info!(
                "recorded the {action} that could not record itself ({})",
                intent.record.outcome
            );
            return Ok(Some(intent.record));
        }
        let record = &intent.record;
        let (Some(from), Some(to)) = (record.from_slot, record.to_slot) else {
            Intent::clear(&path)?;
            return Ok(None);
        };
        let stopped = format!(
            "bluegreen {action} (pid {}) stopped {}",
            intent.pid,
            match intent.phase {
                Phase::Restart => format!("while it restarted {to}"),
                Phase::Switch => format!("while it switched NGINX to {to}, or after"),
                Phase::Shadow => format!("while NGINX mirrored requests to {to} (shadow)"),
                Phase::Canary => format!("while {to} had a canary share of the traffic"),
                Phase::Watch => format!("while it watched {to}, which had all the traffic"),
                Phase::Abort => format!("while it dropped the candidate on {to}"),
                Phase::Waiting => unreachable!("handled above"),
            }
        );
        info!(
            "found an interrupted {action}: {stopped}, switching {from}→{to}, {}→{}",
            record.from_version.as_deref().unwrap_or("-"),
            record.to_version.as_deref().unwrap_or("-")
        );
        let earlier = record
            .reason
            .clone()
            .map(|r| format!("; it had failed at {r}"));
        let (pid, phase) = (intent.pid, intent.phase);
        let fail = move |source| DeployError::Reconcile {
            action,
            pid,
            phase,
            source: Box::new(source),
        };
        let (outcome, why) = match intent.phase {
            Phase::Waiting => unreachable!("handled above"),
            // Traffic had not moved for good: it goes back whole to `from` (the mirror off,
            // no split). A promoted candidate waits again; an automatic one is dropped, and
            // the next trigger deploys it anew, since an interruption settles nothing.
            Phase::Shadow | Phase::Canary => {
                self.complete(from, None).map_err(fail)?;
                let why = format!("{stopped}: all traffic is back on {from}");
                if intent.manual {
                    intent.record.step("reconcile");
                    // The candidate waits again from now, not from when the promote began.
                    intent.record.finish_now(
                        Outcome::Interrupted,
                        Some(format!("{why}; {to} waits for `bluegreen promote` again")),
                    );
                    intent.phase = Phase::Waiting;
                    // A phase cut short: its figures so far were never judged.
                    intent.so_far = None;
                    intent.write(&path)?;
                    history::append(&self.layout.history(), &intent.record)?;
                    info!("recorded the {action} as interrupted; {to} waits again");
                    return Ok(Some(intent.record));
                }
                self.reconcile_resting(to, intent.target_link_before.as_deref());
                (Outcome::Interrupted, why)
            }
            // The candidate had been analysed and was being dropped: finish dropping it. One
            // that a phase could not judge after a promote waits again instead, as it would
            // have (`crate::rollout`).
            Phase::Abort => {
                self.complete(from, None).map_err(fail)?;
                let inconclusive = record.rollout.last().is_some_and(|r| r.inconclusive);
                let waits_again = inconclusive && intent.manual;
                if !waits_again {
                    self.reconcile_resting(to, intent.target_link_before.as_deref());
                }
                let why = record.reason.clone().unwrap_or_default();
                intent.record.step("reconcile");
                let outcome = if inconclusive {
                    Outcome::Inconclusive
                } else {
                    Outcome::Aborted
                };
                let reason = Some(format!("{why}; finished after {stopped}"));
                if waits_again {
                    // The candidate waits again from now (`Record::ended`); the wait first:
                    // the next reconcile appends a record it holds.
                    intent.record.finish_now(outcome, reason);
                    intent.phase = Phase::Waiting;
                    intent.write(&path)?;
                    history::append(&self.layout.history(), &intent.record)?;
                } else {
                    intent.record.finish(outcome, reason);
                    history::append(&self.layout.history(), &intent.record)?;
                    Intent::clear(&path)?;
                }
                return Ok(Some(intent.record));
            }
            Phase::Restart => {
                if action == Action::Deploy {
                    self.reconcile_resting(to, intent.target_link_before.as_deref());
                }
                (
                    Outcome::Interrupted,
                    format!("{stopped}, before NGINX was touched: traffic stayed on {from}"),
                )
            }
            // The switch to all traffic had begun (or was done, and the target was being
            // watched): it is completed; a watch cut short is not resumed.
            Phase::Switch | Phase::Watch => {
                if self.config.nginx.switch == Mode::Reload {
                    self.supervisor
                        .nginx()
                        .master_pid()
                        .map_err(|e| fail(StepError::Nginx(e)))?;
                }
                match self.complete(to, record.to_version.as_deref()) {
                    Ok(()) => (
                        Outcome::Recovered,
                        format!(
                            "{stopped}; the switch to {to} was completed{}",
                            if intent.phase == Phase::Watch {
                                " (its watch was cut short)"
                            } else {
                                ""
                            }
                        ),
                    ),
                    Err(why) => {
                        warn!(
                            "{to} cannot take traffic ({}); putting it on {from}",
                            history::chain(&why)
                        );
                        self.complete(from, None).map_err(fail)?;
                        (
                            Outcome::Interrupted,
                            format!(
                                "{stopped}; {to} could not take traffic ({}), so it stays on {from}",
                                history::chain(&why)
                            ),
                        )
                    }
                }
            }
        };
        intent.record.step("reconcile");
        intent
            .record
            .finish(outcome, Some(why + &earlier.unwrap_or_default()));
        history::append(&self.layout.history(), &intent.record)?;
        Intent::clear(&path)?;
        info!(
            "recorded the {action} as {outcome} in {}",
            self.layout.history().display()
        );
        Ok(Some(intent.record))
    }

    /// Makes include and NGINX agree on `slot`: probes it (for `version`, if given), writes
    /// the include, checks it, reloads, and waits until NGINX answers from `slot`.
    pub(crate) fn complete(&self, slot: Slot, version: Option<&str>) -> Result<(), StepError> {
        if let Some(version) = version {
            let artifact = Store::new(&self.layout.models_dir())
                .load(version)
                .map_err(StepError::Model)?;
            self.probe(slot, &artifact).map_err(StepError::Probe)?;
        }
        let changed = switch::write(self.config, &self.layout, slot).map_err(StepError::Switch)?;
        // In reload mode NGINX may have loaded either include, so it reloads in any case. In
        // socket mode NGINX follows the link at each new connection: it reloads only if the
        // include itself changed.
        if changed || self.config.nginx.switch == Mode::Reload {
            self.supervisor.nginx().test().map_err(StepError::Nginx)?;
            self.reload()?;
        }
        if self.config.nginx.switch == Mode::Socket {
            self.drain(slot.other())?;
        }
        self.confirm(slot, version)?;
        info!("NGINX answers from {slot}, as the include says");
        Ok(())
    }

    /// After a deploy killed while it restarted `slot`: the slot back on `previous`, its
    /// model before the deploy. Only the link moves if the slot still serves it; otherwise
    /// the slot is restarted on it too.
    pub(crate) fn reconcile_resting(&self, slot: Slot, previous: Option<&str>) {
        let serves_previous = previous.is_some_and(|v| {
            Store::new(&self.layout.models_dir())
                .load(v)
                .is_ok_and(|artifact| self.probe(slot, &artifact).is_ok())
        });
        let linked = self.layout.slot_version(slot).ok().flatten();
        match previous {
            Some(v) if serves_previous && linked.as_deref() != Some(v) => {
                let link = self.layout.slot_link(slot);
                if let Err(e) = fsutil::swap_symlink(&Layout::link_target(v), &link) {
                    warn!("could not point {slot} back at {v}: {}", history::chain(&e));
                }
            }
            _ if serves_previous => {}
            _ => self.restore_resting(slot, previous),
        }
    }
}
