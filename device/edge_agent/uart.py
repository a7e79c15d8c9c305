"""A serial port opened with pyserial (8N1, raw) and written without ever blocking.

Both ends of a link read and write the same port; a blocking write on one side
while the other side also writes would deadlock them. Writes go to an outbox that
drains as far as the port accepts, and the owner's select loop waits for the port
to be writable while anything is left.
"""

import os

from edge_agent.errors import AgentError

MAX_OUTBOX = 64 * 1024  # past this, senders hold new frames back


def open_port(device, baud):
    """Open a serial device; raises AgentError naming it if that fails."""
    try:
        import serial
    except ImportError:
        raise AgentError("a serial link needs pyserial and cobs: pip install pyserial cobs") from None
    try:
        port = serial.Serial(device, baud, timeout=0)
    except (serial.SerialException, ValueError) as exc:
        raise AgentError(f"cannot open serial port {device}: {exc}") from None
    os.set_blocking(port.fileno(), False)
    return port


class Outbox:
    """Bytes waiting for the port; `send` queues and drains, `drain` after the port is writable."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = bytearray()
        self.closed = False  # the other end is gone (EIO on a pty) for now: bytes drop, as on a cut wire

    def send(self, data):
        self.buffer += data
        self.drain()

    def drain(self):
        while self.buffer and not self.closed:
            try:
                written = os.write(self.fd, self.buffer)
            except BlockingIOError:
                return
            except OSError:
                self.closed = True
                self.buffer.clear()
                return
            self.closed = False
            del self.buffer[:written]

    def full(self):
        return len(self.buffer) >= MAX_OUTBOX

    def waiting(self):
        return bool(self.buffer)
