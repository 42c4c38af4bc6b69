//! `bluegreen export VERSION`: write a model artifact to standard output in the export
//! format (`crate::transfer`), for `bluegreen import` on another host.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ExportArgs;
use crate::config::Config;
use crate::layout::Layout;
use crate::model::Store;
use crate::transfer;

pub fn execute(config: &Config, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let store = Store::new(&Layout::new(&config.state_dir).models_dir());
    let bytes = transfer::export(&store, &args.version).with_context(|| {
        format!(
            "cannot export {}; hint: `bluegreen status` shows the models on this host",
            args.version
        )
    })?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .context("cannot write the export to standard output")?;
    Ok(ExitCode::SUCCESS)
}
