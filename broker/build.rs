//! Build information for `fleetmq --version`: the git commit and the build
//! date, as `FLEETMQ_VERSION` ("0.1.0 (git 1a2b3c4d5e6f, built 2026-12-03)")
//! and `FLEETMQ_BUILD_DATE` ("2026-12-03").
//!
//! The commit comes from `git rev-parse` in a checkout, from the
//! `FLEETMQ_GIT_COMMIT` environment variable when building from a source
//! tarball, and is "unknown" otherwise: the build never fails for want of
//! git. The date honours `SOURCE_DATE_EPOCH` (reproducible builds), else it
//! is today (UTC). The script reruns when HEAD moves or either variable
//! changes, so the date is that of the last build of a new commit.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FLEETMQ_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let commit = match std::env::var("FLEETMQ_GIT_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => git_commit().unwrap_or_else(|| "unknown".to_owned()),
    };
    let epoch_secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs())
                .unwrap_or(0)
        });
    let date = civil_date(epoch_secs / 86_400);
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=FLEETMQ_BUILD_DATE={date}");
    println!("cargo:rustc-env=FLEETMQ_VERSION={version} (git {commit}, built {date})");
}

/// The commit checked out, and rerun triggers on the files that move with it.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD names the branch; the branch's ref file (or packed-refs) moves
    // on commit. `--git-path` resolves both in worktrees too.
    for name in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            rerun_if_exists(PathBuf::from(path));
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            rerun_if_exists(PathBuf::from(path));
        }
    }
    Some(commit)
}

fn rerun_if_exists(path: PathBuf) {
    // Relative paths from git are relative to the package directory, which
    // is where cargo runs build scripts.
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Days since 1970-01-01 as YYYY-MM-DD (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`), so the build needs no date crate.
fn civil_date(days_since_epoch: u64) -> String {
    let z = days_since_epoch as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
