#!/usr/bin/env bash
# Builds the Debian package and proves it installs like a Debian service,
# in a fresh Debian 12 root made with debootstrap (minbase, plus man-db for
# `man` and systemd for `systemd-analyze verify`), as root:
#
#   apt install ./fleetmq_*.deb      (in the chroot; dependencies from the mirror)
#   fleetmq --version                names this commit
#   man fleetmq, man fleetmq-certs-init, bash completion loads
#   the conffile, the unit enabled (not started), /var/lib/fleetmq
#   systemd-analyze verify           on the installed unit, no warning
#   lintian --fail-on error          (on the host)
#   apt purge fleetmq                leaves exactly the data directory
#
# The pristine root is cached as target/debian/bookworm-root.tar (about a
# minute to make, seconds to unpack); each run unpacks a fresh copy.
# Prints "Debian package: PASS ..." or "Debian package: FAIL ..." last.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

fail() {
  echo "test-deb: $*" >&2
  echo "Debian package: FAIL ($*)"
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot)"
for tool in debootstrap lintian; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt install $tool)"
done

packaging/build-deb.sh
deb="$(ls -t target/debian/fleetmq_*.deb | head -n 1)"
echo "test-deb: built $deb ($(du -h "$deb" | cut -f1)) after $((SECONDS - started)) s"

echo "test-deb: lintian"
lintian --fail-on error --tag-display-limit 0 "$deb" || fail "lintian reports errors on $deb"

# The fresh root.
cache=target/debian/bookworm-root.tar
if [ ! -f "$cache" ]; then
  echo "test-deb: debootstrap bookworm (minbase, man-db, systemd) into the cache"
  bootstrap="$(mktemp -d)"
  debootstrap --variant=minbase --include=man-db,systemd bookworm "$bootstrap" \
    http://deb.debian.org/debian >/dev/null || fail "debootstrap failed"
  tar -C "$bootstrap" -cf "$cache.partial" .
  rm -rf "$bootstrap"
  mv "$cache.partial" "$cache"
fi
root="$(mktemp -d)"
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  # Never follow a mount out of the root (a /proc that failed to unmount).
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$cache"
# mktemp makes 0700; man-db and apt drop privileges and need to see /.
chmod 0755 "$root"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
# The chroot has no /dev/pts: dpkg's pty logging would print "E: Can not
# write log" on every apt call.
no_pty="-o Dpkg::Use-Pty=0"

# Every path outside package-manager bookkeeping and caches, to compare
# before the install and after the purge.
snapshot() {
  in_root find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run \
    -o -path /tmp -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache \
    -o -path /var/log \) -prune -o -print | sort
}

cp "$deb" "$root/tmp/"
# Dependencies the cached root lacks come from the mirror, as on a real host.
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root apt-get update -q >/dev/null || fail "apt-get update failed in the chroot"
snapshot >"$root/tmp/before.list"
echo "test-deb: apt install ./$(basename "$deb")"
in_root sh -c "cd /tmp && DEBIAN_FRONTEND=noninteractive apt install -y -q $no_pty ./fleetmq_*.deb" \
  || fail "apt install ./$(basename "$deb") failed in the chroot"

version="$(in_root fleetmq --version)" || fail "fleetmq --version failed"
echo "test-deb: $version"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
case "$version" in
  "fleetmq "*"(git $commit, built "*) ;;
  *) fail "fleetmq --version says '$version', not commit $commit and a build date" ;;
esac

for page in fleetmq fleetmq-run fleetmq-certs-init fleetmq-acl-check; do
  in_root man "$page" 2>/dev/null | grep -q "^NAME" || fail "man $page shows no page"
done
in_root man fleetmq | grep -q "fleetmq-certs(1)" || fail "man fleetmq does not list fleetmq-certs(1)"
in_root bash -c '. /usr/share/bash-completion/completions/fleetmq && complete -p fleetmq' >/dev/null \
  || fail "the bash completion does not load"
for file in /usr/share/zsh/vendor-completions/_fleetmq /usr/share/fish/vendor_completions.d/fleetmq.fish \
  /usr/share/doc/fleetmq/copyright /usr/share/doc/fleetmq/changelog.Debian.gz; do
  [ -s "$root$file" ] || fail "$file is missing"
done
grep -qx /etc/fleetmq/fleetmq.toml "$root/var/lib/dpkg/info/fleetmq.conffiles" \
  || fail "/etc/fleetmq/fleetmq.toml is not a conffile"
[ -d "$root/var/lib/fleetmq" ] || fail "/var/lib/fleetmq was not created"
unit=/lib/systemd/system/fleetmq.service
[ -f "$root$unit" ] || fail "$unit is missing"
[ -L "$root/etc/systemd/system/multi-user.target.wants/fleetmq.service" ] \
  || fail "the unit is not enabled (no multi-user.target.wants link)"

echo "test-deb: systemd-analyze verify $unit"
verify_log="$(in_root systemd-analyze verify "$unit" 2>&1)" || fail "systemd-analyze verify: $verify_log"
# verify exits 0 on unknown keys and bad paths: any line naming the unit fails.
if printf '%s\n' "$verify_log" | grep -q fleetmq; then
  fail "systemd-analyze verify warns: $verify_log"
fi

echo "test-deb: apt purge fleetmq keeps the data directory"
echo "kept" >"$root/var/lib/fleetmq/marker"
in_root env DEBIAN_FRONTEND=noninteractive apt purge -y -q $no_pty fleetmq \
  || fail "apt purge fleetmq failed"
# What apt installed only for fleetmq (procps) goes too, to compare roots.
in_root env DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -q $no_pty >/dev/null \
  || fail "apt-get autoremove --purge failed"
snapshot >"$root/tmp/after.list"
left="$(diff "$root/tmp/before.list" "$root/tmp/after.list" | grep '^[<>]' || true)"
expected="$(printf '> /var/lib/fleetmq\n> /var/lib/fleetmq/marker')"
if [ "$left" != "$expected" ]; then
  fail "after apt purge exactly /var/lib/fleetmq and its marker should be left, the root's changes are: $(printf '%s' "${left:-none}" | tr '\n' ' ')"
fi

echo "Debian package: PASS ($(basename "$deb"), installed, verified and purged in a debootstrap chroot; $((SECONDS - started)) s)"
