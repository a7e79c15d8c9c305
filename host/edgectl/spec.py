"""The pipeline spec, `edgectl.toml`: the user's columns, window, preprocessing and task, read once.

Everything that turns the user's rows into model inputs starts here and runs the agent's own
code (edgectl.dataset). The spec is written into the bundle's manifest at conversion; from
then on the manifest is the truth. Every error names the file, the key and what is allowed.
"""

import csv
import json
import re
from pathlib import Path

from edge_agent.samples import is_number
from edge_agent.windows import parse_kind
from edgectl.errors import EdgectlError

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

TASKS = ("binary", "multiclass", "regression")
ALARMS = ("above", "below")  # a regression alarms at or above its threshold, or at or below it
IMPUTE = ("none", "median")
SCALE = ("none", "standard", "per-condition")
DEFAULT_FEATURES = ["mean", "std", "min", "max", "slope", "last"]
WINDOW_MAX = 65536  # samples, of a window's length and stride (build --window and --stride too)


def load(path):
    """The spec at path as a dict with every key filled in; EdgectlError naming file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise EdgectlError(f"{path}: no such spec file; write one with `edgectl init DATA.csv`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgectlError(f"{path}: cannot read the spec: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise EdgectlError(f"{path}: not valid TOML: {exc}") from None
    return check(raw, path)


def check(raw, where):
    """Validate a spec's tables; fill in defaults."""
    known = {"input", "window", "preprocessing", "output", "channel"}
    for table, value in raw.items():
        if table not in known:
            raise EdgectlError(f"{where}: unknown table [{table}]; a spec has {', '.join(sorted(known))}")
        if not isinstance(value, dict) and table != "channel":
            raise EdgectlError(f"{where}: {table} must be a table ([{table}] and its keys below it)")
    inp, win = raw.get("input", {}), raw.get("window", {})
    prep, out = raw.get("preprocessing", {}), raw.get("output", {})
    spec = {
        "input": {
            "format": _choice(inp, "format", ("csv", "jsonl"), "csv", where, "input"),
            "columns": _names(inp, "columns", where, "input", required=True),
            "stream": _name(inp, "stream", where, "input"),
            "time": _name(inp, "time", where, "input"),
            "settings": _names(inp, "settings", where, "input"),
        },
        "window": {
            "length": _int(win, "length", 1, WINDOW_MAX, 1, where),
            "stride": _int(win, "stride", 1, WINDOW_MAX, 1, where),
            "features": _features(win, where),
            "time_feature": _bool(win, "time_feature", False, where),
        },
        "preprocessing": {
            "impute": _choice(prep, "impute", IMPUTE, "none", where, "preprocessing"),
            "scale": _choice(prep, "scale", SCALE, "standard", where, "preprocessing"),
        },
        "output": {
            "task": _choice(out, "task", TASKS, "binary", where, "output"),
            "label": _name(out, "label", where, "output"),
            "classes": _classes(out, where),
            "threshold": _number(out, "threshold", where),
            "alarm": _choice(out, "alarm", ALARMS, None, where, "output") if "alarm" in out else None,
        },
        "channel": _channels(raw, where),
    }
    _cross_check(spec, where)
    return spec


def _cross_check(spec, where):
    inp, out = spec["input"], spec["output"]
    used = [inp["stream"], inp["time"], *inp["columns"], *inp["settings"], out["label"]]
    named = [name for name in used if name]
    if len(set(named)) != len(named):
        twice = sorted({name for name in named if named.count(name) > 1})
        raise EdgectlError(f"{where}: column {twice[0]!r} has two roles (input, stream, time, settings, label)")
    if spec["preprocessing"]["scale"] == "per-condition" and not inp["settings"]:
        raise EdgectlError(f'{where}: [preprocessing] scale = "per-condition" needs [input] settings')
    if out["task"] == "multiclass" and (not out["classes"] or len(out["classes"]) < 2):
        raise EdgectlError(f'{where}: [output] task = "multiclass" needs classes = [...] (two or more, in index order)')
    if out["task"] == "binary":
        if out["classes"] is not None and len(out["classes"]) != 2:
            raise EdgectlError(f"{where}: [output] classes of a binary task: two (negative, positive)")
        t = 0.5 if out["threshold"] is None else out["threshold"]
        if not 0 < t <= 1:
            raise EdgectlError(f"{where}: [output] threshold of a binary task must be in (0, 1], not {t}")
        out["threshold"] = t
    if out["alarm"] is not None and (out["task"] != "regression" or out["threshold"] is None):
        raise EdgectlError(f'{where}: [output] alarm ("above" or "below" the threshold) is for a regression task '
                           "with a threshold")  # fmt: skip
    if out["task"] == "regression" and out["threshold"] is not None:
        out["alarm"] = out["alarm"] or "above"
    if out["task"] == "multiclass" and out["threshold"] is not None:
        raise EdgectlError(f"{where}: [output] threshold is for binary and regression tasks")
    if spec["window"]["features"] == "raw" and spec["window"]["time_feature"]:
        raise EdgectlError(f'{where}: [window] time_feature needs window features, not "raw"')
    for ch in spec["channel"]:
        outside = [c for c in ch["columns"] if c not in inp["columns"]]
        if outside:
            raise EdgectlError(f"{where}: channel {ch['name']!r}: column {outside[0]!r} is not in [input] columns")
        if ch["name"] in inp["columns"] or [c["name"] for c in spec["channel"]].count(ch["name"]) > 1:
            raise EdgectlError(f"{where}: channel name {ch['name']!r} is taken; give each channel its own name")
    if spec["channel"] and spec["window"]["features"] == "raw":
        raise EdgectlError(f'{where}: [[channel]] needs window features, not "raw"')
    if spec["window"]["time_feature"] and not inp["time"]:
        raise EdgectlError(f"{where}: [window] time_feature = true needs [input] time")


def _get(table, key, kinds, where, section):
    value = table.get(key)
    if value is not None and not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise EdgectlError(f"{where}: [{section}] {key} = {value!r}: wrong type")
    return value


def _name(table, key, where, section):
    value = _get(table, key, (str,), where, section)
    if value == "":
        raise EdgectlError(f"{where}: [{section}] {key} is empty; leave it out instead")
    return value


def _names(table, key, where, section, required=False):
    value = table.get(key, [] if not required else None)
    if value is None:
        raise EdgectlError(f"{where}: [{section}] {key} is missing: the model's input columns, in order")
    if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
        raise EdgectlError(f"{where}: [{section}] {key} must be a list of column names")
    if required and not value:
        raise EdgectlError(f"{where}: [{section}] {key} is empty: name at least one column")
    if len(set(value)) != len(value):
        raise EdgectlError(f"{where}: [{section}] {key} names a column twice")
    return list(value)


def _choice(table, key, allowed, default, where, section):
    value = table.get(key, default)
    if value not in allowed:
        raise EdgectlError(f"{where}: [{section}] {key} = {value!r}; allowed: {', '.join(allowed)}")
    return value


def _int(table, key, low, high, default, where):
    value = table.get(key, default)
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        raise EdgectlError(f"{where}: [window] {key} = {value!r}; a whole number from {low} to {high}")
    return value


def _bool(table, key, default, where):
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise EdgectlError(f"{where}: [window] {key} = {value!r}; true or false")
    return value


def _number(table, key, where):
    value = table.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value):
        raise EdgectlError(f"{where}: [output] {key} = {value!r}; a number")
    return None if value is None else float(value)


def _features(table, where, section="[window] features"):
    value = table.get("features", DEFAULT_FEATURES)
    if value == "raw" and section == "[window] features":
        return "raw"
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise EdgectlError(f'{where}: {section} = {value!r}; a list of feature kinds (README: "Feature kinds")'
                           + (', or "raw"' if section == "[window] features" else ""))  # fmt: skip
    for kind in value:
        try:
            parse_kind(kind)
        except ValueError as exc:
            raise EdgectlError(f"{where}: {section}: {exc}") from None
    if len(set(value)) != len(value):
        raise EdgectlError(f"{where}: {section} names a kind twice")
    return list(value)


def _channels(raw, where):
    """[[channel]] tables: derived channels, each a signed mean of standardized input columns."""
    tables = raw.get("channel", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise EdgectlError(f"{where}: channel must be tables ([[channel]] with name, columns, signs, features)")
    channels = []
    for k, table in enumerate(tables):
        section = f"[[channel]] {k + 1}"
        sub = f"channel {k + 1}"  # as _name and _names write it: [channel 1] key
        unknown = sorted(set(table) - {"name", "columns", "signs", "features"})
        if unknown:
            raise EdgectlError(f"{where}: {section}: unknown key {unknown[0]!r}; keys: name, columns, signs, features")
        name = _name(table, "name", where, sub)
        if not name:
            raise EdgectlError(f"{where}: {section} needs a name")
        columns = _names(table, "columns", where, sub, required=True)
        signs = table.get("signs", [1] * len(columns))
        if not (isinstance(signs, list) and len(signs) == len(columns) and all(v in (1, -1) for v in signs)):
            raise EdgectlError(f"{where}: {section} signs: one 1 or -1 per column ({len(columns)})")
        if "features" not in table:
            raise EdgectlError(f"{where}: {section} needs features = [...] (its feature kinds)")
        kinds = _features(table, where, f"{section} features")
        channels.append({"name": name, "columns": columns, "signs": list(signs), "features": kinds})
    return channels


def _classes(table, where):
    value = table.get("classes")
    if value is None:
        return None
    if not (isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value)):
        raise EdgectlError(f"{where}: [output] classes must be a list of label values (strings or integers)")
    names = [str(v) for v in value]
    if len(set(names)) != len(names):
        raise EdgectlError(f"{where}: [output] classes names a class twice")
    return names


# --- edgectl init: a commented spec from a CSV's header -------------------------------------------

STREAM_NAMES = re.compile(r"^(machine|device|unit|engine|stream|sensor_?id|asset|id|node|pump|motor)(_?id)?$", re.I)
TIME_NAMES = re.compile(r"^(time|timestamp|ts|date|datetime|cycle|t|epoch|time_?s)$", re.I)
NEGATIVE = {"0", "false", "no", "ok", "normal", "pass", "good", "healthy", "n"}
LABEL_NAMES = re.compile(r"^(label|state|class|target|y|fault|status|anomaly|failure|wear.*|rul)$", re.I)


def sniff(path, rows=200):
    """(header, sample rows, delimiter) of a CSV file with a header line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except FileNotFoundError:
        raise EdgectlError(f"{path}: no such data file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgectlError(f"{path}: cannot read it as UTF-8 text: {exc}") from None
    lines = text.splitlines()
    if not lines:
        raise EdgectlError(f"{path}: empty file")
    first = lines[0]
    delimiter = ";" if ";" in first else "," if "," in first else "\t" if "\t" in first else None
    parse = (lambda line: next(csv.reader([line], delimiter=delimiter))) if delimiter else str.split
    header = [h.strip() for h in parse(first)]
    body = [parse(line) for line in (lines[1:] if rows is None else lines[1 : rows + 1]) if line.strip()]
    if all(is_number(h) for h in header):
        raise EdgectlError(f"{path}: the first line holds numbers, not column names; add a header line")
    return header, body, delimiter


def init(data, out, force=False):
    """Write a commented spec for the CSV at data to out; return the spec text."""
    out = Path(out)
    if out.exists() and not force:
        raise EdgectlError(f"{out} exists; remove it, or pass --force to overwrite")
    header, everything, _ = sniff(data, rows=None)
    body = everything[:200]
    numeric = [name for i, name in enumerate(header) if body and all(is_number(r[i]) for r in body if i < len(r))]
    stream = next((h for h in header if STREAM_NAMES.match(h)), None)
    if stream is None:  # the one text column that is not a time, if any
        texts = [h for h in header if h not in numeric and not _looks_like_time(body, header.index(h))]
        stream = texts[0] if len(texts) == 1 else None
    time = next((h for h in header if TIME_NAMES.match(h) and h != stream), None)
    if time is None:
        time = next((h for i, h in enumerate(header) if h != stream and _looks_like_time(body, i)), None)
    label = next((h for h in header if LABEL_NAMES.match(h) and h not in (stream, time)), None)
    columns = [h for h in numeric if h not in (stream, time, label)]
    task, classes = _guess_task(everything, header.index(label)) if label else ("binary", None)
    text = _template(Path(data).name, header, columns, stream, time, label, task, classes)
    check(tomllib.loads(text), out)  # what we write must read back
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def dump(spec, out, comment=""):
    """Write a spec (a dict as check() returns it) to out as TOML, None values left out; return the path."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # a TOML basic string
        return "[" + ", ".join(value(x) for x in v) + "]"

    lines = [f"# {line}" for line in comment.splitlines()]
    for table, keys in spec.items():
        for one in keys if isinstance(keys, list) else [keys]:  # a list: an array of tables, [[table]]
            head = f"[[{table}]]" if isinstance(keys, list) else f"[{table}]"
            lines += ["", head] + [f"{k} = {value(v)}" for k, v in one.items() if v is not None]
    text = "\n".join(lines).lstrip("\n") + "\n"
    check(tomllib.loads(text), out)  # what we write must read back
    Path(out).write_text(text)
    return Path(out)


def _guess_task(body, i):
    values = sorted({r[i].strip() for r in body if i < len(r) and r[i].strip()})
    if values and all(is_number(v) for v in values) and len(values) > 10:
        return "regression", None
    if len(values) == 2:  # the healthy-looking value first: class 1 is the positive one
        return "binary", sorted(values, key=lambda v: v.lower() not in NEGATIVE)
    return "multiclass", values


def _template(name, header, columns, stream, time, label, task, classes):
    q = lambda v: "" if v is None else json.dumps(str(v))  # noqa: E731  (a TOML basic string)
    lines = [
        f"# edgectl pipeline spec, written by `edgectl init` from {name}",
        f"# its columns: {', '.join(header)}",
        "# Check every guess below; `edgectl features` shows what the board will compute from it.",
        "",
        "[input]",
        'format = "csv"            # a header row; comma, semicolon, tab or whitespace separated | "jsonl"',
        f"columns = [{', '.join(q(c) for c in columns)}]   # the model's inputs, in this order",
        (f"stream = {q(stream)}" if stream else '# stream = "machine"')
        + "   # the column naming the stream (absent: one)",
        (f"time = {q(time)}" if time else '# time = "ts"') + "   # numeric or ISO 8601 (absent: arrival order)",
        "settings = []             # operating-condition columns (per-condition scaling)",
        "",
        "[window]",
        "length = 50               # samples per window; 1 = tabular, one prediction per sample",
        "stride = 10",
        f'features = [{", ".join(q(k) for k in DEFAULT_FEATURES)}]   # per column, or "raw" (the window itself)',
        "time_feature = false      # true: the time field's value at the window's end is an input too",
        "",
        "[preprocessing]",
        'impute = "none"           # none | median (fitted on --data)',
        'scale = "standard"        # none | standard | per-condition',
        "",
        "[output]",
        f'task = "{task}"            # binary | multiclass | regression',
        (f"label = {q(label)}" if label else '# label = "state"') + "   # the label column (for checks and evaluation)",
    ]
    if classes:
        lines.append(f"classes = [{', '.join(q(c) for c in classes)}]   # label values in class-index order")
    if task == "binary":
        lines.append("threshold = 0.5           # decision threshold on the positive class's probability")
    if task == "regression":
        lines.append("# threshold = 1.0         # an alarm level: values at or above it alarm (or at or below it with")
        lines.append('# alarm = "below"         # this; `train` then picks the alarm threshold out of fold)')
    return "\n".join(lines) + "\n"


def _looks_like_time(body, i):
    values = [r[i].strip() for r in body[:20] if i < len(r)]
    return bool(values) and all(re.match(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}.*)?$", v) for v in values)


def read_rows(data):
    """(header, rows) of a CSV file, every cell a string; file:line errors for ragged rows."""
    header, _, delimiter = sniff(data, rows=0)
    rows = []
    with open(data, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter) if delimiter else (line.split() for line in f)
        for number, row in enumerate(reader, start=1):
            if number == 1 or not row or not "".join(row).strip():
                continue
            if len(row) != len(header):
                raise EdgectlError(f"{data}:{number}: {len(row)} fields, the header has {len(header)}")
            rows.append([cell.strip() for cell in row])
    return header, rows


def check_header(header, data):
    """Every column named, once."""
    if any(not name for name in header):
        raise EdgectlError(f"{data}: column {header.index('') + 1} of the header has no name; name it")
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise EdgectlError(f"{data}: the header names column {twice[0]!r} twice")
