//! `bluegreen import FILE`: take a model exported on another host (`crate::transfer`), keeping
//! its version name, so that every host of a fleet serves the same version id.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ImportArgs;
use crate::config::Config;
use crate::data::Schema;
use crate::layout::Layout;
use crate::lock;
use crate::model::Store;
use crate::transfer::{self, Imported};
use tracing::info;

pub fn execute(config: &Config, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let export = transfer::read(&args.file).context("nothing was imported")?;
    let layout = Layout::new(&config.state_dir);
    if !layout.models_dir().is_dir() {
        anyhow::bail!(
            "there is no models folder at {}; nothing was imported; hint: run `bluegreen init` first",
            layout.models_dir().display()
        );
    }
    // A training picks its version number under this lock; holding it keeps a training
    // from taking the number being imported.
    let _lock = lock::acquire(
        &layout.train_lock(),
        "training",
        config.lock_timeout(),
        |holder| info!("waiting for a training (pid {holder}) to finish"),
    )?;
    let store = Store::new(&layout.models_dir());
    let version = &export.header.version;
    match transfer::import(&store, &export, &args.file, &Schema::of(&config.data)).context("nothing was imported")? {
        Imported::Written(path) => info!(
            "imported {version} ({} bytes, SHA-256 {}) as {}; deploy it with `bluegreen deploy {version}`",
            export.header.bytes,
            export.header.sha256,
            path.display()
        ),
        Imported::AlreadyPresent(path) => info!(
            "{version} is already here with identical content ({}); nothing to do",
            path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
