"""Small inline SVG charts for self-contained HTML reports: line charts (linear or log axes)
and horizontal stacked bars. No plotting library and no network: a report opens anywhere."""

import math
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
LEFT, RIGHT, TOP, BOTTOM, LEGEND = 64, 16, 30, 44, 210


class Axis:
    """Maps values on a linear or log10 scale to pixels, and picks readable ticks."""

    def __init__(self, lo, hi, pixel_lo, pixel_hi, log=False):
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi <= lo:
            lo, hi = lo - 1, hi + 1
        self.lo, self.hi, self.log = lo, hi, log
        self.pixel_lo, self.pixel_hi = pixel_lo, pixel_hi

    def __call__(self, value):
        v = math.log10(value) if self.log else value
        return self.pixel_lo + (v - self.lo) / (self.hi - self.lo) * (self.pixel_hi - self.pixel_lo)

    def ticks(self):
        if self.log:
            values = [m * 10**k for k in range(math.floor(self.lo), math.ceil(self.hi) + 1) for m in (1, 2, 5)]
            inside = [v for v in values if self.lo - 1e-9 <= math.log10(v) <= self.hi + 1e-9]
            if len(inside) > 9:
                inside = [v for v in inside if abs(math.log10(v) - round(math.log10(v))) < 1e-9]  # decades
            return inside
        raw = (self.hi - self.lo) / 5
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


def number(value):
    """A short tick label: 0.5, 20, 1.5k, 2M."""
    if value == 0:
        return "0"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:g}{suffix}"
    return f"{value:.3g}"


def line_chart(series, x_label, y_label, title="", log_x=False, log_y=False, bands=(), width=760, height=300):
    """series: [{"name", "points": [(x, y)], "color", "dash"?}]; bands: [(x0, x1, label, fill)] shaded spans."""
    points = [(x, y) for s in series for x, y in s["points"] if _usable(x, log_x) and _usable(y, log_y)]
    if not points:
        return _empty(title, width)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    right = width - LEGEND
    x = Axis(min(xs), max(xs), LEFT, right - RIGHT, log_x)
    y_lo = min(ys) if log_y else min(0.0, min(ys))
    y = Axis(y_lo, max(ys) * (1.3 if log_y else 1.05), height - BOTTOM, TOP, log_y)
    out = [_open(width, height), _title(title)]
    for x0, x1, label, fill in bands:
        a, b = x(max(x0, min(xs))), x(min(x1, max(xs)))
        out.append(
            f'<rect x="{a:.1f}" y="{TOP}" width="{max(b - a, 1):.1f}" height="{height - BOTTOM - TOP}" '
            f'fill="{fill}"/><text x="{a + 3:.1f}" y="{TOP + 12}" {FONT} fill="#555">{escape(label)}</text>'
        )
    out += _grid(x, y, LEFT, right - RIGHT, TOP, height - BOTTOM, x_label, y_label)
    for i, s in enumerate(series):
        path = " ".join(
            f"{x(px):.1f},{y(py):.1f}" for px, py in s["points"] if _usable(px, log_x) and _usable(py, log_y)
        )
        style = (' stroke-dasharray="4 3"' if s.get("dash") else "") + f' stroke-opacity="{s.get("opacity", 1)}"'
        out.append(f'<polyline points="{path}" fill="none" stroke="{s["color"]}" stroke-width="1.6"{style}/>')
        if path.count(" ") < 12:  # a few points: mark each, or one point would not show at all
            for pair in path.split():
                cx, cy = pair.split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{s["color"]}"/>')
        out.append(_legend_item(right + 8, TOP + 8 + 16 * i, s["name"], s["color"], s.get("dash")))
    out.append("</svg>")
    return "\n".join(out)


def stacked_bars(rows, segments, x_label, title="", width=760, unit=""):
    """rows: [(label, [value per segment])]; segments: [(name, color)]. One horizontal bar per row."""
    label_width, bar, gap = 190, 22, 10
    height = TOP + 22 + len(rows) * (bar + gap) + BOTTOM
    total = max((sum(v or 0 for v in values) for _, values in rows), default=0) or 1
    x = Axis(0, total * 1.05, label_width, width - RIGHT)
    out = [_open(width, height), _title(title)]
    legend_x = label_width
    for name, color in segments:
        out.append(_legend_item(legend_x, TOP + 4, name, color))
        legend_x += 40 + 6 * len(name)  # about 6 px a character at this font size
    top = TOP + 22
    out += _grid(x, None, label_width, width - RIGHT, top, height - BOTTOM, x_label, "")
    for r, (label, values) in enumerate(rows):
        y0 = top + gap / 2 + r * (bar + gap)
        out.append(
            f'<text x="{label_width - 6}" y="{y0 + bar * 0.7:.1f}" text-anchor="end" {FONT}>{escape(short(label, 28))}'
            f"<title>{escape(label)}</title></text>"
        )
        start = 0.0
        for (name, color), value in zip(segments, values):
            if not value:
                continue
            a, b = x(start), x(start + value)
            out.append(
                f'<rect x="{a:.1f}" y="{y0:.1f}" width="{b - a:.1f}" height="{bar}" fill="{color}">'
                f"<title>{escape(name)}: {value:.3g}{unit}</title></rect>"
            )
            if b - a > 40:
                out.append(
                    f'<text x="{(a + b) / 2:.1f}" y="{y0 + bar * 0.7:.1f}" text-anchor="middle" {FONT} '
                    f'fill="#fff">{number(value)}{unit}</text>'
                )
            start += value
    out.append("</svg>")
    return "\n".join(out)


def _usable(value, log):
    return value is not None and (value > 0 if log else True)


def _open(width, height):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    )


def _title(title):
    return f'<text x="{LEFT}" y="18" {FONT} font-size="13" font-weight="600">{escape(title)}</text>'


def _empty(title, width):
    return f'{_open(width, 60)}{_title(title)}<text x="{LEFT}" y="44" {FONT} fill="#777">no data</text></svg>'


def _grid(x, y, left, right, top, bottom, x_label, y_label):
    out = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#bbb"/>']
    for v in x.ticks():
        px = x(v)
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{bottom}" stroke="#eee"/>'
            f'<text x="{px:.1f}" y="{bottom + 14}" text-anchor="middle" {FONT}>{number(v)}</text>'
        )
    if y is not None:
        for v in y.ticks():
            py = y(v)
            out.append(
                f'<line x1="{left}" x2="{right}" y1="{py:.1f}" y2="{py:.1f}" stroke="#eee"/>'
                f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end" {FONT}>{number(v)}</text>'
            )
        out.append(
            f'<text transform="translate(14 {(top + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle" '
            f"{FONT}>{escape(y_label)}</text>"
        )
    out.append(
        f'<text x="{(left + right) / 2:.0f}" y="{bottom + 32}" text-anchor="middle" {FONT}>{escape(x_label)}</text>'
    )
    return out


def _legend_item(x, y, name, color, dash=False):
    style = ' stroke-dasharray="4 3"' if dash else ""
    return (
        f'<line x1="{x}" x2="{x + 18}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="3"{style}/>'
        f'<text x="{x + 24}" y="{y + 4}" {FONT}>{escape(short(name, 27))}<title>{escape(name)}</title></text>'
    )


def short(text, limit):
    """Text cut in the middle to fit a label ("cascade-xgb…b97159c1af9b"): ids differ at both ends."""
    if len(text) <= limit:
        return text
    keep = limit - 1
    return text[: keep - keep // 2] + "…" + text[-(keep // 2) :]
