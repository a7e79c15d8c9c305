"""The booted board: Debian bookworm with systemd as PID 1 under systemd-nspawn, behind its own sshd.

Built once per machine by systemd_rootfs.sh (debootstrap, about 70 s) and cached as a tarball keyed
by the script's hash. A board unpacks it once and boots an overlay of it (its writes in `upper`):
`power_off` then `boot` is a reboot that keeps them, `cut` is a SIGKILL of nspawn (the board loses
power; writes the guest made are already in this host's page cache, so a cut models a crash of the
whole board, not the loss of unsynced data), `stop` throws everything away, with the empty cgroups
nspawn leaves behind. Facts this relies on: ../shared/NOTES-SYSTEMD.md.

The board has its own network namespace (`--network-veth`): its loopback, and so the service's
127.0.0.1:7878, is its own, never this host's. The veth pair gets a /30 of 10.213.0.0/16 by hand
(the host side here, the board's `host0` by a oneshot unit before sshd), and sshd listens there.
"""

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from boards import rootfs, sshd

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "systemd_rootfs.sh"
NSPAWN = "systemd-nspawn"
NET = ipaddress.ip_network("10.213.0.0/16")
# Addresses the board's host0 before sshd starts (DefaultDependencies=no: early, before network.target).
NET_UNIT = """\
[Unit]
Description=edgectl test board: the veth's address, set by hand
DefaultDependencies=no
Before=ssh.service network.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip link set lo up
ExecStart=/usr/sbin/ip addr add {address}/30 dev host0
ExecStart=/usr/sbin/ip link set host0 up
[Install]
WantedBy=multi-user.target
"""
LEFT_CGROUPS = [Path("/sys/fs/cgroup") / h / d for h in ("systemd", "unified") for d in ("payload", "supervisor")]


def tools_missing():
    """What this machine lacks to build and boot the board, or None."""
    return rootfs.first_missing(("debootstrap", NSPAWN, sshd.SSHD, "ip"))


class SystemdBoard:
    """Unpack, overlay, boot; `stop` undoes it all. `alias` is its Host in `config` (EDGECTL_SSH_CONFIG)."""

    def __init__(self, alias="sysboard"):
        rootfs.CACHE.mkdir(parents=True, exist_ok=True)
        self.alias, self.process, self.init_pid = alias, None, None
        self.machine = f"eb-{secrets.token_hex(3)}"  # its veth is ve-<machine>: unique, within 15 characters
        self.dir = Path(tempfile.mkdtemp(prefix="run-sd-", dir=rootfs.CACHE))
        self.merged = self.dir / "merged"
        try:
            self._prepare()
            self.boot()
        except BaseException:
            self.stop()
            raise

    def _prepare(self):
        lower, upper, work = (self.dir / name for name in ("lower", "upper", "work"))
        for folder in (lower, upper, work, self.merged):
            folder.mkdir()
        subprocess.run(["tar", "-C", str(lower), "-xf", str(rootfs.cached_tarball(RECIPE, "systemd"))], check=True)
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.merged)], check=True)
        self.host_address, self.address = _free_pair()
        self.port = 22
        units = self.merged / "etc" / "systemd" / "system"
        (units / "board-net.service").write_text(NET_UNIT.format(address=self.address))
        (units / "multi-user.target.wants").mkdir(exist_ok=True)
        (units / "multi-user.target.wants" / "board-net.service").symlink_to("../board-net.service")
        etc = self.merged / "etc" / "ssh"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "ssh_host_ed25519_key")],
                       check=True)  # fmt: skip
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / "client")], check=True)
        root_ssh = self.merged / "root" / ".ssh"
        root_ssh.mkdir(mode=0o700, exist_ok=True)
        shutil.copy(self.dir / "client.pub", root_ssh / "authorized_keys")
        (etc / "sshd_config.d" / "board.conf").write_text(
            f"Port {self.port}\nListenAddress {self.address}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
        )
        host_key = (etc / "ssh_host_ed25519_key.pub").read_text().split()
        (self.dir / "known_hosts").write_text(f"{self.address} {host_key[0]} {host_key[1]}\n")
        self.config = self.dir / "config"
        self.config.write_text(
            f"Host {self.alias}\n  HostName {self.address}\n  Port {self.port}\n  User root\n"
            f"  IdentityFile {self.dir / 'client'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.dir / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        )

    def boot(self, timeout=60.0):
        """Power on: systemd as PID 1; returns the seconds until `ssh true` answered."""
        self._clear_last_veth()
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        argv = [NSPAWN, "--boot", "--register=no", "--keep-unit", "--console=passive", "-M", self.machine,
                "--network-veth", "-D", str(self.merged)]  # fmt: skip
        with open(self.dir / "console.log", "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the board did not boot: {(self.dir / 'console.log').read_text()[-2000:]}")
            # Wired again at every try: after a power cut, the last boot's veth of the same name can still be
            # there, and vanish with the address just given to it, as this boot's own comes.
            if self._wire_host_side() and self.ssh("true", timeout=5).returncode == 0:
                self.init_pid = _child_of(self.process.pid)  # the board's systemd
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"the board's sshd did not answer within {timeout} s")

    def _clear_last_veth(self, timeout=10.0):
        """After a power cut the last boot's veth can outlive its board for a moment, and nspawn cannot make
        this boot's while it is there ("Failed to add new veth interfaces: File exists"): wait for it to
        go, and delete it if it stays (a real board's link goes with its power)."""
        veth = f"ve-{self.machine}"
        deadline = time.monotonic() + timeout
        while Path(f"/sys/class/net/{veth}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if Path(f"/sys/class/net/{veth}").exists():
            subprocess.run(["ip", "link", "delete", veth], capture_output=True)

    def _wire_host_side(self):
        """Give this host's end of the veth its address once nspawn has made it; True when done."""
        veth = f"ve-{self.machine}"
        address = ["ip", "addr", "replace", f"{self.host_address}/30", "dev", veth]
        for argv in (address, ["ip", "link", "set", veth, "up"]):
            if not Path(f"/sys/class/net/{veth}").exists():
                return False  # not made yet, or the last boot's, gone as we looked
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0 and Path(f"/sys/class/net/{veth}").exists():
                raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
            if done.returncode != 0:
                return False
        return True

    def ssh(self, command, timeout=120, input=None):
        """Run a shell command on the board as root (CompletedProcess, text); `input` is its stdin."""
        argv = ["ssh", "-F", str(self.config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", self.alias, command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)

    def power_off(self, timeout=30.0):
        """A clean shutdown (SIGTERM to nspawn: the board's systemd halts)."""
        self._end(signal.SIGTERM, timeout)

    def cut(self):
        """Power loss: SIGKILL of the board's PID 1 (so of every process in it), then of nspawn.
        The board's systemd runs in its own session and PID namespace: a SIGKILL of nspawn alone
        would leave it running under this host's PID 1."""
        self._kill_board()
        self._end(signal.SIGKILL, 10.0)

    def _end(self, sig, timeout):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _kill_board(self):
        """SIGKILL the board's PID 1: the kernel then kills every process of its PID namespace."""
        if self.init_pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self.init_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.init_pid = None

    def stop(self):
        """Power off, unmount, delete the board and the cgroups nspawn leaves behind."""
        self.power_off()
        self._kill_board()  # a board that did not halt in time
        subprocess.run(["umount", "-l", str(self.merged)], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        for top in LEFT_CGROUPS:  # empty once the board is off; deepest first
            folders = [p for p in top.rglob("*") if p.is_dir()] if top.is_dir() else []
            for folder in [*sorted(folders, key=lambda p: -len(p.parts)), top]:
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _free_pair():
    """(this host's, the board's) addresses of a /30 in NET that no interface here uses yet."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    for _ in range(100):
        base = NET.network_address + 4 * secrets.randbelow(NET.num_addresses // 4)
        host, board = str(base + 1), str(base + 2)
        if f" {host}/" not in used and f" {board}/" not in used:
            return host, board
    raise RuntimeError(f"no free /30 in {NET} for the board's veth")


def _child_of(parent):
    """The pid of a process whose parent is `parent`, or None."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    return int(entry.name)
    return None
