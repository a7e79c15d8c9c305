#!/usr/bin/env bash
# Build a Debian bookworm arm64 root file system for the emulated board and pack it as a tarball.
# Runs as root: debootstrap's second stage runs arm64 binaries through qemu-user and binfmt_misc.
# usage: arm64_rootfs.sh OUT.tar        (the test fixture caches OUT by a hash of this file)
set -euo pipefail
out=$1
mirror=${EDGECTL_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/edgectl-arm64.XXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

grep -q binfmt_misc /proc/mounts || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "qemu-aarch64 binfmt is not registered" >&2; exit 1; }

debootstrap --arch=arm64 --variant=minbase --foreign \
  --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
cp /usr/bin/qemu-aarch64-static "$root/usr/bin/"
chroot "$root" /debootstrap/debootstrap --second-stage
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
tar -C "$root" -cf "$out.partial" .
mv "$out.partial" "$out"
echo "arm64 root file system: $out ($(du -h "$out" | cut -f1))"
