//! Plain HTTP/1.0 GETs on loopback (fleetmq's `/metrics`, nats-server's
//! monitoring endpoints) and reading Prometheus text. Bounded by a time
//! limit; nothing here retries.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The body of `GET path` at `addr` (at most 5 s; a status other than
/// 200 is an error).
pub async fn get(addr: SocketAddr, path: &str) -> Result<String> {
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        anyhow::Ok(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .with_context(|| format!("GET http://{addr}{path}: no answer in 5 s"))??;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET http://{addr}{path}: no HTTP header"))?;
    if !head.lines().next().is_some_and(|l| l.contains(" 200")) {
        bail!(
            "GET http://{addr}{path}: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_string())
}

/// The sum of every series named exactly `name` (any labels: in cluster
/// mode fleetmq adds `node="..."` to all of them); None when absent.
pub fn metric_sum(body: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn sums_labelled_and_bare_series_of_one_name_only() {
        let body = "# HELP x\nfleetmq_heap_bytes{node=\"a\"} 2048\nfleetmq_heap_bytes_total 7\n\
                    fleetmq_cluster_ready 1\nfleetmq_x_count{a=\"}\"} 3\n";
        assert_eq!(metric_sum(body, "fleetmq_heap_bytes"), Some(2048.0));
        assert_eq!(metric_sum(body, "fleetmq_cluster_ready"), Some(1.0));
        assert_eq!(metric_sum(body, "fleetmq_x_count"), Some(3.0));
        assert_eq!(metric_sum(body, "fleetmq_missing"), None);
    }
}
