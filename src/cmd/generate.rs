//! `bluegreen generate man|completions DIR` (hidden): the man pages and the bash, zsh and
//! fish completions, generated from the clap definitions in `cli.rs` by `clap_mangen` and
//! `clap_complete` (issue 12).
//!
//! The Debian package ships the files this writes, committed under `packaging/man/` and
//! `packaging/completions/`, as plain assets: so `cargo deb` stays one command that needs no
//! build step of its own, dpkg owns every installed file (cargo-deb gzips the pages, as
//! Debian policy §12.1 asks), and a test fails, with the command to run, as soon as the
//! committed files differ from what the command line generates (as `nginx/bluegreen.conf`
//! is kept in step with `bluegreen nginx-site`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use tracing::info;

use crate::cli::{Cli, Generate};

/// The shells whose completions are generated, each to its usual file name.
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Writes what `what` asks for into its folder, which must exist.
pub fn execute(what: &Generate) -> anyhow::Result<ExitCode> {
    let dir = match what {
        Generate::Man { dir } | Generate::Completions { dir } => dir,
    };
    match what {
        Generate::Man { .. } => man(dir),
        Generate::Completions { .. } => completions(dir),
    }
    .with_context(|| {
        format!(
            "cannot generate into {}; hint: create the folder first",
            dir.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `bluegreen.1`, and `bluegreen-COMMAND.1` for each command `bluegreen --help` lists (the
/// hidden ones are for systemd and packaging). Every page's footer names the program and
/// its version, not the command's own name (`clap_mangen::generate_to` would write `up `).
fn man(dir: &Path) -> anyhow::Result<()> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let source = format!("bluegreen {}", env!("CARGO_PKG_VERSION"));
    let pages = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .chain([cli.clone()]);
    for cmd in pages {
        let man = Man::new(cmd).source(&source);
        let path = dir.join(man.get_filename());
        let mut file = fs_err::File::create(&path)?;
        man.render(&mut file)?;
        file.flush()?;
    }
    info!("wrote the man pages to {}", dir.display());
    Ok(())
}

/// `bluegreen.bash`, `_bluegreen` and `bluegreen.fish`.
fn completions(dir: &Path) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    for shell in SHELLS {
        let path = clap_complete::generate_to(shell, &mut cmd, "bluegreen", dir)?;
        info!("wrote {}", path.display());
    }
    Ok(())
}
