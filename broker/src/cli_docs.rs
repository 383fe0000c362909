//! Man pages and shell completions, generated from the clap definition of
//! the `fleetmq` command line so they never drift from it.
//!
//! `fleetmq generate-cli-docs DIR` (not part of the clap definition, so
//! neither pages nor completions mention it; `packaging/build-deb.sh` runs
//! it) writes:
//!
//! - `DIR/man/fleetmq.1` and one page per visible subcommand, named the
//!   git way: `fleetmq-certs-init.1` (clap_mangen);
//! - `DIR/completions/fleetmq.bash`, `_fleetmq` (zsh) and `fleetmq.fish`
//!   (clap_complete).
//!
//! This module owns only the rendering; the command line itself stays in
//! `main.rs`. Hidden subcommands get no page.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// A file that could not be written, named with its path.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write: {source} (is the directory writable?)", path.display())]
pub struct CliDocsError {
    /// The file or directory that failed.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

/// Writes the man pages and the completions under `out_dir` and returns
/// every file written. `version` and `date` go into the pages' title lines.
pub fn write_all(
    command: clap::Command,
    out_dir: &Path,
    version: &str,
    date: &str,
) -> Result<Vec<PathBuf>, CliDocsError> {
    let mut command = command.disable_help_subcommand(true);
    // Building sets every subcommand's display name ("fleetmq-certs-init").
    command.build();
    let mut written = Vec::new();

    let man_dir = out_dir.join("man");
    create_dir(&man_dir)?;
    write_man_pages(&command, &man_dir, version, date, &mut written)?;

    let completions_dir = out_dir.join("completions");
    create_dir(&completions_dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let file_name = match shell {
            Shell::Zsh => "_fleetmq".to_owned(),
            other => format!("fleetmq.{other}"),
        };
        let mut rendered = Vec::new();
        let bin_name = command.get_name().to_owned();
        clap_complete::generate(shell, &mut command.clone(), bin_name, &mut rendered);
        let path = completions_dir.join(file_name);
        write_file(&path, &rendered)?;
        written.push(path);
    }
    Ok(written)
}

/// One page for `command`, then one per visible subcommand, depth first.
fn write_man_pages(
    command: &clap::Command,
    man_dir: &Path,
    version: &str,
    date: &str,
    written: &mut Vec<PathBuf>,
) -> Result<(), CliDocsError> {
    let page = clap_mangen::Man::new(command.clone())
        .date(date)
        .source(format!("fleetmq {version}"))
        .manual("fleetmq manual");
    let path = man_dir.join(page.get_filename());
    let mut rendered = Vec::new();
    page.render(&mut rendered).map_err(|source| CliDocsError {
        path: path.clone(),
        source,
    })?;
    write_file(&path, &rendered)?;
    written.push(path);
    for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_man_pages(subcommand, man_dir, version, date, written)?;
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<(), CliDocsError> {
    fs::create_dir_all(path).map_err(|source| CliDocsError {
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), CliDocsError> {
    fs::File::create(path)
        .and_then(|mut file| file.write_all(contents))
        .map_err(|source| CliDocsError {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> clap::Command {
        clap::Command::new("fleetmq")
            .version("9.9.9")
            .about("sample")
            .subcommand(
                clap::Command::new("certs")
                    .about("PKI")
                    .subcommand(clap::Command::new("init").about("make a CA")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn a_page_per_visible_subcommand_and_three_completions() -> Result<(), CliDocsError> {
        let dir = tempfile::tempdir().map_err(|source| CliDocsError {
            path: PathBuf::from("tempdir"),
            source,
        })?;
        let written = write_all(sample(), dir.path(), "9.9.9", "2026-12-03")?;
        let mut names: Vec<String> = written
            .iter()
            .filter_map(|path| path.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "_fleetmq",
                "fleetmq-certs-init.1",
                "fleetmq-certs.1",
                "fleetmq.1",
                "fleetmq.bash",
                "fleetmq.fish"
            ]
        );
        let page =
            fs::read_to_string(dir.path().join("man/fleetmq-certs-init.1")).map_err(|source| {
                CliDocsError {
                    path: PathBuf::from("fleetmq-certs-init.1"),
                    source,
                }
            })?;
        assert!(page.contains("2026-12-03"), "{page}");
        assert!(page.contains("make a CA"), "{page}");
        Ok(())
    }
}
