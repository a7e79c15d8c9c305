"""`edgectl bench`: measure bundles on a board with the agent's bench mode; one versioned run record.

For each bundle: deploy it (or use it where it is already current), upload the
sample file once, run `edge-agent bench` on the board, and bring its JSON back.
The host adds what the board cannot know: accuracy against the replay's labels,
the bundle's file sizes, the profile's budgets, and whether the run was throttled.
"""

import datetime
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from edge_agent import bench as agent_bench
from edge_agent import metrics
from edge_agent.manifest import alarm_of, sha256_file
from edgectl import __version__, deploy, evaluate, inspect_bundle, profiles
from edgectl import board as boards
from edgectl.data import cmapss
from edgectl.errors import EdgectlError
from edgectl.targets import q, sh

RECORD_FORMAT = "edgectl-bench"
RECORD_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "bench-v1.schema.json"
DEFAULT_RULES = {
    "warmup": agent_bench.DEFAULT_WARMUP,
    "min_queries": agent_bench.DEFAULT_MIN_QUERIES,
    "min_duration_s": agent_bench.DEFAULT_MIN_DURATION_S,
}


def run_bench(bundles, target, data, profile=None, rules=None, say=lambda msg: None, offline=False):
    """Bench every bundle on the target; return (run record, {bundle_id: the board's raw result}).

    rules: warmup, min_queries, min_duration_s (None: the agent's defaults). offline: as for deploy.
    """
    rules = {**DEFAULT_RULES, **{k: v for k, v in (rules or {}).items() if v is not None}}
    data = Path(data)
    if not data.is_file():
        raise EdgectlError(f"cannot read --data {data}: no such file")
    if profile is not None:
        profiles.get(profile)  # an unknown profile fails now, not after every bundle was measured
    infos = [inspect_bundle.summary(b) for b in bundles]  # verifies every bundle before touching the board
    split, labels_note = cmapss.labelled(data)
    remote_data = upload_data(target, data, say)
    results, raw = [], {}
    for bundle_dir, info in zip(bundles, infos):
        bundle_id = info["bundle_id"]
        with boards.locked(target):  # no deploy replaces the release while it is measured
            deployed = ensure_release(bundle_dir, target, say, offline)
            say(f"{target}: benchmarking {bundle_id}")
            board = run_on_board(target, f"{target.home}/releases/{bundle_id}", remote_data, rules, say)
        raw[bundle_id] = board
        results.append(bundle_result(bundle_dir, info, deployed, board, split, labels_note, profile, data))
    record = {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "edgectl_version": __version__,
        "target": str(target),
        "data": {
            "path": str(data),
            "bytes": data.stat().st_size,
            "sha256": sha256_file(data),
            "labels": labels_note,
        },
        "rules": rules,
        "profile": profile,
        "results": results,
    }
    record["flags"] = flags(results)
    return record, raw


def flags(results):
    """The bundle ids a reader must not miss: throttled runs, failed budgets, degraded stages."""
    return {
        "throttled": [r["bundle_id"] for r in results if r["throttling"]["status"] == "throttled"],
        "over_budget": [r["bundle_id"] for r in results if r["budgets"]["status"] == "fail"],
        "degraded": [r["bundle_id"] for r in results if r["degraded"]],
    }


def upload_data(target, data, say):
    """Put the sample file on the board once (keyed by its sha256); return its path there."""
    remote_dir = f"{target.home}/bench/data-{sha256_file(data)[:16]}"
    remote = f"{remote_dir}/{data.name}"
    if target.run(["test", "-f", remote]).returncode == 0:
        return remote
    say(f"uploading {data.name} to {target}")
    partial = f"{target.home}/bench/.partial-{Path(remote_dir).name}"
    sh(target, f"mkdir -p {q(target.home)}/bench && rm -rf {q(partial)}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(data, Path(tmp) / data.name)  # a copy, not a link: the ssh upload is a tar stream
        target.put_dir(Path(tmp), partial)
    sh(target, f"rm -rf {q(remote_dir)} && mv -T {q(partial)} {q(remote_dir)}")
    return remote


def ensure_release(bundle_dir, target, say, offline=False):
    """Upload and verify the bundle as a release on the board (or reuse one that verifies) without
    switching `current`: benchmarking never changes what the board serves. Call with the board's lock held."""
    staged = deploy.stage_release(bundle_dir, target, say, offline=offline)
    return {"action": "reused release" if staged["reused"] else "uploaded", "current": deploy.current_release(target)}


def run_on_board(target, release, remote_data, rules, say):
    """Run `edge-agent bench` on the board; relay its progress lines; return its JSON result."""
    argv = [*target.agent_argv(), "bench", "--bundle", release, "--input", remote_data]
    argv += ["--warmup", str(rules["warmup"]), "--min-queries", str(rules["min_queries"])]
    argv += ["--min-duration", str(rules["min_duration_s"])]
    proc = target.popen(argv, stdin=subprocess.DEVNULL)
    messages = []

    def relay():
        for line in proc.stderr:
            text = line.decode(errors="replace").rstrip()
            messages.append(text)
            if text.startswith("bench: "):
                say(f"{target}: {text[len('bench: ') :]}")

    reader = threading.Thread(target=relay, daemon=True)  # stderr beside stdout: neither pipe can fill up
    reader.start()
    out = proc.stdout.read()
    proc.wait()
    reader.join()
    problems = [m for m in messages if not m.startswith("bench: ")]
    if proc.returncode != 0:
        detail = "\n".join(problems[-5:]) or f"exit code {proc.returncode}"
        raise EdgectlError(f"{target}: edge-agent bench of {release} failed:\n{detail}")
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith("{"):
            return _board_result(line, target, release)
    raise EdgectlError(f"{target}: edge-agent bench of {release} printed no result")


def _board_result(line, target, release):
    """The board's bench result, if it is one this edgectl reads."""
    try:
        result = json.loads(line)
    except json.JSONDecodeError:
        raise EdgectlError(f"{target}: edge-agent bench of {release} printed a damaged result") from None
    if (result.get("format"), result.get("version")) != (agent_bench.BENCH_FORMAT, agent_bench.BENCH_VERSION):
        raise EdgectlError(
            f"{target}: the agent there writes bench results {result.get('format')} version "
            f"{result.get('version')}, this edgectl reads {agent_bench.BENCH_FORMAT} {agent_bench.BENCH_VERSION}; "
            "deploy again to update it"
        )
    return result


def bundle_result(bundle_dir, info, deployed, board, split, labels_note, profile_name, data=None):
    """One bundle's entry of the run record: the board's measurements plus accuracy, sizes, budgets."""
    kinds = {s["name"]: s for s in info["stages"]}
    stages = [
        {**s, "kind": kinds[s["name"]]["kind"], "model_bytes": kinds[s["name"]]["model_bytes"]} for s in board["stages"]
    ]
    manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
    accuracy, accuracy_note = score(board, split, manifest, labels_note, data)
    built_for = manifest.get("built_with", {}).get("profiles", [])
    profile, source = profiles.for_board(profile_name, board["board"], built_for)
    return {
        "bundle_id": info["bundle_id"],
        "bundle_path": str(bundle_dir),
        "deploy": deployed,
        "board": board["board"],
        "thermal": board["thermal"],
        "throttling": throttling(board["thermal"]),
        "rules": board["rules"],
        "latency_us": board["latency_us"],
        "early_stopping": board["early_stopping"],
        "stages": stages,
        "init": board["init"],
        "first_query_us": board["first_query_us"],
        "memory": board["memory"],
        "throughput": board["throughput"],
        "errors": board["errors"],
        "degraded": board["degraded"],
        # An agent older than the drift list in its bench result says nothing: None, not "no alarm".
        "drift": evaluate.drift_summary(board["drift"]) if "drift" in board else None,
        "sizes": {
            "bundle_bytes": info["bundle_bytes"],
            "archive_bytes": info["archive_bytes"],
            "model_bytes": {s["name"]: s["model_bytes"] for s in info["stages"]},
        },
        "accuracy": accuracy,
        "accuracy_note": accuracy_note,
        "budgets": budgets(profile, source, info, board),
        "cdf": board["cdf"],
        "timeline": board["timeline"],
        "monitor": board["monitor"],
    }


def score(board, split, manifest, labels_note, data=None):
    """The board's predictions scored on the labelled replay (by the bundle's task), or (None, why not).

    Labels: a C-MAPSS split, or the bundle's label column in a CSV with a header.
    """
    task = manifest.get("output", {}).get("task", "binary")
    classes = manifest.get("output", {}).get("classes") or ["0", "1"]
    if split is None:
        lookup = evaluate.csv_label_lookup(data, manifest) if data is not None else None
        if lookup is None:
            return None, labels_note
        labels_note = f"labels from column {manifest['output']['label']} of {Path(data).name}"
    else:
        horizon = cmapss.label_horizon(manifest)
        if horizon is None:
            return None, f"no accuracy: the bundle's label is not a C-MAPSS 'fails within' label ({split.path.name})"
        lookup = cmapss.label_lookup(split, manifest["input"], horizon)
    p = board["predictions"]
    predicted = p["prediction"]
    if split is not None and task == "regression":  # cycles left, scored as the "fails within" alarm
        predicted = metrics.alarms(predicted, manifest["stages"][0]["threshold"], alarm_of(manifest)).astype(int)
        task = "binary"
    records = [
        {"type": "prediction", "stream": s, "t": t, "prediction": y} for s, t, y in zip(p["stream"], p["t"], predicted)
    ]
    try:
        return evaluate.accuracy(records, lookup, task, len(classes)), labels_note
    except KeyError as exc:
        return None, f"no accuracy: window {exc.args[0]} has no label in {Path(data or split.path).name}"


def throttling(thermal):
    """{"status": throttled | not throttled | unknown, "why"} from the flags before and after the run."""
    before, after = thermal["before"]["throttled"], thermal["after"]["throttled"]
    if before is None and after is None:
        return {"status": "unknown", "why": "no throttling flags on this board (no vcgencmd, no get_throttled)"}
    before, after = before or {"now": [], "since_boot": []}, after or {"now": [], "since_boot": []}
    now = sorted(set(before["now"]) | set(after["now"]))
    new = sorted(set(after["since_boot"]) - set(before["since_boot"]))
    why = []
    if now:
        why.append(f"active: {', '.join(now)}")
    if new:
        why.append(f"occurred during the run: {', '.join(new)}")
    if why:
        return {"status": "throttled", "why": "; ".join(why)}
    earlier = f" (since boot, before the run: {', '.join(before['since_boot'])})" if before["since_boot"] else ""
    return {"status": "not throttled", "why": f"flags clear before and after{earlier}"}


def budgets(profile, source, info, board):
    """The profile's budgets against the board's peak RSS and p99 query latency."""
    if profile is None:
        return {"profile": None, "source": source, "status": "not checked", "checks": [], "notes": []}
    measured = {"rss_kb": board["memory"]["peak_rss_kb"], "p99_us": board["latency_us"]["query"]["p99"]}
    checks = profiles.check_budgets(profile, info, measured)
    notes = []
    if profile["arch"] != board["board"]["arch"]:
        notes.append(f"profile {profile['name']} is for {profile['arch']}; this board is {board['board']['arch']}")
    status = profiles.budget_status(checks)
    return {"profile": profile["name"], "source": source, "status": status, "checks": checks, "notes": notes}


def write_outputs(record, raw, out_dir, markdown_text, html_text):
    """bench.json, bench.md, bench.html and board/<bundle_id>.json (with predictions) in out_dir."""
    out_dir = Path(out_dir)
    (out_dir / "board").mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(record, indent=1) + "\n")
    (out_dir / "bench.md").write_text(markdown_text + "\n")
    (out_dir / "bench.html").write_text(html_text)
    for bundle_id, result in raw.items():
        (out_dir / "board" / f"{bundle_id}.json").write_text(json.dumps(result) + "\n")
    return {name: str(out_dir / name) for name in ("bench.json", "bench.md", "bench.html")}
