"""Small SVG line charts for the bench scripts (bench/nats_collapse, bench/run_scaling),
written by hand so that drawing a result needs no plotting library in any venv."""
import math


def nice_ticks(high, count=5):
    """0 and about `count` round steps up to at least `high` (1, 2 or 5 times a power of 10)."""
    if high <= 0:
        return [0, 1]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < high - 1e-12:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def tick_text(v):
    return f"{v:g}"


def line_chart(path, title, x_label, series, x_ticks, y_ticks, y_label=None, width=480,
               height=260):
    """Writes one chart to `path`. series: dicts with "name", "colour", "points" [(x, y)],
    optional "dashed" (a fit, say) and "markers" (dots at the points). The axes span the
    first and last of x_ticks and y_ticks; the legend sits right of the plot."""
    left, bottom, top, right = 56, 40, 30, 150
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def x(v):
        return left + (width - left - right) * (v - x0) / ((x1 - x0) or 1)

    def y(v):
        return top + (height - top - bottom) * (1 - (v - y0) / ((y1 - y0) or 1))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="18" font-size="13">{title}</text>']
    for v in y_ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                     f'text-anchor="end">{tick_text(v)}</text>')
    for v in x_ticks:
        parts.append(f'<text x="{x(v):.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">{tick_text(v)}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" '
                 f'text-anchor="middle">{x_label}</text>')
    if y_label:
        mid = (top + height - bottom) / 2
        parts.append(f'<text x="12" y="{mid:.1f}" text-anchor="middle" '
                     f'transform="rotate(-90 12 {mid:.1f})">{y_label}</text>')
    for i, s in enumerate(series):
        pts = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in s["points"] if py is not None)
        dash = ' stroke-dasharray="5,4"' if s.get("dashed") else ""
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{s["colour"]}" '
                     f'stroke-width="2"{dash}/>')
        if s.get("markers"):
            for px, py in s["points"]:
                parts.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="3" '
                             f'fill="{s["colour"]}"/>')
        parts.append(f'<text x="{width - right + 10}" y="{top + 14 + 16 * i}" '
                     f'fill="{s["colour"]}">{s["name"]}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
