//! `bluegreen init`: create what a fresh state folder lacks, and nothing else.
//!
//! Both `bluegreen up` and the package's postinst call this, so a first start and a reinstall
//! take the same path: data, the first model, the slot links, and the include naming blue.
//!
//! The first data is the Boston demo's when `[data]` is the default; for other data it comes
//! from `--data FILE`, read as `add-data` reads a file (header matched by name, ignoring case
//! and order, `[data] ignore` columns dropped) and stored in the canonical form.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::InitArgs;
use crate::config::Config;
use crate::data::{self, Schema};
use crate::fsutil;
use crate::layout::Layout;
use crate::slot::Slot;
use crate::state::State;
use crate::switch;

use super::train::Trained;
use tracing::info;

pub fn execute(config: &Config, args: &InitArgs) -> anyhow::Result<ExitCode> {
    prepare(config, args.data.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// Brings the state folder up to a servable state; says what it had to do.
pub fn ensure(config: &Config) -> anyhow::Result<()> {
    prepare(config, None)
}

/// [`ensure`], with the first data taken from `first_data` when there is none yet.
fn prepare(config: &Config, first_data: Option<&Path>) -> anyhow::Result<()> {
    let layout = Layout::new(&config.state_dir);
    for dir in layout.dirs() {
        // The sockets' folder is for the deploying user alone (and, under systemd, NGINX's
        // workers, which the package's tmpfiles entry lets in): see `crate::switch`.
        let mode = if dir == layout.sockets_dir() {
            0o700
        } else {
            0o777
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&dir)
            .with_context(|| {
            format!(
                "cannot create {}; hint: run as root, or set state_dir in the config to a folder you can write",
                dir.display()
            )
        })?;
    }
    let csv = layout.data_csv(&config.data);
    let schema = Schema::of(&config.data);
    match (csv.exists(), first_data) {
        (true, None) => {}
        (true, Some(_)) => anyhow::bail!(
            "{} exists already, and --data is for the first data only; hint: add rows with `bluegreen add-data FILE`",
            csv.display()
        ),
        (false, Some(file)) => {
            let input = fs_err::File::open(file).context("cannot read the first data")?;
            let ignore: Vec<&str> = config.data.ignore.iter().map(String::as_str).collect();
            let rows = data::read_rows(input, &file.display().to_string(), &schema.columns(), &ignore)
                .context("nothing was written; hint: fix the file, or [data] in the config")?;
            if rows.is_empty() {
                anyhow::bail!("{} holds no rows; nothing was written", file.display());
            }
            data::create(&csv, &schema, &rows)?;
            info!(
                "wrote {} rows from {} to {}",
                rows.len(),
                file.display(),
                csv.display()
            );
        }
        (false, None) if schema.is_boston() => {
            fsutil::write_atomic(&csv, data::boston_csv().as_bytes())
                .with_context(|| format!("cannot write {}", csv.display()))?;
            info!("wrote the 506 Boston rows to {}", csv.display());
        }
        (false, None) => anyhow::bail!(
            "there is no training data at {}, and [data] in the config names columns of its own ({}); hint: run `bluegreen init --data FILE` with a CSV of those columns",
            csv.display(),
            schema.header()
        ),
    }
    let state = State::read(config)?;
    let newest = match state.newest() {
        Some(model) => model.clone(),
        None => {
            info!("no model yet: training the first one");
            match super::train::train(config, false)? {
                Trained::Passed(m) | Trained::Refused(m) => m,
                Trained::NotDue | Trained::Pending => {
                    anyhow::bail!("the first training did not run; hint: run `bluegreen train`")
                }
            }
        }
    };
    for slot in Slot::ALL {
        if state.version(slot).is_none() {
            fsutil::swap_symlink(
                &Layout::link_target(&newest.version),
                &layout.slot_link(slot),
            )
            .with_context(|| format!("cannot link the {slot} slot's model"))?;
            info!("{slot} will serve {}", newest.version);
        }
    }
    // NGINX files an older bluegreen wrote: brought to this version's form (issue 11).
    switch::upgrade(config, &layout)?;
    if state.active().is_none() {
        switch::write(config, &layout, Slot::Blue)?;
        info!(
            "NGINX include {} routes to blue (nginx.switch = \"{}\")",
            layout.upstream_include().display(),
            config.nginx.switch
        );
    }
    let allow = layout.dashboard_include();
    if crate::dashboard::access::write(config, &allow)? {
        info!(
            "NGINX include {} says who besides this host may see the dashboard, and where each slot is",
            allow.display()
        );
    }
    let preview = layout.preview_include();
    if crate::rollout::preview::write(config, &preview)? {
        info!(
            "NGINX include {} says who besides this host may preview the resting slot",
            preview.display()
        );
    }
    // The configuration the state was just set up for is the slots' fallback until
    // `bluegreen check` passes another (issue 8 §3). Not being able to save it (`init` run
    // again by a user who may not write here) takes nothing away from the state.
    if let Err(e) = config.save_as_last_good() {
        info!("note: {}", crate::config::error_chain(&e));
    }
    Ok(())
}
