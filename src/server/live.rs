//! The slot's live figures as JSON, for the dashboard (issue 12): the same counters that
//! `GET /metrics` reports, read at one moment.
//!
//! The page polls each slot for them every few seconds, through NGINX
//! (`/-/slots/<slot>/api/slot`, see `crate::nginx`), and turns two readings into request
//! rate, error rate and p99 over the interval between them. It polls `/-/api/slot` rather
//! than `/metrics`, because requests under `/-` are not counted: the page watching the
//! slots must not show up in what it watches.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::{AppState, BUCKETS};
use crate::slot::Slot;

/// One reading of a slot's counters, since the slot started.
#[derive(Debug, Serialize)]
pub struct Live {
    pub slot: Slot,
    /// The model the slot serves.
    pub model: String,
    /// Requests answered, by status code.
    pub requests: BTreeMap<u16, u64>,
    /// The latency histogram, cumulative as Prometheus has it: `[upper bound in seconds,
    /// requests that took at most that long]`, the last bound `null` for +Inf.
    pub latency_buckets: Vec<(Option<f64>, u64)>,
    pub latency_sum_seconds: f64,
    pub rows_predicted: u64,
}

impl AppState {
    /// The counters as they are now (each read on its own, as `/metrics` reads them).
    pub fn live(&self) -> Live {
        let m = &self.metrics;
        let requests = m
            .by_status
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u16 + 100, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut cumulative = 0;
        let latency_buckets = m
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (BUCKETS.get(i).copied(), cumulative)
            })
            .collect();
        Live {
            slot: self.slot,
            model: self.model.version.clone(),
            requests,
            latency_buckets,
            latency_sum_seconds: m.latency_micros_sum.load(Ordering::Relaxed) as f64 / 1e6,
            rows_predicted: m.rows_predicted.load(Ordering::Relaxed),
        }
    }
}
