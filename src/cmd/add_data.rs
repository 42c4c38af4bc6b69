//! `bluegreen add-data`: validate rows from a file, stdin, `--row` or `--sample`, then append
//! them all at once, or none of them.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::AddDataArgs;
use crate::config::{Config, Role};
use crate::data::{self, Row};
use crate::layout::Layout;
use crate::model::Store;

pub fn execute(config: &Config, args: &AddDataArgs) -> anyhow::Result<ExitCode> {
    let rows = collect(args)?;
    let layout = Layout::new(&config.state_dir);
    let csv = layout.data_csv();
    if !csv.exists() {
        anyhow::bail!(
            "there is no training data at {}; hint: run `bluegreen init` (or `bluegreen up`) first",
            csv.display()
        );
    }
    let appended = data::append_rows(&csv, &rows).with_context(|| {
        format!(
            "nothing was added; hint: check that you may write {}",
            csv.display()
        )
    })?;
    let newest = Store::new(&layout.models_dir())
        .newest()
        .context("rows were added, but the newest model cannot be read")?;
    let (since, of) = match &newest {
        Some(m) => (appended.total.saturating_sub(m.rows), m.version.as_str()),
        None => (appended.total, "the start"),
    };
    let verdict = if config.fleet.role == Role::Server {
        "this host's fleet role is \"server\": it never trains on them; add data on the trainer"
            .to_string()
    } else if since >= config.batch_size {
        "training is due".to_string()
    } else {
        let more = config.batch_size - since;
        format!(
            "{more} more row{} needed for training",
            if more == 1 { "" } else { "s" }
        )
    };
    super::out(&format!(
        "appended {} row{} ({} total, {since} since {of}; batch size {}: {verdict})\n",
        appended.added,
        if appended.added == 1 { "" } else { "s" },
        appended.total,
        config.batch_size
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Reads and validates every input; any bad row fails the whole call before a write.
fn collect(args: &AddDataArgs) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    if let Some(path) = &args.file {
        let (text, origin) = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read rows from standard input")?;
            (text, "stdin".to_string())
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read rows from {}", path.display()))?;
            (text, path.display().to_string())
        };
        rows.extend(data::parse_rows(&text, &origin).context("nothing was added")?);
    }
    for (i, row) in args.row.iter().enumerate() {
        let origin = format!("--row #{}", i + 1);
        rows.push(data::parse_row(row.trim(), &origin, 1).context("nothing was added")?);
    }
    if let Some(n) = args.sample {
        let samples = data::parse_rows(&data::SAMPLE_ROWS.join("\n"), "sample")?;
        rows.extend(samples.iter().cycle().take(n as usize));
    }
    if rows.is_empty() {
        anyhow::bail!("no rows to add: the input held no rows; nothing was added");
    }
    Ok(rows)
}
