//! The figures of a rollout's phases, as the history, `status` and `status --json` keep and
//! show them (issue 11).

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
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Shadow => "shadow",
            PhaseKind::Canary => "canary",
            PhaseKind::Watch => "watch",
        }
    }
}

/// One analysed phase: what the candidate did, against what, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
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
    /// canary), or the previous slot over its life (watch).
    pub reference_p99_ms: Option<f64>,
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
    pub passed: bool,
    /// The verdict in words: the figures against the limits, or why nothing was judged.
    pub reason: String,
}

impl PhaseReport {
    /// The phase's name with its share: `shadow`, `canary 10%`, `watch`.
    pub fn title(&self) -> String {
        match self.phase {
            PhaseKind::Canary => format!("canary {}%", self.percent),
            other => other.as_str().to_string(),
        }
    }

    /// One line for `status`: the title, the figures, the verdict.
    pub fn line(&self) -> String {
        let mut figures = vec![format!("{:.0} s", self.seconds)];
        figures.push(match (self.mirror_percent, self.live_requests) {
            (Some(share), Some(live)) if live > 0 => format!(
                "{} copies of {live} live requests ({:.1}%, shadow_percent {share})",
                self.requests,
                self.requests as f64 * 100.0 / live as f64
            ),
            (Some(share), _) => format!("{} copies (shadow_percent {share})", self.requests),
            _ => format!("{} requests", self.requests),
        });
        if let Some(rate) = self.error_rate {
            figures.push(format!("{} errors ({:.2}%)", self.errors, rate * 100.0));
        }
        if let Some(p99) = self.p99_ms {
            let reference = self
                .reference_p99_ms
                .map(|r| format!(" vs {r:.2} ms"))
                .unwrap_or_default();
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
        format!(
            "{:<11} {}  {}: {}",
            self.title(),
            figures.join(", "),
            if self.passed { "passed" } else { "STOPPED" },
            self.reason
        )
    }
}
