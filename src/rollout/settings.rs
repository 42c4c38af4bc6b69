//! `[rollout]`: how a deploy moves traffic to a candidate that passed the quality gate
//! (issue 11). Every key is optional; the defaults keep a deploy as it was before rollouts:
//! promoted at once, no shadow phase, 100% of the traffic in one step, no watch.

use serde::{Deserialize, Serialize};

use crate::switch::Mode;

/// Who decides that the candidate takes traffic: the deploy itself, or an operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Promote {
    /// The deploy runs every phase by itself (the default).
    #[default]
    Auto,
    /// The deploy stops once the candidate is ready and probed on the resting slot;
    /// `bluegreen promote` runs the rest, `bluegreen abort` drops it.
    Manual,
}

/// The `[rollout]` table, with the keys and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub promote: Promote,
    /// How long live prediction requests are mirrored to the candidate before any traffic
    /// moves; 0: no shadow phase.
    pub shadow_seconds: u64,
    /// The share of live prediction requests NGINX copies to the candidate during the shadow
    /// phase, in percent: more than 0, at most 100, at most two decimals (NGINX's
    /// `split_clients` buckets). The default is [`DEFAULT_SHADOW_PERCENT`].
    pub shadow_percent: f64,
    /// The shares of live traffic (percent) the candidate gets, in order; the last is 100.
    pub steps: Vec<u32>,
    /// How long each step below 100 is analysed.
    pub step_seconds: u64,
    /// After 100%, how long the new slot is watched; 0: not watched.
    pub watch_seconds: u64,
    /// The share of the candidate's answers that may be 5xx (shadow, each step, the watch).
    pub max_error_rate: f64,
    /// The candidate's p99 latency over the active slot's (shadow, each step, the watch).
    pub max_latency_ratio: f64,
    /// Shadow: the mean |candidate − active| prediction allowed, in label units.
    pub max_divergence: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            promote: Promote::Auto,
            shadow_seconds: 0,
            shadow_percent: DEFAULT_SHADOW_PERCENT,
            steps: vec![100],
            step_seconds: 30,
            watch_seconds: 0,
            max_error_rate: 0.001,
            max_latency_ratio: 2.0,
            max_divergence: 0.5,
        }
    }
}

/// `rollout.shadow_percent`'s default: one live request in twenty is copied to the candidate.
///
/// Why 5 (issue 11, "mirroring must not slow clients down"; bench/run section 7 on the shared
/// 2-core test host, under load from other builds): a copy costs NGINX and the candidate
/// about what the live request costs again (every request copied: 1.6–2.2× the CPU per
/// request, 0.53–0.81 of the throughput flat out), and NGINX reads a keep-alive client's
/// next request only once the copy is answered (1.33× p99 at a paced load). At 5% clients
/// kept 0.87–1.04 of their throughput flat out and 1.13× their paced p99, while a request
/// not drawn costs nothing measurable (the draw is made before any mirror, see
/// `crate::nginx::render_shadow`). And a minute of shadow at 5% gives the 100 copies a
/// verdict needs (`crate::rollout::metrics::MIN_REQUESTS`) from 34 live requests a second,
/// the 1,000 that resolve `max_error_rate = 0.001` from 334. A host with less traffic than
/// that has the spare CPU that makes a larger share cheap: raise it there.
pub const DEFAULT_SHADOW_PERCENT: f64 = 5.0;

/// The longest a phase may be configured to last: a day. A rollout holds the deploy lock
/// throughout, so a typo of a few zeros would block every deploy for months.
const MAX_SECONDS: u64 = 86_400;

impl Settings {
    /// The canary steps below 100%, in order.
    pub fn canary_steps(&self) -> impl Iterator<Item = u8> + '_ {
        self.steps.iter().filter(|p| **p < 100).map(|p| *p as u8)
    }

    /// Every bad value, with its key; `switch` is the configured switch mode, in which canary
    /// steps are not available in socket mode (see `crate::rollout`).
    pub fn problems(&self, switch: Mode) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        let mut bad = |key, why: String| found.push((key, why));
        for (key, secs) in [
            ("rollout.shadow_seconds", self.shadow_seconds),
            ("rollout.step_seconds", self.step_seconds),
            ("rollout.watch_seconds", self.watch_seconds),
        ] {
            if secs > MAX_SECONDS {
                bad(key, format!("{secs} s is more than a day ({MAX_SECONDS} s); a rollout holds the deploy lock all along"));
            }
        }
        if self.step_seconds == 0 {
            bad(
                "rollout.step_seconds",
                "must be at least 1 second: a step is analysed over it".into(),
            );
        }
        if self.steps.is_empty() {
            bad(
                "rollout.steps",
                "must hold at least one step, the last being 100 (e.g. [10, 50, 100])".into(),
            );
        } else if let Some(p) = self.steps.iter().find(|p| **p == 0 || **p > 100) {
            bad(
                "rollout.steps",
                format!("{p} is not a share of traffic from 1 to 100 percent"),
            );
        } else if self.steps.windows(2).any(|w| w[0] >= w[1]) {
            bad(
                "rollout.steps",
                format!(
                    "{:?} must rise step by step (each share larger than the one before)",
                    self.steps
                ),
            );
        } else if self.steps.last() != Some(&100) {
            bad(
                "rollout.steps",
                format!(
                    "{:?} must end with 100, the step that moves all the traffic",
                    self.steps
                ),
            );
        } else if switch == Mode::Socket && self.steps.len() > 1 {
            bad(
                "rollout.steps",
                format!(
                    "{:?} splits traffic by NGINX upstream weights, which needs a reload at every step; in switch mode \"socket\" NGINX is never reloaded for a switch, so canary steps are not available there; hint: steps = [100] (shadow and watch work in both modes), or nginx.switch = \"reload\"",
                    self.steps
                ),
            );
        }
        let hundredths = self.shadow_percent * 100.0;
        if !(self.shadow_percent > 0.0 && self.shadow_percent <= 100.0) {
            bad(
                "rollout.shadow_percent",
                format!(
                    "{} is not a share of live requests above 0 and at most 100 percent ({DEFAULT_SHADOW_PERCENT} copies one request in {:.0} to the candidate, 100 copies them all)",
                    self.shadow_percent,
                    100.0 / DEFAULT_SHADOW_PERCENT
                ),
            );
        } else if hundredths.round() < 1.0 || (hundredths - hundredths.round()).abs() > 1e-6 {
            // Below 0.01 too: 1e-9 is within the tolerance of 0.00, which NGINX refuses.
            bad(
                "rollout.shadow_percent",
                format!(
                    "{} has more than two decimals, which NGINX's split_clients does not take (e.g. {:.2})",
                    self.shadow_percent,
                    (hundredths.round() / 100.0).max(0.01)
                ),
            );
        }
        if !(self.max_error_rate.is_finite() && (0.0..=1.0).contains(&self.max_error_rate)) {
            bad(
                "rollout.max_error_rate",
                format!(
                    "{} is not a share from 0 to 1 (0.001 allows one 5xx answer in a thousand)",
                    self.max_error_rate
                ),
            );
        }
        if !(self.max_latency_ratio.is_finite() && self.max_latency_ratio >= 1.0) {
            bad(
                "rollout.max_latency_ratio",
                format!(
                    "{} must be a finite number >= 1: a candidate as fast as the active slot must pass",
                    self.max_latency_ratio
                ),
            );
        }
        if !(self.max_divergence.is_finite() && self.max_divergence >= 0.0) {
            bad(
                "rollout.max_divergence",
                format!(
                    "{} is not a finite number >= 0 (label units)",
                    self.max_divergence
                ),
            );
        }
        found
    }
}
