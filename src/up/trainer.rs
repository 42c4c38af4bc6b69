//! The trainer loop: what the systemd trainer unit does, for `up`.

use std::sync::Arc;

use tokio::sync::Notify;

use super::child::SelfCommand;
use crate::cmd::train::{EXIT_REFUSED, EXIT_TRAINED_IF_DUE};
use tracing::warn;

/// Runs `train --if-due` and, when it trained, `deploy` — once per wake-up. A change that
/// arrives while they run leaves a stored permit in `wake`, so it is never lost.
pub async fn run(me: SelfCommand, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let trained = me
            .command(&["train", "--if-due"])
            .status()
            .await
            .map(|s| s.code());
        match trained {
            Ok(Some(code)) if code == EXIT_TRAINED_IF_DUE as i32 => {
                match me.command(&["deploy"]).status().await {
                    Ok(s) if s.success() => {}
                    Ok(s) => warn!("deploy did not complete ({s}); see above"),
                    Err(e) => warn!("cannot run deploy: {e}"),
                }
            }
            Ok(Some(0)) => {}
            Ok(Some(code)) if code == EXIT_REFUSED as i32 => {}
            // The training recorded its failure in the history itself (`status` shows it).
            Ok(Some(code)) => warn!("training failed (exit status {code}); see above"),
            Ok(None) => warn!("training was killed by a signal; see above"),
            Err(e) => warn!("cannot run training: {e}"),
        }
    }
}
