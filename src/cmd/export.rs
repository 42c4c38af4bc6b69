//! `bluegreen export VERSION` (a version or a unique prefix of one): write a model artifact to standard output in the export
//! format (`crate::transfer`), for `bluegreen import` on another host.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ExportArgs;
use crate::config::Config;
use crate::layout::Layout;
use crate::model::Store;
use crate::state::State;
use crate::transfer;

pub fn execute(config: &Config, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    // The version or a unique prefix of one, as `deploy` and `predict` take it; an unknown
    // one is refused with the stored versions listed.
    let state = State::read(config).context("cannot read the state folder")?;
    let version = state
        .resolve(&args.version)
        .with_context(|| format!("cannot export {}", args.version))?;
    let store = Store::new(&Layout::new(&config.state_dir).models_dir());
    let bytes = transfer::export(&store, version).with_context(|| {
        format!("cannot export {version}; hint: `bluegreen status` shows the models on this host")
    })?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .context("cannot write the export to standard output")?;
    Ok(ExitCode::SUCCESS)
}
