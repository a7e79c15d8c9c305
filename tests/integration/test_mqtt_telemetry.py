"""The agent's telemetry through a real MQTT broker (Debian's mosquitto, started on a loopback port):
every stats record of two agents arrives, the retained state and the last will, and a broker
restart mid-stream that loses nothing beyond the stated queue, with the drops counted."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from boards import mosquitto
from conftest import missing, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def broker():
    if not os.path.exists(mosquitto.MOSQUITTO):
        missing("mosquitto (apt-get install mosquitto; make system-deps)")
    started = mosquitto.Broker()
    yield started
    started.remove()


class Subscriber:
    """Everything under edgectl/#, QoS 1, in a persistent session: it survives a broker restart."""

    def __init__(self, broker, name):
        import paho.mqtt.client as mqtt

        self.messages, self.lock, self.subscribed = [], threading.Lock(), threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("edgectl/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.set()
        self.client.on_message = self._got
        self.client.reconnect_delay_set(0.2, 1)
        if broker.users:
            name = next(iter(broker.users))
            self.client.username_pw_set(name, broker.users[name])
        if broker.ca_file:
            self.client.tls_set(ca_certs=broker.ca_file)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        # Subscribed before any agent starts: a record published before the subscription reaches nobody
        # (an agent serves a short test file within milliseconds of its start record).
        assert self.subscribed.wait(20), f"the test's subscriber {name} could not subscribe at {broker.url}"

    def _got(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.retain, json.loads(message.payload)))

    def on(self, suffix):
        with self.lock:
            return [(topic, retained, body) for topic, retained, body in self.messages if topic.endswith(suffix)]

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def agent(bundle, broker, board, *extra, stdin=None):
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle), "--mqtt", broker.url,
            "--mqtt-board", board, "--mqtt-fleet", "lab", *extra]  # fmt: skip
    return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stats_of(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"type":"stats"')]


def test_every_stats_record_of_two_agents_arrives_and_the_state_is_retained(broker, xgb_build, synthetic_splits):
    _, test = synthetic_splits
    watcher = Subscriber(broker, "watcher")
    try:
        running = {b: agent(xgb_build.bundle_dir, broker, b, "--input", str(test.path), "--stats-every", "100")
                   for b in ("a1", "a2")}  # fmt: skip
        written = {b: stats_of(proc.communicate(timeout=120)[0]) for b, proc in running.items()}
        for board, records in written.items():
            assert len(records) > 5 and records[-1]["mqtt_dropped"] == 0
            topic = f"edgectl/v1/lab/{board}/stats"
            count = len(records)
            got = wait_until(lambda t=topic, n=count: len(watcher.on(t)) >= n and watcher.on(t))
            assert [body for _, _, body in got] == records  # every one, in order, as written
            events = [body for topic, _, body in watcher.on(f"{board}/event")]
            assert events[0]["type"] == "start" and not watcher.on(f"{board}/pred")  # predictions: off by default
    finally:
        watcher.stop()
    late = Subscriber(broker, "late")  # a subscriber that comes later still sees each board's last state
    try:
        states = wait_until(lambda: len(late.on("/state")) >= 2 and late.on("/state"))
        assert {topic: (retained, body["state"], body["bundle_id"]) for topic, retained, body in states} == {
            f"edgectl/v1/lab/{b}/state": (True, "stopping", xgb_build.manifest["bundle_id"]) for b in ("a1", "a2")
        }
    finally:
        late.stop()


def test_the_last_will_says_lost_when_the_agent_is_killed(broker, xgb_build, synthetic_splits):
    watcher = Subscriber(broker, "watcher")
    proc = agent(xgb_build.bundle_dir, broker, "k1", "--mqtt-predictions", "all", stdin=subprocess.PIPE)
    try:
        lines = synthetic_splits[1].path.read_text().splitlines(keepends=True)[:200]
        proc.stdin.write("".join(lines))
        proc.stdin.flush()
        assert wait_until(lambda: watcher.on("k1/pred")), "no prediction published with --mqtt-predictions all"
        assert wait_until(lambda: any(b["state"] == "ready" for _, _, b in watcher.on("k1/state")))
        proc.send_signal(signal.SIGKILL)
        assert wait_until(lambda: any(b["state"] == "lost" for _, _, b in watcher.on("k1/state")))
    finally:
        proc.kill()
        proc.wait()
        watcher.stop()


def test_a_broker_restart_mid_stream_loses_nothing_beyond_the_queue_and_counts_the_drops(
    broker, xgb_build, synthetic_splits
):
    lines = synthetic_splits[1].path.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    watcher = Subscriber(broker, "watcher")
    proc = agent(xgb_build.bundle_dir, broker, "r1", "--stats-every", "10", "--mqtt-queue", "20",
                 stdin=subprocess.PIPE)  # fmt: skip
    out = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        third = len(rows) // 3
        proc.stdin.write(header + "".join(rows[:third]))
        proc.stdin.flush()
        assert wait_until(lambda: len(watcher.on("r1/stats")) >= 5)
        broker.stop()
        proc.stdin.write("".join(rows[third : 2 * third]))  # stats records while the broker is away
        proc.stdin.flush()
        assert wait_until(lambda: sum(line.startswith('{"type":"stats"') for line in out) > 60), "agent stalled"
        states_before = len(watcher.on("r1/state"))
        broker.start()
        # Back: the agent reconnects on its own (backoff up to 30 s) and says "ready" again, retained.
        assert wait_until(lambda: len(watcher.on("r1/state")) > states_before, timeout=40), "the agent never came back"
        proc.stdin.write("".join(rows[2 * third :]))
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        reader.join(timeout=10)
        written = stats_of("".join(out))
        dropped = written[-1]["mqtt_dropped"]

        def arrived():  # QoS 1 is at least once: a message in flight when the broker went can come twice
            unique = {json.dumps(b, sort_keys=True) for _, _, b in watcher.on("r1/stats")}
            return unique if len(unique) + dropped >= len(written) else None

        unique = wait_until(arrived, timeout=20)
        got = len({json.dumps(b, sort_keys=True) for _, _, b in watcher.on("r1/stats")})
        print(f"broker restart: {len(written)} stats written, {got} received, {dropped} dropped (queue 20)")
        assert dropped > 0  # the queue overflowed while the broker was away, and the agent counted it
        assert unique and len(unique) == len(written) - dropped  # every record not counted as dropped arrived
        assert unique <= {json.dumps(r, sort_keys=True) for r in written}
    finally:
        proc.kill()
        proc.wait()
        watcher.stop()


def test_fleet_watch_shows_every_board_from_the_broker_and_the_inventorys_silent_ones(
    broker, xgb_build, synthetic_splits, tmp_path
):
    _, test = synthetic_splits
    inventory = tmp_path / "lab.ini"
    inventory.write_text("[lab]\nw1\nw2\nw3 ansible_host=10.0.0.3\n")
    argv = [sys.executable, "-m", "edgectl.cli", "fleet", "watch", "--mqtt", broker.url, "-i", str(inventory),
            "--mqtt-fleet", "lab", "--duration", "8", "--json"]  # fmt: skip
    watcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)  # subscribed before the agents start
    running = [agent(xgb_build.bundle_dir, broker, b, "--input", str(test.path), "--stats-every", "100")
               for b in ("w1", "w2")]  # fmt: skip
    for proc in running:
        proc.communicate(timeout=120)
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    updates, final = lines[:-1], lines[-1]
    assert final["type"] == "fleet" and {row["board"] for row in updates} == {"w1", "w2"}
    rows = {row["board"]: row for row in final["boards"]}
    for board in ("w1", "w2"):
        row = rows[board]
        assert row["state"] == "stopping" and row["release"] == xgb_build.manifest["bundle_id"], row
        assert row["errors"] == 0 and row["p99_us"] > 0 and row["windows_per_s"] > 0 and row["fleet"] == "lab"
    assert rows["w3"]["state"] == "never reported" and rows["w3"]["last_seen"] is None


def test_mqtts_with_a_password_delivers_and_a_wrong_password_is_said_while_serving_goes_on(xgb_build, synthetic_splits):
    """A broker as a fleet owner runs one: TLS from its own CA, no anonymous clients."""
    if not os.path.exists(mosquitto.MOSQUITTO):
        missing("mosquitto (apt-get install mosquitto; make system-deps)")
    secure = mosquitto.Broker(tls=True, users={"fleet": "s3cret:with:colons", "agent": "pa ss"})
    watcher = Subscriber(secure, "watcher")
    try:
        path = synthetic_splits[1].path
        good = agent(xgb_build.bundle_dir, secure, "t1", "--input", str(path), "--stats-every", "100",
                     "--mqtt-ca", secure.ca_file, "--mqtt-auth", secure.auth_file("agent"))  # fmt: skip
        bad = agent(xgb_build.bundle_dir, secure, "t2", "--input", str(path), "--stats-every", "100",
                    "--mqtt-ca", secure.ca_file, "--mqtt-auth", secure.auth_file("agent", "wrong"))  # fmt: skip
        out, err = good.communicate(timeout=120)
        assert good.returncode == 0, err
        records = stats_of(out)
        got = wait_until(lambda: len(watcher.on("t1/stats")) >= len(records) and watcher.on("t1/stats"))
        assert [body for _, _, body in got] == records
        bad_out, bad_err = bad.communicate(timeout=120)
        assert bad.returncode == 0, bad_err  # the broker's refusal never stops serving
        assert "the MQTT broker refused the connection: Not authorized" in bad_err
        assert bad_err.count("refused the connection") == 1  # said once, not at every retry
        assert stats_of(bad_out)[-1]["mqtt_connected"] is False and stats_of(bad_out)[-1]["windows"] > 0
        assert not watcher.on("t2/")
        # fleet watch through the same broker: its CA and a password file; a wrong password is named
        argv = [sys.executable, "-m", "edgectl.cli", "fleet", "watch", "--mqtt", secure.url, "--mqtt-ca",
                secure.ca_file, "--duration", "1", "--json"]  # fmt: skip
        shown = subprocess.run([*argv, "--mqtt-auth", secure.auth_file("fleet")], capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        final = json.loads(shown.stdout.splitlines()[-1])
        assert {row["board"]: row["state"] for row in final["boards"]} == {"t1": "stopping"}
        refused = subprocess.run([*argv, "--mqtt-auth", secure.auth_file("fleet", "nope")], capture_output=True,
                                 text=True)  # fmt: skip
        assert refused.returncode == 1 and "Not authorized" in refused.stderr, refused.stderr
    finally:
        watcher.stop()
        secure.remove()
