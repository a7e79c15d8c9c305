"""Fuzzing the bundle loader: arbitrary JSON, mutated real manifests and damaged files end in a BundleError.

The fast tier fuzzes a small hand-made bundle; the slow tier a real XGBoost bundle (xgb_build).
"""

import copy
import json
import os
import shutil

import pytest
from fuzzing import TIERS, mutated
from hypothesis import strategies as st

from edge_agent.errors import BundleError
from edge_agent.manifest import FORMAT, MANIFEST_NAME, check_schema, load_bundle, write_manifest

SMALL = {
    "format": FORMAT,
    "format_version": 2,
    "bundle_id": "small-0",
    "input": {"fields": ["unit", "cycle", "a", "b"], "stream_field": "unit", "time_field": "cycle", "features": ["a"]},
    "window": {"length": 3, "stride": 1},
    "preprocessing": {"impute": {}, "center": [0.0], "scale": [1.0]},
    "features": {"kinds": ["mean", "last"], "names": ["a_mean", "a_last"]},
    "stages": [
        {"name": "trees", "kind": "tree-lib", "input": "features", "threshold": 0.5, "libs": {"x86_64": "t/lib.so"}},
        {"name": "nn", "kind": "tflite", "input": "window", "threshold": 0.5, "file": "model.tflite"},
    ],
    "cascade": {"low": 0.2, "high": 0.8},
    "golden": {"file": "golden.json", "tolerance": {"trees": 0.0, "nn": 0.01}},
    "files": {},
}


def small_bundle(path):
    """A bundle of the manifest's real shape with small stand-in files: load_bundle never loads a model."""
    (path / "t").mkdir(parents=True)
    (path / "t" / "lib.so").write_bytes(bytes(range(256)))
    (path / "model.tflite").write_bytes(b"TFL3" * 40)
    (path / "golden.json").write_text('{"lines": [], "windows": []}\n')
    write_manifest(path, SMALL)
    return path


@pytest.fixture
def bundle_for(request, tmp_path):
    """The bundle a tier fuzzes: the real XGBoost bundle in the slow tier, the small one in the fast tier."""

    def get(tier):
        if tier == "fuzz":
            return request.getfixturevalue("xgb_build").bundle_dir
        return small_bundle(tmp_path / "small")

    return get


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
odd_values = st.sampled_from(
    [None, "", 0, -1, 1, True, 2.5, float("nan"), 1e308, 10**30, [], {}, [[]], [{}], {"": None}, "x" * 300, ["mean"]]
).map(copy.deepcopy)  # fresh containers: later edits must not change the constants
odd_names = st.sampled_from(
    ["", ".", "..", "../x", "/etc/passwd", "a\0b", "x" * 300, "a/" * 100 + "b", "t", "t/", "golden.json/x", "~"]
)
some_values = st.one_of(json_values, odd_values)


@st.composite
def mutated_manifest(draw, manifest):
    """The manifest with 1-3 edits at random places: a key or item deleted, a value replaced, a key added,
    or a file entry with an odd name."""
    m = copy.deepcopy(manifest)
    for _ in range(draw(st.integers(1, 3))):
        container, key = _place(draw, m)
        edit = draw(st.sampled_from(("delete", "replace", "add", "file")))
        if edit == "delete" and key is not None:
            del container[key]
        elif edit == "replace" and key is not None:
            container[key] = draw(some_values)
        elif edit == "add" and isinstance(container, dict):
            container[draw(st.text(max_size=8) | st.sampled_from(list(SMALL)))] = draw(some_values)
        elif edit == "file" and isinstance(m.get("files"), dict):
            m["files"][draw(odd_names | st.text(max_size=20))] = draw(
                st.text("0123456789abcdef", max_size=64) | odd_values
            )
    return m


def _place(draw, node):
    """(container, key) somewhere in the JSON tree; key None for an empty container."""
    while True:
        keys = sorted(node, key=str) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return node, None
        key = draw(st.sampled_from(keys))
        child = node[key]
        if not (isinstance(child, (dict, list)) and draw(st.booleans())):
            return node, key
        node = child


def loads_or_refuses(bundle_dir, raw):
    """The loader's contract for any manifest bytes: a manifest that passes its own schema, or a BundleError."""
    try:
        manifest = load_bundle(bundle_dir, raw=raw)
    except BundleError as exc:
        assert str(exc)
        return None
    check_schema(manifest, "again")
    return manifest


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_any_json_manifest_is_refused_with_a_bundle_error(fuzz, tier, tmp_path):
    bundle = small_bundle(tmp_path / "small")
    required = st.fixed_dictionaries({key: some_values for key in SMALL}, optional={"extra": some_values})
    shaped = required.map(lambda m: dict(m, format=FORMAT, format_version=2))  # past the first checks
    manifests = st.one_of(json_values, required, shaped)
    fuzz.run(tier, "bundle loader", manifests, lambda m: loads_or_refuses(bundle, json.dumps(m).encode()), share=0.3)


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_mutated_real_manifests_load_or_are_refused(fuzz, tier, bundle_for):
    bundle = bundle_for(tier)
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    fuzz.run(
        tier,
        "bundle loader",
        mutated_manifest(manifest),
        lambda m: loads_or_refuses(bundle, json.dumps(m).encode()),
        share=0.4,
    )


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_damaged_manifest_bytes_load_or_are_refused(fuzz, tier, bundle_for):
    bundle = bundle_for(tier)
    raw = (bundle / MANIFEST_NAME).read_bytes()
    fuzz.run(
        tier,
        "bundle loader",
        mutated(st.just(raw), max_edits=8),
        lambda data: loads_or_refuses(bundle, data),
        share=0.2,
    )


DAMAGE = ("flip", "truncate", "append", "delete", "directory", "symlink", "fifo")


def damage(bundle, rel, how, where):
    """Damage one listed file of the bundle in place."""
    path = bundle / rel
    data = path.read_bytes()
    if how == "flip" and data:
        i = where % len(data)
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1 :])
    elif how == "truncate":
        path.write_bytes(data[: where % max(1, len(data))])
    elif how == "append":
        path.write_bytes(data + b"\n")
    else:
        path.unlink()
        if how == "directory":
            path.mkdir()
        elif how == "symlink":
            path.symlink_to(bundle / MANIFEST_NAME)
        elif how == "fifo":
            os.mkfifo(path)


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_a_damaged_file_is_refused_naming_it(fuzz, tier, bundle_for, tmp_path):
    bundle = bundle_for(tier)
    listed = sorted(json.loads((bundle / MANIFEST_NAME).read_text())["files"])
    copy_dir = tmp_path / "copy"

    def check(args):
        rel, how, where = args
        shutil.rmtree(copy_dir, ignore_errors=True)
        shutil.copytree(bundle, copy_dir)
        damage(copy_dir, rel, how, where)
        with pytest.raises(BundleError) as err:
            load_bundle(copy_dir)
        assert str(copy_dir / rel) in str(err.value)

    damages = st.tuples(st.sampled_from(listed), st.sampled_from(DAMAGE), st.integers(0, 2**20))
    fuzz.run(tier, "bundle loader", damages, check, share=0.1)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["stages"].append("a stage"),  # not an object
        lambda m: m["stages"].append(7),
        lambda m: m["features"].update(kinds=[["mean"]]),  # unhashable kinds
        lambda m: m["files"].update({"x" * 300: "0" * 64}),  # a name longer than the file system allows
        lambda m: m["files"].update({"golden.json": 5}),  # a checksum that is not a string
    ],
)
def test_manifests_found_by_fuzzing_are_refused_with_a_bundle_error(tmp_path, edit):
    bundle = small_bundle(tmp_path / "small")
    manifest = copy.deepcopy(json.loads((bundle / MANIFEST_NAME).read_text()))
    edit(manifest)
    with pytest.raises(BundleError):
        load_bundle(bundle, raw=json.dumps(manifest).encode())


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"format": ' + b"9" * 5000 + b"}", b"\xff\xfe{}"])
def test_manifest_bytes_past_pythons_json_limits_are_refused_with_a_bundle_error(tmp_path, raw):
    with pytest.raises(BundleError, match="cannot read the manifest"):
        load_bundle(small_bundle(tmp_path / "small"), raw=raw)
