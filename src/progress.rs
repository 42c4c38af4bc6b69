//! Progress of long work on a terminal (issue 12): `train` reading a large data file,
//! `add-data` reading a large input, a bar on standard error with the bytes read, the rows
//! (or lines) read and their rate; a deploy's waits (a slot's restart until `READY=1`, old
//! NGINX workers, a slot's connections), a spinner with the time waited so far. `indicatif`
//! draws them, and clears them when the work ends, so what stays on the screen is the log
//! line that says what was done.
//!
//! Only a terminal gets it. Under systemd (the journal's stream), in a pipe or a file, a
//! [`Progress`] draws nothing and counts nothing, so the journal and scripts read the same
//! lines as before. indicatif itself also draws nothing when `TERM=dumb`.

use std::borrow::Cow;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::log::Style;

/// What the lines read are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Rows of the stored data file read from its beginning: every line after its header.
    RowsAfterHeader,
    /// Rows of the stored data file read from a row's start: every line.
    Rows,
    /// Lines of an input whose header, if any, is not known yet.
    Lines,
}

/// The progress of one read. Dropping it clears the bar (on success and on error alike).
pub struct Progress {
    bar: ProgressBar,
    /// Newlines seen by the readers [`Progress::wrap`] made.
    lines: Arc<AtomicU64>,
}

impl Progress {
    /// Progress of reading `total` bytes (or an unknown amount, `None`: a spinner) of what
    /// `what` names, on standard error if it is a terminal; else [`Progress::hidden`].
    pub fn reading(what: impl Into<Cow<'static, str>>, total: Option<u64>, unit: Unit) -> Progress {
        if Style::of(io::stderr()) != Style::Terminal {
            return Progress::hidden();
        }
        let lines = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&lines);
        let rows = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let seen = counted.load(Ordering::Relaxed);
            let (n, name) = match unit {
                Unit::RowsAfterHeader => (seen.saturating_sub(1), "rows"),
                Unit::Rows => (seen, "rows"),
                Unit::Lines => (seen, "lines"),
            };
            let _ = write!(w, "{} {name}", indicatif::HumanCount(n));
            let secs = state.elapsed().as_secs_f64();
            if secs >= 0.1 {
                let _ = write!(
                    w,
                    " ({}/s)",
                    indicatif::HumanCount((n as f64 / secs) as u64)
                );
            }
        };
        let template = match total {
            Some(_) => "{prefix} [{bar:30}] {bytes}/{total_bytes} · {rows} · {eta} left",
            None => "{spinner} {prefix}: {bytes} · {rows}",
        };
        let style = ProgressStyle::with_template(template)
            .expect("the template is valid")
            .progress_chars("=> ")
            .with_key("rows", rows);
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(format!("reading {}", what.into()));
        Progress { bar, lines }
    }

    /// A spinner with `what` and the time waited so far, drawn at once and then ten times a
    /// second, on standard error if it is a terminal; else [`Progress::hidden`].
    pub fn waiting(what: impl Into<Cow<'static, str>>) -> Progress {
        if Style::of(io::stderr()) != Style::Terminal {
            return Progress::hidden();
        }
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .expect("the template is valid");
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(what);
        bar.tick();
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress {
            bar,
            lines: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Progress that draws nothing: not on a terminal, or work too small to show.
    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            lines: Arc::new(AtomicU64::new(0)),
        }
    }

    /// `inner`, counting what is read through it into this progress.
    pub fn wrap<R: Read>(&self, inner: R) -> Counted<R> {
        Counted {
            inner,
            bar: (!self.bar.is_hidden()).then(|| self.bar.clone()),
            lines: Arc::clone(&self.lines),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A reader that counts its bytes and lines into a [`Progress`] (nothing when hidden).
pub struct Counted<R> {
    inner: R,
    bar: Option<ProgressBar>,
    lines: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            let newlines = memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            self.lines.fetch_add(newlines, Ordering::Relaxed);
            bar.inc(n as u64);
        }
        Ok(n)
    }
}
