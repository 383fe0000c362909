//! Debian's Mosquitto as the *remote* broker of a bridge test: started on
//! a free loopback port with the test's extra lines, stopped (SIGTERM, so
//! its persistence file is written) and started again on the same port,
//! killed on drop.
//!
//! Every wait is bounded.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::service::free_port;

/// A Mosquitto process owned by one test.
pub struct RemoteMosquitto {
    child: Option<Child>,
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RemoteMosquitto {
    /// Starts Mosquitto with `extra` lines after a plain listener (or
    /// instead of it, when `extra` opens its own `listener`), persistence
    /// in its own folder.
    pub fn start(extra: &str) -> RemoteMosquitto {
        RemoteMosquitto::start_with_files(extra, &[])
    }

    /// Like [`RemoteMosquitto::start`], with `files` (certificates, keys)
    /// copied into its folder first, readable by the `mosquitto` user;
    /// `{dir}` in `extra` names that folder.
    pub fn start_with_files(extra: &str, files: &[&std::path::Path]) -> RemoteMosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        // Started as root (CI), Mosquitto runs as `mosquitto` and must be
        // able to write its persistence file here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("chmod tempdir");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let listener = if extra.contains("listener ") {
            String::new()
        } else {
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n")
        };
        for file in files {
            let name = file.file_name().expect("file name");
            let copy = dir.path().join(name);
            std::fs::copy(file, &copy).expect("copy file for mosquitto");
            std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .expect("chmod copy");
        }
        let text = extra
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        std::fs::write(
            &conf,
            format!(
                "{listener}persistence true\npersistence_location {}/\nmax_queued_messages 0\nlog_dest stderr\nlog_type all\n{text}\n",
                dir.path().display()
            ),
        )
        .expect("write mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        let mut remote = RemoteMosquitto {
            child: None,
            port,
            conf,
            log,
            _dir: dir,
        };
        remote.restart();
        remote
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts the process again (same port, same persistence) and waits
    /// until it accepts.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "mosquitto is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("mosquitto log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr()).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not open {}",
                self.addr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and waits for the exit (Mosquitto saves its state).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Everything Mosquitto logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RemoteMosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
