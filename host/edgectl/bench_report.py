"""The bench run record as people read it: a Markdown summary and a self-contained HTML report.

Both put the bundles side by side and open with what must not be missed: throttled
runs, failed budgets, degraded stages. The HTML draws its plots as inline SVG.
"""

import json
from html import escape

from edgectl import bench_charts as charts
from edgectl import evaluate, svg
from edgectl.console import counts_text


def alerts(record):
    """[(kind, text)]: one line per throttled run, failed budget, degraded stage, meaningless or zero F1,
    drift alarm or bad input."""
    out = []
    for r in record["results"]:
        bid = r["bundle_id"]
        if r["throttling"]["status"] == "throttled":
            out.append(("throttled", f"THROTTLED: {bid}: {r['throttling']['why']}; its latencies are not comparable"))
        if r["budgets"]["status"] == "fail":
            failed = [f"{c['budget']} ({c['why']})" for c in r["budgets"]["checks"] if c["status"] == "fail"]
            out.append(("over-budget", f"OVER BUDGET: {bid} on profile {r['budgets']['profile']}: {'; '.join(failed)}"))
        if r["degraded"]:
            why = "; ".join(f"{k}: {v}" for k, v in r["degraded"].items())
            out.append(("degraded", f"DEGRADED: {bid}: stage {', '.join(r['degraded'])} could not run ({why})"))
        for text in accuracy_warnings(r):
            out.append(("accuracy", f"ACCURACY: {text}"))
        if (r.get("drift") or {}).get("alarms"):
            out.append(("drift", f"DRIFT: {bid}: {evaluate.drift_text(r['drift'])} on the replay"))
        if r["errors"]:
            out.append(("note", f"bad input lines in {bid}'s run (skipped): {counts_text(r['errors'])}"))
    return out


def accuracy_warnings(result):
    """One bundle's scores on the labelled replay, if they mean nothing (no positive window) or are 0."""
    scores = (result["accuracy"] or {}).get("all_windows")
    return evaluate.score_warnings(scores, f"{result['bundle_id']} on the replay")


def summary_rows(record):
    """[(label, [text per bundle])]: the side-by-side table."""
    rows = [
        ("board", _board),
        ("queries (passes), duration", _queries),
        ("latency p50 / p90 / p99 µs", lambda r: _triple(r["latency_us"]["query"], ("p50", "p90", "p99"))),
        ("latency max / mean µs", lambda r: _triple(r["latency_us"]["query"], ("max", "mean"))),
        ("p90 early-stopping bound µs", _early),
        (
            "parse / features / inference p50 µs",
            lambda r: " / ".join(_num(r["latency_us"][s]["p50"]) for s, _ in charts.STEPS),
        ),
        (
            "init ms / first query µs",
            lambda r: f"{_num(r['init']['process_to_ready_ms'])} / {_num(r['first_query_us'])}",
        ),
        ("peak / steady RSS MB", lambda r: f"{_mb(r['memory']['peak_rss_kb'])} / {_mb(r['memory']['steady_rss_kb'])}"),
        (
            "throughput windows/s (samples/s)",
            lambda r: f"{_num(r['throughput']['queries_per_s'])} ({_num(r['throughput']['samples_per_s'])})",
        ),
        ("model KB / bundle KB (.tar.gz)", _sizes),
        ("F1 / precision / recall", lambda r: _accuracy(r, "all_windows")),
        ("F1 last window per stream", lambda r: _accuracy(r, "last_window", ("f1",))),
        ("answered by", lambda r: ", ".join(f"{s['name']} {_pct(s['share'])}" for s in r["stages"])),
        ("p50 / p99 µs by answering stage", _by_stage),
        ("throttling", lambda r: r["throttling"]["status"]),
        ("drift", lambda r: evaluate.drift_text(r["drift"]) if r.get("drift") else "not reported by this agent"),
        ("budgets", _budget_cell),
    ]
    if all(len(r["stages"]) == 1 for r in record["results"]):
        rows = [row for row in rows if row[1] is not _by_stage]
    return [(label, [cell(r) for r in record["results"]]) for label, cell in rows]


def identity_rows(record):
    """[(label, [text per bundle])]: the board each bundle ran on, and its temperature."""
    rows = [
        ("model", lambda r: r["board"]["model"] or "absent"),
        ("CPU", lambda r: f"{r['board']['cpu'] or 'absent'}, {r['board']['cores']} cores"),
        ("arch / kernel", lambda r: f"{r['board']['arch']} / {r['board']['kernel']}"),
        ("OS", lambda r: r["board"]["os"] or "absent"),
        ("Python / numpy", lambda r: f"{r['board']['python']} / {r['board']['runtimes']['numpy']}"),
        ("TFLite runtime", lambda r: _runtime(r["board"]["runtimes"]["tflite"])),
        ("CPU clock MHz (now / max)", _clock),
        ("temperature °C before / after", lambda r: f"{_temp(r, 'before')} / {_temp(r, 'after')}"),
        ("throttle flags before / after", lambda r: f"{_flags(r, 'before')} / {_flags(r, 'after')}"),
    ]
    return [(label, [cell(r) for r in record["results"]]) for label, cell in rows]


def markdown(record):
    """The terminal summary."""
    ids = [r["bundle_id"] for r in record["results"]]
    lines = [f"# edgectl bench on {record['target']}", "", _context(record), ""]
    for kind, text in alerts(record):
        lines.append(f"> **{text}**" if kind != "note" else f"> {text}")
    if alerts(record):
        lines.append("")
    lines += _md_table(["", *ids], summary_rows(record)) + [""]
    lines += ["## Board", ""] + _md_table(["", *ids], identity_rows(record))
    for r in record["results"]:
        b = r["budgets"]
        lines += ["", f"## Budgets of {r['bundle_id']}: {b['status']}", ""]
        if not b["checks"]:
            lines.append(f"No profile: {b['source']}.")
            continue
        lines.append(f"Profile {b['profile']} ({b['source']}).{''.join(' ' + n + '.' for n in b['notes'])}")
        lines.append("")
        rows = [(c["budget"], [str(c["limit"]), _num(c["value"]), _status(c["status"]), c["why"]]) for c in b["checks"]]
        lines += _md_table(["budget", "limit", "value", "status", "why"], rows)
    return "\n".join(lines)


def html(record):
    """A self-contained HTML page: alerts, side-by-side tables, and inline SVG plots."""
    ids = [r["bundle_id"] for r in record["results"]]
    colors = {bid: svg.PALETTE[i % len(svg.PALETTE)] for i, bid in enumerate(ids)}
    found = alerts(record)
    body = [f"<h1>edgectl bench on {escape(record['target'])}</h1>", f"<p class=meta>{escape(_context(record))}</p>"]
    for kind, text in found:
        body.append(f'<div class="alert {kind}">{escape(text)}</div>')
    if not any(kind != "note" for kind, _ in found):
        body.append(f'<div class="alert ok">{escape(_all_clear(record))}</div>')
    body += ["<h2>Results</h2>", _html_table(["", *ids], summary_rows(record), colors)]
    body += ["<h2>Latency</h2>", charts.cdf_chart(record, colors), charts.steps_chart(record)]
    if any(len(r["stages"]) > 1 for r in record["results"]):
        body.append(charts.share_chart(record))
    body.append("<h2>Latency over time</h2>")
    for r in record["results"]:
        body.append(charts.time_chart(r, colors[r["bundle_id"]]))
        if any(t is not None for t in r["monitor"]["temp_c"]):
            body.append(charts.temperature_chart(r, colors[r["bundle_id"]]))
    body += ["<h2>Budgets</h2>", *(_budget_html(r) for r in record["results"])]
    body += ["<h2>Board</h2>", _html_table(["", *ids], identity_rows(record), colors)]
    body.append("<h2>Rules</h2><p>" + escape(_rules_text()) + "</p>")
    record_json = json.dumps(record).replace("</", "<\\/")
    body.append(f'<script type="application/json" id="bench-record">{record_json}</script>')
    title = f"edgectl bench: {', '.join(ids)}"
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _all_clear(record):
    unknown = [r["bundle_id"] for r in record["results"] if r["throttling"]["status"] == "unknown"]
    unchecked = [r["bundle_id"] for r in record["results"] if r["budgets"]["status"] == "not checked"]
    text = "No budget failed, no stage degraded, no throttling seen."
    if unchecked:
        text += f" Budgets not checked (no profile) for {', '.join(unchecked)}."
    if unknown:
        text += f" Throttling unknown (the board has no throttling flags) for {', '.join(unknown)}."
    return text


def _context(record):
    rules, data = record["rules"], record["data"]
    rule_text = f"{rules['warmup']} warm-up, >= {rules['min_queries']} queries, >= {rules['min_duration_s']:g} s"
    return (
        f"{record['created']} · data {data['path']} ({data['bytes'] / 1024:.0f} KB; {data['labels']}) · "
        f"{rule_text} · edgectl {record['edgectl_version']}"
    )


def _rules_text():
    return (
        "Single-stream, in the style of MLPerf: the data file's samples go through the agent's own pipeline "
        "in order; one query is one window, timed end to end (parse, window features, stages). Warm-up "
        "queries are not counted; the run then lasts for at least the minimum query count and the minimum "
        "duration and one whole pass over the data (replayed with fresh stream state when needed). The p90 "
        "early-stopping bound is MLPerf LoadGen's: at 99 % confidence the true p90 is no higher. Budgets "
        "compare peak RSS and p99 query latency with the board profile."
    )


def _by_stage(r):
    return ", ".join(f"{s['name']} {_triple(s['latency_us'], ('p50', 'p99'))}" for s in r["stages"] if s["windows"])


def _board(r):
    b = r["board"]
    return f"{b['model'] or b['cpu'] or b['arch']} ({b['cores']} cores, {b['arch']})"


def _queries(r):
    rules = r["rules"]
    passes = f"{rules['passes']} pass" + ("es" if rules["passes"] > 1 else "")
    return f"{rules['queries']} ({passes}), {rules['duration_s']:.1f} s"


def _early(r):
    e = r["early_stopping"]
    if e["estimate_us"] is None:
        return f"needs >= {e['min_queries']} queries"
    return _num(e["estimate_us"])


def _sizes(r):
    models = " + ".join(f"{b / 1024:.1f}" for b in r["sizes"]["model_bytes"].values())
    archive = r["sizes"]["archive_bytes"] or r["sizes"]["bundle_bytes"]
    return f"{models} / {archive / 1024:.1f}"


def _accuracy(r, which, keys=("f1", "precision", "recall")):
    if r["accuracy"] is None:
        return "-"
    got = r["accuracy"][which]
    if "macro_f1" in got:  # multiclass
        return f"accuracy {got['accuracy']:.3f} / macro-F1 {got['macro_f1']:.3f}"
    if "mae" in got:  # regression
        return f"MAE {got['mae']:.4g} / RMSE {got['rmse']:.4g}"
    return " / ".join(f"{got[k]:.3f}" for k in keys)


def _budget_cell(r):
    b = r["budgets"]
    if b["status"] == "not checked":
        return "not checked (no profile)"
    failed = [c["budget"] for c in b["checks"] if c["status"] == "fail"]
    return f"{b['profile']}: " + ("FAIL " + ", ".join(failed) if failed else "pass")


def _runtime(tflite):
    return f"{tflite['package']} {tflite['version']}" if tflite else "absent"


def _clock(r):
    freq = r["board"]["cpufreq_khz"]
    return f"{freq['cur'] / 1000:.0f} / {freq['max'] / 1000:.0f}" if freq else "absent"


def _temp(r, when):
    t = r["thermal"][when]["temp_c"]
    return "absent" if t is None else f"{t:.1f}"


def _flags(r, when):
    t = r["thermal"][when]["throttled"]
    if t is None:
        return "absent"
    if not t["now"] and not t["since_boot"]:
        return f"{t['raw']} (clear)"
    parts = [
        f"{label} {', '.join(flags)}" for label, flags in (("now", t["now"]), ("since boot", t["since_boot"])) if flags
    ]
    return f"{t['raw']}: {'; '.join(parts)}"


def _triple(summary, keys):
    return " / ".join(_num(summary[k]) for k in keys)


def _num(value):
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _mb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f}"


def _pct(share):
    return "-" if share is None else f"{share:.1%}"


def _status(status):
    return "FAIL" if status == "fail" else status


def _md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" + "--:|" * (len(header) - 1)]
    out += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows]
    return out


def _html_table(header, rows, colors=None):
    colors = colors or {}
    head = "".join(
        f'<th><span class=key style="background:{colors[h]}"></span>{escape(h)}</th>'
        if h in colors
        else f"<th>{escape(h)}</th>"
        for h in header
    )
    body = []
    for label, cells in rows:
        tds = "".join(f'<td class="{_cell_class(c)}">{escape(c)}</td>' for c in cells)
        body.append(f"<tr><th>{escape(label)}</th>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell_class(text):
    if "FAIL" in text or text == "throttled":
        return "bad"
    if text.endswith(": pass") or text in ("pass", "not throttled"):
        return "good"
    return ""


def _budget_html(r):
    b = r["budgets"]
    head = f"<h3>{escape(r['bundle_id'])}: {escape(b['status'])}</h3>"
    if not b["checks"]:
        return head + f"<p>No profile: {escape(b['source'])}.</p>"
    notes = "".join(f"<p class=note>{escape(n)}</p>" for n in b["notes"])
    rows = [(c["budget"], [str(c["limit"]), _num(c["value"]), _status(c["status"]), c["why"]]) for c in b["checks"]]
    return (
        head
        + f"<p>Profile {escape(b['profile'])} ({escape(b['source'])}).</p>{notes}"
        + _html_table(["budget", "limit", "value", "status", "why"], rows)
    )


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#111}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:16px 0 4px}.meta{color:#555;margin:0 0 12px}
.alert{padding:8px 12px;margin:6px 0;border-radius:4px;font-weight:600}
.alert.throttled,.alert.drift,.alert.accuracy{background:#ffedd5;border-left:6px solid #ea580c}
.alert.over-budget,.alert.degraded{background:#fee2e2;border-left:6px solid #dc2626}
.alert.note{background:#f3f4f6;border-left:6px solid #9ca3af;font-weight:400}
.alert.ok{background:#dcfce7;border-left:6px solid #16a34a}
table{border-collapse:collapse;margin:6px 0 12px}th,td{padding:4px 10px;border-bottom:1px solid #e5e7eb}
td{text-align:right;font-variant-numeric:tabular-nums}tbody th{text-align:left;font-weight:500;color:#333}
td.bad{color:#b91c1c;font-weight:700}td.good{color:#15803d}
.key{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
svg{display:block;margin:8px 0}.note{color:#92400e}
"""
