"""Manifests that pass their checksums and their id but crash or lie: every one is refused with one
line (exit 2) by the agent, and by `edgectl inspect`, before anything is built from it. The slow tier
fuzzes `start()` over every field of a real manifest."""

import hashlib
import json
import math
import random
import shutil
import subprocess

import pytest
from cli import edgectl
from fuzzing import TIERS

from edge_agent.agent import start
from edge_agent.errors import AgentError
from edge_agent.manifest import content_hash
from edge_agent.pipeline import plan_of
from edge_agent.schema import errors, load


def forge(src, out, change):
    """A copy of bundle src with change(manifest, out) applied, then every listed file's sha256 and the
    id written as they must be: only the bundle's own checks can refuse it."""
    shutil.copytree(src, out)
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest, out)
    files = manifest.get("files")
    if isinstance(files, dict):
        for rel in list(files):
            path = out / rel if isinstance(rel, str) else None
            if path is not None and path.is_file():
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    if isinstance(manifest, dict):
        manifest["bundle_id"] = f"{manifest.get('name') or 'bundle'}-{content_hash(manifest)[:12]}"
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def tree_lib(manifest):
    return next(iter(manifest["stages"][0]["libs"].values()))


def set_in(path, value):
    def change(m, out):
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def rewrite_file(rel, data):
    def change(m, out):
        (out / rel).write_bytes(data)

    return change


def no_abi_library(m, out):
    src = out / "fake.c"
    src.write_text("int edge_num_feature(void) { return 3; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out / tree_lib(m)), str(src)], check=True)


def fewer_kinds(m, out):
    m["features"]["kinds"] = m["features"]["kinds"][:-1]
    m["features"]["names"] = m["features"]["names"][: plan_of(m).n_features]


def extra_field_in_features(m, out):
    m["input"]["features"] = [*m["input"]["features"], "not_a_field"]


TREE_CASES = {
    "input is empty": (set_in(["input"], {}), "missing field 'fields'"),
    "a feature not in fields": (extra_field_in_features, "not in fields"),
    "window length true": (set_in(["window", "length"], True), "window.length: must be integer"),
    "window length 10**9": (set_in(["window", "length"], 10**9), "window.length"),
    "center not numbers": (
        lambda m, o: m["preprocessing"].update(center=["a"] * len(m["preprocessing"]["center"])),
        "preprocessing.center[0]: must be number",
    ),  # fmt: skip
    "scale of zero": (lambda m, o: m["preprocessing"]["scale"].__setitem__(0, 0), "preprocessing.scale[0]"),
    "impute not numbers": (
        lambda m, o: m["preprocessing"].update(impute={m["input"]["features"][0]: "x"}),
        "must be number",
    ),  # fmt: skip
    "golden not UTF-8": (rewrite_file("golden.json", b"\xff\xfe{}"), "cannot read the golden vectors"),
    "golden without windows": (rewrite_file("golden.json", b'{"lines": []}'), "golden vectors need"),
    "feature count != library": (fewer_kinds, "the model takes"),
    "tree stage on raw windows": (set_in(["stages", 0, "input"], "window"), "a tree-lib stage takes window features"),
    "library without the ABI": (no_abi_library, "not an edgectl tree library"),
    "drift window a string": (set_in(["drift", "psi_window"], "2000"), "drift.psi_window: must be integer"),
    "drift window absurd": (set_in(["drift", "psi_window"], 10**12), "drift.psi_window"),
    "condition field not in fields": (
        lambda m, o: m["preprocessing"].update(
            conditions={
                "fields": ["nope"],
                "setting_scale": [1.0],
                "centers": [[0.0]],
                "center": [m["preprocessing"]["center"]],
                "scale": [m["preprocessing"]["scale"]],
            }
        ),
        "conditions.fields names a field that is not in input.fields",
    ),  # fmt: skip
    "golden tolerance NaN": (
        lambda m, o: m["golden"]["tolerance"].update({m["stages"][0]["name"]: math.nan}),
        "NaN is not a number",
    ),  # fmt: skip
    "threshold NaN": (set_in(["stages", 0, "threshold"], math.nan), "NaN is not a number"),
    "threshold Infinity": (set_in(["stages", 0, "threshold"], math.inf), "Infinity is not a number"),
    "threshold true": (set_in(["stages", 0, "threshold"], True), "threshold: must be number"),
    "threshold -5": (set_in(["stages", 0, "threshold"], -5), "threshold: -5 must be more than 0"),
    "center NaN": (lambda m, o: m["preprocessing"]["center"].__setitem__(0, math.nan), "NaN is not a number"),
    "files empty, library changed": (
        lambda m, o: (m.update(files={}), (o / tree_lib(m)).write_bytes(b"\0" * 64)),
        "is loaded by the agent but not listed",
    ),
    "library path absolute": (
        lambda m, o: m["stages"][0]["libs"].update({k: "/usr/lib/libm.so.6" for k in m["stages"][0]["libs"]}),
        "is loaded by the agent but not listed",
    ),  # fmt: skip
    "library path ..": (
        lambda m, o: m["stages"][0]["libs"].update({k: "../evil.so" for k in m["stages"][0]["libs"]}),
        "is loaded by the agent but not listed",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(TREE_CASES))
def test_a_lying_manifest_is_refused_with_one_line_by_agent_and_inspect(xgb_build, tmp_path, agent, case):
    change, message = TREE_CASES[case]
    bundle = forge(xgb_build.bundle_dir, tmp_path / "b", change)
    got = agent("selftest", "--bundle", str(bundle))
    err = got.stderr.decode()
    assert got.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert message in err, err
    shown = edgectl("inspect", str(bundle))
    assert shown.returncode == 1 and "Traceback" not in shown.stderr and "checksums ok" not in shown.stdout


def test_a_neural_window_that_does_not_fit_the_model_is_refused(conv1d_build, tmp_path, agent):
    bundle = forge(conv1d_build.bundle_dir, tmp_path / "b", set_in(["window", "length"], 7))
    got = agent("selftest", "--bundle", str(bundle))
    err = got.stderr.decode()
    assert got.returncode == 2 and "the model takes" in err and "Traceback" not in err, err


def test_the_agents_validator_and_jsonschema_agree_on_the_schema(xgb_build):
    jsonschema = pytest.importorskip("jsonschema")
    schema = load("manifest.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    manifest = json.loads((xgb_build.bundle_dir / "manifest.json").read_text())
    assert errors(manifest, schema) is None
    jsonschema.validate(manifest, schema)
    rng = random.Random(5)
    for _ in range(300):
        broken = mutate(json.loads(json.dumps(manifest)), rng)
        ours = errors(broken, schema) is None
        theirs = jsonschema.Draft202012Validator(schema).is_valid(broken)
        assert ours == theirs, json.dumps(broken)[:300]


NASTY = [None, True, False, 0, -1, 1, 10**12, -(10**12), 0.5, -0.5, 1e308, "", "x", "../x", "/etc/passwd",
         [], [1], ["a"], {}, {"a": 1}, [[]], "0" * 64]  # fmt: skip


def paths(node, prefix=()):
    """Every (path) of a JSON value, containers included."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:3]):  # the first few items stand for the rest
            yield from paths(value, (*prefix, i))


def mutate(manifest, rng):
    """One field of the manifest replaced by a nasty value, or deleted."""
    path = rng.choice([p for p in paths(manifest) if p and p[0] not in ("bundle_id", "files", "format")])
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(NASTY)
    return manifest


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_start_over_every_manifest_field_refuses_cleanly(xgb_build, tmp_path, tier, fuzz, agent):
    """start() on thousands of forged manifests: it serves or raises AgentError, never anything else;
    a sample of the refusals through the real CLI: exit 2, one line."""
    n = 40 if tier == "fast" else 600
    rng = random.Random(11)
    refused, served = [], 0
    for i in range(n):
        work = tmp_path / f"m{i}"
        bundle = forge(xgb_build.bundle_dir, work, lambda m, o: mutate(m, rng))
        fuzz.count("manifest start()", 1)
        try:
            start(bundle, str(tmp_path / "no-keys"))
            served += 1
        except AgentError:
            refused.append(bundle)
        except Exception as exc:  # a traceback at the CLI
            fuzz.crash("manifest start()", type(exc).__name__, "start", str(exc))
            raise AssertionError(
                f"{type(exc).__name__}: {exc} for {(bundle / 'manifest.json').read_text()[:400]}"
            ) from exc
        if len(refused) > 20 or not refused or refused[-1] != bundle:
            shutil.rmtree(work)  # keep the first refusals for the CLI check
    assert refused  # the mutations do reach the checks
    for bundle in refused[:20]:
        got = agent("selftest", "--bundle", str(bundle))
        err = got.stderr.decode()
        assert got.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    print(f"manifest fuzz ({tier}): {n} forged manifests, {len(refused)} refused, {served} served, 0 tracebacks")
