//! The brokers under test: equivalent configurations for fleetmq,
//! Mosquitto and rumqttd, and their processes (started pinned to a core
//! with `taskset`, stopped with SIGTERM, never left running).
//!
//! Each broker gets three listeners on loopback: plain TCP, mutual TLS with
//! the ECDSA server certificate, mutual TLS with the RSA one; fleetmq and
//! Mosquitto a fourth, one-way TLS with the ECDSA certificate (rumqttd
//! built with `verify-client-cert` checks client certificates on every
//! TLS listener, so it has none); the same CA, certificates and keys; the same queue limits; no `$SYS` noise;
//! warnings-only logging. For the bridge scenario, fleetmq and Mosquitto
//! also get the same bridge ([`bridge_config`]) to a remote Mosquitto
//! started here ([`start_remote`]).

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::pki::Pki;
use crate::stats;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Fleetmq,
    Mosquitto,
    Rumqttd,
}

impl Kind {
    /// Whether the bench gives this broker a one-way TLS listener.
    pub fn has_one_way(self) -> bool {
        !matches!(self, Kind::Rumqttd)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Fleetmq => "fleetmq",
            Kind::Mosquitto => "mosquitto",
            Kind::Rumqttd => "rumqttd",
        })
    }
}

/// Which CPUs a process may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// One core (the broker on 0, the load generator on 1).
    Core(usize),
    /// Every core.
    Any,
}

/// The queue limits every broker gets (fleetmq `[limits]`, Mosquitto
/// `max_inflight_messages`/`max_queued_messages`, rumqttd
/// `max_inflight_count`).
pub const MAX_INFLIGHT: usize = 100;
pub const MAX_QUEUED: usize = 10_000;

/// The listener ports of a broker.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Ports {
    pub plain: u16,
    pub ecdsa: u16,
    pub rsa: u16,
    /// One-way TLS (no client certificate), ECDSA server certificate.
    #[serde(default)]
    pub oneway: u16,
    /// fleetmq's HTTP listener (its `/metrics`), so runs never collide
    /// on the default 8080.
    pub http: u16,
}

impl Ports {
    /// Five ports free now (the kernel's choice, released at once).
    pub fn free() -> Result<Ports> {
        let mut ports = [0u16; 5];
        let mut held = Vec::new();
        for port in &mut ports {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            *port = listener.local_addr()?.port();
            held.push(listener);
        }
        Ok(Ports {
            plain: ports[0],
            ecdsa: ports[1],
            rsa: ports[2],
            http: ports[3],
            oneway: ports[4],
        })
    }

    pub fn addr(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }
}

/// How to start one broker.
#[derive(Debug, Clone)]
pub struct BrokerSetup {
    pub kind: Kind,
    pub bin: PathBuf,
    /// This broker's folder: configuration, log, data.
    pub work: PathBuf,
    pub pki: Pki,
    pub ports: Ports,
    /// fleetmq's `[store] fsync`; its default when `None`. A `,wal`
    /// suffix also sets its write-ahead log on (`wal = true`, the default),
    /// `,nowal` off (`wal = false`).
    pub store_fsync: Option<String>,
    /// Appended to fleetmq's configuration (the cluster scenario's
    /// `[cluster]` table); empty otherwise.
    pub extra_toml: String,
}

/// Brokers running now, by process id, for [`kill_all_on_signal`].
static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Kills every broker this process started when it gets SIGINT or
/// SIGTERM, then exits: an interrupted run leaves nothing running (drop
/// handlers do not run when a signal ends the process).
pub fn kill_all_on_signal() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut interrupt), Ok(mut terminate)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            let pids = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
            for pid in pids {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
            eprintln!("fleetmq-bench: interrupted; brokers stopped");
            std::process::exit(130);
        });
    });
}

/// Records a process this bench started (or stopped), for
/// [`kill_all_on_signal`].
pub(crate) fn register(pid: u32, running: bool) {
    if let Ok(mut pids) = RUNNING.lock() {
        pids.retain(|p| *p != pid);
        if running {
            pids.push(pid);
        }
    }
}

/// A started broker; stopped (SIGKILL if need be) when dropped.
pub struct Running {
    pub kind: Kind,
    child: Child,
    pub pid: u32,
    pub log: PathBuf,
}

impl BrokerSetup {
    /// Writes the configuration (durable storage on or off) and starts the
    /// broker on `placement`; returns once every listener accepts.
    pub async fn start(&self, placement: Placement, durable: bool) -> Result<Running> {
        self.start_with(placement, durable, None).await
    }

    /// [`BrokerSetup::start`] with a bridge to the broker at `remote`
    /// forwarding `bench/#` out at QoS 1 ([`bridge_config`]).
    pub async fn start_bridged(
        &self,
        placement: Placement,
        durable: bool,
        remote: SocketAddr,
    ) -> Result<Running> {
        self.start_with(placement, durable, Some(remote)).await
    }

    async fn start_with(
        &self,
        placement: Placement,
        durable: bool,
        bridge: Option<SocketAddr>,
    ) -> Result<Running> {
        fs::create_dir_all(self.work.join("data"))?;
        let args = self.write_config(durable, bridge)?;
        let mut running = spawn(self.kind, &self.bin, &args, &self.work, placement)?;
        let mut ports = vec![self.ports.plain, self.ports.ecdsa, self.ports.rsa];
        if self.kind.has_one_way() {
            ports.push(self.ports.oneway);
        }
        running.wait_listening(&ports).await?;
        Ok(running)
    }

    /// Removes this broker's data folder, so its next start has a fresh
    /// store.
    pub fn clear_data(&self) -> Result<()> {
        let data = self.work.join("data");
        if data.exists() {
            fs::remove_dir_all(&data).with_context(|| format!("clearing {}", data.display()))?;
        }
        Ok(())
    }

    fn write_config(&self, durable: bool, bridge: Option<SocketAddr>) -> Result<Vec<String>> {
        let path = |p: &Path| p.display().to_string();
        let pki = &self.pki;
        let ports = &self.ports;
        let data = self.work.join("data");
        match self.kind {
            Kind::Fleetmq => {
                let tls = |name: &str, port: u16, cert: &crate::pki::Issued| {
                    format!(
                        "[[listener]]\nname = \"{name}\"\nbind = \"127.0.0.1:{port}\"\n\n\
                         [listener.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\
                         client_certs = \"required\"\n\
                         # OpenSSL's default session cache size, as Mosquitto has.\n\
                         session_cache_size = 20480\n\n",
                        path(&cert.cert),
                        path(&cert.key),
                        path(&pki.ca)
                    )
                };
                let one_way = format!(
                    "[[listener]]\nname = \"tls-oneway\"\nbind = \"127.0.0.1:{}\"\n\
                     # Mosquitto has allow_anonymous true too; no password file.\n\
                     allow_anonymous = true\n\n\
                     [listener.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_certs = \"none\"\n\
                     session_cache_size = 20480\n\n",
                    ports.oneway,
                    path(&pki.server_ecdsa.cert),
                    path(&pki.server_ecdsa.key)
                );
                let config = format!(
                    "data_dir = \"{}\"\n\n[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:{}\"\n\n{}{}{}\
                     [limits]\nmax_inflight = {MAX_INFLIGHT}\nmax_queued_messages = {MAX_QUEUED}\n\n\
                     [mqtt]\nsys_interval_secs = 0\n\n[log]\nlevel = \"warn\"\n\n\
                     [http]\nbind = \"127.0.0.1:{}\"\n\n\
                     [store]\nenabled = {durable}\n{}",
                    path(&data),
                    ports.plain,
                    tls("tls-ecdsa", ports.ecdsa, &pki.server_ecdsa),
                    tls("tls-rsa", ports.rsa, &pki.server_rsa),
                    one_way,
                    ports.http,
                    self.store_fsync
                        .as_ref()
                        .map(|fsync| store_options(fsync))
                        .unwrap_or_default(),
                ) + &bridge.map(|remote| bridge_config(Kind::Fleetmq, remote)).unwrap_or_default()
                    + "\n"
                    + &self.extra_toml;
                let file = self.work.join("fleetmq.toml");
                fs::write(&file, config)?;
                Ok(vec!["run".into(), "--config".into(), path(&file)])
            }
            Kind::Mosquitto => {
                let tls = |port: u16, cert: &crate::pki::Issued| {
                    format!(
                        "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                         require_certificate true\n\n",
                        path(&pki.ca),
                        path(&cert.cert),
                        path(&cert.key)
                    )
                };
                let config = format!(
                    "# Stay root: the files are the bench's, not a mosquitto user's.\nuser root\n\
                     per_listener_settings false\nallow_anonymous true\nsys_interval 0\n\
                     max_inflight_messages {MAX_INFLIGHT}\nmax_queued_messages {MAX_QUEUED}\n\
                     log_dest stderr\nlog_type error\nlog_type warning\n\
                     persistence {durable}\npersistence_location {}/\n\n\
                     listener {} 127.0.0.1\n\n{}{}\
                     listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\n",
                    path(&data),
                    ports.plain,
                    tls(ports.ecdsa, &pki.server_ecdsa),
                    tls(ports.rsa, &pki.server_rsa),
                    ports.oneway,
                    path(&pki.ca),
                    path(&pki.server_ecdsa.cert),
                    path(&pki.server_ecdsa.key),
                ) + &bridge
                    .map(|remote| bridge_config(Kind::Mosquitto, remote))
                    .unwrap_or_default();
                let file = self.work.join("mosquitto.conf");
                fs::write(&file, config)?;
                Ok(vec!["-c".into(), path(&file)])
            }
            Kind::Rumqttd if bridge.is_some() => {
                bail!("rumqttd is not in the bridge comparison")
            }
            Kind::Rumqttd => {
                // rumqttd 0.20's own rumqttd.toml, value for value, with
                // the changes decision 0062 lists: listeners on loopback
                // (plain as its [v4.1], two mutual-TLS ones as its
                // commented [v4.2]), no accept delay, room for the largest
                // fleet, no console, Prometheus, v5 or websocket servers.
                let server = |id: u8, name: &str, port: u16, tls: Option<&crate::pki::Issued>| {
                    let mut text = format!(
                        "[v4.{id}]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n\
                         # Shipped: 1 (a 1 ms sleep after every accept, at most\n\
                         # 1,000 connects/s). 0 favours rumqttd.\n\
                         next_connection_delay_ms = 0\n\n\
                         # As shipped ({MAX_INFLIGHT} in flight is every broker's limit).\n\
                         [v4.{id}.connections]\nconnection_timeout_ms = 60000\n\
                         max_payload_size = 20480\nmax_inflight_count = {MAX_INFLIGHT}\n\
                         dynamic_filters = true\n\n"
                    );
                    if let Some(cert) = tls {
                        text.push_str(&format!(
                            "[v4.{id}.tls]\ncapath = \"{}\"\ncertpath = \"{}\"\nkeypath = \"{}\"\n\n",
                            path(&pki.ca),
                            path(&cert.cert),
                            path(&cert.key)
                        ));
                    }
                    text
                };
                let config = format!(
                    "id = 0\n\n# As shipped, but for max_connections (shipped 10010): the\n\
                     # largest fleet holds 19,000 connections.\n\
                     [router]\nid = 0\nmax_connections = 30010\n\
                     max_outgoing_packet_count = 200\nmax_segment_size = 104857600\n\
                     max_segment_count = 10\n\n{}{}{}",
                    server(1, "plain", ports.plain, None),
                    server(2, "tls-ecdsa", ports.ecdsa, Some(&pki.server_ecdsa)),
                    server(3, "tls-rsa", ports.rsa, Some(&pki.server_rsa)),
                );
                let file = self.work.join("rumqttd.toml");
                fs::write(&file, config)?;
                Ok(vec!["-q".into(), "-c".into(), path(&file)])
            }
        }
    }
}

/// Starts `bin` with `args` in `work` on `placement`, its output appended
/// to `work/<kind>.log`; registered for [`kill_all_on_signal`].
fn spawn(
    kind: Kind,
    bin: &Path,
    args: &[String],
    work: &Path,
    placement: Placement,
) -> Result<Running> {
    let log = work.join(format!("{kind}.log"));
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut command = match placement {
        Placement::Core(core) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(core.to_string()).arg(bin);
            taskset
        }
        Placement::Any => Command::new(bin),
    };
    command
        .args(args)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        // fleetmq reads FLEETMQ_* and RUST_LOG; the bench sets neither.
        .env_remove("RUST_LOG");
    let child = command
        .spawn()
        .with_context(|| format!("starting {kind} ({})", bin.display()))?;
    let pid = child.id();
    register(pid, true);
    Ok(Running {
        kind,
        child,
        pid,
        log,
    })
}

/// The bridge of scenario 7, the same for both bridging brokers: one link
/// to `remote` over plain TCP, MQTT 3.1.1, `topic bench/# out 1` without
/// prefixes, `cleansession false` (both brokers' default: the remote
/// keeps the bridge's session and QoS 1 state), `try_private` and
/// notifications on (both defaults), a fixed remote client id; every
/// other setting is the broker's own default.
pub fn bridge_config(kind: Kind, remote: SocketAddr) -> String {
    match kind {
        Kind::Fleetmq => format!(
            "\n[[bridge]]\nname = \"bench\"\naddresses = [\"{remote}\"]\n\
             protocol_version = \"3.1.1\"\nclean_session = false\n\
             remote_client_id = \"bench-fleetmq\"\n\n\
             [[bridge.topic]]\npattern = \"bench/#\"\ndirection = \"out\"\nqos = 1\n"
        ),
        Kind::Mosquitto => format!(
            "\nconnection bench\naddress {remote}\nbridge_protocol_version mqttv311\n\
             cleansession false\nremote_clientid bench-mosquitto\ntopic bench/# out 1\n"
        ),
        Kind::Rumqttd => String::new(),
    }
}

/// Starts the remote broker of scenario 7: Debian's Mosquitto (`bin`) in
/// `work` on a free loopback port, with its defaults except a plain
/// listener, anonymous access (loopback only), warnings-only logging and
/// the bench's queue limits ([`MAX_INFLIGHT`], [`MAX_QUEUED`]) so its
/// default 20 in flight and 1,000 queued per client do not cap or drop
/// what either bridging broker forwards. Returns it and its address.
pub async fn start_remote(
    bin: &Path,
    work: &Path,
    placement: Placement,
) -> Result<(Running, SocketAddr)> {
    fs::create_dir_all(work)?;
    let port = Ports::free()?.plain;
    let config = format!(
        "# The remote of the bridge scenario.\n\
         # Stay root: the files are the bench's, not a mosquitto user's.\nuser root\n\
         listener {port} 127.0.0.1\nallow_anonymous true\n\
         max_inflight_messages {MAX_INFLIGHT}\nmax_queued_messages {MAX_QUEUED}\n\
         log_dest stderr\nlog_type error\nlog_type warning\n"
    );
    let file = work.join("remote.conf");
    fs::write(&file, config)?;
    let args = vec!["-c".to_string(), file.display().to_string()];
    let mut running = spawn(Kind::Mosquitto, bin, &args, work, placement)?;
    running.wait_listening(&[port]).await?;
    Ok((running, Ports::addr(port)))
}

impl Running {
    async fn wait_listening(&mut self, ports: &[u16]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        for &port in ports {
            loop {
                if let Some(status) = self.child.try_wait()? {
                    bail!(
                        "{} exited ({status}) before listening on {port}; its log {}:\n{}",
                        self.kind,
                        self.log.display(),
                        self.log_tail()
                    );
                }
                if tokio::net::TcpStream::connect(Ports::addr(port))
                    .await
                    .is_ok()
                {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{} not listening on {port} after 20 s", self.kind);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// The last lines of the broker's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    pub fn rss_kib(&self) -> Option<u64> {
        stats::rss_kib(self.pid)
    }

    /// SIGTERM, then up to 15 s for a graceful exit, then SIGKILL.
    pub async fn stop(mut self) -> Result<Duration> {
        let started = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        while started.elapsed() < Duration::from_secs(15) {
            if self.child.try_wait()?.is_some() {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("{} ignored SIGTERM for 15 s; killed", self.kind)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        register(self.pid, false);
    }
}

/// fleetmq's `[store]` lines for a `--store-fsync` value: the policy, and
/// `wal = true` / `wal = false` for a `,wal` / `,nowal` suffix (the broker's
/// default, on, when neither is given).
fn store_options(fsync: &str) -> String {
    if let Some(fsync) = fsync.strip_suffix(",nowal") {
        format!("fsync = \"{fsync}\"\nwal = false\n")
    } else if let Some(fsync) = fsync.strip_suffix(",wal") {
        format!("fsync = \"{fsync}\"\nwal = true\n")
    } else {
        format!("fsync = \"{fsync}\"\n")
    }
}
