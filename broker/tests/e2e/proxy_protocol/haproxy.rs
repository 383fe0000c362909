//! Debian's HAProxy as the balancer in front of fleetmq: one process per
//! test, on loopback ports of its own, killed when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::tools::Tool;

/// A running HAProxy with one TCP frontend per [`Frontend`].
pub struct Haproxy {
    /// The process, killed on drop.
    _process: Tool,
    pub frontends: Vec<SocketAddr>,
}

/// One `frontend`/`backend` pair: what the client reaches, what HAProxy
/// forwards to and how.
pub struct Frontend {
    /// Extra words of the `bind` line (`ssl crt ... verify required`).
    pub bind_options: String,
    pub backend: SocketAddr,
    /// Words of the `server` line: `send-proxy-v2`, `send-proxy`, ...
    pub server_options: String,
}

/// A free loopback port (bound and released; HAProxy binds it next).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
}

impl Haproxy {
    /// Writes `haproxy.cfg` into `dir` and starts HAProxy in the
    /// foreground; returns once every frontend accepts connections.
    pub fn start(dir: &Path, frontends: &[Frontend]) -> Haproxy {
        let mut config = String::from(
            "global\n  log stderr format raw local0 info\n\n\
             defaults\n  mode tcp\n  log global\n  timeout connect 5s\n  timeout client 60s\n  \
             timeout server 60s\n\n",
        );
        let mut addrs = Vec::new();
        for (index, frontend) in frontends.iter().enumerate() {
            let addr = free_port();
            config.push_str(&format!(
                "frontend fe{index}\n  bind {addr} {}\n  default_backend be{index}\n\n\
                 backend be{index}\n  server fleetmq {} {}\n\n",
                frontend.bind_options, frontend.backend, frontend.server_options
            ));
            addrs.push(addr);
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, &config).expect("write haproxy.cfg");
        let path = path.to_string_lossy().into_owned();
        let tool = Tool::spawn("haproxy", &["-db", "-f", &path]);
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in &addrs {
            while TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "haproxy did not listen on {addr}:\n{}\n{config}",
                    tool.output()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Haproxy {
            _process: tool,
            frontends: addrs,
        }
    }
}

/// A TCP connection to `addr` from the loopback address `source` (any
/// port), as a client on another machine of the lab would look.
pub fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{source}:0").parse().expect("source address"))
            .expect("bind the source address");
        tokio::time::timeout(Duration::from_secs(2), socket.connect(addr))
            .await
            .expect("connect in time")
            .expect("connect")
    });
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream.set_nodelay(true).expect("nodelay");
    stream
}
