"""`edgectl fleet watch`: the whole fleet, live, from the broker its agents publish to (edge_agent/mqtt_out.py).

One row per board, from its retained state and its stats records: state, release, windows/s (between
its last two stats records), p99, errors, drift alarms, last seen. Boards of the inventory that never
published are rows too, saying so.
"""

import json
import threading
import time

from edge_agent.mqtt_out import TOPIC_VERSION, parse_url, read_auth
from edgectl.errors import EdgectlError

NEVER = "never reported"


class Fleet:
    """The rows, updated from the broker's messages (paho's thread) and read by the display."""

    def __init__(self, expected=()):
        self.lock = threading.Lock()
        self.rows = {name: _row(name, None) for name in expected}
        self._last_stats = {}

    def take(self, topic, payload, now=None):
        """One message; returns the board's row as it now is (None for a topic that is not ours)."""
        parts = topic.split("/")
        if len(parts) < 5 or parts[-4] != TOPIC_VERSION:
            return None
        fleet, board, kind = parts[-3], parts[-2], parts[-1]
        try:
            body = json.loads(payload)
        except ValueError:
            return None
        now = time.time() if now is None else now
        with self.lock:
            row = self.rows.setdefault(board, _row(board, fleet))
            row.update(fleet=fleet, last_seen=now)
            if kind == "state":
                row.update(state=body.get("state"), release=body.get("bundle_id") or row["release"])
            elif kind == "stats":
                before = self._last_stats.get(board)
                if before and now > before[0] and body.get("windows", 0) >= before[1]:
                    row["windows_per_s"] = round((body["windows"] - before[1]) / (now - before[0]), 1)
                self._last_stats[board] = (now, body.get("windows", 0))
                row["p99_us"] = (body.get("latency_us") or {}).get("p99")
                row["drift_alarms"] = (body.get("drift") or {}).get("alarms")
                row.update(
                    windows=body.get("windows"), errors=body.get("errors"), mqtt_dropped=body.get("mqtt_dropped")
                )
            elif kind == "event" and body.get("type") == "start":
                row["release"] = body.get("bundle_id")
            return dict(row)

    def snapshot(self):
        with self.lock:
            return [dict(row) for _, row in sorted(self.rows.items())]


def _row(board, fleet):
    empty = ("release", "windows", "windows_per_s", "p99_us", "errors", "drift_alarms", "mqtt_dropped", "last_seen")
    return {"board": board, "fleet": fleet, "state": NEVER if fleet is None else None, **dict.fromkeys(empty)}


def watch(url, fleet, expected=(), on_message=None, ca_file=None, auth_file=None):
    """Subscribe to the fleet's topics ("+" for every fleet); return (Fleet, stop()). on_message(row) sees
    each update as it comes (paho's thread)."""
    import paho.mqtt.client as mqtt

    tls, host, port, prefix = parse_url(url)
    rows = Fleet(expected)
    topic = f"{prefix}/{TOPIC_VERSION}/{fleet}/+/+"
    connected, refused = threading.Event(), []

    def on_connect(client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe(topic, qos=1)
            connected.set()
        else:
            refused.append(str(reason_code))

    def on_msg(client, userdata, message):
        row = rows.take(message.topic, message.payload)
        if row is not None and on_message is not None:
            on_message(row)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect, client.on_message = on_connect, on_msg
    if auth_file:
        client.username_pw_set(*read_auth(auth_file))
    if tls:
        client.tls_set(ca_certs=ca_file)
    client.reconnect_delay_set(1, 30)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise EdgectlError(f"--mqtt {url}: cannot reach the broker: {exc.strerror or exc}") from None
    client.loop_start()
    if not connected.wait(10):
        client.loop_stop()
        why = f": it said {refused[-1]!r}" if refused else ""
        raise EdgectlError(f"--mqtt {url}: the broker did not accept the connection within 10 s{why}")

    def stop():
        client.loop_stop()
        client.disconnect()

    return rows, stop
