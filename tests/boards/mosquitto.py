"""A real MQTT broker for the telemetry tests: Debian's mosquitto on a loopback port, with its own
config and persistence folder; `restart` stops it and starts it again on the same port."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from boards import sshd

MOSQUITTO = "/usr/sbin/mosquitto"


class Broker:
    def __init__(self, host="127.0.0.1"):
        """host: the address to listen on (a booted board reaches this machine on its veth's address)."""
        self.dir = Path(tempfile.mkdtemp(prefix="mqtt-"))
        self.host, self.port = host, sshd.free_port()
        self.url = f"mqtt://{host}:{self.port}"
        (self.dir / "mosquitto.conf").write_text(
            f"listener {self.port} {host}\nallow_anonymous true\nuser root\n"  # root: its folder is ours
            f"persistence true\npersistence_location {self.dir}/\nmax_queued_messages 100000\n"
        )
        self.process = None
        self.start()

    def start(self, timeout=10.0):
        log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115 (the broker's, closed with it)
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {(self.dir / 'mosquitto.log').read_text()}")

    def stop(self):
        if self.process is not None:
            self.process.terminate()  # saves its persistence file on the way out
            self.process.wait(timeout=10)
            self.process = None

    def restart(self):
        self.stop()
        self.start()

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
