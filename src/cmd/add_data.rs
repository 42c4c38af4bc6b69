//! `bluegreen add-data`: validate rows from a file, stdin, `--row` or `--sample`, then append
//! them all at once, or none of them.
//!
//! Exit status 0 means the rows were written, and an error means they were not (issue #8
//! §8): everything that could fail after the write (reading the newest model, for the
//! summary) is done before it, so a client that retries on an error never adds rows twice.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::AddDataArgs;
use crate::config::{Config, Role};
use crate::data::{self, Rows, Schema};
use crate::history::{self, Action, Outcome, Record};
use crate::layout::Layout;
use crate::model::Artifact;
use crate::progress::{Progress, Unit};
use crate::rollout::live;
use crate::state::State;
use tracing::warn;

pub fn execute(config: &Config, args: &AddDataArgs) -> anyhow::Result<ExitCode> {
    let schema = Schema::of(&config.data);
    let rows = collect(config, &schema, args)?;
    let layout = Layout::new(&config.state_dir);
    let csv = layout.data_csv(&config.data);
    if !csv.exists() {
        anyhow::bail!(
            "there is no training data at {}; hint: run `bluegreen init` (or `bluegreen up`) first",
            csv.display()
        );
    }
    // Everything that may fail is done before the write (see the module doc), the live
    // accuracy of the active model on these rows too (issue 11): it is only recorded after.
    let (newest, live) = match State::read(config) {
        Ok(state) => {
            for err in state.skipped() {
                warn!(
                    "skipping a model that cannot be read: {err}; hint: remove the file, or restore it from a backup"
                );
            }
            (state.newest().cloned(), measure(&state, &rows, &schema))
        }
        Err(err) => {
            warn!(
                "{:#}; the summary below cannot compare with the newest model",
                anyhow::Error::from(err)
            );
            (None, None)
        }
    };
    let ledger = layout.data_ledger();
    let appended = data::append_rows(
        &csv,
        &schema,
        &rows,
        newest.as_ref().map(Artifact::learned),
        &ledger,
    )
    .with_context(|| format!("nothing was added to {}", csv.display()))?;
    if let Some(e) = &appended.ledger_error {
        // The rows are in: exit 0 all the same (see the module doc). Without the ledger the
        // next training reads the whole file once.
        warn!(
            "cannot write {}: {e}; the next training or status reads the whole data once",
            ledger.display()
        );
    }
    let scan = appended.scan;
    let verdict = if config.fleet.role == Role::Server {
        "this host's fleet role is \"server\": it never trains on them; add data on the trainer"
            .to_string()
    } else {
        scan.verdict(config.batch_size)
    };
    super::out(&format!(
        "appended {} row{} ({} total, {}; {})\n",
        appended.added,
        if appended.added == 1 { "" } else { "s" },
        scan.rows,
        scan.since_text(newest.as_ref().map(|m| m.version.as_str())),
        verdict
    ))?;
    if let Some(record) = live {
        let line = record.live.as_ref().map(|l| l.line()).unwrap_or_default();
        // The rows are in: a history that cannot be written costs the measurement only.
        match history::append(&layout.history(), &record) {
            Ok(()) => super::out(&format!("{line}\n"))?,
            Err(e) => warn!("{line}; not recorded: {}", history::chain(&e)),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The active model's live accuracy on `rows` (issue 11, `crate::rollout::live`), as the
/// history record `add-data` appends after the write; `None` without an active model, or
/// when it cannot be measured (said, but no reason to refuse the rows).
fn measure(state: &State, rows: &Rows, schema: &Schema) -> Option<Record> {
    let active = state.active()?;
    let model = match state.active_model() {
        Ok(model) => model?,
        Err(e) => {
            warn!(
                "the live accuracy cannot be measured: {}",
                history::chain(&e)
            );
            return None;
        }
    };
    let mut record = Record::begin(
        Action::AddData,
        (Some(active), Some(model.version.clone())),
        (None, None),
    );
    match live::measure(&model, rows, &schema.columns()) {
        Ok(Some(accuracy)) => {
            record.step("measure");
            record.live = Some(accuracy);
            record.finish(Outcome::Measured, None);
            Some(record)
        }
        Ok(None) => None,
        Err(e) => {
            warn!(
                "{} cannot predict these rows, so their live accuracy is not measured: {}",
                model.version,
                history::chain(&e)
            );
            None
        }
    }
}

/// Reads and validates every input; any bad row fails the whole call before a write.
fn collect(config: &Config, schema: &Schema, args: &AddDataArgs) -> anyhow::Result<Rows> {
    let columns = schema.columns();
    let ignore: Vec<&str> = config.data.ignore.iter().map(String::as_str).collect();
    let mut rows = Rows::new(columns.len());
    if let Some(path) = &args.file {
        // A large input takes a while to read and check: a bar on a terminal (issue 12).
        let read = if path.as_os_str() == "-" {
            let progress = Progress::reading("stdin", None, Unit::Lines);
            data::read_rows(
                progress.wrap(std::io::stdin().lock()),
                "stdin",
                &columns,
                &ignore,
            )
        } else {
            let file = fs_err::File::open(path).context("cannot read rows")?;
            let size = file.metadata().context("cannot read rows")?.len();
            let name = path.display().to_string();
            let progress = Progress::reading(name.clone(), Some(size), Unit::Lines);
            data::read_rows(progress.wrap(file), &name, &columns, &ignore)
        };
        rows.extend(&read.context("nothing was added")?);
    }
    for (i, row) in args.row.iter().enumerate() {
        // Every --row is a data row of the configured columns in order, never a header.
        let origin = format!("--row #{}", i + 1);
        let read = data::read_data_rows(row.as_bytes(), &origin, &columns);
        rows.extend(&read.context("nothing was added")?);
    }
    if let Some(n) = args.sample {
        if !schema.is_boston() {
            anyhow::bail!(
                "there are no sample rows for this data: the samples are the Boston demo's, and [data] in the config names other columns ({}); hint: add your own rows with --row or a FILE; nothing was added",
                schema.header()
            );
        }
        let text = data::SAMPLE_ROWS.join("\n");
        let samples = data::read_rows(text.as_bytes(), "sample", &columns, &[])?;
        for i in 0..n as usize {
            rows.values
                .extend_from_slice(samples.row(i % samples.len()));
        }
    }
    if rows.is_empty() {
        anyhow::bail!("no rows to add: the input held no rows; nothing was added");
    }
    Ok(rows)
}
