#!/usr/bin/env bash
# Builds the Debian package target/debian/fleetmq_<version>-<revision>_<arch>.deb
# with cargo-deb (docs/decisions/0092-debian-package-with-cargo-deb.md):
#
# 1. a release build of the broker, without debug info (the package ships a
#    stripped binary; line tables only cost link time);
# 2. the man pages and completions, written by that binary from its own clap
#    definition (`fleetmq generate-cli-docs`), and the systemd unit with the
#    packaged path /usr/bin/fleetmq, into target/debian/stage/;
# 3. cargo-deb, reading [package.metadata.deb] in broker/Cargo.toml and the
#    maintainer scripts in packaging/debian/.
#
# cargo-deb is installed once into target/tools (about 3 minutes on 2
# cores, then cached). Set SOURCE_DATE_EPOCH for a reproducible build date.
#
# FLEETMQ_DEB_PROFILE=dev packages the debug build instead (stripped too):
# the same files, scripts and unit, without the release build's ~11 minutes
# on 2 cores. CI uses it to test the packaging within its time budget
# (run-tests.sh); a package to install is built with the default, release.
#
# `packaging/build-deb.sh --tool-only` installs cargo-deb and stops
# (run-tests.sh does it in the background, while tests run).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
tools="$PWD/target/tools"
if ! "$tools/bin/cargo-deb" --version 2>/dev/null | grep -qF "$cargo_deb_version"; then
  cargo install --locked --quiet --root "$tools" "cargo-deb@$cargo_deb_version"
fi
if [ "${1:-}" = "--tool-only" ]; then exit 0; fi

profile="${FLEETMQ_DEB_PROFILE:-release}"
case "$profile" in
  release)
    export CARGO_PROFILE_RELEASE_DEBUG=0
    cargo build --release --locked -p fleetmq
    binary=target/release/fleetmq
    ;;
  dev)
    cargo build --locked -p fleetmq
    binary=target/debug/fleetmq
    ;;
  *)
    echo "build-deb: FLEETMQ_DEB_PROFILE must be release or dev, not '$profile'" >&2
    exit 1
    ;;
esac

stage=target/debian/stage
rm -rf "$stage"
mkdir -p "$stage"
"$binary" generate-cli-docs "$stage" >/dev/null
# config/fleetmq.service is the unit for a manual install (/usr/local/bin);
# the package's differs in the path, its header comment and Documentation=.
{
  echo "# fleetmq as a systemd service, from the Debian package: enabled on"
  echo "# install, not started (systemctl start fleetmq). Run from a Mosquitto"
  echo "# configuration with a drop-in (systemctl edit fleetmq):"
  echo "#   ExecStart="
  echo "#   ExecStart=/usr/bin/fleetmq run --mosquitto-conf /etc/fleetmq/mosquitto.conf"
  echo
  # Documentation= also makes `systemd-analyze verify` check the page exists.
  sed -n '/^\[Unit\]/,$p' config/fleetmq.service \
    | sed -e 's#/usr/local/bin/fleetmq#/usr/bin/fleetmq#g' \
      -e '/^Description=/a Documentation=man:fleetmq(1)'
} >"$stage/fleetmq.service"
if grep -q /usr/local "$stage/fleetmq.service"; then
  echo "build-deb: $stage/fleetmq.service still names /usr/local; fix the sed in $0" >&2
  exit 1
fi

"$tools/bin/cargo-deb" -p fleetmq --profile "$profile" --no-build --strip --locked --output target/debian/
