//! Logging (issue 12): every progress line, warning and per-request error is a `tracing`
//! event with a level and fields (slot, version, step, duration_ms…), written as one plain
//! line in the form that suits where it goes.
//!
//! - **A terminal**: the message, then the fields dimmed (`step=restart duration_ms=4`);
//!   warnings and errors start with a coloured `warning:` or `error:`, as before.
//! - **The journal** (systemd connected the stream: `JOURNAL_STREAM` names its device and
//!   inode, systemd.exec(5)): no colours, and every line starts with its syslog priority,
//!   `<4>` for a warning, `<6>` for information, which journald turns into the entry's
//!   priority and strips (`SyslogLevelPrefix=`, on by default; sd-daemon(3)). So
//!   `journalctl -p warning` finds the warnings, and the fields stay readable in the text.
//! - **Anything else** (a pipe, a file): the same line without colours or prefix.
//!
//! Information goes to standard output and warnings and errors to standard error, as the
//! commands always printed them (tests and scripts read those lines); a command whose
//! standard output is its result (`status --json`) sends everything to standard error
//! instead. `BLUEGREEN_LOG` filters, in `tracing_subscriber::EnvFilter`'s syntax
//! (`BLUEGREEN_LOG=debug`); the default is `info`.
//!
//! A slot logs each request it refuses, but a flood of bad requests must not flood the log
//! (or the journal, whose own rate limit would then drop the slot's other lines too): see
//! [`RateLimit`] and [`request_error`].

use std::fmt::{self, Write as _};
use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The environment variable that filters the log (`EnvFilter` syntax).
pub const ENV: &str = "BLUEGREEN_LOG";

/// How a line is written, by where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A terminal: colours.
    Terminal,
    /// journald's stream: a `<N>` priority prefix, no colours.
    Journal,
    /// A pipe or a file.
    Plain,
}

impl Style {
    /// The style for the stream `fd` (standard output or error) of this process.
    pub fn of(fd: impl AsFd) -> Style {
        let fd = fd.as_fd();
        if journal_stream(fd) {
            Style::Journal
        } else if fd.is_terminal() {
            Style::Terminal
        } else {
            Style::Plain
        }
    }
}

/// Whether `fd` is the stream systemd connected to the journal: `JOURNAL_STREAM` holds
/// `DEVICE:INODE` of it (systemd.exec(5)). A stream redirected elsewhere does not match.
fn journal_stream(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let Some(wanted) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(fd) else {
        return false;
    };
    wanted.to_str() == Some(&format!("{}:{}", stat.st_dev, stat.st_ino))
}

/// Where a command's log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Information on standard output, warnings and errors on standard error.
    Split,
    /// Everything on standard error: standard output is the command's result.
    Stderr,
}

/// Fields added to every line of this process (a slot's `slot=blue`): set once, before the
/// first event that should carry them.
static CONTEXT: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();

/// Adds `fields` to every later line of this process. Only the first call counts.
pub fn context(fields: Vec<(&'static str, String)>) {
    let _ = CONTEXT.set(fields);
}

/// Installs the subscriber for this process. A second call changes nothing (tests that
/// run commands in-process keep the first).
pub fn init(output: Output) {
    let filter = EnvFilter::try_from_env(ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .event_format(Lines(Style::of(io::stderr())));
    let result = match output {
        Output::Stderr => tracing_subscriber::registry()
            .with(filter)
            .with(stderr)
            .try_init(),
        Output::Split => {
            let stdout = tracing_subscriber::fmt::layer()
                .with_writer(io::stdout)
                .event_format(Lines(Style::of(io::stdout())))
                .with_filter(filter_fn(|meta| *meta.level() > Level::WARN));
            tracing_subscriber::registry()
                .with(filter)
                .with(stderr.with_filter(LevelFilter::WARN))
                .with(stdout)
                .try_init()
        }
    };
    // Already installed: the first subscriber stays.
    drop(result);
}

/// The event formatter: one line per event, in a [`Style`].
struct Lines(Style);

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(context) = CONTEXT.get() {
            fields.pairs.extend(context.iter().cloned());
        }
        let meta = event.metadata();
        writer.write_str(&render(self.0, *meta.level(), meta.target(), &fields))?;
        writer.write_char('\n')
    }
}

/// An event's message and its other fields, in the order they were given.
#[derive(Debug, Default)]
pub struct Fields {
    message: String,
    pairs: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.pairs.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.pairs.push((field.name(), format!("{value:?}")));
        }
    }
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// One event as a line (without its newline). Events of `up` itself (the `bluegreen::up`
/// and `bluegreen::cmd::up` modules) start with `[up]`, as its lines always did, to tell
/// them from its slots'.
pub fn render(style: Style, level: Level, target: &str, fields: &Fields) -> String {
    let mut line = String::new();
    if style == Style::Journal {
        // syslog(3) priorities: LOG_ERR 3, LOG_WARNING 4, LOG_INFO 6, LOG_DEBUG 7.
        let priority = match level {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        let _ = write!(line, "<{priority}>");
    }
    if ["bluegreen::up", "bluegreen::cmd::up"]
        .iter()
        .any(|up| target == *up || target.starts_with(&format!("{up}::")))
    {
        line.push_str("[up] ");
    }
    let label = match level {
        Level::ERROR => Some(("error:", "\x1b[1;31m")),
        Level::WARN => Some(("warning:", "\x1b[1;33m")),
        _ => None,
    };
    if let Some((word, colour)) = label {
        // A message that already says it (`error: …`) is not labelled twice.
        if !fields.message.starts_with(word) {
            match style {
                Style::Terminal => {
                    let _ = write!(line, "{colour}{word}{RESET} ");
                }
                _ => {
                    let _ = write!(line, "{word} ");
                }
            }
        }
    }
    line.push_str(&fields.message);
    if !fields.pairs.is_empty() {
        let mut pairs = String::new();
        for (name, value) in &fields.pairs {
            let quote = value.is_empty() || value.contains([' ', '"', '=', '\n']);
            if quote {
                let _ = write!(pairs, " {name}={value:?}");
            } else {
                let _ = write!(pairs, " {name}={value}");
            }
        }
        if style == Style::Terminal {
            let _ = write!(line, "{DIM}{pairs}{RESET}");
        } else {
            line.push_str(&pairs);
        }
    }
    if style == Style::Journal && line.contains('\n') {
        // Each line is an entry of its own in the journal: each gets the priority.
        let priority = line[..3].to_string();
        line = line.replace('\n', &format!("\n{priority}"));
    }
    line
}

/// A token bucket: up to `burst` events at once, then `per_second` on average. What it
/// holds back is counted, so the next event let through can say how many were left out (as
/// journald says "Suppressed N messages" after its own rate limit).
#[derive(Debug)]
pub struct RateLimit {
    burst: f64,
    per_second: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// A limit of `burst` events at once and `per_second` after that.
    pub const fn new(burst: u32, per_second: u32) -> RateLimit {
        RateLimit {
            burst: burst as f64,
            per_second: per_second as f64,
            bucket: Mutex::new(Bucket {
                tokens: burst as f64,
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Whether an event at `now` may be logged: `Some(n)` with the number of events held
    /// back since the last one logged, or `None` when this one is held back too.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = bucket
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        bucket.last = Some(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.suppressed))
        } else {
            bucket.suppressed += 1;
            None
        }
    }
}

/// A slot's limit on logged request errors: 20 at once, then 5 a second.
static REQUEST_ERRORS: RateLimit = RateLimit::new(20, 5);

/// Logs a request a slot refused (`status`, and the error its client was sent), within
/// [`REQUEST_ERRORS`]'s limit; the first one logged after some were held back says how many.
/// A client's mistake is information for the operator, not a warning about the slot.
pub fn request_error(status: u16, error: &str) {
    let Some(suppressed) = REQUEST_ERRORS.admit(Instant::now()) else {
        return;
    };
    if suppressed > 0 {
        tracing::info!(
            suppressed,
            "{suppressed} more refused request(s) were not logged (at most 20 at once, then 5 a second)"
        );
    }
    tracing::info!(status, "refused a request: {error}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, pairs: &[(&'static str, &str)]) -> Fields {
        Fields {
            message: message.to_string(),
            pairs: pairs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    #[test]
    fn lines_per_style() {
        let f = fields(
            "restarted green",
            &[("step", "restart"), ("duration_ms", "4"), ("why", "a b")],
        );
        let plain = render(Style::Plain, Level::INFO, "bluegreen::deploy", &f);
        assert_eq!(
            plain,
            "restarted green step=restart duration_ms=4 why=\"a b\""
        );
        let journal = render(Style::Journal, Level::WARN, "bluegreen::deploy", &f);
        assert_eq!(
            journal,
            "<4>warning: restarted green step=restart duration_ms=4 why=\"a b\""
        );
        let terminal = render(Style::Terminal, Level::INFO, "bluegreen::up::slots", &f);
        assert!(terminal.starts_with("[up] restarted green\x1b[2m step=restart"));
        assert!(!plain.contains('\x1b') && !journal.contains('\x1b'));
        let two = render(Style::Journal, Level::ERROR, "x", &fields("a\nb", &[]));
        assert_eq!(two, "<3>error: a\n<3>b");
        let said = render(Style::Plain, Level::ERROR, "x", &fields("error: a", &[]));
        assert_eq!(said, "error: a");
    }

    #[test]
    fn the_rate_limit_lets_a_burst_through_then_counts_what_it_holds_back() {
        let limit = RateLimit::new(3, 2);
        let t0 = Instant::now();
        let admitted: Vec<_> = (0..10).map(|_| limit.admit(t0)).collect();
        assert_eq!(&admitted[..3], &[Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));
        // Half a second later, one token has come back; it reports the 7 held back.
        assert_eq!(limit.admit(t0 + Duration::from_millis(500)), Some(7));
        assert_eq!(limit.admit(t0 + Duration::from_millis(500)), None);
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(60);
        let n = (0..10).filter(|_| limit.admit(later).is_some()).count();
        assert_eq!(n, 3);
    }
}
