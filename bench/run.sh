#!/usr/bin/env bash
# The one command behind bench/results/report.md: builds fleetmq and the
# bench in release, installs rumqttd 0.20 (with client-certificate
# verification) into target/tools once, and runs every scenario against
# fleetmq, Mosquitto (Debian's /usr/sbin/mosquitto) and rumqttd, writing
# bench/results/. About 20 minutes on 2 cores; arguments are passed on to
# `fleetmq-bench run` (e.g. --brokers fleetmq,mosquitto --reps 1
# --only connect,flow).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
[ -x /usr/sbin/mosquitto ] || echo "note: /usr/sbin/mosquitto missing (apt-get install mosquitto); pass --brokers to leave it out" >&2

cargo build --release --locked -p fleetmq -p fleetmq-bench

# rumqttd 0.20.0 checks client certificates only when built with
# `verify-client-cert`. Not --locked: its lockfile pins metrics 0.22.1,
# which current rustc rejects (E0521); the newest 0.22.x builds. The
# websocket feature is left out (not measured). See docs/decisions/0062.
if [ ! -x target/tools/bin/rumqttd ]; then
  cargo install --root target/tools rumqttd@0.20.0 \
    --no-default-features --features use-rustls,verify-client-cert
fi

exec target/release/fleetmq-bench run "$@"
