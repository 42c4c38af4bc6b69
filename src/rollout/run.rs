//! The rollout's phases as a deploy runs them, and `promote` and `abort` (see the module doc
//! of `crate::rollout`). These are methods of the [`Deployer`], whose lock, intent, switch and
//! reconcile they share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::deploy::{DeployError, Deployer, Done, Failure, RestingError, StepError};
use crate::history::{Action, Intent, Outcome, Phase, Record};
use crate::slot::Slot;
use crate::state::State;
use crate::switch::{self, SwitchError};

use super::metrics::{self, Reading, MIN_REQUESTS};
use super::report::{Figures, PhaseKind, PhaseReport, PhaseSoFar};
use super::{Promote, Settings};

/// How often a phase reads the slots' metrics.
const POLL: Duration = Duration::from_millis(500);

/// How much longer systemd may let the deploy run, from each reading of a phase
/// (`EXTEND_TIMEOUT_USEC`, sd_notify(3)). `bluegreen-deploy.service` is a oneshot unit
/// whose `TimeoutStartSec=` (10 min) covers a deploy without rollout; a rollout's phases may
/// last hours (`shadow_seconds` + each step's `step_seconds` + `watch_seconds`). systemd
/// moves the unit's start deadline to at least this far ahead of each such message
/// (`NotifyAccess=main` lets the deploy send it), so the deadline follows the rollout as it
/// runs, whatever the config says now, and a deploy that stops reading (hung) is still
/// stopped this long after its last reading. 5 minutes is room for what follows a phase: a
/// reload of NGINX and its old workers' drain, the switch's confirmation, or putting
/// traffic back. Without `NOTIFY_SOCKET` (a deploy by hand, or under `up`), nothing is sent.
const SYSTEMD_EXTENSION: Duration = Duration::from_secs(300);

/// A signal that asked the deploy to stop: SIGINT (Ctrl-C), SIGTERM (`systemctl stop`, and
/// systemd's own stop at a start timeout: systemd.kill(5)) or SIGHUP (a closed terminal).
#[derive(Debug, Clone, Copy)]
pub struct Signal(i32);

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self.0 {
            signal_hook::consts::SIGINT => "SIGINT",
            signal_hook::consts::SIGTERM => "SIGTERM",
            _ => "SIGHUP",
        })
    }
}

/// While a rollout's phases run, [`Signal`]s are noted instead of ending the process at
/// once, which would leave NGINX mirroring to the candidate or splitting traffic with
/// nothing to watch it until the next command's reconcile. A phase checks at each reading
/// ([`POLL`]); the deploy then puts all traffic back on the previous slot, records the
/// rollout as failed at that phase, and exits. Dropping this restores each signal's default
/// action. A second signal while traffic goes back is noted too: the restore is short (one
/// NGINX reload), and `kill -9` still stops everything, for the reconcile to finish.
struct Signals {
    caught: Arc<AtomicUsize>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    fn arm() -> Signals {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let caught = Arc::new(AtomicUsize::new(0));
        let ids = [SIGINT, SIGTERM, SIGHUP]
            .into_iter()
            .filter_map(|signal| {
                signal_hook::flag::register_usize(signal, caught.clone(), signal as usize)
                    .map_err(|e| warn!("cannot catch signal {signal} during the rollout: {e}"))
                    .ok()
            })
            .collect();
        Signals { caught, ids }
    }

    /// The signal caught so far, if any, as an error.
    fn check(&self) -> Result<(), Signal> {
        match self.caught.load(Ordering::Relaxed) {
            0 => Ok(()),
            signal => Err(Signal(signal as i32)),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// What a phase compares the candidate with.
enum Reference {
    /// The active slot, over the same window.
    Live(Slot),
    /// The previous slot before the switch (the watch: it rests now), over the seconds given
    /// or, with `None`, over its whole life.
    Fixed(Reading, Option<f64>),
}

/// The active slot's counters when a deploy or promote began. The watch compares the new
/// slot with the previous one from then to the switch: the same host under the load of now.
/// Its whole life would hold the load of hours ago too, so a slot that served a light load
/// long would make any candidate under today's heavier load look slow, and roll back.
pub(crate) struct Baseline {
    at: Instant,
    reading: Reading,
}

/// The watch's reference from the previous slot's counters at the switch (`at_switch`): its
/// window since `baseline` when that holds [`MIN_REQUESTS`] answers and the slot did not
/// restart in between (a restart starts its counters again, so the difference is no window);
/// else its whole life as `at_switch` reads it.
fn watch_reference(baseline: Option<Baseline>, at_switch: Reading) -> Reference {
    let window = baseline
        .filter(|b| b.reading.started == at_switch.started)
        .map(|b| (b.at.elapsed().as_secs_f64(), at_switch.since(&b.reading)))
        .filter(|(_, window)| window.latency.count() >= MIN_REQUESTS);
    match window {
        Some((seconds, window)) => Reference::Fixed(window, Some(seconds)),
        None => Reference::Fixed(at_switch, None),
    }
}

impl Baseline {
    /// `slot`'s counters now; `None` when they cannot be read (the watch then compares with
    /// the slot's whole life, as it reads it at the switch).
    pub(crate) fn take(config: &crate::config::Config, slot: Slot) -> Option<Baseline> {
        Some(Baseline {
            at: Instant::now(),
            reading: Reading::of(&switch::endpoint(config, slot)).ok()?,
        })
    }
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
        baseline: Option<Baseline>,
    ) -> Result<Outcome, Failure> {
        let settings = &self.config.rollout;
        if settings.promote == Promote::Manual && !promoting {
            intent.manual = true;
            info!(
                "{to} serves {version} and waits: preview it through NGINX with the header `X-Bluegreen-Preview: 1`, then `bluegreen promote` or `bluegreen abort`"
            );
            return Ok(Outcome::Waiting);
        }
        // From here on traffic may be mirrored or split: a signal must not leave it so.
        let signals = Signals::arm();
        let interrupted = |step: &'static str, signal: Signal| {
            warn!("{signal} during the rollout: all traffic back on {from}");
            Failure {
                restored: self.restore(from, true),
                ..Failure::at(step, StepError::Interrupted { signal })
            }
        };
        if settings.shadow_seconds > 0 {
            self.enter(intent, Phase::Shadow)?;
            self.nginx_change("shadow", from, || {
                switch::set_shadow(&self.layout, Some(settings.shadow_percent))
            })?;
            info!(
                "NGINX mirrors {}% of live requests to {to} for {} s (shadow); clients get {from}'s answers",
                settings.shadow_percent, settings.shadow_seconds
            );
            let report = self
                .analyse(
                    intent,
                    PhaseKind::Shadow,
                    0,
                    to,
                    Reference::Live(from),
                    &signals,
                )
                .map_err(|signal| interrupted("shadow", signal))?;
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
            let report = self
                .analyse(
                    intent,
                    PhaseKind::Canary,
                    percent,
                    to,
                    Reference::Live(from),
                    &signals,
                )
                .map_err(|signal| interrupted("canary", signal))?;
            if let Some(stopped) = self.judged(intent, report, &step) {
                return self.stop(from, to, intent, stopped);
            }
        }
        self.flip(from, to, version, intent)?;
        if settings.watch_seconds > 0 {
            // The previous slot gets no traffic now: the reference is its window from the
            // deploy's start to the switch, with enough requests to judge; else its life.
            let before = Reading::of(&switch::endpoint(self.config, from)).unwrap_or_default();
            let reference = watch_reference(baseline, before);
            self.enter(intent, Phase::Watch)?;
            info!(
                "watching {to} for {} s with all the traffic",
                settings.watch_seconds
            );
            let report = self
                .analyse(intent, PhaseKind::Watch, 100, to, reference, &signals)
                .map_err(|signal| interrupted("watch", signal))?;
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

    /// Records a phase's report and step, in place of its figures so far; returns why the
    /// rollout stops, if the phase breached or could not judge.
    fn judged(&self, intent: &mut Intent, report: PhaseReport, step: &str) -> Option<Stopped> {
        info!(step, "{}", report.line());
        intent.record.step(step);
        let stopped = (!report.passed).then(|| Stopped {
            reason: format!(
                "{}{}: {}",
                report.title(),
                if report.inconclusive {
                    " inconclusive"
                } else {
                    ""
                },
                report.reason
            ),
            inconclusive: report.inconclusive,
        });
        intent.record.rollout.push(report);
        intent.so_far = None;
        // Best effort: the finished phases' figures, for `status` while the rollout runs.
        let _ = self.write_intent(intent);
        stopped
    }

    /// Stops a rollout whose phase breached or could not judge: the intent moves to phase
    /// `abort` (a kill from here on is finished by the reconcile), all traffic goes back to
    /// `from` with the mirror off, and `to` goes back on its previous model; except that a
    /// promoted candidate that could not be judged stays on `to` and waits again (as after a
    /// promote that failed, `crate::deploy::Deployer::conclude`): nothing was found wrong
    /// with it, and the operator who promoted it decides again.
    fn stop(
        &self,
        from: Slot,
        to: Slot,
        intent: &mut Intent,
        stopped: Stopped,
    ) -> Result<Outcome, Failure> {
        let Stopped {
            reason,
            inconclusive,
        } = stopped;
        let waits_again = inconclusive && intent.manual;
        intent.record.reason = Some(format!(
            "{reason}; all traffic back on {from}{}",
            if waits_again {
                format!("; {to} waits again")
            } else {
                String::new()
            }
        ));
        self.enter(intent, Phase::Abort)?;
        warn!("stopping the rollout ({reason}): all traffic back on {from}");
        if !self.restore(from, true) {
            return Err(Failure {
                restored: false,
                ..Failure::at("abort", StepError::Restore { slot: from })
            });
        }
        intent.record.step("abort");
        if !waits_again {
            self.restore_resting(to, intent.target_link_before.as_deref());
            intent.record.step("restore-resting");
        }
        Ok(if inconclusive {
            Outcome::Inconclusive
        } else {
            Outcome::Aborted
        })
    }

    /// Reads `candidate` and the reference over the phase's configured seconds (every
    /// [`POLL`]), and judges the window; stops early at a breach once the candidate answered
    /// [`MIN_REQUESTS`]. After each reading that does not end the phase, the figures so far go
    /// into the intent, for `status`, and to systemd ([`SYSTEMD_EXTENSION`]). A signal caught
    /// meanwhile ([`Signals`]) ends it at the next reading.
    fn analyse(
        &self,
        intent: &mut Intent,
        phase: PhaseKind,
        percent: u8,
        candidate: Slot,
        reference: Reference,
        signals: &Signals,
    ) -> Result<PhaseReport, Signal> {
        let settings = &self.config.rollout;
        let seconds = match phase {
            PhaseKind::Shadow => settings.shadow_seconds,
            PhaseKind::Canary => settings.step_seconds,
            PhaseKind::Watch => settings.watch_seconds,
        };
        let read = |slot| Reading::of(&switch::endpoint(self.config, slot));
        let started = Instant::now();
        let (c0, r0) = (
            read(candidate),
            match &reference {
                Reference::Live(slot) => read(*slot).ok(),
                Reference::Fixed(..) => None,
            },
        );
        let reference_seconds = match &reference {
            Reference::Fixed(_, seconds) => *seconds,
            Reference::Live(_) => None,
        };
        let limit = Duration::from_secs(seconds);
        loop {
            std::thread::sleep(POLL.min(limit.saturating_sub(started.elapsed())));
            signals.check()?;
            let elapsed = started.elapsed();
            let window = match (&c0, read(candidate)) {
                (Ok(before), Ok(now)) => now.since(before),
                (Err(e), _) => {
                    return Ok(unreadable(
                        phase,
                        percent,
                        elapsed,
                        &crate::history::chain(e),
                    ))
                }
                (_, Err(e)) => {
                    return Ok(unreadable(
                        phase,
                        percent,
                        elapsed,
                        &crate::history::chain(&e),
                    ))
                }
            };
            let against = match (&reference, &r0) {
                (Reference::Live(slot), Some(before)) => {
                    read(*slot).ok().map(|now| now.since(before))
                }
                (Reference::Fixed(reading, _), _) => Some(reading.clone()),
                _ => None,
            };
            let figures = measure(
                settings.shadow_percent,
                phase,
                percent,
                elapsed,
                &window,
                against.as_ref(),
            );
            let figures = Figures {
                reference_seconds,
                ..figures
            };
            let report = judge(settings, figures);
            let breached = !report.passed && !report.inconclusive;
            if elapsed >= limit || (breached && report.figures.requests >= MIN_REQUESTS) {
                return Ok(report);
            }
            let so_far = PhaseSoFar {
                figures: report.figures,
                of_seconds: seconds,
                as_of: crate::model::now_rfc3339(),
            };
            tell_systemd(&so_far);
            intent.so_far = Some(so_far);
            if let Err(e) = self.write_intent(intent) {
                // The rollout goes on; only `status` misses these figures.
                warn!(
                    "cannot write the phase's figures so far: {}",
                    crate::history::chain(&e)
                );
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
        let baseline = Baseline::take(self.config, from);
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
            waiting.ended()
        );
        let mut intent = Intent {
            phase: Phase::Switch,
            pid: std::process::id(),
            record,
            target_link_before: before,
            manual: true,
            so_far: None,
        };
        let result = self.roll(&version, from, to, &mut intent, true, baseline);
        let record = self.conclude(intent, result)?;
        self.prune();
        Ok(match record.outcome {
            Outcome::Aborted => Done::Aborted(Box::new(record)),
            Outcome::Inconclusive => Done::Inconclusive(Box::new(record)),
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
            so_far: None,
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

/// Why a phase stopped the rollout.
struct Stopped {
    /// The phase's title and its verdict's reason.
    reason: String,
    /// It could not judge the candidate, rather than finding it over a limit.
    inconclusive: bool,
}

/// Tells systemd, when it runs the deploy (`NOTIFY_SOCKET`), that the rollout is alive: a
/// start deadline [`SYSTEMD_EXTENSION`] from now at least, and the phase's figures as the
/// unit's status line (`systemctl status bluegreen-deploy`).
fn tell_systemd(so_far: &PhaseSoFar) {
    let usec = u32::try_from(SYSTEMD_EXTENSION.as_micros()).expect("5 minutes fit in a u32");
    let status = format!("rollout: {}", so_far.line());
    // A failure leaves the unit's own TimeoutStartSec= in force, which is all it can cost.
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::ExtendTimeoutUsec(usec),
        sd_notify::NotifyState::Status(&status),
    ]);
}

/// A report for a candidate whose metrics cannot be read: a breach, since a candidate that
/// does not answer `/metrics` may not take traffic.
fn unreadable(phase: PhaseKind, percent: u8, elapsed: Duration, why: &str) -> PhaseReport {
    PhaseReport {
        figures: Figures::empty(phase, percent, elapsed.as_secs_f64()),
        passed: false,
        inconclusive: false,
        reason: format!("the candidate's metrics cannot be read: {why}"),
    }
}

/// The figures of a window of the candidate (`c`) against the reference (`r`): the one place
/// they are computed, for the verdict and for `status` alike. In the shadow, `shadow_percent`
/// is the share of live requests mirrored, of which the reference's live requests are the
/// whole.
fn measure(
    shadow_percent: f64,
    phase: PhaseKind,
    percent: u8,
    elapsed: Duration,
    c: &Reading,
    r: Option<&Reading>,
) -> Figures {
    let shadow = phase == PhaseKind::Shadow;
    let (requests, errors, latency) = if shadow {
        (c.shadow.requests, c.shadow.errors, &c.shadow.latency)
    } else {
        (c.requests, c.errors, &c.latency)
    };
    let reference = r.map(|r| &r.latency);
    let (mirror_percent, live_requests) = if shadow {
        (Some(shadow_percent), r.map(|r| r.requests))
    } else {
        (None, None)
    };
    let (rows, mean_divergence, max_divergence) = if shadow {
        let rows = c.shadow.rows;
        let mean = (rows > 0).then(|| c.shadow.divergence_sum / rows as f64);
        (Some(rows), mean, Some(c.shadow.divergence_max))
    } else {
        (None, None, None)
    };
    Figures {
        phase,
        percent,
        seconds: elapsed.as_secs_f64(),
        requests,
        errors,
        error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
        p99_ms: latency.quantile_ms(0.99),
        reference_p99_ms: reference.and_then(|r| r.quantile_ms(0.99)),
        reference_seconds: None,
        latency_ratio: reference.and_then(|r| metrics::latency_ratio(latency, r)),
        mirror_percent,
        live_requests,
        rows,
        mean_divergence,
        max_divergence,
    }
}

/// Judges a phase's figures by `settings`: a breach of any limit stops the rollout; with no
/// breach, fewer than [`MIN_REQUESTS`] on the candidate is inconclusive and stops it too
/// (issue 11: without evidence, traffic does not move on).
fn judge(settings: &Settings, figures: Figures) -> PhaseReport {
    let Figures {
        phase,
        requests,
        errors,
        error_rate,
        latency_ratio,
        mean_divergence: mean,
        ..
    } = figures;
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
    let inconclusive = breaches.is_empty() && requests < MIN_REQUESTS;
    let passed = breaches.is_empty() && !inconclusive;
    let reason = if !breaches.is_empty() {
        breaches.join("; ")
    } else if inconclusive {
        format!(
            "{requests} {} reached the candidate in {:.0} s, fewer than the {MIN_REQUESTS} a verdict needs",
            phase.requests_counted(),
            figures.seconds
        )
    } else {
        let mut within = vec![format!(
            "error rate within {:.2}%",
            settings.max_error_rate * 100.0
        )];
        match latency_ratio {
            Some(_) => within.push(format!("p99 within {}×", settings.max_latency_ratio)),
            None => within.push(format!(
                "latency not judged (the {} answered fewer than {MIN_REQUESTS} requests)",
                if phase == PhaseKind::Watch {
                    "previous slot"
                } else {
                    "active slot"
                }
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
        figures,
        passed,
        inconclusive,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot's `/metrics` text: `requests` answers, all in the 10 ms bucket, counted since
    /// `started`.
    fn slot(requests: u64, started: f64) -> Reading {
        Reading::parse(&format!(
            "bluegreen_requests_total{{status=\"200\"}} {requests}\n\
             bluegreen_request_duration_seconds_bucket{{le=\"0.01\"}} {requests}\n\
             bluegreen_request_duration_seconds_bucket{{le=\"+Inf\"}} {requests}\n\
             process_start_time_seconds {started}\n"
        ))
    }

    fn baseline(reading: Reading) -> Option<Baseline> {
        Some(Baseline {
            at: Instant::now(),
            reading,
        })
    }

    #[test]
    fn the_watch_takes_the_window_since_the_deploy_began_only_when_it_can_judge_by_it() {
        // 150 answers since the deploy began: that window.
        match watch_reference(baseline(slot(1000, 7.0)), slot(1150, 7.0)) {
            Reference::Fixed(window, Some(seconds)) => {
                assert_eq!(window.latency.count(), 150);
                assert!(seconds >= 0.0);
            }
            _ => panic!("expected the window"),
        }
        // 50 answers: too few to judge by; its whole life.
        match watch_reference(baseline(slot(1000, 7.0)), slot(1050, 7.0)) {
            Reference::Fixed(life, None) => assert_eq!(life.latency.count(), 1050),
            _ => panic!("expected the whole life"),
        }
        // Restarted in between (another start): the difference is no window, even with as
        // many answers since.
        match watch_reference(baseline(slot(1000, 7.0)), slot(1200, 9.0)) {
            Reference::Fixed(life, None) => assert_eq!(life.latency.count(), 1200),
            _ => panic!("expected the whole life"),
        }
        // No baseline (the slot's counters could not be read then).
        assert!(matches!(
            watch_reference(None, slot(1200, 9.0)),
            Reference::Fixed(_, None)
        ));
    }

    fn canary(requests: u64, errors: u64) -> Figures {
        Figures {
            requests,
            errors,
            error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
            ..Figures::empty(PhaseKind::Canary, 10, 30.0)
        }
    }

    #[test]
    fn a_phase_is_judged_on_enough_requests_and_a_breach_on_any() {
        let settings = Settings::default();
        let few = judge(&settings, canary(MIN_REQUESTS - 1, 0));
        assert!(!few.passed && few.inconclusive, "{few:?}");
        assert_eq!(few.verdict(), "INCONCLUSIVE");
        assert!(few.reason.starts_with("99 requests"), "{}", few.reason);
        let none = judge(&settings, canary(0, 0));
        assert!(none.inconclusive, "{none:?}");
        let enough = judge(&settings, canary(MIN_REQUESTS, 0));
        assert!(enough.passed && !enough.inconclusive, "{enough:?}");
        // Errors are evidence at any count: a breach, not "inconclusive".
        let failing = judge(&settings, canary(10, 5));
        assert!(!failing.passed && !failing.inconclusive, "{failing:?}");
        assert_eq!(failing.verdict(), "STOPPED");
    }
}
