//! Log lines on stderr, shaped for where they end up.
//!
//! On a terminal or in a file, each line carries a timestamp. Under
//! systemd, stderr goes to journald, which stamps every line itself; a
//! second timestamp would only push the message off the screen of
//! `journalctl`. There lines carry no timestamp and no colours, and start
//! with a syslog priority prefix (`<3>` error ... `<7>` debug) that journald
//! turns into the entry's `PRIORITY`, so `journalctl -p warning` works.
//!
//! `log.format = "auto"` (the default) picks the journald shape when
//! `JOURNAL_STREAM` names the very stream stderr is (as `systemd.exec(5)`
//! advises: a child whose stderr was redirected must not be fooled by an
//! inherited variable); `"journald"` and `"full"` force either shape.
//!
//! Log lines quote what peers chose (client ids, usernames, certificate
//! names), so every line goes through [`EscapingWriter`]: a control
//! character inside a line is written as an escape, and a client id such as
//! `"x\nNew client connected from ..."` cannot forge a second line.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use fleetmq_core::config::{Config, LogFormat};

/// The environment variable systemd sets to `DEVICE:INODE` of the stream
/// connected to journald.
pub const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// Timestamp, level, target, message; colours when `ansi`.
    Full { ansi: bool },
    /// Priority prefix, level, target, message: no timestamp, no colours.
    Journald,
}

impl LogStyle {
    /// The style for `format` in this process: stderr and its environment.
    pub fn detect(format: LogFormat) -> LogStyle {
        let journal = std::env::var(JOURNAL_STREAM).ok();
        LogStyle::choose(
            format,
            journal.as_deref(),
            stderr_identity(),
            std::io::stderr().is_terminal(),
        )
    }

    /// The decision itself, on given facts (for tests).
    fn choose(
        format: LogFormat,
        journal_stream: Option<&str>,
        stderr: Option<(u64, u64)>,
        stderr_is_terminal: bool,
    ) -> LogStyle {
        let full = LogStyle::Full {
            ansi: stderr_is_terminal && std::env::var_os("NO_COLOR").is_none(),
        };
        match format {
            LogFormat::Journald => LogStyle::Journald,
            LogFormat::Full => full,
            LogFormat::Auto => match (journal_stream.and_then(parse_journal_stream), stderr) {
                (Some(journal), Some(stderr)) if journal == stderr => LogStyle::Journald,
                _ => full,
            },
        }
    }
}

/// `DEVICE:INODE` as two numbers.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (device, inode) = value.trim().split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// Device and inode of stderr, when they can be read.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let owned = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let metadata = std::fs::File::from(owned).metadata().ok()?;
    Some((metadata.dev(), metadata.ino()))
}

/// Sets up logging to stderr for `config`: the filter from `RUST_LOG` when
/// set, else `log.level`; the style from `log.format`.
pub fn init(config: &Config) -> Result<LogStyle, String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|error| {
                format!(
                    "RUST_LOG={directives:?} is not a tracing filter: {error} (fix or unset it)"
                )
            })?,
        _ => EnvFilter::try_new(&config.log.level)
            .map_err(|error| format!("log.level {:?}: {error}", config.log.level))?,
    };
    let style = LogStyle::detect(config.log.format);
    // Colours are escape sequences of the formatter's own: keep ESC then.
    let keep_escape = matches!(style, LogStyle::Full { ansi: true });
    let stderr = move || EscapingWriter {
        inner: std::io::stderr(),
        keep_escape,
    };
    let timer = super::log_file::Timestamp(config.log.timestamp_format.clone());
    let stderr_layer = match style {
        LogStyle::Full { ansi } => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_timer(timer.clone())
            .with_writer(stderr)
            .boxed(),
        LogStyle::Journald => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .event_format(SyslogPriority(
                tracing_subscriber::fmt::format().without_time(),
            ))
            .with_writer(stderr)
            .boxed(),
    };
    // `log.file` (Mosquitto's `log_dest file`): the same lines, with
    // timestamps and without colours, appended to the file.
    let file_layer = match &config.log.file {
        Some(path) => {
            super::log_file::start(path)?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_timer(timer)
                    .with_writer(|| EscapingWriter {
                        inner: super::log_file::FileWriter,
                        keep_escape: false,
                    }),
            )
        }
        None => None,
    };
    // `log.topic` (Mosquitto's `log_dest topic`): published once the
    // engine runs (`log_topic::spawn`).
    let topic_layer = config.log.topic.then(super::log_topic::layer);
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer)
        .with(file_layer)
        .with(topic_layer)
        .try_init();
    result.map_err(|error| format!("cannot set up logging: {error}"))?;
    Ok(style)
}

/// Writes log events with the control characters inside them escaped.
///
/// `tracing_subscriber::fmt` formats each event into one buffer ending in
/// `\n` and hands it over with one `write_all`, so every `write` here is
/// one whole event: each control character but the final newline is
/// escaped (found by broker/tests/e2e/hostile_protocol.rs: a client id with a
/// newline forged a "New client connected" line).
struct EscapingWriter<W> {
    inner: W,
    /// Leave ESC alone (ANSI colours on a terminal).
    keep_escape: bool,
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self
                .inner
                .write_all(escape_controls(text, self.keep_escape).as_bytes())?,
            Err(_) => self.inner.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `event` with every control character (C0, DEL, C1, U+2028, U+2029) but
/// a final `\n` and tabs written as `\n`, `\r` or `\u{..}`.
pub(super) fn escape_controls(event: &str, keep_escape: bool) -> Cow<'_, str> {
    let body = event.strip_suffix('\n').unwrap_or(event);
    let needs = |c: char| {
        c != '\t'
            && !(keep_escape && c == '\u{1b}')
            && (c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    };
    if !body.chars().any(needs) {
        return Cow::Borrowed(event);
    }
    let mut out = String::with_capacity(event.len() + 16);
    for c in body.chars() {
        match c {
            '\n' if needs(c) => out.push_str("\\n"),
            '\r' if needs(c) => out.push_str("\\r"),
            c if needs(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    if body.len() < event.len() {
        out.push('\n');
    }
    Cow::Owned(out)
}

/// Prefixes each line with `<N>`, the syslog priority of its level.
struct SyslogPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for SyslogPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// `sd-daemon(3)` priorities: err 3, warning 4, info 6, debug 7.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_inside_an_event_are_escaped() {
        let forged = "New client connected as evil\nNew client connected as admin.\n";
        assert_eq!(
            escape_controls(forged, false),
            "New client connected as evil\\nNew client connected as admin.\n"
        );
        assert_eq!(
            escape_controls("a\r\u{1b}[31m\u{7}\u{85}\u{2028}\tb\n", false),
            "a\\r\\u{1b}[31m\\u{7}\\u{85}\\u{2028}\tb\n"
        );
        assert_eq!(
            escape_controls("\u{1b}[2mdim\u{1b}[0m\n", true),
            "\u{1b}[2mdim\u{1b}[0m\n"
        );
        assert!(matches!(
            escape_controls("plain line\n", false),
            Cow::Borrowed(_)
        ));
        let mut out = Vec::new();
        let mut writer = EscapingWriter {
            inner: &mut out,
            keep_escape: false,
        };
        writer.write_all(b"id a\nb\n").unwrap();
        assert_eq!(out, b"id a\\nb\n");
    }

    #[test]
    fn auto_is_journald_only_when_journal_stream_is_stderr() {
        let stderr = Some((25, 4242));
        assert_eq!(
            LogStyle::choose(LogFormat::Auto, Some("25:4242"), stderr, false),
            LogStyle::Journald
        );
        // Inherited from a parent whose stderr was the journal.
        assert_eq!(
            LogStyle::choose(LogFormat::Auto, Some("25:4243"), stderr, false),
            LogStyle::Full { ansi: false }
        );
        assert_eq!(
            LogStyle::choose(LogFormat::Auto, None, stderr, false),
            LogStyle::Full { ansi: false }
        );
        assert_eq!(
            LogStyle::choose(LogFormat::Auto, Some("garbage"), stderr, false),
            LogStyle::Full { ansi: false }
        );
    }

    #[test]
    fn explicit_formats_win() {
        assert_eq!(
            LogStyle::choose(LogFormat::Journald, None, None, true),
            LogStyle::Journald
        );
        assert!(matches!(
            LogStyle::choose(LogFormat::Full, Some("1:2"), Some((1, 2)), false),
            LogStyle::Full { .. }
        ));
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(syslog_priority(Level::ERROR), 3);
        assert_eq!(syslog_priority(Level::WARN), 4);
        assert_eq!(syslog_priority(Level::INFO), 6);
        assert_eq!(syslog_priority(Level::TRACE), 7);
    }
}
