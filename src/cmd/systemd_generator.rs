//! `bluegreen systemd-generator DIR`: writes where each slot's socket unit listens, from the
//! configuration (issue 10). systemd runs it as a generator
//! (`/lib/systemd/system-generators/bluegreen`, see systemd.generator(7)) at boot and at
//! every `systemctl daemon-reload`; it writes one drop-in per slot,
//! `DIR/bluegreen@<slot>.socket.d/50-listen.conf`, with the slot's `ListenStream=`: its
//! loopback address (`[slots]`), or in switch mode "socket" its unix socket's path.
//!
//! Why a generator: the slots' addresses were written twice, in the config and in static
//! drop-ins beside the unit, and a change to one but not the other left a slot refusing its
//! socket. A switch mode that moves the slots to unix sockets would make that three places.
//! With the generator the config is the one place: the units follow it at the next
//! `daemon-reload`, with no file in `/etc/systemd` for bluegreen to manage. An admin's own
//! drop-in in `/etc/systemd/system` still wins over the generator's (`/run/systemd/generator`
//! comes after it in systemd's search path).
//!
//! The configuration is read as a slot reads it, falling back to the last good one when the
//! file is bad (`Config::discover_or_last_good`), so a slot always finds its socket where its
//! own configuration puts it. If neither can be read, nothing is written, the socket units
//! have no address, and systemd refuses to start them, which `systemctl status` shows; the
//! generator says why on its standard error, which goes to the journal (kmsg at boot).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::fsutil;
use crate::slot::Slot;
use crate::switch::{self, Endpoint};

pub fn execute(config: &Config, dir: &Path) -> anyhow::Result<ExitCode> {
    for slot in Slot::ALL {
        let unit = dir.join(format!("bluegreen@{slot}.socket.d"));
        fs_err::create_dir_all(&unit)?;
        let file = unit.join("50-listen.conf");
        fsutil::write_atomic(&file, dropin(config, slot).as_bytes())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The drop-in for `slot`'s socket unit.
pub fn dropin(config: &Config, slot: Slot) -> String {
    let listen = match switch::endpoint(config, slot) {
        Endpoint::Tcp(addr) => addr.to_string(),
        Endpoint::Unix(path) => path.display().to_string(),
    };
    let source = config
        .source
        .as_deref()
        .map_or("the built-in defaults".to_string(), |p| {
            p.display().to_string()
        });
    format!(
        "# Written by bluegreen's systemd generator from {source} (nginx.switch = \"{}\"):\n\
         # edit that, then `systemctl daemon-reload` and `bluegreen restart`.\n\
         [Socket]\n\
         ListenStream=\n\
         ListenStream={listen}\n",
        config.nginx.switch
    )
}
