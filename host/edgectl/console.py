"""Terminal output: progress lines on stderr, tables on stdout, and their --json twins."""

import json
import sys
import time


class Progress:
    """Timestamped progress lines on stderr, and a throttled counter for long loops."""

    def __init__(self, quiet=False):
        self.start = time.monotonic()
        self.quiet = quiet
        self._last = self.start

    def say(self, message):
        if not self.quiet:
            print(f"[{time.monotonic() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)

    def record(self, rec):
        """Progress callback for a stream of agent records: the window count, once a second."""
        if rec.get("type") == "prediction":
            self.tick(f"{rec['seq']} windows")

    def tick(self, message):
        """Like say, at most once a second."""
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            self.say(message)


def warn(message):
    """A warning on stderr: what a result must not hide. Printed even with -q (that silences progress only)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def counts_text(counts):
    """{"field-count": 3, "bad-time": 1} -> '3 field-count, 1 bad-time'."""
    return ", ".join(f"{n} {key}" for key, n in counts.items())


def table(rows, columns):
    """Render rows (dicts) as an aligned text table; columns are (key, header, format)."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([_fmt(row.get(key), fmt) for key, _, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    numeric = [bool(fmt) for _, _, fmt in columns]  # numbers right-aligned, text left
    lines = [
        "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip() for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pairs(result):
    """Render a result dict as aligned "key  value" lines, for people (its --json twin keeps the data).

    A dict of plain values reads as one line ("arch x86_64, python 3.11.7"); a dict that holds
    dicts as an indented block of its own pairs. None, "" and empty lists print as "-", booleans as
    yes/no, numbers short: no Python spellings, no dict dumps.
    """
    return "\n".join(_pair_lines(result, ""))


def _pair_lines(result, indent):
    width = max((len(str(key)) for key in result), default=0)
    lines = []
    for key, value in result.items():
        if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
            lines += [f"{indent}{key}", *_pair_lines(value, indent + "  ")]
            continue
        head = f"{indent}{key!s:{width}}  "
        lines.append(head + words(value).replace("\n", "\n" + " " * len(head)))  # a long detail keeps its column
    return lines


def words(value):
    """One value as words: plain dicts and lists inline, numbers short, None as "-"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"  # never 1.235e+04 for an uptime
    if isinstance(value, dict):
        return ", ".join(f"{key} {words(v)}" for key, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(words, value)) or "-"
    return "-" if value is None or value == "" else str(value)


def emit(data, as_json, render):
    """Print data as JSON (--json) or through its table renderer."""
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(render(data))


def _fmt(value, fmt):
    if value is None:
        return "-"
    return format(value, fmt) if fmt else words(value)
