//! The switch: deploy a model to the resting slot and move traffic to it, or roll back.
//!
//! A deploy runs under an exclusive lock, in this order:
//! 1. the resting slot is the one the NGINX include does not name;
//! 2. the quality gate judges the candidate against the active model;
//! 3. the resting slot's symlink is pointed at the candidate and the slot is restarted by
//!    the supervisor, which returns once the slot sent `READY=1`;
//! 4. the slot is probed directly: `/readyz` names the new version, and a real prediction of
//!    a known row equals the artifact's own;
//! 5. the new include is written and `nginx -t` checks the whole configuration;
//! 6. the NGINX master gets SIGHUP;
//! 7. answers through NGINX are polled until they carry the new version;
//! 8. the outcome is appended to the history.
//!
//! Any failure in 3–7 leaves traffic on the previous slot or puts it back there (include
//! restored, NGINX reloaded again if it had been), and is recorded as `failed` with the reason.
//! The slot that was active before the previous switch is restarted only once no NGINX worker
//! from before that switch is left, since such a worker may still send it requests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::data::{self, DataError};
use crate::fsutil;
use crate::gate::{self, GateReport};
use crate::history::{self, Outcome, Record, Step};
use crate::http;
use crate::layout::Layout;
use crate::lock::{self, LockError};
use crate::model::{self, Artifact, Features, ModelError, Store};
use crate::nginx::{self, NginxError};
use crate::slot::Slot;
use crate::supervisor::{Supervisor, SupervisorError};

/// The original demo's example row; its price is the probe that a slot really serves a model.
pub const PROBE_ROW: Features = [
    0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98,
];

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("there are no models yet; hint: run `bluegreen train` (or `bluegreen init`)")]
    NoModel,
    #[error("there is no NGINX include yet, so no slot is active; hint: run `bluegreen init`")]
    NoActiveSlot,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Nginx(#[from] NginxError),
    #[error("cannot {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the quality gate refused {version}: {}", report.reason)]
    Refused {
        version: String,
        report: Box<GateReport>,
    },
    #[error("{action} failed at step \"{step}\": {reason}; traffic stays on {slot} ({version})")]
    Failed {
        action: &'static str,
        step: &'static str,
        reason: String,
        slot: Slot,
        version: String,
    },
    #[error("the resting slot {slot} cannot take traffic: {why}; hint: deploy a model to it with `bluegreen deploy`")]
    RestingUnhealthy { slot: Slot, why: String },
}

/// What a successful call did.
#[derive(Debug)]
pub enum Done {
    Switched(Box<Record>),
    /// The requested version already serves on the active slot.
    AlreadyActive {
        slot: Slot,
        version: String,
    },
}

pub struct Deployer<'a> {
    config: &'a Config,
    layout: Layout,
    supervisor: &'a dyn Supervisor,
    say: &'a dyn Fn(&str),
}

/// Times steps and keeps the record being built.
struct Journal {
    started: Instant,
    step_started: Instant,
    steps: Vec<Step>,
}

impl Journal {
    fn new() -> Journal {
        let now = Instant::now();
        Journal {
            started: now,
            step_started: now,
            steps: Vec::new(),
        }
    }

    fn done(&mut self, name: &str) {
        let now = Instant::now();
        self.steps.push(Step {
            name: name.to_string(),
            ms: ms(now - self.step_started),
        });
        self.step_started = now;
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl<'a> Deployer<'a> {
    pub fn new(config: &'a Config, supervisor: &'a dyn Supervisor, say: &'a dyn Fn(&str)) -> Self {
        Deployer {
            config,
            layout: Layout::new(&config.state_dir),
            supervisor,
            say,
        }
    }

    fn public_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.config.public_port))
    }

    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, DeployError> {
        Ok(lock::acquire(
            &self.layout.deploy_lock(),
            "deploy",
            self.config.lock_timeout(),
            |holder| {
                (self.say)(&format!(
                    "waiting for another deploy (pid {holder}) to finish"
                ))
            },
        )?)
    }

    fn active_slot(&self) -> Result<Slot, DeployError> {
        nginx::read_active(self.config, &self.layout.upstream_include())?
            .ok_or(DeployError::NoActiveSlot)
    }

    fn slot_version(&self, slot: Slot) -> Result<Option<String>, DeployError> {
        self.layout
            .slot_version(slot)
            .map_err(|source| DeployError::Io {
                action: format!("read the {slot} slot's model link"),
                source,
            })
    }

    /// Deploys `version` (default: the newest artifact) to the resting slot.
    pub fn deploy(&self, version: Option<&str>) -> Result<Done, DeployError> {
        let _lock = self.lock()?;
        let store = Store::new(&self.layout.models_dir());
        let candidate = match version {
            Some(v) => store.load(v)?,
            None => store.newest()?.ok_or(DeployError::NoModel)?,
        };
        let mut journal = Journal::new();
        let active = self.active_slot()?;
        let active_version = self.slot_version(active)?;
        if active_version.as_deref() == Some(candidate.version.as_str()) {
            return Ok(Done::AlreadyActive {
                slot: active,
                version: candidate.version,
            });
        }
        let resting = active.other();
        // Fail before touching anything if NGINX is not there to reload.
        self.supervisor.nginx().master_pid()?;
        (self.say)(&format!(
            "deploying {} to {resting} (active: {active} with {})",
            candidate.version,
            active_version.as_deref().unwrap_or("no model")
        ));
        journal.done("resolve");

        let report = match &candidate.gate {
            // `train` already judged the candidate against this very model with this
            // tolerance, on rows that cannot have changed since: the gate reads only rows
            // the active model was trained on, and the data only grows (`add-data`
            // appends). Reading and parsing all of it again was most of a deploy on large
            // data: 0.4–0.7 s of a 0.5–0.75 s deploy at 10^6 rows.
            Some(verdict)
                if verdict.against == active_version
                    && verdict.tolerance == self.config.gate.tolerance =>
            {
                verdict.clone()
            }
            _ => {
                let active_model = match &active_version {
                    Some(v) => Some(store.load(v)?),
                    None => None,
                };
                let data = data::read_dataset(&self.layout.data_csv())?;
                gate::check(
                    &candidate,
                    active_model.as_ref(),
                    &data.rows,
                    self.config.gate.tolerance,
                )
            }
        };
        journal.done("gate");
        let mut record = Record {
            time: model::now_rfc3339(),
            action: "deploy".to_string(),
            outcome: Outcome::Refused,
            from_slot: Some(active),
            to_slot: Some(resting),
            from_version: active_version.clone(),
            to_version: Some(candidate.version.clone()),
            gate: Some(report.clone()),
            steps: Vec::new(),
            duration_ms: 0.0,
            reason: None,
        };
        if !report.passed {
            (self.say)(&format!("quality gate: refused: {}", report.reason));
            record.reason = Some(report.reason.clone());
            self.finish(&mut record, journal)?;
            return Err(DeployError::Refused {
                version: candidate.version,
                report: Box::new(report),
            });
        }
        (self.say)(&format!("quality gate: passed: {}", report.reason));

        let previous_link = self.slot_version(resting)?;
        match self.switch(&candidate, active, resting, &previous_link, &mut journal) {
            Ok(()) => {
                record.outcome = Outcome::Deployed;
                self.finish(&mut record, journal)?;
                self.prune();
                Ok(Done::Switched(Box::new(record)))
            }
            Err((step, reason)) => {
                record.outcome = Outcome::Failed;
                record.reason = Some(format!("{step}: {reason}"));
                self.finish(&mut record, journal)?;
                Err(DeployError::Failed {
                    action: "deploy",
                    step,
                    reason,
                    slot: active,
                    version: active_version.unwrap_or_else(|| "no model".to_string()),
                })
            }
        }
    }

    /// Steps 3–7. On error, traffic is on `active` again and the error names the step.
    fn switch(
        &self,
        candidate: &Artifact,
        active: Slot,
        resting: Slot,
        previous_link: &Option<String>,
        journal: &mut Journal,
    ) -> Result<(), (&'static str, String)> {
        let version = &candidate.version;
        let already = previous_link.as_deref() == Some(version.as_str())
            && self.probe(resting, candidate).is_ok();
        if already {
            (self.say)(&format!(
                "{resting} already serves {version}; no restart needed"
            ));
        } else {
            let waited = self.wait_for_old_workers();
            if waited > Duration::from_millis(50) {
                (self.say)(&format!(
                    "waited {:.1}s for NGINX workers from the last reload to finish",
                    waited.as_secs_f64()
                ));
            }
            journal.done("wait-old-workers");
            let link = self.layout.slot_link(resting);
            let restart = fsutil::swap_symlink(&Layout::link_target(version), &link)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    (self.say)(&format!(
                        "restarting {resting} through {} and waiting for READY=1",
                        self.supervisor.name()
                    ));
                    self.supervisor
                        .restart(resting)
                        .map_err(|e: SupervisorError| e.to_string())
                });
            journal.done("restart");
            if let Err(reason) = restart {
                self.restore_resting(resting, previous_link);
                return Err(("restart", reason));
            }
            if let Err(reason) = self.probe(resting, candidate) {
                self.restore_resting(resting, previous_link);
                return Err(("probe", reason));
            }
            journal.done("probe");
        }
        (self.say)(&format!(
            "{resting} answers with {version}; switching NGINX to it"
        ));
        self.flip(active, resting, version, journal)
    }

    /// Steps 5–7 for a flip from `from` to `to`, which must serve `version`.
    fn flip(
        &self,
        from: Slot,
        to: Slot,
        version: &str,
        journal: &mut Journal,
    ) -> Result<(), (&'static str, String)> {
        let include = self.layout.upstream_include();
        let nginx = self.supervisor.nginx();
        nginx::write_include(self.config, &include, to).map_err(|e| ("include", e.to_string()))?;
        if let Err(e) = nginx.test() {
            self.restore_include(from, false);
            return Err(("nginx-test", e.to_string()));
        }
        journal.done("include");
        let before = nginx.workers();
        if let Err(e) = nginx.reload() {
            self.restore_include(from, false);
            return Err(("reload", e.to_string()));
        }
        if let Err(e) = self.wait_for_reload(&before) {
            self.restore_include(from, true);
            return Err(("reload", e));
        }
        journal.done("reload");
        if let Err(e) = self.confirm(to, version) {
            self.restore_include(from, true);
            return Err(("confirm", e));
        }
        journal.done("confirm");
        Ok(())
    }

    fn finish(&self, record: &mut Record, journal: Journal) -> Result<(), DeployError> {
        record.duration_ms = ms(journal.started.elapsed());
        record.steps = journal.steps;
        history::append(&self.layout.history(), record).map_err(|source| DeployError::Io {
            action: format!("append to {}", self.layout.history().display()),
            source,
        })
    }

    /// Puts the include back on `slot`, and reloads NGINX if it had already been reloaded.
    fn restore_include(&self, slot: Slot, reload: bool) {
        let nginx = self.supervisor.nginx();
        let restored = nginx::write_include(self.config, &self.layout.upstream_include(), slot);
        if let Err(e) = restored {
            (self.say)(&format!("could not restore the include: {e}"));
        }
        if reload {
            if let Err(e) = nginx.reload() {
                (self.say)(&format!("could not reload NGINX after restoring: {e}"));
            }
        }
    }

    /// After a failed restart or probe: point the resting slot back at its old model and
    /// start it again, so that a rollback to it stays possible. Best effort, and said.
    fn restore_resting(&self, slot: Slot, previous: &Option<String>) {
        let link = self.layout.slot_link(slot);
        let Some(version) = previous else {
            let _ = std::fs::remove_file(&link);
            return;
        };
        (self.say)(&format!("putting {slot} back on {version}"));
        let restored = fsutil::swap_symlink(&Layout::link_target(version), &link)
            .map_err(|e| e.to_string())
            .and_then(|()| self.supervisor.restart(slot).map_err(|e| e.to_string()));
        if let Err(e) = restored {
            (self.say)(&format!(
                "{slot} could not be restarted on {version}: {e}; it stays down until the next deploy"
            ));
        }
    }

    /// Step 4: the slot names `candidate`'s version and predicts exactly what it does.
    fn probe(&self, slot: Slot, candidate: &Artifact) -> Result<(), String> {
        let addr = self.config.slot_addr(slot);
        let timeout = Duration::from_secs(2);
        let ready = http::request(addr, "GET", "/readyz", None, timeout)
            .map_err(|e| format!("GET http://{addr}/readyz: {e}"))?;
        let served = ready
            .json()
            .and_then(|j| j["model"].as_str().map(str::to_string));
        if ready.status != 200 || served.as_deref() != Some(candidate.version.as_str()) {
            return Err(format!(
                "GET http://{addr}/readyz answered {} naming {:?}, not {}",
                ready.status, served, candidate.version
            ));
        }
        let body = serde_json::to_vec(&serde_json::json!({ "data": [PROBE_ROW] }))
            .expect("a row serializes");
        let answer = http::request(addr, "POST", "/", Some(&body), timeout)
            .map_err(|e| format!("POST http://{addr}/: {e}"))?;
        let price = answer.json().and_then(|j| j["Price"].as_f64());
        let expected = candidate.predict(&PROBE_ROW);
        match price {
            Some(p) if answer.status == 200 && (p - expected).abs() <= 1e-9 * expected.abs().max(1.0) => Ok(()),
            _ => Err(format!(
                "POST http://{addr}/ answered {} with Price {price:?}; the artifact predicts {expected}",
                answer.status
            )),
        }
    }

    /// Step 7: polls NGINX until its answers come from `slot` with `version`.
    fn confirm(&self, slot: Slot, version: &str) -> Result<(), String> {
        let addr = self.public_addr();
        let deadline = Instant::now() + self.config.confirm_timeout();
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            match http::request(addr, "GET", "/readyz", None, Duration::from_secs(1)) {
                Ok(r)
                    if r.header("x-model-version") == Some(version)
                        && r.header("x-slot") == Some(slot.as_str()) =>
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
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "NGINX on {addr} still answered {last} after {:?}",
            self.config.confirm_timeout()
        ))
    }

    /// Waits until every worker from before the reload has stopped accepting connections,
    /// so that from now on no new request can reach the old upstream. NGINX keeps the old
    /// workers (and the old configuration) if it could not load the new one, so this is
    /// also how a reload that NGINX refused shows up.
    fn wait_for_reload(&self, before: &[i32]) -> Result<(), String> {
        let nginx = self.supervisor.nginx();
        let deadline = Instant::now() + self.config.confirm_timeout();
        loop {
            let left = nginx.still_accepting(before);
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{left} NGINX worker(s) from before the reload still accept connections after {:?}; did NGINX load the new configuration? (see its error log)",
                    self.config.confirm_timeout()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
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

    fn prune(&self) {
        let store = Store::new(&self.layout.models_dir());
        let protect: Vec<String> = Slot::ALL
            .into_iter()
            .filter_map(|s| self.layout.slot_version(s).ok().flatten())
            .collect();
        match store.prune(self.config.keep_models, &protect) {
            Ok(removed) if !removed.is_empty() => {
                (self.say)(&format!("pruned {} old model(s)", removed.len()))
            }
            Ok(_) => {}
            Err(e) => (self.say)(&format!("could not prune old models: {e}")),
        }
    }

    /// Moves traffic back to the resting slot, which still serves the previous model.
    pub fn rollback(&self) -> Result<Record, DeployError> {
        let _lock = self.lock()?;
        let mut journal = Journal::new();
        let active = self.active_slot()?;
        let resting = active.other();
        let unhealthy = |why: String| DeployError::RestingUnhealthy { slot: resting, why };
        let version = self
            .slot_version(resting)?
            .ok_or_else(|| unhealthy("it has no model".to_string()))?;
        let artifact = Store::new(&self.layout.models_dir()).load(&version)?;
        self.probe(resting, &artifact).map_err(unhealthy)?;
        journal.done("probe");
        let active_version = self.slot_version(active)?;
        let mut record = Record {
            time: model::now_rfc3339(),
            action: "rollback".to_string(),
            outcome: Outcome::RolledBack,
            from_slot: Some(active),
            to_slot: Some(resting),
            from_version: active_version.clone(),
            to_version: Some(version.clone()),
            gate: None,
            steps: Vec::new(),
            duration_ms: 0.0,
            reason: None,
        };
        match self.flip(active, resting, &version, &mut journal) {
            Ok(()) => {
                self.finish(&mut record, journal)?;
                Ok(record)
            }
            Err((step, reason)) => {
                record.outcome = Outcome::Failed;
                record.reason = Some(format!("{step}: {reason}"));
                self.finish(&mut record, journal)?;
                Err(DeployError::Failed {
                    action: "rollback",
                    step,
                    reason,
                    slot: active,
                    version: active_version.unwrap_or_else(|| "no model".to_string()),
                })
            }
        }
    }
}
