"""The bundle manifest: its schema, loading, and checksum verification.

The manifest is the contract between host and board. The host writes it through
`write_manifest`; the agent reads it through `load_bundle`. Both use this module.
"""

import hashlib
import json
import os
import re
from pathlib import Path

from edge_agent import schema
from edge_agent.errors import BundleError
from edge_agent.windows import FEATURE_KINDS, WINDOW_KINDS, Plan

FORMAT = "edgectl-bundle"
# Version 2 added operating conditions in "preprocessing", selectable feature kinds
# and windows of one sample (tabular data such as SECOM). Version 3 added "output"
# (the task: binary, multiclass, regression; class names), stages with several
# outputs, the min/max/rms feature kinds, and an optional stream and time field.
# Version 4 added history feature kinds (mean:K, slope:all, ewm:S, base:N, peak:K, A-B)
# and derived channels ("features.channels"). Each version is a valid later version,
# so the agent reads all four.
FORMAT_VERSION = 5
READS_VERSIONS = (1, 2, 3, 4, 5)
TASKS = ("binary", "multiclass", "regression")
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"  # detached Ed25519 signature of manifest.json's bytes (edge_agent.signature)

# A bundle id names a directory on the board: a token, never a path, ".", ".." or empty.
BUNDLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ID_HASH_DIGITS = 12  # the id ends with "-" and this many hex digits of content_hash()
SCHEMA_NAME = "manifest.schema.json"  # edge_agent/schemas/; versions 1 to 3
MAX_WINDOW_VALUES = 1 << 20  # window length x input features: 8 MiB of float64 a stream


def sha256_file(path):
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(manifest):
    """sha256 of everything in a manifest but its id and creation time: the files' sha256 included,
    so one id names one content."""
    body = {k: v for k, v in manifest.items() if k not in ("bundle_id", "created")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_bundle_id(bundle_id, where="bundle"):
    """Raise BundleError unless bundle_id is a valid id token (it becomes a directory name on the board)."""
    if not (isinstance(bundle_id, str) and BUNDLE_ID.fullmatch(bundle_id)):
        raise BundleError(
            f"{where}: bundle id {str(bundle_id)[:80]!r} is not a valid id "
            "(1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
        )
    return bundle_id


def write_manifest(bundle_dir, manifest):
    """Fill in the sha256 of every file in `bundle_dir`, derive the bundle id from the content and
    write manifest.json. The id is `NAME-` and the first digits of content_hash(); NAME is "name".

    The signature cannot be listed in the manifest it signs; a new manifest voids the old signature.
    """
    bundle_dir = Path(bundle_dir)
    files = {}
    for path in sorted(bundle_dir.rglob("*")):
        if path.is_file() and path.name not in (MANIFEST_NAME, SIGNATURE_NAME):
            files[path.relative_to(bundle_dir).as_posix()] = sha256_file(path)
    manifest = dict(manifest, files=files)
    manifest["bundle_id"] = f"{manifest.get('name') or 'bundle'}-{content_hash(manifest)[:ID_HASH_DIGITS]}"
    check_schema(manifest, bundle_dir / MANIFEST_NAME)
    (bundle_dir / SIGNATURE_NAME).unlink(missing_ok=True)
    (bundle_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check_schema(manifest, where):
    """Raise BundleError naming the first field that does not fit the schema or the cross-checks.

    The JSON Schema (schemas/manifest.schema.json) gives types and ranges; `_cross_check`
    what a schema cannot say (names that refer to other fields, counts that must agree, files
    that must be listed). Last, the id must be the one its content gives.
    """
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: the manifest is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{where}: not an edgectl bundle manifest (format={manifest.get('format')!r})")
    version = manifest.get("format_version")
    if type(version) is not int or version not in READS_VERSIONS:
        raise BundleError(
            f"{where}: bundle format version {version!r}, this agent reads versions "
            f"{', '.join(map(str, READS_VERSIONS))}; "
            "rebuild the bundle with a matching edgectl or upgrade the agent"
        )
    if "bundle_id" in manifest:
        check_bundle_id(manifest["bundle_id"], where)
    found = schema.errors(manifest, schema.load(SCHEMA_NAME))
    if found:
        raise BundleError(f"{where}: {found}")
    _cross_check(manifest, where)
    if manifest["bundle_id"] != _expected_id(manifest):
        raise BundleError(
            f"{where}: bundle id {manifest['bundle_id']!r} does not match the bundle's content "
            f"(expected {_expected_id(manifest)!r}); the manifest was edited after it was written, rebuild the bundle"
        )


def _cross_check(m, where):
    def refuse(message):
        raise BundleError(f"{where}: {message}")

    fields, inp = m["input"]["fields"], m["input"]
    if len(set(fields)) != len(fields):
        refuse("input.fields names a field twice")
    for key in ("stream_field", "time_field"):
        if inp[key] is None and m["format_version"] < 3:
            refuse(f"input.{key} may be null from format version 3 on")
        if inp[key] is not None and inp[key] not in fields:
            refuse(f"input.{key} {inp[key]!r} is not in input.fields")
    features = inp["features"]
    unknown = [name for name in features if name not in fields]
    if unknown or len(set(features)) != len(features):
        refuse(f"input.features must be distinct names from input.fields (not in fields: {unknown[:5]})")
    n = len(features)
    if m["window"]["length"] * n > MAX_WINDOW_VALUES:
        refuse(f"window.length {m['window']['length']} x {n} features is over {MAX_WINDOW_VALUES} values a stream")
    _check_preprocessing(m["preprocessing"], fields, features, refuse)
    n_inputs = _check_features(m, n, refuse)
    names = m["features"].get("names")
    if names is not None and len(names) != n_inputs:
        refuse(f"features.names lists {len(names)} names, the windows give {n_inputs} features")
    _check_stages(m, refuse)
    drift = m.get("drift")
    if drift is not None:
        if drift["features"] != features:
            refuse("drift.features must be input.features, in order")
        if len(drift["edges"]) != n or len(drift["probs"]) != n:
            refuse("drift needs one set of edges and proportions per input feature")
        if any(len(p) != len(e) + 1 for e, p in zip(drift["edges"], drift["probs"])):
            refuse("drift.probs needs one proportion more than drift.edges, per feature")
        if drift["psi_window"] * n > MAX_WINDOW_VALUES * 4:
            refuse(f"drift.psi_window {drift['psi_window']} x {n} features is over {MAX_WINDOW_VALUES * 4} bins kept")
    for rel in m["files"]:
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts or "\\" in rel:
            refuse(f"file entry {rel!r} points outside the bundle")


def _check_features(m, n, refuse):
    """The feature kinds and derived channels; returns the number of features the windows give."""
    kinds = m["features"].get("kinds", FEATURE_KINDS)
    channels = m["features"].get("channels", [])
    version = m["format_version"]
    for kind in [*kinds, *(k for ch in channels for k in ch["kinds"])]:
        allowed = FEATURE_KINDS if version < 3 else WINDOW_KINDS if version < 4 else None
        if allowed is not None and kind not in allowed:
            refuse(f"features.kinds: {kind!r} needs format version {3 if version < 3 else 4}")
    if channels and version < 4:
        refuse("features.channels need format version 4")
    for what, names in [
        ("features.kinds", kinds),
        *((f"channel {ch['name']!r} kinds", ch["kinds"]) for ch in channels),
    ]:
        if len(set(names)) != len(names):
            refuse(f"{what} names a kind twice")
    if len({ch["name"] for ch in channels}) != len(channels):
        refuse("features.channels names a channel twice")
    if any(len(ch["weights"]) != n for ch in channels):
        refuse("a derived channel needs one weight per input feature")
    try:
        plan = Plan(m["window"]["length"], m["window"]["stride"], n, bool(m["features"].get("time")), kinds, channels)
    except ValueError as exc:
        refuse(f"features.kinds: {exc}")
    if plan.ring * plan.n_channels > MAX_WINDOW_VALUES:
        refuse(f"the longest span ({plan.ring} samples) x {plan.n_channels} channels is over {MAX_WINDOW_VALUES} "
               "values a stream")  # fmt: skip
    return plan.n_features


def _check_preprocessing(prep, fields, features, refuse):
    if any(name not in features for name in prep.get("impute", {})):
        refuse("preprocessing.impute names a field that is not in input.features")
    conditions = prep.get("conditions")
    if conditions is None:
        for key in ("center", "scale"):
            if len(prep.get(key, ())) != len(features):
                refuse(f"preprocessing.{key} needs one number per input feature ({len(features)})")
        return
    if any(name not in fields for name in conditions["fields"]):
        refuse("preprocessing.conditions.fields names a field that is not in input.fields")
    k, s = len(conditions["centers"]), len(conditions["fields"])
    if len(conditions["setting_scale"]) != s or any(len(c) != s for c in conditions["centers"]):
        refuse("preprocessing.conditions: setting_scale and every centre need one number per setting field")
    if len(conditions["center"]) != k or len(conditions["scale"]) != k:
        refuse("preprocessing.conditions needs a center and a scale per condition centre")
    if any(len(row) != len(features) for row in conditions["center"] + conditions["scale"]):
        refuse("preprocessing.conditions: every center and scale needs one number per input feature")


def task_of(manifest):
    """The manifest's task: "binary" unless its "output" says otherwise (versions 1 and 2 are binary)."""
    return manifest.get("output", {}).get("task", "binary")


def alarm_of(manifest):
    """Which side of the threshold a regression value alarms on: "above" (at or above, the default) or
    "below" (at or below: a remaining useful life)."""
    return manifest.get("output", {}).get("alarm", "above")


def _check_task(m, refuse):
    task, output = task_of(m), m.get("output", {})
    classes = output.get("classes")
    if task == "multiclass" and not classes:
        refuse("output.classes: a multiclass bundle names its classes")
    if classes is not None and len(set(classes)) != len(classes):
        refuse("output.classes names a class twice")
    if "alarm" in output and (task != "regression" or m["format_version"] < 5):
        refuse("output.alarm is for regression bundles of format version 5 on")
    if task != "binary" and "cascade" in m:
        refuse(f"a cascade is for binary tasks only, this bundle's task is {task}")
    for i, stage in enumerate(m["stages"]):
        if stage.get("task", task) != task:
            refuse(f"stages[{i}].task {stage.get('task')!r} is not the bundle's task {task!r}")
        want = len(classes) if task == "multiclass" else 1
        if stage.get("outputs", 1) != want:
            refuse(f"stages[{i}].outputs must be {want} for a {task} task")
        t = stage.get("threshold")
        if task == "binary" and not (type(t) in (int, float) and 0 < t <= 1):
            refuse(f"stages[{i}].threshold: {t!r} must be more than 0 and at most 1 for a binary task")
        if task != "regression":
            for name in ("tolerance", "mean_tolerance"):
                if stage.get(name, 0) > 1 or any(v > 1 for v in m["golden"].get(name, {}).values()):
                    refuse(f"{name}: a probability is off by at most 1")


def _check_stages(m, refuse):
    _check_task(m, refuse)
    stages, files = m["stages"], m["files"]
    names = [stage["name"] for stage in stages]
    if len(set(names)) != len(names):
        refuse("two stages have the same name")
    if len(stages) == 2 and "cascade" not in m:
        refuse("two stages need a cascade band")
    cascade = m.get("cascade")
    if cascade is not None and not (len(stages) == 2 and cascade["low"] <= cascade["high"]):
        refuse("cascade needs two stages and a band with low <= high")
    for name in ("tolerance", "mean_tolerance"):
        given = m["golden"].get(name, m["golden"]["tolerance"])
        if sorted(given) != sorted(names):
            refuse(f"golden.{name} needs one tolerance per stage ({', '.join(names)})")
    opened = [m["golden"]["file"]]
    for i, stage in enumerate(stages):
        if stage["kind"] == "tree-lib":
            if stage["input"] != "features" or "libs" not in stage:
                refuse(f"stages[{i}]: a tree-lib stage takes window features and needs libs")
            opened += stage["libs"].values()
        elif "file" not in stage:
            refuse(f"stages[{i}]: a tflite stage needs its file")
        else:
            opened.append(stage["file"])
    for rel in opened:
        if rel not in files:
            refuse(f"{rel!r} is loaded by the agent but not listed (with its sha256) in files")


def _expected_id(manifest):
    return f"{manifest.get('name') or 'bundle'}-{content_hash(manifest)[:ID_HASH_DIGITS]}"


def read_manifest_bytes(bundle_dir):
    """The exact bytes of a bundle's manifest.json (what its signature covers)."""
    path = Path(bundle_dir) / MANIFEST_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir}: no {MANIFEST_NAME}; is this a bundle directory?") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the manifest: {exc}") from None


def load_bundle(bundle_dir, raw=None):
    """Read and check a bundle's manifest and the sha256 of every file it lists.

    raw: the manifest's bytes when the caller has read them already (to check their signature).
    Returns the manifest dict. Raises BundleError with the file and the mismatch.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    try:
        manifest = json.loads((read_manifest_bytes(bundle_dir) if raw is None else raw).decode(),
                              parse_constant=_no_constant)  # fmt: skip
        check_finite(manifest, "manifest")
        check_schema(manifest, path)
    except RecursionError:  # nesting deep enough to pass the parser but not a walk over it
        raise BundleError(f"{path}: cannot read the manifest: it is nested too deeply") from None
    except ValueError as exc:  # bad UTF-8 or JSON, an integer of over 4300 digits, NaN, 1e999
        raise BundleError(f"{path}: cannot read the manifest: {str(exc)[:200]}") from None
    root = os.path.realpath(bundle_dir)
    for rel, expected in manifest["files"].items():
        file = bundle_dir / rel
        if os.path.commonpath([root, os.path.realpath(file)]) != root or file.is_symlink():
            raise BundleError(f"{file}: a symbolic link; a bundle holds plain files only")
        try:
            actual = sha256_file(file) if file.is_file() else None
        except OSError as exc:  # a name too long for the file system, an unreadable file
            raise BundleError(f"{file}: listed in the manifest but cannot be read: {exc.strerror or exc}") from None
        if actual is None:
            raise BundleError(f"{file}: listed in the manifest but missing from the bundle")
        if actual != expected:
            raise BundleError(
                f"{file}: checksum mismatch (manifest sha256 {expected[:16]}..., file {actual[:16]}...); "
                "the bundle was modified or damaged in transit, rebuild or re-deploy it"
            )
    return manifest


MAX_MAGNITUDE = 1e300  # a number past this overflows float arithmetic (center, scale, edges)


def check_finite(value, where):
    """Raise ValueError for a float that is not finite (1e999 reads as inf) or a number past MAX_MAGNITUDE."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool) and not abs(item) <= MAX_MAGNITUDE:
            raise ValueError(f"{where}: the number {str(item)[:40]} is not finite or too large")


def _no_constant(name):
    """NaN and Infinity are not JSON; Python reads them unless told not to. A NaN tolerance passes every check."""
    raise ValueError(f"{name} is not a number a manifest may hold")
