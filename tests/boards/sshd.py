"""A real OpenSSH server on a loopback port, as a test board, with its own keys and an ssh config.

Runs as root (a non-root sshd can only log in its own user). With `chroot`, the
login lands in that root file system: commands run there (through qemu-user for
a foreign arch), which makes a directory an emulated board.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


@dataclass
class SshBoard:
    alias: str  # the Host name in `config`
    port: int
    config: Path  # ssh client config (pass as EDGECTL_SSH_CONFIG)
    dir: Path
    process: subprocess.Popen

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(alias="board", chroot=None, timeout=10.0):
    """Start sshd on 127.0.0.1 and return the SshBoard; the caller stops it."""
    # Short directory: ssh's ControlPath and sshd sockets have a path length limit.
    d = Path(tempfile.mkdtemp(prefix="ecb-", dir="/tmp"))
    os.chmod(d, 0o755)
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = free_port()
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {d / 'host'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}",
        f"PidFile {d / 'sshd.pid'}",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "Subsystem sftp internal-sftp",
        "SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    if chroot:
        lines.append(f"ChrootDirectory {chroot}")
    (d / "sshd_config").write_text("\n".join(lines) + "\n")
    host_key = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (d / "config").write_text(
        f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
        f"  IdentityFile {d / 'client'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {d / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    with open(d / "sshd.log", "wb") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(d / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return SshBoard(alias, port, d / "config", d, proc)
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"sshd did not listen on {port} within {timeout} s")
