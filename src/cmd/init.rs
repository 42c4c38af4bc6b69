//! `bluegreen init`: create what a fresh state folder lacks, and nothing else.
//!
//! Both `bluegreen up` and the package's postinst call this, so a first start and a reinstall
//! take the same path: data, the first model, the slot links, and the include naming blue.

use std::fs;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::data;
use crate::fsutil;
use crate::layout::Layout;
use crate::nginx;
use crate::slot::Slot;
use crate::state::State;

use super::train::Trained;

pub fn execute(config: &Config) -> anyhow::Result<ExitCode> {
    ensure(config, &super::say)?;
    Ok(ExitCode::SUCCESS)
}

/// Brings the state folder up to a servable state; says what it had to do.
pub fn ensure(config: &Config, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let layout = Layout::new(&config.state_dir);
    for dir in layout.dirs() {
        fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create {}; hint: run as root, or set state_dir in the config to a folder you can write",
                dir.display()
            )
        })?;
    }
    let csv = layout.data_csv();
    if !csv.exists() {
        fsutil::write_atomic(&csv, data::boston_csv().as_bytes())
            .with_context(|| format!("cannot write {}", csv.display()))?;
        say(&format!("wrote the 506 Boston rows to {}", csv.display()));
    }
    let state = State::read(config)?;
    let newest = match state.newest() {
        Some(model) => model.clone(),
        None => {
            say("no model yet: training the first one");
            match super::train::train(config, false, say)? {
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
            say(&format!("{slot} will serve {}", newest.version));
        }
    }
    if state.active().is_none() {
        let include = layout.upstream_include();
        nginx::write_include(config, &include, Slot::Blue)?;
        say(&format!(
            "NGINX include {} names blue as active",
            include.display()
        ));
    }
    // The configuration the state was just set up for is the slots' fallback until
    // `bluegreen check` passes another (issue 8 §3). Not being able to save it (`init` run
    // again by a user who may not write here) takes nothing away from the state.
    if let Err(e) = config.save_as_last_good() {
        say(&format!("note: {}", crate::config::error_chain(&e)));
    }
    Ok(())
}
