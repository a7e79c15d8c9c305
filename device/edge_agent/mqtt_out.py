"""Telemetry through an MQTT broker (paho-mqtt 2.x): the agent's records, published as they are written.

Topics, one JSON object per message, under BASE = <prefix>/v1/<fleet>/<board> (prefix "edgectl"
unless the URL's path gives one):
  BASE/state  retained: {"state": "ready" | "degraded" | "stopping" | "lost", "bundle_id", "time"};
              the broker publishes "lost" itself (the MQTT last will) when the agent vanishes
  BASE/stats  every stats record
  BASE/event  start, drift and stream records
  BASE/pred   prediction records: off by default; all, alarms (alarm 1), or every Nth
QoS 1. Serving never waits for the broker: at most `queue` messages wait for its acknowledgement
(queued while it is away, resent when it is back), what does not fit is dropped and counted
(`mqtt_dropped` in the stats records; the retained state and the final stats record always go), and paho reconnects by
itself with backoff (1 s to 30 s).
"""

import json
import os
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

from edge_agent.errors import AgentError

TOPIC_VERSION = "v1"
DEFAULT_QUEUE = 10_000


def parse_url(url):
    """mqtt://host[:1883][/prefix] or mqtts://host[:8883][/prefix] -> (tls, host, port, prefix)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise AgentError(f"--mqtt {url!r}: use mqtt://HOST[:PORT][/PREFIX] or mqtts://HOST[:PORT][/PREFIX]")
    if parts.username or parts.password:
        raise AgentError("--mqtt: no user or password in the URL (it would show in `ps`); use --mqtt-auth FILE")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise AgentError(f"--mqtt {url!r}: the port must be a number") from None
    prefix = parts.path.strip("/") or "edgectl"
    if any(c in prefix for c in "+#"):
        raise AgentError(f"--mqtt {url!r}: the topic prefix cannot hold MQTT wildcards (+ #)")
    return tls, parts.hostname, port, prefix


def read_auth(path):
    """(username, password) from a file whose first line is `username:password`."""
    try:
        line = open(path, encoding="utf-8").readline().strip()  # noqa: SIM115 (one line, closed by refcount)
    except OSError as exc:
        raise AgentError(f"--mqtt-auth {path}: cannot read it: {exc.strerror}") from None
    user, sep, password = line.partition(":")
    if not sep or not user:
        raise AgentError(f"--mqtt-auth {path}: the first line must be username:password")
    return user, password


def parse_predictions(text):
    """--mqtt-predictions: off, all, alarms, or N (every Nth prediction)."""
    if text in ("off", "all", "alarms"):
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise AgentError(f"--mqtt-predictions {text!r}: use off, all, alarms or a count N (every Nth)")


class Publisher:
    """Publishes the record lines written to it (a file-like `write`), per the topics above."""

    def __init__(self, url, board=None, fleet="default", ca_file=None, auth_file=None, predictions="off",
                 queue=DEFAULT_QUEUE):  # fmt: skip
        import paho.mqtt.client as mqtt  # only agents that publish need paho-mqtt

        tls, host, port, prefix = parse_url(url)
        self.board = board or socket.gethostname()
        for what, name in (("board", self.board), ("fleet", fleet)):
            if not name or any(c in name for c in "/+#"):
                raise AgentError(f"--mqtt-{what} {name!r}: a name without / + #")
        self.base = f"{prefix}/{TOPIC_VERSION}/{fleet}/{self.board}"
        self.predictions = predictions
        self.queue = queue
        self.bundle_id = None
        self.state = "ready"
        self.sent = self.dropped = self.pending = self._predictions_seen = 0
        self.connected = False
        self._refused = None
        self._lock = threading.Lock()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-agent-{fleet}-{self.board}-{os.getpid()}"
        )
        client.reconnect_delay_set(1, 30)
        client.will_set(f"{self.base}/state", json.dumps({"state": "lost", "board": self.board}), qos=1, retain=True)
        if auth_file:
            client.username_pw_set(*read_auth(auth_file))
        if tls:
            client.tls_set(ca_certs=ca_file)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        client.connect_async(host, port, keepalive=30)
        client.loop_start()  # paho's own thread: the network, acknowledgements, reconnects

    def write(self, text):
        """Record lines as the agent writes them; routed by their type, which every record names first."""
        for line in text.splitlines():
            if line.startswith('{"type":"stats"'):
                self._publish("stats", line, always='"final":true' in line)  # it holds the final drop count
                self._state_from_stats(line)
            elif line.startswith('{"type":"prediction"'):
                if self._wanted(line):
                    self._publish("pred", line)
            elif line.startswith('{"type":"start"'):
                self.bundle_id = json.loads(line).get("bundle_id")
                self._publish("event", line)
                self._publish_state()
            elif line.startswith(('{"type":"drift"', '{"type":"stream"')):
                self._publish("event", line)

    def flush(self):
        """Nothing to flush: paho sends from its own thread."""

    def stats(self):
        """Counters for the agent's stats records."""
        with self._lock:
            return {"mqtt_connected": self.connected, "mqtt_sent": self.sent, "mqtt_dropped": self.dropped}

    def close(self, timeout=5.0):
        """Say "stopping" (retained), give what is queued up to `timeout` seconds to reach the broker
        (a reconnect included), disconnect; what did not go is said on stderr."""
        self.state = "stopping"
        self._publish_state()
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.pending:
            print(f"edge-agent: {self.pending} telemetry messages not delivered: the broker was away", file=sys.stderr)
        self.client.disconnect()
        self.client.loop_stop()

    def _wanted(self, line):
        if self.predictions == "off":
            return False
        if self.predictions == "all":
            return True
        if self.predictions == "alarms":  # a regression's alarm, or a binary bundle's positive prediction
            return '"alarm":1' in line or ('"prediction":1,' in line and '"scores"' not in line)
        self._predictions_seen += 1
        return self._predictions_seen % self.predictions == 0

    def _state_from_stats(self, line):
        stats = json.loads(line)
        drifting = (stats.get("drift") or {}).get("drifting")
        state = "degraded" if drifting or stats.get("state_error") else "ready"
        if state != self.state:
            self.state = state
            self._publish_state()

    def _publish_state(self):
        body = json.dumps({"state": self.state, "board": self.board, "bundle_id": self.bundle_id, "time": time.time()})
        return self._publish("state", body, retain=True)

    def _publish(self, topic, body, retain=False, always=False):
        with self._lock:
            if self.pending >= self.queue and not (retain or always):  # the state and the final stats always go
                self.dropped += 1
                return
            self.pending += 1  # queued or in flight until the broker acknowledges it
        self.client.publish(f"{self.base}/{topic}", body, qos=1, retain=retain)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            self.connected = not reason_code.is_failure
        if reason_code.is_failure and str(reason_code) != self._refused:  # said once, not at every retry
            self._refused = str(reason_code)
            say = f"edge-agent: the MQTT broker refused the connection: {reason_code}; serving goes on"
            print(say, file=sys.stderr)
        if self.connected and self.bundle_id:  # before the start record, that record publishes it
            self._publish_state()  # the retained state after a broker restart, replacing its "lost"

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            self.connected = False

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            self.sent += 1
            self.pending -= 1


class Tee:
    """Write records to the agent's output and to its telemetry sinks (the publisher, the metrics)."""

    def __init__(self, out, *sinks):
        self.out, self.sinks = out, sinks

    def write(self, text):
        self.out.write(text)
        for sink in self.sinks:
            sink.write(text)

    def flush(self):
        self.out.flush()
