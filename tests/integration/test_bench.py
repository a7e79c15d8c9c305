"""`edgectl bench` on real boards (the local board, an OpenSSH board): the run record against its
schema, the agent's predictions against `edge-agent run`, the HTML report rendered by headless
Chromium, and throttled and over-budget runs reported as such."""

import json
import os
import re
import shutil
import subprocess

import pytest
from boards.arm64 import CPUINFO_A72
from cli import edgectl
from conftest import missing

from edge_convert import bundle
from edgectl import bench, bench_report, cascade, profiles
from edgectl.targets import parse_target

QUICK = ["--warmup", "20", "--min-queries", "300", "--min-duration", "0.3"]
QUICK_RULES = {"warmup": 20, "min_queries": 300, "min_duration_s": 0.3}


def validate(record):
    try:
        import jsonschema
    except ImportError:
        missing("jsonschema (pip install -e '.[test]') to check the run record against its schema")
    schema = json.loads(bench.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(record, schema, cls=jsonschema.Draft202012Validator)


def screenshot(html_path, tmp_path, height=2400):
    """Render the report in headless Chromium; check the PNG is a real, non-blank page."""
    chromium = shutil.which("chromium")
    if chromium is None:
        missing("chromium (apt-get install chromium) to render the HTML report")
    try:
        from PIL import Image
    except ImportError:
        missing("pillow (pip install pillow) to read the report's screenshot")
    png = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={png}",
            f"--window-size=1200,{height}",
            html_path.as_uri(),
        ],
        capture_output=True,
        timeout=180,
    )
    assert png.is_file() and png.stat().st_size > 20_000
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, height)
    colours = image.getcolors(maxcolors=1 << 24)
    assert len(colours) > 200  # text, tables, plot lines: far from a blank page
    white = max(count for count, rgb in colours if rgb == (255, 255, 255))
    assert white < 0.97 * image.size[0] * image.size[1]
    return png


def offline_html(html):
    """The report loads nothing: no scripts, styles or images from anywhere; only the SVG namespace."""
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}


def test_bench_on_the_local_board_agrees_with_the_agent_and_reports_in_three_forms(
    xgb_build, synthetic_splits, tmp_path, agent
):
    _, test = synthetic_splits
    board, out = f"local:{tmp_path / 'board'}", tmp_path / "out"
    proc = edgectl(
        "bench", str(xgb_build.bundle_dir), board, "--data", str(test.path), *QUICK, "--out", str(out), "--json", "-q"
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    validate(record)
    assert record == json.loads((out / "bench.json").read_text())
    (r,) = record["results"]
    assert r["bundle_id"] == xgb_build.manifest["bundle_id"] and r["deploy"] == {"action": "uploaded", "current": None}
    assert not (tmp_path / "board" / "current").exists()  # measured beside what the board serves, never switched
    assert r["rules"]["queries"] >= 300 and r["rules"]["duration_s"] >= 0.3
    lat = r["latency_us"]["query"]
    assert lat["n"] == r["rules"]["queries"] and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert r["early_stopping"]["estimate_us"] >= lat["p90"] and r["early_stopping"]["min_queries"] == 64
    assert r["stages"][0]["share"] == 1 and r["stages"][0]["kind"] == "tree-lib"
    assert r["memory"]["peak_rss_kb"] >= r["memory"]["steady_rss_kb"] > 10_000
    assert r["init"]["clock"] == "/proc/self/stat" and r["init"]["process_to_ready_ms"] > r["init"]["load_ms"] > 0
    assert r["board"]["arch"] == os.uname().machine and r["board"]["cores"] == os.cpu_count()
    assert r["throttling"]["status"] == "unknown" and r["budgets"]["status"] == "not checked"

    # The bench feeds the agent's own pipeline: the first pass scores every window as `edge-agent run` does.
    served = agent("run", "--bundle", str(xgb_build.bundle_dir), "--input", str(test.path))
    preds = [json.loads(line) for line in served.stdout.decode().splitlines() if '"prediction"' in line]
    raw = json.loads((out / "board" / f"{r['bundle_id']}.json").read_text())["predictions"]
    assert list(zip(raw["stream"], raw["t"], raw["score"])) == [(p["stream"], p["t"], p["score"]) for p in preds]
    assert r["rules"]["windows_per_pass"] == len(preds) == r["accuracy"]["all_windows"]["n"]
    assert r["accuracy"]["all_windows"]["f1"] > 0.7

    again = edgectl(
        "bench", str(xgb_build.bundle_dir), board, "--data", str(test.path), *QUICK, "--out", str(tmp_path / "again")
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "bench.json").read_text())["results"][0]["deploy"]["action"] == (
        "reused release"
    )
    assert again.stdout.startswith("# edgectl bench on local:") and "| latency p50 / p90 / p99 µs |" in again.stdout
    html = (out / "bench.html").read_text()
    offline_html(html)
    assert "<svg" in html and "Latency CDF" in html and r["bundle_id"] in html
    screenshot(out / "bench.html", tmp_path)


def fake_pi(root, throttled="50005", temp_milli="81500"):
    """A sysfs/procfs tree of a hot, under-volted Raspberry Pi 4 (read through EDGE_AGENT_SYSFS_ROOT)."""
    firmware = root / "sys/devices/platform/soc/soc:firmware"
    firmware.mkdir(parents=True)
    (firmware / "get_throttled").write_text(f"{throttled}\n")
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text(f"{temp_milli}\n")
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    (root / "proc/cpuinfo").write_text(CPUINFO_A72)
    return root


def tiny_profile(directory):
    """A profile for this machine's arch, named for a Pi 4, with a latency budget no board can meet."""
    text = (profiles.PROFILE_DIR / "rpi4.toml").read_text()
    text = re.sub(r"(?m)^name = .*$", 'name = "tinypi"', text)
    text = re.sub(r"(?m)^board = .*$", 'board = "Raspberry Pi 4 Model B (test: tiny latency budget)"', text)
    text = re.sub(r"(?m)^arch = .*$", f'arch = "{os.uname().machine}"', text)
    text = re.sub(r"(?m)^latency_ms = .*$", "latency_ms = 0.001", text)
    directory.mkdir()
    (directory / "tinypi.toml").write_text(text)
    return directory


def test_a_throttled_over_budget_run_is_flagged_in_every_output(xgb_build, synthetic_splits, tmp_path):
    _, test = synthetic_splits
    env = {
        "EDGE_AGENT_SYSFS_ROOT": str(fake_pi(tmp_path / "pi")),
        "EDGECTL_PROFILES": str(tiny_profile(tmp_path / "p")),
    }
    out = tmp_path / "out"
    proc = edgectl(
        "bench",
        str(xgb_build.bundle_dir),
        f"local:{tmp_path / 'board'}",
        "--data",
        str(test.path),
        *QUICK,
        "--out",
        str(out),
        env=env,
    )
    assert proc.returncode == 3, proc.stderr  # a failed budget
    record = json.loads((out / "bench.json").read_text())
    validate(record)
    (r,) = record["results"]
    bid = r["bundle_id"]
    assert record["flags"] == {"throttled": [bid], "over_budget": [bid], "degraded": []}
    assert r["board"]["model"] == "Raspberry Pi 4 Model B Rev 1.4" and r["board"]["cpu"] == "Cortex-A72 (BCM2835)"
    assert r["thermal"]["after"]["temp_c"] == 81.5 and r["thermal"]["after"]["throttled"]["raw"] == "0x50005"
    assert r["throttling"] == {"status": "throttled", "why": "active: throttled, under-voltage"}
    assert r["monitor"]["temp_c"] and set(r["monitor"]["temp_c"]) == {81.5}
    budgets = r["budgets"]
    assert budgets["profile"] == "tinypi" and budgets["source"].startswith("inferred from the board model")
    failed = [c["budget"] for c in budgets["checks"] if c["status"] == "fail"]
    assert failed == ["latency p99"]
    assert (
        f"**THROTTLED: {bid}" in proc.stdout and f"**OVER BUDGET: {bid} on profile tinypi: latency p99" in proc.stdout
    )
    html = (out / "bench.html").read_text()
    assert 'class="alert throttled"' in html and 'class="alert over-budget"' in html and "temperature" in html
    png = screenshot(out / "bench.html", tmp_path, height=3000)
    shutil.copy(png, tmp_path / "throttled-report.png")


@pytest.mark.ssh
@pytest.mark.slow
def test_bench_on_the_ssh_board_deploys_uploads_once_and_reuses(xgb_build, synthetic_splits, ssh_board, tmp_path):
    _, test = synthetic_splits
    home = tmp_path / "home"
    target = parse_target(f"ssh://{ssh_board.alias}{home}")
    try:
        first, _ = bench.run_bench([xgb_build.bundle_dir], target, test.path, rules=QUICK_RULES, offline=True)
        second, _ = bench.run_bench([xgb_build.bundle_dir], target, test.path, rules=QUICK_RULES, offline=True)
    finally:
        target.close()
    for record in (first, second):
        validate(record)
    r = first["results"][0]
    assert r["deploy"]["action"] == "uploaded" and second["results"][0]["deploy"]["action"] == "reused release"
    assert r["board"]["arch"] == os.uname().machine and r["board"]["runtimes"]["numpy"]
    assert r["rules"]["queries"] >= 300 and r["accuracy"]["all_windows"]["f1"] > 0.7
    assert second["results"][0]["accuracy"] == r["accuracy"]  # same windows, same scores
    uploaded = list((home / "bench").glob("data-*/test_FD001.txt"))
    assert len(uploaded) == 1 and uploaded[0].read_bytes() == test.path.read_bytes()
    assert "| latency p50 / p90 / p99 µs |" in bench_report.markdown(first)


@pytest.fixture(scope="module")
def cascade_dir(xgb_build, conv1d_build, tmp_path_factory):
    """XGBoost then Conv1D INT8, joined with a band wide enough that both stages answer."""
    out = tmp_path_factory.mktemp("bench-cascade") / "bundle"
    out.mkdir()
    golden = json.loads((xgb_build.bundle_dir / "golden.json").read_text())
    second = json.loads((conv1d_build.bundle_dir / "golden.json").read_text())
    for a, b in zip(golden["windows"], second["windows"]):
        a["scores"].update(b["scores"])
    stages = []
    for result in (xgb_build, conv1d_build):
        stages.append(result.manifest["stages"][0])
        shutil.copytree(result.bundle_dir / stages[-1]["name"], out / stages[-1]["name"])
    spec = {k: xgb_build.manifest[k] for k in cascade.SPEC_KEYS}
    bundle.write_bundle(out, "cascade", spec, stages, golden, {"model": "cascade"}, cascade={"low": 0.05, "high": 0.6})
    return out


@pytest.mark.slow
def test_bench_of_a_cascade_and_a_single_stage_side_by_side(cascade_dir, xgb_build, synthetic_splits, tmp_path):
    _, test = synthetic_splits
    target = parse_target(f"local:{tmp_path / 'board'}")
    record, _ = bench.run_bench([cascade_dir, xgb_build.bundle_dir], target, test.path, rules=QUICK_RULES)
    validate(record)
    cascade, single = record["results"]
    shares = {s["name"]: s["share"] for s in cascade["stages"]}
    assert set(shares) == {"xgboost", "conv1d"} and all(0 < v < 1 for v in shares.values())
    assert sum(shares.values()) == pytest.approx(1)
    assert sum(s["windows"] for s in cascade["stages"]) == cascade["rules"]["queries"]
    assert [s["kind"] for s in cascade["stages"]] == ["tree-lib", "tflite"]
    assert cascade["board"]["runtimes"]["tflite"]["package"] and cascade["accuracy"]["all_windows"]["f1"] > 0.7
    assert single["stages"][0]["share"] == 1
    html = bench_report.html(record)
    assert "Which stage answered" in html and html.count("latency over the run") == 2
