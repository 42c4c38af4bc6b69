//! The figures of a rollout's phases, as the history, `status` and `status --json` keep and
//! show them (issue 11): [`Figures`] are what a phase measured so far, a [`PhaseReport`] is
//! those figures with the verdict once the phase ended, and [`PhaseSoFar`] the figures of the
//! phase that runs now, for `status` while the rollout polls.

use serde::{Deserialize, Serialize};

/// Which phase of a rollout a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseKind {
    /// Live requests mirrored to the candidate; no traffic moved.
    Shadow,
    /// A share of live traffic to the candidate by upstream weight.
    Canary,
    /// All traffic on the new slot, watched.
    Watch,
}

impl PhaseKind {
    /// The name in the history and in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Shadow => "shadow",
            PhaseKind::Canary => "canary",
            PhaseKind::Watch => "watch",
        }
    }

    /// The requests a phase of this kind counts on the candidate, in words.
    pub fn requests_counted(self) -> &'static str {
        match self {
            PhaseKind::Shadow => "mirrored requests",
            PhaseKind::Canary | PhaseKind::Watch => "requests",
        }
    }
}

/// What a phase measured over its window so far: the candidate's requests, errors and
/// latency against the reference's, and in the shadow the divergence. One reading of both
/// slots' `/metrics` gives them (`crate::rollout::run`); the same figures are judged when the
/// phase ends and shown by `status` while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub phase: PhaseKind,
    /// The share of live traffic the candidate answered (percent): 0 in the shadow phase,
    /// the step's share in a canary step, 100 in the watch.
    pub percent: u8,
    /// How long it was analysed, in seconds (shorter than configured when stopped early).
    pub seconds: f64,
    /// Requests the candidate answered in the window (shadow: the copies it judged).
    pub requests: u64,
    /// Of those, answers with a 5xx status.
    pub errors: u64,
    /// `errors / requests`; `None` without requests.
    pub error_rate: Option<f64>,
    /// The candidate's p99 latency in the window, in milliseconds, from its histogram.
    pub p99_ms: Option<f64>,
    /// The reference's p99 in milliseconds: the active slot over the same window (shadow,
    /// canary), or the previous slot before the switch (watch; see `reference_seconds`).
    pub reference_p99_ms: Option<f64>,
    /// Watch only: the seconds of the previous slot's traffic the reference covers, its last
    /// before the switch (from the deploy's or promote's start); `None` when it is the slot's
    /// whole life, as it is when that window had fewer than `MIN_REQUESTS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_seconds: Option<f64>,
    /// `max(p99, floor) / max(reference p99, floor)` (see `crate::rollout::metrics`);
    /// `None` when either had too few requests to judge.
    pub latency_ratio: Option<f64>,
    /// Shadow only: `rollout.shadow_percent`, the share of live requests NGINX copied to the
    /// candidate, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<f64>,
    /// Shadow only: the live requests the active slot answered in the same window, of which
    /// the copies (`requests`) are a sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_requests: Option<u64>,
    /// Shadow only: rows compared between the candidate and the active model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Shadow only: mean |candidate − active| prediction over those rows, in label units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_divergence: Option<f64>,
    /// Shadow only: the largest |candidate − active| the candidate has seen, in label units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_divergence: Option<f64>,
}

impl Figures {
    /// A phase's figures before any request was counted: `seconds` analysed, nothing else
    /// known.
    pub fn empty(phase: PhaseKind, percent: u8, seconds: f64) -> Figures {
        Figures {
            phase,
            percent,
            seconds,
            requests: 0,
            errors: 0,
            error_rate: None,
            p99_ms: None,
            reference_p99_ms: None,
            reference_seconds: None,
            latency_ratio: None,
            mirror_percent: None,
            live_requests: None,
            rows: None,
            mean_divergence: None,
            max_divergence: None,
        }
    }

    /// The phase's name with its share: `shadow`, `canary 10%`, `watch`.
    pub fn title(&self) -> String {
        match self.phase {
            PhaseKind::Canary => format!("canary {}%", self.percent),
            other => other.as_str().to_string(),
        }
    }

    /// The figures in words, after the seconds: `120 requests, 0 errors (0.00%), p99 …`;
    /// in the shadow, `120 copies of 2400 live requests (5.0%, shadow_percent 5), …`.
    fn summary(&self) -> String {
        let mut figures = vec![match (self.mirror_percent, self.live_requests) {
            (Some(share), Some(live)) if live > 0 => format!(
                "{} copies of {live} live requests ({:.1}%, shadow_percent {share})",
                self.requests,
                self.requests as f64 * 100.0 / live as f64
            ),
            (Some(share), _) => format!("{} copies (shadow_percent {share})", self.requests),
            _ => format!("{} requests", self.requests),
        }];
        if let Some(rate) = self.error_rate {
            figures.push(format!("{} errors ({:.2}%)", self.errors, rate * 100.0));
        }
        if let Some(p99) = self.p99_ms {
            let reference = match (self.reference_p99_ms, self.phase, self.reference_seconds) {
                (Some(r), PhaseKind::Watch, Some(span)) if span < 1.0 => {
                    let ms = (span * 1e3).round().max(1.0);
                    format!(" vs {r:.2} ms (the previous slot's last {ms} ms)")
                }
                (Some(r), PhaseKind::Watch, Some(span)) => {
                    format!(" vs {r:.2} ms (the previous slot's last {span:.1} s)")
                }
                (Some(r), PhaseKind::Watch, None) => {
                    format!(" vs {r:.2} ms (the previous slot's whole life)")
                }
                (Some(r), _, _) => format!(" vs {r:.2} ms"),
                (None, _, _) => String::new(),
            };
            figures.push(format!("p99 {p99:.2} ms{reference}"));
        }
        if let Some(ratio) = self.latency_ratio {
            figures.push(format!("ratio {ratio:.2}"));
        }
        if let (Some(rows), Some(mean), Some(max)) =
            (self.rows, self.mean_divergence, self.max_divergence)
        {
            figures.push(format!(
                "divergence mean {mean:.4}, max {max:.4} on {rows} rows"
            ));
        }
        figures.join(", ")
    }
}

/// One analysed phase: what the candidate did, against what, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    #[serde(flatten)]
    pub figures: Figures,
    /// True when the phase judged the candidate and found it within every limit.
    pub passed: bool,
    /// True when the phase could not judge the candidate: fewer than
    /// `crate::rollout::metrics::MIN_REQUESTS` requests reached it and none of what did
    /// breached a limit. The rollout stops then as for a breach (`passed` is false): without
    /// evidence, traffic does not move on (issue 11; Argo Rollouts' "Inconclusive").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inconclusive: bool,
    /// The verdict in words: the figures against the limits, or why nothing was judged.
    pub reason: String,
}

impl PhaseReport {
    /// The phase's name with its share: `shadow`, `canary 10%`, `watch`.
    pub fn title(&self) -> String {
        self.figures.title()
    }

    /// The verdict in one word, as `status` prints it.
    pub fn verdict(&self) -> &'static str {
        match (self.passed, self.inconclusive) {
            (true, _) => "passed",
            (false, true) => "INCONCLUSIVE",
            (false, false) => "STOPPED",
        }
    }

    /// One line for `status`: the title, the figures, the verdict.
    pub fn line(&self) -> String {
        format!(
            "{:<11} {:.0} s, {}  {}: {}",
            self.title(),
            self.figures.seconds,
            self.figures.summary(),
            self.verdict(),
            self.reason
        )
    }
}

/// The phase a rollout runs now, with its figures so far: kept in the rollout's intent
/// (`crate::history::Intent`) and rewritten at every reading of the slots (every half
/// second), for `status`, `status --json` and the dashboard (issue 11). It has no verdict:
/// the phase judges its figures when it ends, into a [`PhaseReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSoFar {
    #[serde(flatten)]
    pub figures: Figures,
    /// How long the phase is configured to last, in seconds.
    pub of_seconds: u64,
    /// When these figures were read (RFC 3339, UTC): a rollout killed mid-phase leaves them
    /// behind until the next command reconciles it, and their age says so.
    pub as_of: String,
}

impl PhaseSoFar {
    /// One line for `status`: `canary 10%  3 s of 30 so far, 120 requests, …`.
    pub fn line(&self) -> String {
        format!(
            "{:<11} {:.0} s of {} so far, {} (as of {})",
            self.figures.title(),
            self.figures.seconds,
            self.of_seconds,
            self.figures.summary(),
            self.as_of
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_says_which_window_of_the_previous_slot_it_compared_with() {
        let watch = |reference_seconds| Figures {
            requests: 500,
            p99_ms: Some(2.0),
            reference_p99_ms: Some(1.5),
            reference_seconds,
            ..Figures::empty(PhaseKind::Watch, 100, 3.0)
        };
        for (seconds, says) in [
            (Some(0.017), "vs 1.50 ms (the previous slot's last 17 ms)"),
            (Some(0.0001), "(the previous slot's last 1 ms)"),
            (Some(3.31), "(the previous slot's last 3.3 s)"),
            (None, "(the previous slot's whole life)"),
        ] {
            let text = watch(seconds).summary();
            assert!(text.contains(says), "{seconds:?}: {text}");
        }
    }
}
