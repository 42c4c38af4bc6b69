//! `up`'s own NGINX: its configuration files under `state_dir/nginx`, and the child process.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

use super::child;
use super::say;
use crate::config::Config;
use crate::http;
use crate::layout::Layout;
use crate::nginx::{self, Nginx};
use crate::slot::Slot;

/// Fails with an install hint when the NGINX binary cannot run at all.
pub fn check_installed(nginx: &Nginx) -> anyhow::Result<()> {
    match std::process::Command::new(&nginx.binary)
        .arg("-v")
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "cannot run NGINX ({}): {e}; hint: install it with `sudo apt install nginx-light` (or nginx), or set nginx.binary in the config",
            nginx.binary.display()
        ),
    }
}

/// Writes the main configuration and the site that `up`'s NGINX runs with.
pub fn write_files(config: &Config, layout: &Layout) -> anyhow::Result<()> {
    let dir = layout.nginx_dir();
    std::fs::create_dir_all(dir.join("tmp"))
        .with_context(|| format!("cannot create {}", dir.join("tmp").display()))?;
    let site = nginx::render_site(config, &layout.upstream_include());
    for (name, text) in [
        ("site.conf", site),
        ("nginx.conf", nginx::render_local_main(config, layout)),
    ] {
        crate::fsutil::write_atomic(&dir.join(name), text.as_bytes())
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    Ok(())
}

/// Checks the configuration (`nginx -t`), starts NGINX, and returns once it answers on the
/// public port with the active slot behind it.
pub async fn start(config: &Config, nginx: &Nginx, active: Slot) -> anyhow::Result<Child> {
    let check = Command::from(nginx.command())
        .arg("-t")
        .arg("-q")
        .output()
        .await;
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => bail!(
            "NGINX refused the generated configuration {}:\n{}",
            nginx.conf.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!("cannot run NGINX: {e}"),
    }
    let mut cmd = Command::from(nginx.command());
    child::setup(&mut cmd);
    let mut child = cmd.spawn().context("cannot start NGINX")?;
    let public = SocketAddr::from(([127, 0, 0, 1], config.public_port));
    say(&format!(
        "started NGINX (pid {}), waiting for it on {public}",
        child.id().unwrap_or(0)
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "NGINX exited at start ({}); hint: is port {} already in use? (`ss -ltnp sport = :{}`)",
                child::describe(Some(status)),
                config.public_port,
                config.public_port
            );
        }
        let probe = tokio::task::spawn_blocking(move || {
            http::request(public, "GET", "/readyz", None, Duration::from_millis(500))
        })
        .await?;
        if let Ok(r) = probe {
            if r.header("x-slot") == Some(active.as_str()) {
                return Ok(child);
            }
        }
        if Instant::now() > deadline {
            let _ = child.start_kill();
            bail!("NGINX did not answer on {public} within 10 s");
        }
        sleep(Duration::from_millis(50)).await;
    }
}
