"""The agent's Prometheus metrics as a real node_exporter (Debian's prometheus-node-exporter) scrapes
them from its textfile, and as /metrics serves them, checked against the agent's own records."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest
from boards import sshd
from conftest import missing
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


def scrape(port, timeout=10.0):
    """{(name, labels as a sorted tuple): value} of every sample /metrics serves."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def with_bad_lines(path, out):
    """The sample file with a line of the wrong field count after every 50th, and one unparsable time."""
    lines = path.read_text().splitlines(keepends=True)
    mixed = [lines[0]]
    for i, line in enumerate(lines[1:], start=1):
        mixed.append(line)
        if i % 50 == 0:
            mixed.append("1,2,3\n")
    out.write_text("".join(mixed))
    return out


def test_node_exporter_scrapes_the_agents_textfile_with_the_values_of_its_records(
    xgb_build, synthetic_splits, tmp_path
):
    if not os.path.exists(NODE_EXPORTER):
        missing("prometheus-node-exporter (apt-get install prometheus-node-exporter; make system-deps)")
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    data = with_bad_lines(synthetic_splits[1].path, tmp_path / "mixed.csv")
    got = subprocess.run([sys.executable, "-m", "edge_agent", "run", "--bundle", str(xgb_build.bundle_dir),
                          "--input", str(data), "--metrics-textfile", str(textfiles / "edge_agent.prom")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert got.returncode == 0, got.stderr
    records = [json.loads(line) for line in got.stdout.splitlines()]
    predictions = [r for r in records if r["type"] == "prediction"]
    errors = Counter(r["reason"] for r in records if r["type"] == "error")
    assert predictions and errors
    port = sshd.free_port()
    argv = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
            "--collector.textfile", f"--collector.textfile.directory={textfiles}"]  # fmt: skip
    exporter = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        metrics = scrape(port)
    finally:
        exporter.terminate()
        exporter.wait()
    stage = predictions[0]["stage"]
    assert metrics[("edge_agent_predictions_total", (("class", ""), ("stage", stage)))] == len(predictions)
    assert metrics[("edge_agent_inference_duration_seconds_count", (("stage", stage),))] == len(predictions)
    total_s = sum(p["latency_us"]["total"] for p in predictions) / 1e6
    assert metrics[("edge_agent_inference_duration_seconds_sum", (("stage", stage),))] == pytest.approx(total_s)
    for reason, count in errors.items():
        assert metrics[("edge_agent_input_errors_total", (("reason", reason),))] == count
    info = [key for key in metrics if key[0] == "edge_agent_bundle_info"]
    assert info and ("bundle_id", xgb_build.manifest["bundle_id"]) in info[0][1]
    assert metrics[("process_resident_memory_bytes", ())] > 10 * 2**20
    assert metrics[("node_textfile_scrape_error", ())] == 0  # node_exporter read the file whole


def test_the_agent_serves_metrics_on_a_loopback_port_while_it_runs(xgb_build, synthetic_splits):
    port = sshd.free_port()
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(xgb_build.bundle_dir)]
    argv += ["--metrics-port", str(port)]
    # Its records go nowhere: a pipe nobody read stopped the agent once its 64 KiB filled (backpressure, as
    # designed), and with it the metrics, when one batch of records outgrew the pipe.
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        lines = synthetic_splits[1].path.read_text().splitlines(keepends=True)[:400]
        proc.stdin.write("".join(lines))
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            metrics = scrape(port)
            answered = sum(v for (name, _), v in metrics.items() if name == "edge_agent_predictions_total")
            if answered > 0:
                break
            time.sleep(0.2)
        assert answered > 0
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
        assert f"127.0.0.1:{port}" in listening  # loopback only, never every address
    finally:
        proc.kill()
        proc.wait()
