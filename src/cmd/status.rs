//! `bluegreen status [--json]`: the whole story at a glance — which slot is active and with
//! which model, whether each slot answers, how much data there is and whether training is
//! due, and the last deploys.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::data;
use crate::history::{self, Record};
use crate::http;
use crate::layout::Layout;
use crate::model::Store;
use crate::nginx;
use crate::slot::Slot;
use crate::supervisor;

#[derive(Serialize)]
struct Status {
    state_dir: String,
    supervisor: &'static str,
    public_port: u16,
    active: Option<Slot>,
    slots: Vec<SlotStatus>,
    data_rows: Option<usize>,
    newest_model: Option<String>,
    rows_since_newest: Option<usize>,
    batch_size: usize,
    training_due: bool,
    models: usize,
    last_deploys: Vec<Record>,
}

#[derive(Serialize)]
struct SlotStatus {
    slot: Slot,
    role: &'static str,
    address: String,
    /// The version the slot's symlink names.
    model: Option<String>,
    /// The version the running server reports, if it answers.
    serving: Option<String>,
    health: String,
}

pub fn execute(config: &Config, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let status = gather(config)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_table(&status);
    }
    Ok(ExitCode::SUCCESS)
}

fn gather(config: &Config) -> anyhow::Result<Status> {
    let layout = Layout::new(&config.state_dir);
    let active = nginx::read_active(config, &layout.upstream_include())
        .context("cannot tell which slot is active")?;
    let mut slots = Vec::new();
    for slot in Slot::ALL {
        let addr = config.slot_addr(slot);
        let model = layout.slot_version(slot)?;
        let (serving, health) = probe(addr, model.as_deref());
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
    let store = Store::new(&layout.models_dir());
    let versions = store.versions()?;
    let newest = store.newest()?;
    let data_rows = data::count_rows(&layout.data_csv()).ok();
    let rows_since_newest = match (&data_rows, &newest) {
        (Some(rows), Some(m)) => Some(rows.saturating_sub(m.rows)),
        _ => None,
    };
    Ok(Status {
        state_dir: layout.root().display().to_string(),
        supervisor: supervisor::detect(config, &layout).name(),
        public_port: config.public_port,
        active,
        slots,
        data_rows,
        newest_model: newest.map(|m| m.version),
        training_due: rows_since_newest.is_some_and(|n| n >= config.batch_size),
        rows_since_newest,
        batch_size: config.batch_size,
        models: versions.len(),
        last_deploys: history::last(&layout.history(), 5)?,
    })
}

/// Asks a slot which model it serves. "healthy" only when it answers and serves its link's
/// model; a slot that serves another one has not been restarted since its link moved.
fn probe(addr: std::net::SocketAddr, linked: Option<&str>) -> (Option<String>, String) {
    match http::request(addr, "GET", "/readyz", None, Duration::from_millis(800)) {
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
        Err(e) => (None, format!("down ({e})")),
    }
}

fn print_table(s: &Status) {
    println!(
        "bluegreen: state in {}, slots run by {}, NGINX on port {}",
        s.state_dir, s.supervisor, s.public_port
    );
    println!();
    println!(
        "  {:<8} {:<6} {:<16} {:<24} HEALTH",
        "ROLE", "SLOT", "ADDRESS", "MODEL"
    );
    for slot in &s.slots {
        println!(
            "  {:<8} {:<6} {:<16} {:<24} {}",
            slot.role,
            slot.slot,
            slot.address,
            slot.model.as_deref().unwrap_or("-"),
            slot.health
        );
    }
    println!();
    match (s.data_rows, &s.newest_model, s.rows_since_newest) {
        (Some(rows), Some(newest), Some(since)) => println!(
            "  data     {rows} rows, {since} since {newest} (batch size {}: {})",
            s.batch_size,
            if s.training_due {
                "training is due".to_string()
            } else {
                format!("{} more needed", s.batch_size - since)
            }
        ),
        (Some(rows), _, _) => println!("  data     {rows} rows, no model yet"),
        _ => println!("  data     none yet (hint: run `bluegreen init`)"),
    }
    println!(
        "  models   {} stored, newest {}",
        s.models,
        s.newest_model.as_deref().unwrap_or("-")
    );
    println!();
    if s.last_deploys.is_empty() {
        println!("  no deploys yet");
    } else {
        println!("  last deploys:");
        for r in &s.last_deploys {
            let slots = match (r.from_slot, r.to_slot) {
                (Some(f), Some(t)) => format!("{f}→{t}"),
                _ => "-".to_string(),
            };
            let versions = format!(
                "{}→{}",
                r.from_version.as_deref().unwrap_or("-"),
                r.to_version.as_deref().unwrap_or("-")
            );
            let outcome = serde_json::to_value(r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            print!(
                "    {}  {:<8} {:<11} {:<12} {:>7.0} ms  {}",
                r.time, r.action, slots, outcome, r.duration_ms, versions
            );
            match &r.reason {
                Some(reason) => println!("  ({reason})"),
                None => println!(),
            }
        }
    }
}
