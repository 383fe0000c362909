//! The cluster scenario's NATS: three Debian `nats-server` processes
//! forming one JetStream cluster on loopback (the configuration of the
//! e2e tests' harness, `broker/tests/e2e/harness/nats.rs`, plus a
//! monitoring port each), pinned with `taskset` like the brokers, stopped
//! with SIGTERM and killed on drop, registered for
//! [`super::broker::kill_all_on_signal`].
//!
//! It also reads what the servers count: the messages the fleetmq nodes'
//! NATS connections sent and received (`/connz`), to count key-value round
//! trips per CONNECT.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::broker::{register, Placement, Ports};
use crate::http;

/// One running `nats-server`.
struct Server {
    child: Child,
    pid: u32,
    client_port: u16,
    log: PathBuf,
}

/// Three clustered `nats-server`s with JetStream; stopped when dropped.
pub struct NatsCluster {
    servers: Vec<Server>,
    /// The servers' monitoring addresses (`/connz`, `/varz`).
    monitors: Vec<SocketAddr>,
    /// Client URLs, for fleetmq's `[cluster] servers`.
    pub urls: Vec<String>,
}

/// Messages the fleetmq nodes' NATS connections sent (`in`, as the
/// servers count them) and received (`out`), summed over the servers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeTraffic {
    pub msgs_in: u64,
    pub msgs_out: u64,
}

impl NatsCluster {
    /// Writes the three configurations into `work` (a fresh JetStream
    /// store each) and starts the servers on `placement`; returns once
    /// every server takes client connections (JetStream's leaders may
    /// still be electing: the fleetmq nodes' readiness waits for those).
    pub async fn start(bin: &Path, work: &Path, placement: Placement) -> Result<NatsCluster> {
        if work.exists() {
            fs::remove_dir_all(work).with_context(|| format!("clearing {}", work.display()))?;
        }
        fs::create_dir_all(work)?;
        let mut ports = Vec::new();
        for _ in 0..3 {
            let free = Ports::free()?;
            ports.push((free.plain, free.ecdsa, free.rsa));
        }
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("nats-route://127.0.0.1:{route}"))
            .collect();
        let mut cluster = NatsCluster {
            servers: Vec::new(),
            monitors: ports.iter().map(|(_, _, m)| Ports::addr(*m)).collect(),
            urls: ports
                .iter()
                .map(|(client, _, _)| format!("nats://127.0.0.1:{client}"))
                .collect(),
        };
        for (index, (client, route, monitor)) in ports.iter().enumerate() {
            let config = work.join(format!("n{index}.conf"));
            // As the e2e harness, with room for a benchmark's messages
            // (the message stream keeps an hour) and a monitoring port.
            let text = format!(
                "server_name: n{index}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                 jetstream {{ store_dir: \"{}\", max_memory_store: 256MB, max_file_store: 4GB }}\n\
                 cluster {{ name: fleetmq-bench, listen: 127.0.0.1:{route}, routes: [{}], no_advertise: true }}\n",
                work.join(format!("js{index}")).display(),
                routes.join(", ")
            );
            fs::write(&config, text)?;
            let log = work.join(format!("n{index}.log"));
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
            let child = command
                .arg("-c")
                .arg(&config)
                .current_dir(work)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let pid = child.id();
            register(pid, true);
            cluster.servers.push(Server {
                child,
                pid,
                client_port: *client,
                log,
            });
        }
        cluster.wait_listening().await?;
        Ok(cluster)
    }

    async fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        for server in &mut self.servers {
            loop {
                if let Some(status) = server.child.try_wait()? {
                    bail!(
                        "nats-server exited ({status}); its log {}:\n{}",
                        server.log.display(),
                        fs::read_to_string(&server.log).unwrap_or_default()
                    );
                }
                let addr = Ports::addr(server.client_port);
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("nats-server not listening on {addr} after 20 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// The servers' process ids (their CPU and memory).
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.pid).collect()
    }

    /// `[cluster]` TOML for fleetmq node `node` (as the e2e harness: every
    /// server listed, three replicas).
    pub fn node_toml(&self, node: &str) -> String {
        let servers: Vec<String> = self.urls.iter().map(|url| format!("\"{url}\"")).collect();
        format!(
            "[cluster]\nbackend = \"nats\"\nservers = [{}]\nnode_name = \"{node}\"\nreplicas = 3\npublish_timeout_ms = 3000\n",
            servers.join(", ")
        )
    }

    /// What the fleetmq nodes' connections (named `fleetmq <node>`) have
    /// sent and received so far, from every server's `/connz`.
    pub async fn node_traffic(&self) -> Result<NodeTraffic> {
        let mut total = NodeTraffic::default();
        for monitor in &self.monitors {
            let body = http::get(*monitor, "/connz?limit=4096").await?;
            let connz: serde_json::Value = serde_json::from_str(&body)
                .with_context(|| format!("parsing /connz of {monitor}"))?;
            let connections = connz
                .get("connections")
                .and_then(|c| c.as_array())
                .cloned()
                .unwrap_or_default();
            for connection in connections {
                let named = connection
                    .get("name")
                    .and_then(|n| n.as_str())
                    .is_some_and(|n| n.starts_with("fleetmq "));
                if !named {
                    continue;
                }
                let count = |key: &str| connection.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
                total.msgs_in += count("in_msgs");
                total.msgs_out += count("out_msgs");
            }
        }
        Ok(total)
    }

    /// SIGTERM to every server, SIGKILL after 3 s.
    pub async fn stop(mut self) {
        for server in &self.servers {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(server.pid.to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for server in &mut self.servers {
            while matches!(server.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Drop kills what is left.
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            if let Ok(None) = server.child.try_wait() {
                let _ = server.child.kill();
                let _ = server.child.wait();
            }
            register(server.pid, false);
        }
    }
}
