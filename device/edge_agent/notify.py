"""The sd_notify protocol, without libsystemd: READY, STATUS, STOPPING and watchdog pings.

Pings are sent from the agent's main loop, between samples and on idle ticks,
never from a thread: a main loop that hangs stops pinging, and systemd's
WatchdogSec restarts the agent.
"""

import os
import socket
import time


class Notifier:
    """Sends to $NOTIFY_SOCKET when systemd (or a test) set it; does nothing otherwise."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET")
        self.sock = None
        if address:
            if address.startswith("@"):  # abstract namespace
                address = "\0" + address[1:]
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self.sock.connect(address)
        usec = int(env.get("WATCHDOG_USEC", "0") or 0)
        self.interval = usec / 2e6 if usec else None  # ping at half the timeout, as systemd advises
        self._last = 0.0

    def send(self, message):
        if self.sock is not None:
            self.sock.send(message.encode())

    def ready(self, status=""):
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self):
        """Ping when half the watchdog timeout has passed since the last ping; cheap otherwise."""
        if self.interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.send("WATCHDOG=1")
