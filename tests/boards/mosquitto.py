"""A real MQTT broker for the telemetry tests: Debian's mosquitto on a loopback port, with its own
config and persistence folder; `restart` stops it and starts it again on the same port. With tls=True
it speaks mqtts with a certificate from its own CA (`ca_file`); with users={name: password} it lets
in only those (mosquitto_passwd), and `auth_file(name)` is a file for --mqtt-auth."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from boards import sshd

MOSQUITTO = "/usr/sbin/mosquitto"
PASSWD = "/usr/bin/mosquitto_passwd"


class Broker:
    def __init__(self, host="127.0.0.1", tls=False, users=None):
        """host: the address to listen on (a booted board reaches this machine on its veth's address)."""
        self.dir = Path(tempfile.mkdtemp(prefix="mqtt-"))
        self.host, self.port, self.users = host, sshd.free_port(), users or {}
        self.url = f"{'mqtts' if tls else 'mqtt'}://{host}:{self.port}"
        self.ca_file = self._certificates() if tls else None
        config = f"listener {self.port} {host}\nuser root\n"  # root: its folder is ours
        config += f"persistence true\npersistence_location {self.dir}/\nmax_queued_messages 100000\n"
        if tls:
            config += f"cafile {self.ca_file}\ncertfile {self.dir}/server.pem\nkeyfile {self.dir}/server.key\n"
        if users:
            for name, password in users.items():
                subprocess.run([PASSWD, *(["-c"] if name == next(iter(users)) else []), "-b",
                                str(self.dir / "passwd"), name, password], check=True, capture_output=True)  # fmt: skip
            config += f"allow_anonymous false\npassword_file {self.dir}/passwd\n"
        else:
            config += "allow_anonymous true\n"
        (self.dir / "mosquitto.conf").write_text(config)
        self.process = None
        self.start()

    def auth_file(self, name, password=None):
        """A --mqtt-auth file for this user (with another password to be refused)."""
        path = self.dir / f"auth-{name}-{password or 'right'}"
        path.write_text(f"{name}:{password or self.users[name]}\n")
        return str(path)

    def _certificates(self):
        """A CA and a server certificate for the broker's address, made with openssl."""
        d, address = self.dir, self.host

        def openssl(*argv):
            subprocess.run(["openssl", *argv], check=True, capture_output=True)

        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=edgectl test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")  # fmt: skip
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={address}",
                "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")  # fmt: skip
        (d / "san.ext").write_text(f"subjectAltName=IP:{address}\n")
        openssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{d}/san.ext", "-out", f"{d}/server.pem")  # fmt: skip
        return str(d / "ca.pem")

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
