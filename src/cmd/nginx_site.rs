//! `bluegreen nginx-site`: prints the NGINX site for this config (the package ships the
//! production one as `nginx/bluegreen.conf`).

use std::process::ExitCode;

use crate::config::Config;
use crate::layout::Layout;
use crate::nginx;

pub fn execute(config: &Config) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&config.state_dir);
    super::out(&nginx::render_site(config, &layout.upstream_include()))?;
    Ok(ExitCode::SUCCESS)
}
