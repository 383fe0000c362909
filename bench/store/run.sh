#!/usr/bin/env bash
# QoS 1 throughput into offline persistent sessions at each store fsync
# level, and with the store disabled. Builds the release broker and the
# load client (broker/examples/store_bench.rs), then runs it; extra
# arguments go to the client (--seconds, --publishers, --window,
# --payload, --levels always,batch,periodic,off).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p fleetmq --bin fleetmq --example store_bench
exec target/release/examples/store_bench --broker target/release/fleetmq "$@"
