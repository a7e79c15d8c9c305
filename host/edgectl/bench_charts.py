"""The bench report's plots, as inline SVG (edgectl/svg.py): the latency CDF, where a query's time goes,
which stage answered, latency and temperature over the run."""

from edgectl import svg

STEPS = (("parse", "#0891b2"), ("features", "#ea580c"), ("inference", "#9333ea"))
OTHER = ("other (record, routing)", "#9ca3af")


def cdf_chart(record, colors):
    series = [
        {"name": r["bundle_id"], "color": colors[r["bundle_id"]], "points": [(us, p) for p, us in r["cdf"]]}
        for r in record["results"]
    ]
    return svg.line_chart(
        series,
        "latency per query, µs (log scale)",
        "percentile of queries",
        title="Latency CDF (counted queries)",
        log_x=True,
    )


def steps_chart(record):
    rows = []
    for r in record["results"]:
        steps = [r["latency_us"][step]["mean"] or 0 for step, _ in STEPS]
        rows.append((r["bundle_id"], [*steps, max(0.0, (r["latency_us"]["query"]["mean"] or 0) - sum(steps))]))
    return svg.stacked_bars(
        rows, [*STEPS, OTHER], "mean µs per query", title="Where a query's time goes (mean per step)", unit=" µs"
    )


def share_chart(record):
    names = []
    for r in record["results"]:
        names += [s["name"] for s in r["stages"] if s["name"] not in names]
    segments = [(n, svg.PALETTE[(i + 2) % len(svg.PALETTE)]) for i, n in enumerate(names)]
    rows = [
        (r["bundle_id"], [next((100 * (s["share"] or 0) for s in r["stages"] if s["name"] == n), 0) for n in names])
        for r in record["results"]
    ]
    return svg.stacked_bars(rows, segments, "% of counted windows", title="Which stage answered", unit="%")


def time_chart(r, color):
    bins = r["timeline"]
    warm = [b["t_s"] for b in bins if b["warmup"]]
    bands = [(0, warm[-1], "warm-up", "#fef3c7")] if warm else []
    series = [
        {"name": "p50 per bin", "color": color, "points": [(b["t_s"], b["p50_us"]) for b in bins]},
        {
            "name": "max per bin",
            "color": color,
            "dash": True,
            "opacity": 0.5,
            "points": [(b["t_s"], b["max_us"]) for b in bins],
        },
    ]
    status = r["throttling"]["status"]
    title = f"{r['bundle_id']}: latency over the run ({status})"
    return svg.line_chart(
        series, "seconds since the first query", "µs per query (log scale)", title=title, log_y=True, bands=bands
    )


def temperature_chart(r, color):
    m, thermal = r["monitor"], r["thermal"]
    end = r["timeline"][-1]["t_s"] if r["timeline"] else 0.0
    samples = [(0.0, thermal["before"]["temp_c"]), *zip(m["t_s"], m["temp_c"]), (end, thermal["after"]["temp_c"])]
    points = [(t, c) for t, c in samples if c is not None]
    series = [{"name": "SoC °C (before, run, after)", "color": color, "points": points}]
    return svg.line_chart(
        series, "seconds since the first query", "°C", title=f"{r['bundle_id']}: temperature", height=200
    )
