//! The rollout's phases as a deploy runs them, and `promote` and `abort` (see the module doc
//! of `crate::rollout`). These are methods of the [`Deployer`], whose lock, intent, switch and
//! reconcile they share.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::deploy::{DeployError, Deployer, Done, Failure, RestingError, StepError};
use crate::history::{Action, Intent, Outcome, Phase, Record};
use crate::slot::Slot;
use crate::state::State;
use crate::switch::{self, SwitchError};

use super::metrics::{self, Reading, MIN_REQUESTS};
use super::report::{PhaseKind, PhaseReport};
use super::{Promote, Settings};

/// How often a phase reads the slots' metrics.
const POLL: Duration = Duration::from_millis(500);

/// What a phase compares the candidate with.
enum Reference {
    /// The active slot, over the same window.
    Live(Slot),
    /// The previous slot, over its life before the switch (the watch: it rests now).
    Fixed(Reading),
}

impl Deployer<'_> {
    /// After the candidate was probed on `to`: the rollout's phases, from waiting to the watch.
    /// `promoting`: called by `bluegreen promote`, so the candidate does not wait again.
    pub(crate) fn roll(
        &self,
        version: &str,
        from: Slot,
        to: Slot,
        intent: &mut Intent,
        promoting: bool,
    ) -> Result<Outcome, Failure> {
        let settings = &self.config.rollout;
        if settings.promote == Promote::Manual && !promoting {
            intent.manual = true;
            info!(
                "{to} serves {version} and waits: preview it through NGINX with the header `X-Bluegreen-Preview: 1`, then `bluegreen promote` or `bluegreen abort`"
            );
            return Ok(Outcome::Waiting);
        }
        if settings.shadow_seconds > 0 {
            self.enter(intent, Phase::Shadow)?;
            self.nginx_change("shadow", from, || {
                switch::set_shadow(&self.layout, Some(settings.shadow_percent))
            })?;
            info!(
                "NGINX mirrors {}% of live requests to {to} for {} s (shadow); clients get {from}'s answers",
                settings.shadow_percent, settings.shadow_seconds
            );
            let report = self.analyse(
                PhaseKind::Shadow,
                0,
                settings.shadow_seconds,
                to,
                Reference::Live(from),
            );
            if let Some(stopped) = self.judged(intent, report, "shadow") {
                return self.stop(from, to, intent, stopped);
            }
        }
        let mut first = true;
        for percent in settings.canary_steps() {
            if first {
                self.enter(intent, Phase::Canary)?;
                first = false;
            }
            let step = format!("canary-{percent}");
            self.nginx_change("canary", from, || {
                let split = switch::write_split(self.config, &self.layout, from, percent)?;
                Ok(switch::set_shadow(&self.layout, None)? || split)
            })?;
            info!(
                "NGINX sends {percent}% of the traffic to {to}, {}% to {from}; analysing for {} s",
                100 - percent,
                settings.step_seconds
            );
            let report = self.analyse(
                PhaseKind::Canary,
                percent,
                settings.step_seconds,
                to,
                Reference::Live(from),
            );
            if let Some(stopped) = self.judged(intent, report, &step) {
                return self.stop(from, to, intent, stopped);
            }
        }
        self.flip(from, to, version, intent)?;
        if settings.watch_seconds > 0 {
            // The previous slot's whole life is the reference: it gets no traffic now.
            let before = Reading::of(&switch::endpoint(self.config, from)).unwrap_or_default();
            self.enter(intent, Phase::Watch)?;
            info!(
                "watching {to} for {} s with all the traffic",
                settings.watch_seconds
            );
            let report = self.analyse(
                PhaseKind::Watch,
                100,
                settings.watch_seconds,
                to,
                Reference::Fixed(before),
            );
            if let Some(stopped) = self.judged(intent, report, "watch") {
                return self.stop(from, to, intent, stopped);
            }
        }
        Ok(Outcome::Deployed)
    }

    /// Writes the intent in `phase` before the phase begins.
    fn enter(&self, intent: &mut Intent, phase: Phase) -> Result<(), Failure> {
        intent.phase = phase;
        self.write_intent(intent)
            .map_err(|e| Failure::at("intent", e))
    }

    /// Writes NGINX's files with `change`, has `nginx -t` check them and reloads; on a
    /// failure all traffic is put back on `from`.
    fn nginx_change(
        &self,
        step: &'static str,
        from: Slot,
        change: impl FnOnce() -> Result<bool, SwitchError>,
    ) -> Result<(), Failure> {
        let changed = match change() {
            Ok(changed) => changed,
            Err(e) => {
                let restored = self.restore(from, true);
                return Err(Failure {
                    restored,
                    ..Failure::at(step, StepError::Switch(e))
                });
            }
        };
        if !changed {
            return Ok(());
        }
        if let Err(e) = self.supervisor().nginx().test() {
            let restored = self.restore(from, true);
            return Err(Failure {
                restored,
                ..Failure::at(step, StepError::Nginx(e))
            });
        }
        if let Err(e) = self.reload() {
            let restored = self.restore(from, true);
            return Err(Failure {
                restored,
                ..Failure::at(step, e)
            });
        }
        Ok(())
    }

    /// Records a phase's report and step; returns the reason to stop, if it breached.
    fn judged(&self, intent: &mut Intent, report: PhaseReport, step: &str) -> Option<String> {
        info!(step, "{}", report.line());
        intent.record.step(step);
        let stopped = (!report.passed).then(|| format!("{}: {}", report.title(), report.reason));
        intent.record.rollout.push(report);
        // Best effort: the figures so far, for `status` while the rollout runs.
        let _ = self.write_intent(intent);
        stopped
    }

    /// Stops a rollout whose phase breached: the intent moves to phase `abort` (a kill from
    /// here on is finished by the reconcile), all traffic goes back to `from` with the mirror
    /// off, and `to` goes back on its previous model.
    fn stop(
        &self,
        from: Slot,
        to: Slot,
        intent: &mut Intent,
        reason: String,
    ) -> Result<Outcome, Failure> {
        intent.record.reason = Some(format!("{reason}; all traffic back on {from}"));
        self.enter(intent, Phase::Abort)?;
        warn!("stopping the rollout ({reason}): all traffic back on {from}");
        if !self.restore(from, true) {
            return Err(Failure {
                restored: false,
                ..Failure::at("abort", StepError::Restore { slot: from })
            });
        }
        intent.record.step("abort");
        self.restore_resting(to, intent.target_link_before.as_deref());
        intent.record.step("restore-resting");
        Ok(Outcome::Aborted)
    }

    /// Reads `candidate` and the reference over `seconds` (every [`POLL`]), and judges the
    /// window; stops early at a breach once the candidate answered [`MIN_REQUESTS`].
    fn analyse(
        &self,
        phase: PhaseKind,
        percent: u8,
        seconds: u64,
        candidate: Slot,
        reference: Reference,
    ) -> PhaseReport {
        let settings = &self.config.rollout;
        let read = |slot| Reading::of(&switch::endpoint(self.config, slot));
        let started = Instant::now();
        let (c0, r0) = (
            read(candidate),
            match &reference {
                Reference::Live(slot) => read(*slot).ok(),
                Reference::Fixed(_) => None,
            },
        );
        let limit = Duration::from_secs(seconds);
        loop {
            std::thread::sleep(POLL.min(limit.saturating_sub(started.elapsed())));
            let elapsed = started.elapsed();
            let window = match (&c0, read(candidate)) {
                (Ok(before), Ok(now)) => now.since(before),
                (Err(e), _) => {
                    return unreadable(phase, percent, elapsed, &crate::history::chain(e))
                }
                (_, Err(e)) => {
                    return unreadable(phase, percent, elapsed, &crate::history::chain(&e))
                }
            };
            let against = match (&reference, &r0) {
                (Reference::Live(slot), Some(before)) => {
                    read(*slot).ok().map(|now| now.since(before))
                }
                (Reference::Fixed(reading), _) => Some(reading.clone()),
                _ => None,
            };
            let report = judge(settings, phase, percent, elapsed, &window, against.as_ref());
            if elapsed >= limit || (!report.passed && report.requests >= MIN_REQUESTS) {
                return report;
            }
        }
    }

    /// `bluegreen promote`: the rest of the rollout of the candidate that waits (issue 11).
    pub fn promote(&self) -> Result<Done, DeployError> {
        let _lock = self.lock(self.config.lock_timeout())?;
        self.reconcile()?;
        let (waiting, before) = self.waiting()?;
        let state = State::read(self.config)?;
        let (from, to, version) = ends(&waiting)?;
        if self.active(&state)? != from {
            return Err(DeployError::Moved {
                version,
                slot: to,
                from,
            });
        }
        let unhealthy = |source| DeployError::RestingUnhealthy { slot: to, source };
        let artifact = state
            .load(&version)
            .map_err(|e| unhealthy(RestingError::Model(e)))?;
        self.probe(to, &artifact)
            .map_err(|e| unhealthy(RestingError::Probe(e)))?;
        let mut record = Record::begin(
            Action::Promote,
            (Some(from), waiting.from_version.clone()),
            (Some(to), Some(version.clone())),
        );
        record.step("probe");
        info!(
            "promoting {version} on {to} (waiting since {}); traffic is on {from}",
            waiting.time
        );
        let mut intent = Intent {
            phase: Phase::Switch,
            pid: std::process::id(),
            record,
            target_link_before: before,
            manual: true,
        };
        let result = self.roll(&version, from, to, &mut intent, true);
        let record = self.conclude(intent, result)?;
        self.prune();
        Ok(match record.outcome {
            Outcome::Aborted => Done::Aborted(Box::new(record)),
            _ => Done::Switched(Box::new(record)),
        })
    }

    /// `bluegreen abort`: drops the candidate that waits; its slot goes back to the model it
    /// served before, so that a rollback still means the previous model (issue 11).
    pub fn abort(&self) -> Result<Record, DeployError> {
        let _lock = self.lock(self.config.lock_timeout())?;
        self.reconcile()?;
        let (waiting, before) = self.waiting()?;
        let (from, to, version) = ends(&waiting)?;
        let mut record = Record::begin(
            Action::Abort,
            (Some(from), waiting.from_version.clone()),
            (Some(to), Some(version.clone())),
        );
        record.reason = Some(format!(
            "{version} dropped by `bluegreen abort`; {to} back on {}",
            before.as_deref().unwrap_or("no model")
        ));
        let mut intent = Intent {
            phase: Phase::Abort,
            pid: std::process::id(),
            record,
            target_link_before: before,
            manual: true,
        };
        let result = self
            .write_intent(&intent)
            .map_err(|e| Failure::at("intent", e))
            .and_then(|()| {
                info!("dropping {version} from {to}");
                if !self.restore(from, true) {
                    return Err(Failure {
                        restored: false,
                        ..Failure::at("abort", StepError::Restore { slot: from })
                    });
                }
                self.restore_resting(to, intent.target_link_before.as_deref());
                intent.record.step("restore-resting");
                Ok(Outcome::Aborted)
            });
        self.conclude(intent, result)
    }

    /// The intent of the candidate that waits: its record, and the model its slot served
    /// before.
    fn waiting(&self) -> Result<(Record, Option<String>), DeployError> {
        match Intent::read(&self.layout.deploy_intent())? {
            Some(intent) if intent.phase == Phase::Waiting => {
                Ok((intent.record, intent.target_link_before))
            }
            _ => Err(DeployError::NothingWaits),
        }
    }
}

/// The slots and the candidate of a waiting record.
fn ends(waiting: &Record) -> Result<(Slot, Slot, String), DeployError> {
    match (waiting.from_slot, waiting.to_slot, &waiting.to_version) {
        (Some(from), Some(to), Some(version)) => Ok((from, to, version.clone())),
        _ => Err(DeployError::NothingWaits),
    }
}

/// A report for a candidate whose metrics cannot be read: a breach, since a candidate that
/// does not answer `/metrics` may not take traffic.
fn unreadable(phase: PhaseKind, percent: u8, elapsed: Duration, why: &str) -> PhaseReport {
    PhaseReport {
        phase,
        percent,
        seconds: elapsed.as_secs_f64(),
        requests: 0,
        errors: 0,
        error_rate: None,
        p99_ms: None,
        reference_p99_ms: None,
        latency_ratio: None,
        mirror_percent: None,
        live_requests: None,
        rows: None,
        mean_divergence: None,
        max_divergence: None,
        passed: false,
        reason: format!("the candidate's metrics cannot be read: {why}"),
    }
}

/// Judges a window of the candidate (`c`) against the reference (`r`) by `settings`.
fn judge(
    settings: &Settings,
    phase: PhaseKind,
    percent: u8,
    elapsed: Duration,
    c: &Reading,
    r: Option<&Reading>,
) -> PhaseReport {
    let shadow = phase == PhaseKind::Shadow;
    let (requests, errors, latency) = if shadow {
        (c.shadow.requests, c.shadow.errors, &c.shadow.latency)
    } else {
        (c.requests, c.errors, &c.latency)
    };
    let error_rate = (requests > 0).then(|| errors as f64 / requests as f64);
    let reference = r.map(|r| &r.latency);
    let latency_ratio = reference.and_then(|r| metrics::latency_ratio(latency, r));
    let (mirror_percent, live_requests) = if shadow {
        (Some(settings.shadow_percent), r.map(|r| r.requests))
    } else {
        (None, None)
    };
    let (rows, mean, max) = if shadow {
        let rows = c.shadow.rows;
        let mean = (rows > 0).then(|| c.shadow.divergence_sum / rows as f64);
        (Some(rows), mean, Some(c.shadow.divergence_max))
    } else {
        (None, None, None)
    };
    let mut breaches = Vec::new();
    if let Some(mean) = mean.filter(|m| *m > settings.max_divergence) {
        breaches.push(format!(
            "mean divergence {mean:.4} is over rollout.max_divergence {}",
            settings.max_divergence
        ));
    }
    if let Some(rate) = error_rate.filter(|r| *r > settings.max_error_rate) {
        breaches.push(format!(
            "error rate {:.2}% ({errors} of {requests}) is over rollout.max_error_rate {:.2}%",
            rate * 100.0,
            settings.max_error_rate * 100.0
        ));
    }
    if let Some(ratio) = latency_ratio.filter(|r| *r > settings.max_latency_ratio) {
        breaches.push(format!(
            "p99 is {ratio:.2}× the {}'s, over rollout.max_latency_ratio {}",
            if phase == PhaseKind::Watch {
                "previous slot"
            } else {
                "active slot"
            },
            settings.max_latency_ratio
        ));
    }
    let passed = breaches.is_empty();
    let reason = if !passed {
        breaches.join("; ")
    } else if requests == 0 {
        "no request reached the candidate in the window: nothing to judge".to_string()
    } else {
        let mut within = vec![format!(
            "error rate within {:.2}%",
            settings.max_error_rate * 100.0
        )];
        match latency_ratio {
            Some(_) => within.push(format!("p99 within {}×", settings.max_latency_ratio)),
            None => within.push(format!(
                "latency not judged (under {MIN_REQUESTS} requests on a side)"
            )),
        }
        if mean.is_some() {
            within.push(format!(
                "mean divergence within {}",
                settings.max_divergence
            ));
        }
        within.join(", ")
    };
    PhaseReport {
        phase,
        percent,
        seconds: elapsed.as_secs_f64(),
        requests,
        errors,
        error_rate,
        p99_ms: latency.quantile_ms(0.99),
        reference_p99_ms: reference.and_then(|r| r.quantile_ms(0.99)),
        latency_ratio,
        mirror_percent,
        live_requests,
        rows,
        mean_divergence: mean,
        max_divergence: max,
        passed,
        reason,
    }
}
