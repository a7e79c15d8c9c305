"""The README's result tables, rendered from a run's --json by the CLI's own renderer: printed, written into
README.md in place (--write), or checked against a fresh run (--check; exit 1 where they disagree).

    .venv/bin/edgectl demo --json -q > demo.json                       # about 2 minutes
    .venv/bin/python tools/readme_tables.py demo demo.json --check

    .venv/bin/edgectl example cmapss --data ../shared/datasets/cmapss --json -q > fd001.json   # about 15 minutes
    .venv/bin/python tools/readme_tables.py fd001 fd001.json --write

The suite checks the demo table against the run of tests/integration/test_cli.py's demo test; the FD001 table
is checked by hand from a saved run, since that run is too long for the suite.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from edgectl.recipes.cmapss import results_table

README = Path(__file__).resolve().parents[1] / "README.md"
TABLES = ("demo", "fd001")  # the README marks each block: <!-- table NAME: ... --> ... <!-- end table NAME -->


def exact(old, new, row):
    return old == new


def within(share):
    """The same figure up to a relative share; "-" only against "-"."""

    def agrees(old, new, row):
        if "-" in (old, new):
            return old == new
        return abs(float(old) - float(new)) <= share * abs(float(new))

    return agrees


def exact_without_tflite(old, new, row):
    return old == new or has_tflite(row)


def has_tflite(row):
    """Whether a TFLite stage is in the row's bundle (a saved run without "stages" is taken to have one)."""
    return "tflite" in row.get("stages", ["tflite"])


# How a fresh run must agree with the README, per column (the renderer's headers). Exact means the same text as
# printed, which for the same seed, data, gcc and pinned packages (constraints.txt) holds on any machine:
# compiled trees train deterministically with fixed seeds and threads, and sizes follow from the models.
# Columns not named here are not compared: the latencies and RSS measure the machine and its load.
RULES = {
    "model": (exact, "exact"),
    "model KB": (exact, "exact"),  # each stage's largest file: the compiled C, or the INT8 flatbuffer
    # The .tar.gz compresses file times too and, with a TFLite stage, weights and golden scores that differ by CPU.
    "bundle KB": (within(0.01), "within 1 %"),
    "windows": (exact, "exact"),
    # TensorFlow trains differently on different CPUs even with fixed seeds: a row with a TFLite stage has its
    # F1 and, for a cascade, its band (chosen on that stage's out-of-fold scores) from this CPU; not compared.
    "F1": (exact_without_tflite, "exact for rows without a TFLite stage, else not compared"),
    "F1 last": (exact_without_tflite, "as F1"),
    "fast path": (exact_without_tflite, "as F1"),
    "escalated oof": (exact_without_tflite, "as F1"),
}


def render(run):
    """The block as the README holds it: the CLI's table, indented as a Markdown code block."""
    return "\n".join("    " + line if line else line for line in results_table(run).splitlines())


def cells(block):
    """A rendered table read back: (headers, [{header: text}]), cut at the column spans of its dashed line."""
    lines = [line[4:] for line in block.strip("\n").splitlines()]
    spans = [match.span() for match in re.finditer(r"-+", lines[1])]

    def cut(line):
        return [line[start:end].strip() for start, end in spans]

    headers = cut(lines[0])
    return headers, [dict(zip(headers, cut(line))) for line in lines[2:]]


def disagreements(block, run):
    """One line per figure of the README's block that the run does not reproduce within RULES."""
    old_headers, old_rows = cells(block)
    new_headers, new_rows = cells(render(run))
    if old_headers != new_headers:
        return [f"columns: README {old_headers}, this run {new_headers}"]
    old_names, new_names = [r["model"] for r in old_rows], [r["model"] for r in new_rows]
    if old_names != new_names:
        return [f"models: README {old_names}, this run {new_names}"]
    found = []
    for old, new, row in zip(old_rows, new_rows, run["models"]):
        for header, (agrees, rule) in RULES.items():
            if not agrees(old[header], new[header], row):
                found.append(f"{row['model']}, {header}: README {old[header]}, this run {new[header]} ({rule})")
    return found


def block_pattern(name):
    return re.compile(rf"(<!-- table {name}:[^\n]*-->\n)(.*?)(<!-- end table {name} -->)", re.DOTALL)


def find_block(text, name):
    match = block_pattern(name).search(text)
    if not match:
        sys.exit(f"README: no block <!-- table {name}: ... --> ... <!-- end table {name} -->")
    return match


def write(readme, name, run):
    text = readme.read_text()
    find_block(text, name)
    readme.write_text(block_pattern(name).sub(lambda m: f"{m[1]}\n{render(run)}\n\n{m[3]}", text, count=1))


def check(readme, name, run, source):
    found = disagreements(find_block(readme.read_text(), name)[2], run)
    for line in found:
        print(f"{readme.name} {name} table: {line}")
    compared = "; ".join(f"{header} {rule}" for header, (_, rule) in RULES.items())
    print(f"{readme.name} {name} table {'disagrees with' if found else 'agrees with'} {source} ({compared})")
    return 1 if found else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=TABLES)
    parser.add_argument("run", type=Path, help="the --json output of the run (edgectl demo, edgectl example cmapss)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the table's block in the README in place")
    mode.add_argument("--check", action="store_true", help="exit 1 unless the README's table agrees with the run")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    run = json.loads(args.run.read_text())
    if args.check:
        return check(args.readme, args.table, run, args.run)
    if args.write:
        write(args.readme, args.table, run)
    else:
        print(render(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
