//! The log file (`log.file`, Mosquitto's `log_dest file`) and the
//! timestamp format (`log.timestamp_format`, Mosquitto's
//! `log_timestamp_format`).
//!
//! The file is opened for appending at start, written beside stderr (with
//! timestamps, without colours), and reopened on SIGHUP, so logrotate's
//! "move, then signal" works. A file that cannot be opened at start stops
//! the start; at a reopen, the old file is kept and the failure logged. It
//! does not decide which lines are written: the filter of `log.rs` does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The open log file, shared by every writer the subscriber makes.
static FILE: OnceLock<Mutex<(PathBuf, File)>> = OnceLock::new();

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Opens `path` for appending; the error names it and says what to do.
pub(super) fn start(path: &Path) -> Result<(), String> {
    let file = open(path).map_err(|error| {
        format!(
            "cannot open the log file {}: {error} (check log.file / log_dest file and the \
             directory's permissions)",
            path.display()
        )
    })?;
    FILE.set(Mutex::new((path.to_path_buf(), file)))
        .map_err(|_| "the log file is already open".to_string())
}

/// Reopens the log file after a rotation (SIGHUP); nothing without one.
pub fn reopen() {
    let Some(shared) = FILE.get() else {
        return;
    };
    let mut guard = match shared.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let path = guard.0.clone();
    match open(&path) {
        Ok(file) => guard.1 = file,
        Err(error) => {
            drop(guard);
            tracing::error!(
                "Cannot reopen the log file {}: {error}; still writing to the old one.",
                path.display()
            );
        }
    }
}

/// Writes to the open log file (nothing when there is none).
pub(super) struct FileWriter;

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(shared) = FILE.get() {
            let mut guard = match shared.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            // A full disk must not stop the broker: the line is lost.
            let _ = guard.1.write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Timestamps: tracing's RFC 3339 by default, or a strftime format.
#[derive(Debug, Clone)]
pub(super) struct Timestamp(pub Option<String>);

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match &self.0 {
            None => tracing_subscriber::fmt::time::SystemTime.format_time(w),
            Some(format) => {
                let now = time::OffsetDateTime::now_utc();
                write!(w, "{}", strftime(format, now))
            }
        }
    }
}

/// The strftime subset Mosquitto configurations use, in UTC: `%Y %m %d
/// %H %M %S %j %s %F %T %z %Z %%`; another `%x` is written as it is.
pub fn strftime(format: &str, at: time::OffsetDateTime) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{:04}", at.year())),
            Some('m') => out.push_str(&format!("{:02}", u8::from(at.month()))),
            Some('d') => out.push_str(&format!("{:02}", at.day())),
            Some('H') => out.push_str(&format!("{:02}", at.hour())),
            Some('M') => out.push_str(&format!("{:02}", at.minute())),
            Some('S') => out.push_str(&format!("{:02}", at.second())),
            Some('j') => out.push_str(&format!("{:03}", at.ordinal())),
            Some('s') => out.push_str(&at.unix_timestamp().to_string()),
            Some('F') => out.push_str(&strftime("%Y-%m-%d", at)),
            Some('T') => out.push_str(&strftime("%H:%M:%S", at)),
            Some('z') => out.push_str("+0000"),
            Some('Z') => out.push_str("UTC"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn strftime_subset_in_utc() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_796_329_154).unwrap();
        assert_eq!(strftime("%Y-%m-%dT%H:%M:%S", at), "2026-12-03T20:19:14");
        assert_eq!(
            strftime("%F %T %z %s %j %% %q", at),
            "2026-12-03 20:19:14 +0000 1796329154 337 % %q"
        );
    }
}
