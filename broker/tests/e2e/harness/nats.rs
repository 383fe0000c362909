//! A JetStream cluster of real `nats-server` processes (Debian's 2.9) for
//! the cluster tests: three servers on free loopback ports with their
//! stores in a temporary directory, stopped and started again on the same
//! ports and stores; killed on drop.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::service::free_port;

/// One `nats-server` of the cluster.
struct Server {
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Three clustered `nats-server`s with JetStream.
pub struct NatsCluster {
    servers: Vec<Server>,
    /// Client URLs, for `[cluster] servers`.
    pub urls: Vec<String>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts three servers that form one JetStream cluster.
    pub fn start() -> NatsCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect();
        let mut servers = Vec::new();
        for index in 0..3 {
            let store = dir.path().join(format!("js{index}"));
            let config = dir.path().join(format!("n{index}.conf"));
            let text = format!(
                "server_name: n{index}\nlisten: 127.0.0.1:{}\n\
                 jetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 256MB }}\n\
                 cluster {{ name: fleetmq-test, listen: 127.0.0.1:{}, routes: [{}], no_advertise: true }}\n",
                client_ports[index],
                store.display(),
                route_ports[index],
                routes.join(", ")
            );
            std::fs::write(&config, text).expect("write nats config");
            servers.push(Server {
                config,
                log: dir.path().join(format!("n{index}.log")),
                child: None,
            });
        }
        let mut cluster = NatsCluster {
            servers,
            urls: client_ports
                .iter()
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect(),
            dir,
        };
        cluster.start_all();
        cluster
    }

    /// Starts every stopped server (same ports, same stores).
    pub fn start_all(&mut self) {
        for server in &mut self.servers {
            if server.child.is_some() {
                continue;
            }
            let log = File::options()
                .create(true)
                .append(true)
                .open(&server.log)
                .expect("nats log");
            let err = log.try_clone().expect("nats log");
            let child = Command::new("nats-server")
                .arg("-c")
                .arg(&server.config)
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(err))
                .spawn()
                .expect("start nats-server (apt-get install nats-server)");
            server.child = Some(child);
        }
    }

    /// Stops every server with SIGTERM (a clean shutdown, so the restart
    /// does not replay logs), SIGKILL after two seconds.
    pub fn stop_all(&mut self) {
        let mut children: Vec<Child> = self
            .servers
            .iter_mut()
            .filter_map(|server| server.child.take())
            .collect();
        for child in &children {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        for child in &mut children {
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // The ports are free again once the processes are reaped.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Freezes every server (SIGSTOP) for `pause`, then lets them go on
    /// (SIGCONT): requests sent meanwhile get no answer within a client's
    /// timeout, yet are carried out when the servers resume.
    pub fn freeze_all(&self, pause: Duration) {
        let signal = |name: &str| {
            for child in self.servers.iter().filter_map(|s| s.child.as_ref()) {
                let _ = Command::new("kill")
                    .arg(name)
                    .arg(child.id().to_string())
                    .status();
            }
        };
        signal("-STOP");
        std::thread::sleep(pause);
        signal("-CONT");
    }

    /// Kills server `index` with SIGKILL (a crash: no clean shutdown);
    /// [`NatsCluster::start_all`] starts it again.
    pub fn kill9(&mut self, index: usize) {
        if let Some(mut child) = self.servers.get_mut(index).and_then(|s| s.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server that became leader of `stream` last, from the servers'
    /// logs (each logs "new stream leader" when it becomes one).
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        let needle = format!("new stream leader for '$G > {stream}'");
        let mut latest: Option<(String, usize)> = None;
        for (index, server) in self.servers.iter().enumerate() {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            let Some(line) = text.lines().rev().find(|line| line.contains(&needle)) else {
                continue;
            };
            // "[pid] 2026/12/05 05:33:43.788776 [INF] ...": the time sorts.
            let stamp = line.split_once("] ").map_or("", |(_, rest)| rest);
            let stamp = stamp.get(..26).unwrap_or(stamp).to_string();
            if latest.as_ref().is_none_or(|(best, _)| stamp > *best) {
                latest = Some((stamp, index));
            }
        }
        latest.map(|(_, index)| index)
    }

    /// The servers' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for server in &self.servers {
            out.push_str(&std::fs::read_to_string(&server.log).unwrap_or_default());
        }
        let _ = &self.dir;
        out
    }

    /// `[cluster]` TOML for a fleetmq node called `node`.
    pub fn node_toml(&self, node: &str) -> String {
        self.node_toml_on(node, &self.urls)
    }

    /// `[cluster]` TOML for a node that knows only server `index` (cut
    /// off from NATS when that server goes: the servers do not advertise
    /// the others to clients, `no_advertise`).
    pub fn node_toml_on_one(&self, node: &str, index: usize) -> String {
        self.node_toml_on(node, &self.urls[index..=index])
    }

    fn node_toml_on(&self, node: &str, urls: &[String]) -> String {
        let servers: Vec<String> = urls.iter().map(|url| format!("\"{url}\"")).collect();
        format!(
            "[cluster]\nbackend = \"nats\"\nservers = [{}]\nnode_name = \"{node}\"\nreplicas = 3\npublish_timeout_ms = 3000\n",
            servers.join(", ")
        )
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
