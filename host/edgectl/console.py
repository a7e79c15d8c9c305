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


def emit(data, as_json, render):
    """Print data as JSON (--json) or through its table renderer."""
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(render(data))


def _fmt(value, fmt):
    if value is None:
        return "-"
    return format(value, fmt) if fmt else str(value)
