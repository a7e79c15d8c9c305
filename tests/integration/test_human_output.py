"""Human output without Python leftovers: what deploy, status and inspect print is words and aligned
columns, never None, True, a dict dump or an empty interval."""

import io
import json
import re
import shutil

from cli import edgectl

from edge_convert import bundle
from edgectl import cascade
from edgectl.console import pairs
from edgectl.inspect_bundle import band_text
from edgectl.live import LiveView

LEFTOVERS = ("None", "True", "False", "{", "}", "'")


def leftovers(text):
    return [bit for bit in LEFTOVERS if bit in text]


def value_columns(text):
    """Where the value starts on each top-level "key  value" line (block headers have none)."""
    return {len(m.group()) for m in re.finditer(r"^\S+ +(?=\S)", text, re.M)}


def test_deploy_and_status_print_words_in_one_column(xgb_build, tmp_path):
    board = f"local:{tmp_path / 'board'}"
    (tmp_path / "board").mkdir()
    empty = edgectl("status", board)
    assert empty.returncode == 3 and "no release deployed" in empty.stdout and leftovers(empty.stdout) == []
    deployed = edgectl("deploy", str(xgb_build.bundle_dir), board, "-q")
    assert deployed.returncode == 0, deployed.stderr
    assert leftovers(deployed.stdout) == [], deployed.stdout
    assert re.search(r"^  healthy +yes$", deployed.stdout, re.M), deployed.stdout  # the nested health, as lines
    assert len(value_columns(deployed.stdout)) == 1, deployed.stdout
    shown = edgectl("status", board)
    assert shown.returncode == 0 and leftovers(shown.stdout) == [], shown.stdout
    assert re.search(r"^health +healthy$", shown.stdout, re.M) and len(value_columns(shown.stdout)) == 1


def test_nested_results_read_as_lines():
    """A status with the agent's last stats and a pending switch: the shapes a local board without a service
    cannot show."""
    stats = {"type": "stats", "windows": 12000, "errors": 0, "errors_by_reason": {},
             "windows_by_stage": {"xgboost": 12000}, "latency_us": {"p50": 116.0, "p90": 219.04, "p99": None},
             "latency_us_by_stage": {"xgboost": {"p50": 116.0, "p90": 219.0, "p99": 320.0}},
             "uptime_s": 86412.37, "degraded": False}  # fmt: skip
    result = {"release": "x-1", "previous": None, "releases": [], "last_stats": stats, "pending_switch": {"to": "x-2"},
              "detail": "checksum mismatch: golden.json\nrefused"}  # fmt: skip
    text = pairs(result)
    assert leftovers(text) == [], text
    assert "  latency_us           p50 116, p90 219, p99 -" in text and "    xgboost  p50 116, p90 219, p99 320" in text
    assert "uptime_s             86412" in text and "degraded             no" in text
    assert "detail          checksum mismatch: golden.json\n                refused" in text  # its column kept


def test_the_monitor_view_says_dash_until_it_has_data_and_keeps_its_columns():
    out = io.StringIO()
    view = LiveView(out=out)
    view.draw()  # before any record: no latency, no RSS, no link counters yet
    link = {"frames_bad": 0, "duplicates_dropped": 0, "skipped_by_agent": 2}
    for stage, answer in (
        ("hist-gradient-boosting", {"prediction": 1}),
        ("xgb", {"prediction": 2, "class": "bearing"}),
    ):
        rec = {"type": "prediction", "stream": "pump-1", "t": 1700000000.5, "stage": stage, "score": 0.91234, **answer,
               "latency_us": {"total": 120.0}}  # fmt: skip
        view.add(rec, link)
    view.draw()
    text = out.getvalue()
    assert leftovers(text) == [] and "p50 -  p90 -  p99 -   RSS - MB" in text, text
    header, _, first, last = text.splitlines()[-4:]  # the table of the last draw: header, rule, two rows
    at = header.index("prediction")
    assert (first[at:], last[at:]) == ("1", "2 (bearing)"), text
    assert "1700000000.5" in last and "hist-gradient-boosting" in first


def test_an_empty_band_reads_none():
    assert band_text({"low": 0.5074, "high": 0.5074}) == "none"
    assert band_text({"low": 0.168, "high": 0.914}) == "[0.1680, 0.9140)"


def empty_band_cascade(xgb_build, out):
    """xgb_build's stage twice, joined as a cascade whose band is empty (low == high: stage 1 answers every
    window), as a calibration that finds stage 1 good enough writes it."""
    manifest = xgb_build.manifest
    first = manifest["stages"][0]
    again = dict(
        first, name="again", source="again/src", libs={a: f"again/{p.split('/')[-1]}" for a, p in first["libs"].items()}
    )
    for stage in (first, again):
        shutil.copytree(xgb_build.bundle_dir / first["name"], out / stage["name"])
    golden = json.loads((xgb_build.bundle_dir / bundle.GOLDEN_NAME).read_text())
    for window in golden["windows"]:
        window["scores"]["again"] = window["scores"][first["name"]]
    spec = {key: manifest[key] for key in (*cascade.SPEC_KEYS, "drift") if key in manifest}
    band = {"low": first["threshold"], "high": first["threshold"]}
    bundle.write_bundle(out, "cascade", spec, [first, again], golden, {"model": "cascade"}, cascade=band)
    return out


def test_inspect_prints_an_empty_band_as_none(xgb_build, tmp_path):
    shown = edgectl("inspect", str(empty_band_cascade(xgb_build, tmp_path / "cascade")))
    assert shown.returncode == 0, shown.stderr
    assert "cascade band none: stage 1 answers every window" in shown.stdout, shown.stdout
    assert not re.search(r"\[(\d\.\d+), \1\)", shown.stdout)
