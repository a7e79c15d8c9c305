"""The real agent (a subprocess) on a real bundle: self-test, records, bad input, tampering."""

import json
import shutil

import pytest

from edge_agent.manifest import load_bundle, write_manifest


def records(proc):
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def test_agent_serves_the_test_split_with_a_record_per_window(xgb_build, synthetic_splits, agent):
    _, test = synthetic_splits
    proc = agent("run", "--bundle", str(xgb_build.bundle_dir), "--input", str(test.path), "--stats-every", "100")
    assert proc.returncode == 0, proc.stderr
    recs = records(proc)
    start, final = recs[0], recs[-1]
    assert start["type"] == "start" and start["self_test"]["windows"] > 0
    assert start["bundle_id"] == xgb_build.manifest["bundle_id"]
    preds = [r for r in recs if r["type"] == "prediction"]
    length = xgb_build.manifest["window"]["length"]
    expected = sum(max(0, (test.units == u).sum() - length + 1) for u in set(test.units))
    assert len(preds) == expected == final["windows"]
    assert [r["seq"] for r in preds] == list(range(1, expected + 1))
    for r in preds[:50]:
        assert set(r["latency_us"]) == {"wait", "parse", "features", "inference", "total"}
        assert r["rss_kb"] > 0 and 0.0 <= r["score"] <= 1.0
        assert r["prediction"] == int(r["score"] >= xgb_build.manifest["stages"][0]["threshold"])
    stats = [r for r in recs if r["type"] == "stats"]
    assert len(stats) == expected // 100 + 1 and final["final"] is True
    assert final["latency_us"]["p50"] > 0 and final["errors"] == 0


def test_malformed_lines_become_error_records_and_nothing_else_changes(xgb_build, synthetic_splits, agent):
    _, test = synthetic_splits
    good = test.path.read_bytes().splitlines(keepends=True)[:60]
    bad = [
        b"1 2 3\n",  # wrong field count
        b"1 40 " + b"abc " * 24 + b"\n",  # not a number
        b"1,41," + b"nan," * 23 + b"1\n",  # NaN where the bundle has no imputation
        b"\xff\xfe\xfd\n",  # bad UTF-8
        b"7" * 70000 + b"\n",  # over-long
        b'{"unit": 1}\n',  # JSON missing fields
    ]
    mixed = good[:35] + bad + good[35:]
    clean = agent("run", "--bundle", str(xgb_build.bundle_dir), stdin=b"".join(good))
    dirty = agent("run", "--bundle", str(xgb_build.bundle_dir), stdin=b"".join(mixed))
    assert dirty.returncode == 0, dirty.stderr
    errors = [r for r in records(dirty) if r["type"] == "error"]
    assert [e["reason"] for e in errors] == [
        "field-count",
        "not-a-number",
        "missing-value",
        "bad-utf8",
        "too-long",
        "missing-field",
    ]
    assert [e["line"] for e in errors] == list(range(36, 42))

    def scores(proc):
        return [(r["stream"], r["t"], r["score"]) for r in records(proc) if r["type"] == "prediction"]

    assert scores(dirty) == scores(clean)  # the bad lines touched no window
    assert records(dirty)[-1]["errors_by_reason"]["too-long"] == 1


def tampered_copy(xgb_build, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(xgb_build.bundle_dir, copy)
    return copy


def test_one_byte_changed_in_a_model_file_is_refused_with_the_file_named(xgb_build, tmp_path, agent):
    copy = tampered_copy(xgb_build, tmp_path)
    lib = copy / next(iter(xgb_build.manifest["stages"][0]["libs"].values()))
    data = bytearray(lib.read_bytes())
    data[len(data) // 2] ^= 0x01
    lib.write_bytes(bytes(data))
    proc = agent("run", "--bundle", str(copy), stdin=b"")
    assert proc.returncode == 2
    message = proc.stderr.decode()
    assert "checksum mismatch" in message and lib.name in message
    assert proc.stdout == b""  # nothing served


def test_a_bundle_whose_golden_scores_disagree_fails_its_self_test(xgb_build, tmp_path, agent):
    copy = tampered_copy(xgb_build, tmp_path)
    golden = json.loads((copy / "golden.json").read_text())
    golden["windows"][3]["scores"]["xgboost"] += 0.01
    (copy / "golden.json").write_text(json.dumps(golden))
    write_manifest(copy, json.loads((copy / "manifest.json").read_text()))  # checksums pass again
    load_bundle(copy)
    proc = agent("selftest", "--bundle", str(copy))
    assert proc.returncode == 2
    assert "self-test failed: stage 'xgboost'" in proc.stderr.decode()
    assert "golden window 3" in proc.stderr.decode()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(format_version=99), "bundle format version 99"),
        (lambda m: m.pop("stages"), "missing field 'stages'"),
        (lambda m: m["files"].update({"../etc/passwd": "0" * 64}), "points outside the bundle"),
        (lambda m: m["window"].update(length=0), "window.length"),
        (lambda m: m["features"].update(kinds=["median"]), "features.kinds"),
        (lambda m: m["drift"].update(psi_window=0), "drift.psi_window: 0 is below the minimum 1"),
    ],
)
def test_manifest_schema_errors_are_clear(xgb_build, tmp_path, change, message, agent):
    copy = tampered_copy(xgb_build, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    proc = agent("selftest", "--bundle", str(copy))
    assert proc.returncode == 2
    assert message in proc.stderr.decode()


def test_a_bundle_without_a_library_for_this_arch_is_refused(xgb_build, tmp_path, agent):
    copy = tampered_copy(xgb_build, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    libs = manifest["stages"][0]["libs"]
    manifest["stages"][0]["libs"] = {"armv7l": next(iter(libs.values()))}
    write_manifest(copy, manifest)
    proc = agent("selftest", "--bundle", str(copy))
    assert proc.returncode == 2
    assert "no tree library for this board's arch" in proc.stderr.decode()


def test_a_flood_of_new_stream_ids_keeps_1024_windows_and_counts_the_evicted(xgb_build, synthetic_splits, agent):
    _, test = synthetic_splits
    row = test.path.read_text().splitlines()[0].split()
    flood = "".join(" ".join([f"flood-{i}", *row[1:]]) + "\n" for i in range(20_000))
    proc = agent("run", "--bundle", str(xgb_build.bundle_dir), "--input", "-", stdin=flood.encode())
    assert proc.returncode == 0, proc.stderr
    final = records(proc)[-1]
    assert final["samples"] == 20_000 and final["errors"] == 0
    assert final["streams"] == 1024 and final["streams_evicted"] == 20_000 - 1024
