#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, then runs every test:
# formatting, clippy, the Rust unit and end-to-end tests (cargo nextest),
# and the Python end-to-end suite (paho-mqtt, mosquitto clients; the
# dashboard in headless Chromium, /metrics parsing, promtool on the alert
# rules).
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

echo "== installing test dependencies"
# chromium + chromium-driver: the dashboard browser test; prometheus:
# promtool for the alert rules; openssl: test certificates.
apt_packages=(mosquitto-clients chromium chromium-driver prometheus openssl)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
python3 -m pip install -q --disable-pip-version-check -r broker/tests/python/requirements.txt

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== Rust tests"
cargo build -p fleetmq --locked
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "== Python end-to-end tests"
FLEETMQ_BIN="$PWD/target/debug/fleetmq" python3 -m pytest broker/tests/python -q
