//! What Mosquitto does to its own process at start, for a lab that starts
//! fleetmq the way it started Mosquitto (as root, from an init script):
//! the pid file (`pid_file`) and the switch to an unprivileged user
//! (`user`).
//!
//! Both run once the listeners are bound (so ports below 1024 work) and
//! before the first connection is accepted. Unlike Mosquitto, whose
//! `user` defaults to `mosquitto`, fleetmq switches only when `user` is
//! written: its systemd unit already runs it as its own user, and a
//! default switch would make keys and the store unreadable to a broker
//! started by hand as root.
//!
//! Owns: the pid file's life, the user switch. Must not: bind, open
//! stores, or decide anything about MQTT.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::unistd::{getuid, setgid, setgroups, setuid, User};

/// The pid file, removed when dropped (at a clean stop).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's id and a newline to `path`, replacing a stale
    /// file (as Mosquitto does).
    pub fn write(path: &Path) -> Result<PidFile, String> {
        let mut file = fs::File::create(path).map_err(|error| {
            format!(
                "cannot write the pid file {}: {error} (check pid_file and its folder's permissions)",
                path.display()
            )
        })?;
        writeln!(file, "{}", std::process::id())
            .and_then(|()| file.sync_all())
            .map_err(|error| format!("cannot write the pid file {}: {error}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(
                "Cannot remove the pid file {}: {error}.",
                self.path.display()
            );
        }
    }
}

/// Checks, after the switch, that `dir` (the data directory) still takes
/// new files: the store creates segments and snapshots there for as long
/// as it runs, and finding out at the first compaction would lose writes.
pub fn check_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".fleetmq-write-check-{}", std::process::id()));
    fs::File::create(&probe)
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|error| {
            format!(
                "the data directory {} is not writable after the user switch: {error} (chown it to that user, or remove `user`)",
                dir.display()
            )
        })
}

/// Switches to `name` and its primary group when running as root; logs and
/// does nothing otherwise (as Mosquitto). An unknown user stops the start:
/// staying root by mistake is worse than not starting.
pub fn switch_user(name: &str) -> Result<(), String> {
    if name == "root" {
        return Ok(());
    }
    if !getuid().is_root() {
        tracing::info!(
            "Not running as root: user {name:?} ignored (the broker keeps its current user)."
        );
        return Ok(());
    }
    let user = User::from_name(name)
        .map_err(|error| format!("cannot look up user {name:?}: {error}"))?
        .ok_or_else(|| {
            format!("user {name:?} does not exist (create it, or remove `user` to stay root)")
        })?;
    // Groups first: once the user id changes, they can no longer be set.
    setgroups(&[user.gid])
        .and_then(|()| setgid(user.gid))
        .and_then(|()| setuid(user.uid))
        .map_err(|error| format!("cannot switch to user {name:?}: {error}"))?;
    tracing::info!(
        "Switched to user {name:?} (uid {}, gid {}); files opened from now on need its permissions.",
        user.uid,
        user.gid
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_holds_the_pid_and_goes_at_drop() {
        let dir = std::env::temp_dir().join(format!("fleetmq-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fleetmq.pid");
        fs::write(&path, "stale\n").unwrap();
        let pid = PidFile::write(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(pid);
        assert!(!path.exists());
        let error = PidFile::write(&dir.join("missing/fleetmq.pid")).unwrap_err();
        assert!(error.contains("cannot write the pid file"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
