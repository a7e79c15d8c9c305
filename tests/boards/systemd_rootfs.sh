#!/usr/bin/env bash
# Build a Debian bookworm root file system that boots systemd (the booted test board) and pack it as a tarball.
# usage: systemd_rootfs.sh OUT.tar        (the test fixture caches OUT by a hash of this file)
set -euo pipefail
out=$1
mirror=${EDGECTL_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/edgectl-systemd.XXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,openssh-server,python3,python3-venv,iproute2,libpam-systemd,ca-certificates \
  bookworm "$root" "$mirror"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/etc/ssh/ssh_host_*
echo board > "$root/etc/hostname"
tar -C "$root" -cf "$out.partial" .
mv "$out.partial" "$out"
echo "systemd board root file system: $out ($(du -h "$out" | cut -f1))"
