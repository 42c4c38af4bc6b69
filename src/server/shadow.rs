//! The slot's side of a rollout's shadow phase (issue 11).
//!
//! While a shadow phase runs, NGINX mirrors live requests to the resting slot, the candidate,
//! with the header `X-Bluegreen-Shadow: 1` (`crate::nginx`, the site's shadow location). The
//! candidate answers them as any request (NGINX drops the answer), and for each prediction
//! also predicts the same rows with the *reference*: the active slot's model, which `serve`
//! loads beside its own when `rollout.shadow_seconds` is set. It counts, apart from its
//! ordinary metrics (so that a canary step's figures hold live traffic only):
//! - mirrored requests, and those it answered with a 5xx;
//! - rows compared, the sum and the largest |own − reference| prediction, in label units;
//! - the time its own answer took (the reference's prediction left out), as a histogram.
//!
//! Every prediction route compares (`POST /`, `/inference`, the Open Inference Protocol's
//! `infer` and KServe v1's `:predict`): they all predict through `predict_rows`.
//!
//! `/metrics` shows them as `bluegreen_shadow_*`; the deploy reads them before and after the
//! phase (`crate::rollout::metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Artifact;

/// The header NGINX's mirror sets on its copies.
pub const HEADER: &str = "x-bluegreen-shadow";

/// Marks a request as a mirrored copy, for the handlers (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Mirrored {
    /// When the slot began to read it: its own answer's time is measured from here.
    pub started: Instant,
}

/// The reference model and what the shadow requests showed so far.
pub struct Shadow {
    reference: Artifact,
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; super::BUCKETS.len() + 1],
    divergence: Mutex<Divergence>,
}

#[derive(Default)]
struct Divergence {
    rows: u64,
    sum: f64,
    max: f64,
}

impl Shadow {
    /// Compares with `reference`, the active slot's model.
    pub fn new(reference: Artifact) -> Shadow {
        Shadow {
            reference,
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: Default::default(),
            divergence: Mutex::new(Divergence::default()),
        }
    }

    /// The reference's version.
    pub fn reference(&self) -> &str {
        &self.reference.version
    }

    /// Counts a mirrored request's answer.
    pub fn answered(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Compares the slot's own `prices` for `rows` (row-major, the model's features) with the
    /// reference's, and records how long the slot's own answer took (`own`).
    pub fn compare(&self, rows: &[f64], prices: &[f64], own: Duration) {
        let bucket = super::bucket(own.as_secs_f64());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // A reference of another schema cannot predict these rows: nothing to compare.
        if self.reference.features.len() * prices.len() != rows.len() {
            return;
        }
        let Ok(theirs) = self.reference.predict_rows(rows) else {
            return;
        };
        let (mut sum, mut max) = (0.0, 0.0f64);
        for (a, b) in prices.iter().zip(&theirs) {
            let d = (a - b).abs();
            if d.is_finite() {
                sum += d;
                max = max.max(d);
            }
        }
        let mut total = self.divergence.lock().unwrap_or_else(|e| e.into_inner());
        total.rows += prices.len() as u64;
        total.sum += sum;
        total.max = total.max.max(max);
    }

    /// The `bluegreen_shadow_*` lines of `/metrics`.
    pub fn render(&self, out: &mut String) {
        let d = self.divergence.lock().unwrap_or_else(|e| e.into_inner());
        let (rows, sum, max) = (d.rows, d.sum, d.max);
        drop(d);
        out.push_str("# HELP bluegreen_shadow_reference_info The model this slot compares its predictions with in a shadow phase (issue 11).\n");
        out.push_str("# TYPE bluegreen_shadow_reference_info gauge\n");
        let _ = writeln!(
            out,
            "bluegreen_shadow_reference_info{{version=\"{}\"}} 1",
            self.reference.version
        );
        out.push_str("# HELP bluegreen_shadow_requests_total Mirrored requests answered.\n");
        out.push_str("# TYPE bluegreen_shadow_requests_total counter\n");
        let _ = writeln!(
            out,
            "bluegreen_shadow_requests_total {}",
            self.requests.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP bluegreen_shadow_errors_total Mirrored requests answered with a 5xx.\n",
        );
        out.push_str("# TYPE bluegreen_shadow_errors_total counter\n");
        let _ = writeln!(
            out,
            "bluegreen_shadow_errors_total {}",
            self.errors.load(Ordering::Relaxed)
        );
        out.push_str("# HELP bluegreen_shadow_rows_total Rows predicted by both this slot's model and the reference.\n");
        out.push_str("# TYPE bluegreen_shadow_rows_total counter\n");
        let _ = writeln!(out, "bluegreen_shadow_rows_total {rows}");
        out.push_str("# HELP bluegreen_shadow_divergence_sum Sum of |own - reference| predictions over those rows, in label units.\n");
        out.push_str("# TYPE bluegreen_shadow_divergence_sum counter\n");
        let _ = writeln!(out, "bluegreen_shadow_divergence_sum {sum}");
        out.push_str("# HELP bluegreen_shadow_divergence_max Largest |own - reference| prediction seen, in label units.\n");
        out.push_str("# TYPE bluegreen_shadow_divergence_max gauge\n");
        let _ = writeln!(out, "bluegreen_shadow_divergence_max {max}");
        out.push_str("# HELP bluegreen_shadow_duration_seconds Time this slot took for its own answer to a mirrored prediction.\n");
        out.push_str("# TYPE bluegreen_shadow_duration_seconds histogram\n");
        super::render_histogram(out, "bluegreen_shadow_duration_seconds", &self.buckets);
    }
}
