//! The data watcher: inotify on the data folder, waking the trainer.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;

use crate::config::Data;
use crate::layout::Layout;

/// Wakes the trainer whenever the data CSV (`[data] file`) is written and closed, or renamed
/// into place.
pub fn watch_data(layout: &Layout, data: &Data, wake: Arc<Notify>) -> anyhow::Result<()> {
    use inotify::{Inotify, WatchMask};
    let dir = layout.data_dir();
    let name = layout
        .data_csv(data)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let mut inotify = Inotify::init().context("cannot start inotify")?;
    inotify
        .watches()
        .add(&dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    std::thread::Builder::new()
        .name("watch-data".into())
        .spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(events) = inotify.read_events_blocking(&mut buffer) {
                if events.into_iter().any(|e| e.name == Some(name.as_os_str())) {
                    wake.notify_one();
                }
            }
        })
        .context("cannot start the data watcher")?;
    Ok(())
}
