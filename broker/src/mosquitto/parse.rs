//! Reading `mosquitto.conf` into lines of `directive value`, following
//! `include_dir` the way Mosquitto does.
//!
//! Mosquitto's format: a line whose first non-blank character is `#` is a
//! comment; otherwise the first word is the directive and the rest of the
//! line, trimmed, its value (paths may contain spaces). `include_dir DIR`
//! in the main file reads every `*.conf` in DIR, in Mosquitto's order
//! (case-sensitive, each upper-case letter before its lower case), in place
//! of the `include_dir` line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{MosquittoError, Note};

/// One directive as written.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// The file, as given or as found in an `include_dir`.
    pub file: Arc<str>,
    /// 1-based line number.
    pub number: usize,
    /// The directive name.
    pub name: String,
    /// Everything after the name, trimmed.
    pub value: String,
}

impl Line {
    /// The directive as written, for comments and messages.
    pub fn text(&self) -> String {
        if self.value.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.value)
        }
    }

    /// A note (or problem) about this line.
    pub fn note(&self, why: impl Into<String>) -> Note {
        Note {
            file: Arc::clone(&self.file),
            line: Some(self.number),
            directive: self.name.clone(),
            why: why.into(),
        }
    }

    /// The value split on blanks.
    pub fn words(&self) -> Vec<&str> {
        self.value.split_whitespace().collect()
    }
}

/// Reads `path` and what it includes. Directives that only matter to the
/// reading (a nested `include_dir`) are reported in `notes`.
pub(crate) fn read(path: &Path, notes: &mut Vec<Note>) -> Result<Vec<Line>, MosquittoError> {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    read_into(path, true, &mut lines, notes, &mut problems)?;
    if problems.is_empty() {
        Ok(lines)
    } else {
        Err(MosquittoError::Invalid { problems })
    }
}

fn read_into(
    path: &Path,
    main: bool,
    lines: &mut Vec<Line>,
    notes: &mut Vec<Note>,
    problems: &mut Vec<Note>,
) -> Result<(), MosquittoError> {
    let text = std::fs::read_to_string(path).map_err(|source| MosquittoError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: Arc<str> = Arc::from(path.display().to_string());
    for line in split(&text, &file) {
        if line.name != "include_dir" {
            lines.push(line);
            continue;
        }
        if !main {
            notes.push(line.note(
                "ignored: Mosquitto reads include_dir only from the main configuration file",
            ));
            continue;
        }
        if line.value.is_empty() {
            problems.push(line.note("needs a directory (include_dir /etc/mosquitto/conf.d)"));
            continue;
        }
        match included_files(Path::new(&line.value)) {
            Ok(files) => {
                for included in files {
                    read_into(&included, false, lines, notes, problems)?;
                }
            }
            Err(error) => problems.push(line.note(format!(
                "cannot read the directory {}: {error} (check the path and its permissions)",
                line.value
            ))),
        }
    }
    Ok(())
}

/// Splits a file's text into directive lines.
pub(crate) fn split(text: &str, file: &Arc<str>) -> Vec<Line> {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (name, value) = match trimmed.split_once(char::is_whitespace) {
            Some((name, value)) => (name, value.trim()),
            None => (trimmed, ""),
        };
        lines.push(Line {
            file: Arc::clone(file),
            number: index + 1,
            name: name.to_string(),
            value: value.to_string(),
        });
    }
    lines
}

/// The `*.conf` files of `dir` in Mosquitto's load order.
fn included_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        // As Mosquitto: a name longer than ".conf" that ends with it.
        let is_conf = name
            .to_str()
            .is_some_and(|name| name.len() > 5 && name.ends_with(".conf"));
        if is_conf && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort_by_key(|path| mosquitto_order(path));
    Ok(files)
}

/// Sort key of Mosquitto's `scmp_p`: bytes compared upper-cased first,
/// then as they are, so `00.conf A.conf a.conf B.conf Z.conf [x.conf
/// _a.conf` (upper-casing puts letters before `[` and `_`; checked against
/// Mosquitto 2.0.11's "Loading config file" lines).
fn mosquitto_order(path: &Path) -> Vec<(u8, u8)> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    name.unwrap_or_default()
        .bytes()
        .map(|b| (b.to_ascii_uppercase(), b))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn comments_blanks_and_values_with_spaces() {
        let file: Arc<str> = Arc::from("m.conf");
        let lines = split(
            "# comment\n\n  listener 8883 127.0.0.1\r\npassword_file /etc/my dir/passwd  \n   # indented\nper_listener_settings\n",
            &file,
        );
        let got: Vec<(usize, &str, &str)> = lines
            .iter()
            .map(|l| (l.number, l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "listener", "8883 127.0.0.1"),
                (4, "password_file", "/etc/my dir/passwd"),
                (6, "per_listener_settings", ""),
            ]
        );
    }

    #[test]
    fn include_dir_reads_conf_files_in_mosquitto_order() {
        let dir = tempfile::tempdir().unwrap();
        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        for name in [
            "b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf", "x.txt", "_a.conf",
            "[x.conf", "Z.conf", ".conf",
        ] {
            let stem = name.trim_end_matches(".conf").trim_end_matches(".txt");
            std::fs::write(conf_d.join(name), format!("sys_interval {}\n", stem.len())).unwrap();
        }
        std::fs::write(
            conf_d.join("nested.conf.d.conf"),
            format!("include_dir {}\n", conf_d.display()),
        )
        .unwrap();
        let main = dir.path().join("mosquitto.conf");
        std::fs::write(
            &main,
            format!("port 1883\ninclude_dir {}\n", conf_d.display()),
        )
        .unwrap();
        let mut notes = Vec::new();
        let lines = read(&main, &mut notes).unwrap();
        let files: Vec<String> = lines
            .iter()
            .map(|l| {
                Path::new(&*l.file)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            files,
            vec![
                "mosquitto.conf",
                "00.conf",
                "01.conf",
                "A.conf",
                "a.conf",
                "B.conf",
                "b.conf",
                "Z.conf",
                "[x.conf",
                "_a.conf"
            ]
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].why.contains("only from the main"));
    }

    #[test]
    fn missing_include_dir_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("mosquitto.conf");
        std::fs::write(&main, "\ninclude_dir /nonexistent/fleetmq-test\n").unwrap();
        let error = read(&main, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            error.contains("mosquitto.conf:2: include_dir: cannot read"),
            "{error}"
        );
    }
}
