//! `bluegreen up`: the whole system in the foreground, without systemd (see [`crate::up`]).
//!
//! This command checks what can be checked before anything starts, brings the state folder
//! up to a servable state (`init`), writes NGINX's files, and runs [`crate::up::run`].

use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::layout::Layout;
use crate::nginx::Nginx;
use crate::state::State;
use crate::switch;
use crate::up;
use tracing::info;

pub fn execute(config: &Config) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&config.state_dir);
    if up::control::is_running(&layout) {
        bail!(
            "bluegreen up is already running for {}; hint: use that one (`bluegreen status`), or stop it first",
            layout.root().display()
        );
    }
    let nginx = Nginx::local(config, &layout);
    up::nginx::check_installed(&nginx)?;
    super::init::ensure(config)?;
    // A change of nginx.switch takes effect here, at no cost: NGINX is not running yet, so
    // the include (and the link) are simply written the configured mode's way.
    if let Some(route) = State::read(config)?.route() {
        if route.mode != config.nginx.switch {
            switch::write(config, &layout, route.slot)?;
            info!(
                "nginx.switch is now \"{}\" (it was \"{}\"): the NGINX include routes to {} that way",
                config.nginx.switch, route.mode, route.slot
            );
        }
    }
    up::nginx::write_files(config, &layout)?;
    // One thread: children are spawned from it, and PR_SET_PDEATHSIG (set in each child)
    // fires when the spawning *thread* exits, so it must be the one that lives longest.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(up::run(config, layout, nginx))
}
