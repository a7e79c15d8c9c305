#!/usr/bin/env bash
# System packages the test boards need: a real sshd, cross compilers with their C libraries, qemu-user,
# debootstrap, socat, systemd-analyze, systemd-nspawn, ip, mosquitto, node_exporter; and headless Chromium for the bench report's screenshot.
# Each probe checks what the tests use (a cross compiler must build and link a program against its
# C library, a tool must run), not just that a command of that name exists.
# Installs what is missing when run as root (CI); elsewhere it says what to install and goes on,
# and the tests that need a missing part skip (or fail under CI=true).
set -euo pipefail
need=()
runs() { "$@" >/dev/null 2>&1; }

# Builds and links what a bundle build does (edge_convert/trees.py): libm, libdl, the C library's headers.
cross_builds() {
  local cc=$1 tmp rc=0
  runs command -v "$cc" || return 1
  tmp=$(mktemp -d)
  printf '#include <math.h>\n#include <stdint.h>\n#include <dlfcn.h>\nint main(void){return (int)sqrt(1.0);}\n' >"$tmp/p.c"
  runs "$cc" "$tmp/p.c" -o "$tmp/p" -lm -ldl || rc=1
  rm -rf "$tmp"
  return $rc
}

{ [ -x /usr/sbin/sshd ] && runs command -v ssh && runs command -v ssh-keygen; } || need+=(openssh-server openssh-client)
cross_builds aarch64-linux-gnu-gcc || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
cross_builds arm-linux-gnueabihf-gcc || need+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
runs qemu-aarch64-static --version || need+=(qemu-user-static)
runs command -v update-binfmts || need+=(binfmt-support)
[ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
runs socat -V || need+=(socat)
runs systemd-analyze --version || need+=(systemd)
runs systemd-nspawn --version || need+=(systemd-container) # the booted board: systemd as PID 1
runs ip -V || need+=(iproute2)                                 # and its veth's address, set by hand
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)                # the broker the telemetry tests publish to
runs prometheus-node-exporter --version || need+=(prometheus-node-exporter) # reads the agent's textfile
runs chromium --version || need+=(chromium) # the bench tests screenshot the HTML report
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test boards need: ${need[*]} (apt-get install them as root); tests needing them will skip" >&2
  exit 0
fi
echo "installing test board packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
# What was installed must now pass the same probes: a package that does not bring what the tests use
# is a failure here, with its name, not a test failure later.
cross_builds aarch64-linux-gnu-gcc || { echo "aarch64-linux-gnu-gcc still cannot build against its C library" >&2; exit 1; }
cross_builds arm-linux-gnueabihf-gcc || { echo "arm-linux-gnueabihf-gcc still cannot build against its C library" >&2; exit 1; }
