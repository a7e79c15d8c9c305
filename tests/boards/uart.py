"""Two pty pairs joined by a relay thread: a serial cable between the agent and the host that the
test can make noisy (flipped and dropped bytes). It never blocks a writer: it buffers what the far
end has not read yet, up to a limit past which bytes are lost, as on a wire with nobody listening."""

import os
import random
import select
import threading

BUFFER_LIMIT = 1 << 20


class Cable:
    def __init__(self, flip=0.0, drop=0.0, seed=0):
        self.agent_master, agent_slave = os.openpty()
        self.host_master, host_slave = os.openpty()
        self.agent_path, self.host_path = os.ttyname(agent_slave), os.ttyname(host_slave)
        self._slaves = (agent_slave, host_slave)  # held open: a restarted end finds its device
        for fd in (self.agent_master, self.host_master):
            os.set_blocking(fd, False)
        self.flip, self.drop = flip, drop
        self.rng = random.Random(seed)
        self.flipped = self.dropped = 0
        self.running = True
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self):
        other = {self.agent_master: self.host_master, self.host_master: self.agent_master}
        pending = {fd: bytearray() for fd in other}  # bytes on their way to fd
        while self.running:
            writable = [fd for fd, data in pending.items() if data]
            ready, can_write, _ = select.select(list(other), writable, [], 0.05)
            for fd in ready:
                try:
                    data = bytearray(os.read(fd, 4096))
                except OSError:
                    continue
                self._spoil(data)
                pending[other[fd]] += data
                if len(pending[other[fd]]) > BUFFER_LIMIT:
                    pending[other[fd]].clear()  # nobody reads that end: the bytes are lost
            for fd in can_write:
                try:
                    del pending[fd][: os.write(fd, pending[fd])]
                except OSError:
                    continue

    def _spoil(self, data):
        if data and self.rng.random() < self.flip:
            data[self.rng.randrange(len(data))] ^= self.rng.randrange(1, 256)
            self.flipped += 1
        if len(data) > 1 and self.rng.random() < self.drop:
            start = self.rng.randrange(len(data))
            del data[start : start + self.rng.randrange(1, 64)]
            self.dropped += 1

    def close(self):
        self.running = False
        self.thread.join()
        for fd in (self.agent_master, self.host_master, *self._slaves):
            os.close(fd)
