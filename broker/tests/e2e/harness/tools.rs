//! External programs as test peers: `openssl s_client` and the Mosquitto
//! command-line clients (Debian's, built on OpenSSL), so the TLS tests meet
//! a TLS stack other than rustls.
//!
//! A [`Tool`] collects stdout and stderr as they arrive, can be waited on
//! for a line, and is killed when dropped: no wait is unbounded.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::process::LogBuffer;

/// A running external program.
pub struct Tool {
    /// The command line, for failure messages.
    pub command_line: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<LogBuffer>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Tool {
    /// Starts `program` with `args`; stdin stays open for
    /// [`Tool::write_stdin`] until [`Tool::close_stdin`].
    pub fn spawn(program: &str, args: &[&str]) -> Tool {
        let command_line = format!("{program} {}", args.join(" "));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{command_line}`: {e}"));
        let output = Arc::new(LogBuffer::default());
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let readers = vec![
            pipe_chunks(stdout, Arc::clone(&output)),
            pipe_chunks(stderr, Arc::clone(&output)),
        ];
        Tool {
            command_line,
            stdin: child.stdin.take(),
            child,
            output,
            readers,
        }
    }

    /// Like [`Tool::spawn`], with stdout line-buffered (`stdbuf -oL`), for
    /// C programs whose progress lines would otherwise wait in a buffer
    /// until they exit.
    pub fn spawn_line_buffered(program: &str, args: &[&str]) -> Tool {
        let mut all = vec!["-oL", program];
        all.extend_from_slice(args);
        let mut tool = Tool::spawn("stdbuf", &all);
        tool.command_line = format!("{program} {}", args.join(" "));
        tool
    }

    pub fn write_stdin(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("write to tool");
        stdin.flush().expect("flush tool stdin");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Stdout and stderr so far (interleaved by line).
    pub fn output(&self) -> String {
        self.output.text.lock().unwrap().clone()
    }

    /// Waits until the output contains `needle`; false after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.output.text.lock().unwrap();
        loop {
            if text.contains(needle) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            text = self
                .output
                .grew
                .wait_timeout(text, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Like [`Tool::wait_for`], but panics with the output.
    pub fn assert_output(&self, needle: &str, timeout: Duration) {
        assert!(
            self.wait_for(needle, timeout),
            "`{}` did not print {needle:?} within {timeout:?}; output:\n{}",
            self.command_line,
            self.output()
        );
    }

    /// Closes stdin and waits for the program to exit; kills it after
    /// `timeout` (status None). Returns the status and the whole output.
    pub fn finish(mut self, timeout: Duration) -> (Option<ExitStatus>, String) {
        self.close_stdin();
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status, self.output())
    }

    /// [`Tool::finish`], asserting a zero exit status in time.
    pub fn finish_ok(self, timeout: Duration) -> String {
        let command_line = self.command_line.clone();
        let (status, output) = self.finish(timeout);
        assert!(
            status.is_some_and(|s| s.success()),
            "`{command_line}` ended with {status:?}; output:\n{output}"
        );
        output
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `source` into `output` as it arrives, without waiting for line
/// ends (an MQTT packet through s_client has none); bytes that are not
/// UTF-8 are replaced.
fn pipe_chunks(
    mut source: impl Read + Send + 'static,
    output: Arc<LogBuffer>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = source.read(&mut chunk) {
            output
                .text
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
            output.grew.notify_all();
        }
        output.grew.notify_all();
    })
}

/// `openssl s_client` connected to `addr`, verifying the server as
/// `localhost` against `ca`, plus `args`. Its stdin goes to the server
/// (command letters off), so a test can send MQTT bytes through it.
pub fn s_client(addr: SocketAddr, ca: &Path, args: &[&str]) -> Tool {
    let connect = addr.to_string();
    let ca = ca.display().to_string();
    let mut all = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-CAfile",
        &ca,
        "-nocommands",
    ];
    all.extend_from_slice(args);
    Tool::spawn("openssl", &all)
}

/// The handshake summary `openssl s_client` prints once connected.
pub const S_CLIENT_CONNECTED: &str = "Verify return code:";

/// The TLS arguments of a Mosquitto client: `--cafile` and, for mutual TLS,
/// `--cert`/`--key`.
pub fn mosquitto_tls_args(ca: &Path, identity: Option<&super::pki::Issued>) -> Vec<String> {
    let mut args = vec!["--cafile".to_string(), ca.display().to_string()];
    if let Some(identity) = identity {
        args.push("--cert".to_string());
        args.push(identity.cert.display().to_string());
        args.push("--key".to_string());
        args.push(identity.key.display().to_string());
    }
    args
}
