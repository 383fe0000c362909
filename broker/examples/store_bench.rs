//! QoS 1 throughput into offline persistent sessions at each store fsync
//! level (`always`, `batch`, `periodic`) and with the store disabled.
//!
//! For each level it starts the broker binary in a fresh directory, parks
//! one persistent subscriber (3.1.1, clean session 0, `bench/#` at QoS 1)
//! offline, then runs pipelined QoS 1 publishers (each keeps `--window`
//! PUBLISHes unacknowledged) for `--seconds`, timing every PUBLISH to its
//! PUBACK. Every message is therefore one durable record. Prints one line
//! per level: messages/s, p50 and p99 PUBACK latency, store file size.
//!
//! Run through `bench/store/run.sh`, which builds the release broker.
//! Loopback only; every wait is bounded.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// How long any single read may wait.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

struct Options {
    broker: PathBuf,
    seconds: u64,
    publishers: usize,
    window: usize,
    payload: usize,
    levels: Vec<String>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        broker: PathBuf::from("target/release/fleetmq"),
        seconds: 5,
        publishers: 4,
        window: 20,
        payload: 64,
        levels: ["always", "batch", "periodic", "off"]
            .map(String::from)
            .to_vec(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--broker" => options.broker = PathBuf::from(value()?),
            "--seconds" => options.seconds = value()?.parse()?,
            "--publishers" => options.publishers = value()?.parse()?,
            "--window" => options.window = value()?.parse()?,
            "--payload" => options.payload = value()?.parse()?,
            "--levels" => options.levels = value()?.split(',').map(String::from).collect(),
            other => return Err(format!("unknown option {other}; see the module doc").into()),
        }
    }
    // The broker runs in a fresh directory: resolve the path here.
    options.broker = std::fs::canonicalize(&options.broker)
        .map_err(|e| format!("broker binary {}: {e}", options.broker.display()))?;
    if options.window == 0 || options.window > 60_000 {
        return Err("--window must be 1..=60000".into());
    }
    Ok(options)
}

fn store_section(level: &str) -> String {
    match level {
        "off" => "[store]\nenabled = false\n".into(),
        "periodic" => "[store]\nfsync = \"periodic\"\nperiodic_interval_secs = 30\n".into(),
        other => format!("[store]\nfsync = \"{other}\"\n"),
    }
}

/// A broker process in its own directory; killed on drop.
struct Broker {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    fn start(binary: &Path, level: &str) -> Result<Broker> {
        let dir = tempfile::tempdir()?;
        let config = format!(
            "[[listener]]\nname = \"bench\"\nbind = \"127.0.0.1:0\"\n\n[limits]\nmax_queued_messages = 0\nmax_queued_bytes = 0\n\n{}",
            store_section(level)
        );
        std::fs::write(dir.path().join("fleetmq.toml"), config)?;
        let mut child = Command::new(binary)
            .args(["run", "--config", "fleetmq.toml"])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads (and discards) the broker's log until it exits, so the
        // pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Some(rest) = line.split("Opening listen socket on 127.0.0.1:").nth(1) {
                    let port: Option<u16> = rest.split(' ').next().and_then(|p| p.parse().ok());
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .flatten()
            .ok_or("the broker did not log its listen line within 10 s")?;
        Ok(Broker { child, port, dir })
    }

    fn store_bytes(&self) -> u64 {
        std::fs::metadata(self.dir.path().join("fleetmq-data/fleetmq.redb")).map_or(0, |m| m.len())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn varint(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return;
        }
    }
}

fn string(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

fn connect_packet(client_id: &str, clean: bool) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.extend_from_slice(&[4, if clean { 0x02 } else { 0x00 }, 0, 60]);
    string(&mut body, client_id.as_bytes());
    packet(0x10, &body)
}

fn publish_packet(out: &mut Vec<u8>, topic: &str, id: u16, payload: &[u8]) {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
    string(&mut body, topic.as_bytes());
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(payload);
    out.extend_from_slice(&packet(0x32, &body));
}

async fn connect(port: u16, client_id: &str, clean: bool) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    stream.write_all(&connect_packet(client_id, clean)).await?;
    let mut connack = [0u8; 4];
    tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut connack)).await??;
    if connack[0] != 0x20 || connack[3] != 0 {
        return Err(format!("CONNACK refused: {connack:?}").into());
    }
    Ok(stream)
}

/// The offline persistent session every message is queued (and stored) for.
async fn park_subscriber(port: u16) -> Result<()> {
    let mut stream = connect(port, "bench-sub", false).await?;
    let mut body = 1u16.to_be_bytes().to_vec();
    string(&mut body, b"bench/#");
    body.push(1);
    stream.write_all(&packet(0x82, &body)).await?;
    let mut suback = [0u8; 5];
    tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut suback)).await??;
    stream.write_all(&[0xE0, 0x00]).await?;
    // Let the broker record the session as offline before the load.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// The unacknowledged PUBLISHes of one publisher, by packet id.
struct Pipeline {
    topic: String,
    payload: Vec<u8>,
    sent_at: Vec<Option<Instant>>,
    next_id: u16,
    open: usize,
}

impl Pipeline {
    fn send(&mut self, out: &mut Vec<u8>) {
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        publish_packet(out, &self.topic, self.next_id, &self.payload);
        self.sent_at[usize::from(self.next_id)] = Some(Instant::now());
        self.open += 1;
    }

    /// PUBACK for `id`: its latency in µs.
    fn acked(&mut self, id: u16, now: Instant) -> Option<u32> {
        let at = self.sent_at[usize::from(id)].take()?;
        self.open -= 1;
        Some(now.duration_since(at).as_micros().min(u128::from(u32::MAX)) as u32)
    }
}

/// One pipelined QoS 1 publisher; returns PUBACK latencies in µs.
async fn publisher(
    port: u16,
    index: usize,
    window: usize,
    payload: Vec<u8>,
    until: Instant,
) -> Result<Vec<u32>> {
    let mut stream = connect(port, &format!("bench-pub-{index}"), true).await?;
    let mut pipeline = Pipeline {
        topic: format!("bench/{index}"),
        payload,
        sent_at: vec![None; 65536],
        next_id: 0,
        open: 0,
    };
    let mut latencies = Vec::new();
    let mut out = Vec::new();
    for _ in 0..window {
        pipeline.send(&mut out);
    }
    stream.write_all(&out).await?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    while pipeline.open > 0 {
        let read = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk)).await??;
        if read == 0 {
            return Err("the broker closed a publisher".into());
        }
        buf.extend_from_slice(&chunk[..read]);
        out.clear();
        let now = Instant::now();
        let mut used = 0;
        while buf.len() - used >= 4 {
            let ack = &buf[used..used + 4];
            if ack[0] != 0x40 || ack[1] != 2 {
                return Err(format!("expected PUBACK, got {ack:?}").into());
            }
            if let Some(latency) = pipeline.acked(u16::from_be_bytes([ack[2], ack[3]]), now) {
                latencies.push(latency);
            }
            used += 4;
            if now < until {
                pipeline.send(&mut out);
            }
        }
        buf.drain(..used);
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
    }
    Ok(latencies)
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

async fn run_level(options: &Options, level: &str) -> Result<()> {
    let broker = Broker::start(&options.broker, level)?;
    park_subscriber(broker.port).await?;
    let started = Instant::now();
    let until = started + Duration::from_secs(options.seconds);
    let mut tasks = Vec::new();
    for index in 0..options.publishers {
        let payload = vec![b'x'; options.payload];
        tasks.push(tokio::spawn(publisher(
            broker.port,
            index,
            options.window,
            payload,
            until,
        )));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    println!(
        "{level:<9} {:>8.0} msg/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} PUBACKs in {elapsed:.1} s, store {} KiB)",
        latencies.len() as f64 / elapsed,
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
        latencies.len(),
        broker.store_bytes() / 1024
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let options = options()?;
    println!(
        "QoS 1 into one offline persistent session: {} publishers x window {}, {} B payload, {} s per level",
        options.publishers, options.window, options.payload, options.seconds
    );
    for level in &options.levels {
        run_level(&options, level).await?;
    }
    Ok(())
}
