"""Server-rendered SVG charts: no JavaScript, nothing fetched, readable at any width (viewBox)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from markupsafe import Markup

PALETTE = ("#3465a4", "#cc0000", "#73d216", "#f57900", "#75507b", "#c4a000", "#06989a")


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def rounds_chart(rounds: Sequence[dict[str, Any]]) -> Markup:
    """Bars: submissions (accepted + rejected) per round; line: validation perplexity."""
    width, height, left, right, top, bottom = 640, 260, 44, 52, 16, 40
    if not rounds:
        return _svg(width, 60, ['<text x="10" y="35" class="muted">no rounds yet</text>'], "no rounds yet")
    plot_w, plot_h = width - left - right, height - top - bottom
    max_subs = _nice_max(max(r["submissions"] for r in rounds) or 1)
    ppls = [r["val_perplexity"] for r in rounds if r.get("val_perplexity") is not None]
    lo, hi = (min(ppls), max(ppls)) if ppls else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo * 0.95, hi * 1.05 + 1e-9
    step = plot_w / len(rounds)
    bar_w = max(4.0, step * 0.5)
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>']
    for k in range(0, 5):
        value = max_subs * k / 4
        y = top + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>')
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{value:g}</text>')
    points = []
    for i, r in enumerate(rounds):
        cx = left + step * (i + 0.5)
        accepted = r["submissions"] - r["rejected"]
        h_acc = plot_h * accepted / max_subs
        h_rej = plot_h * r["rejected"] / max_subs
        y0 = top + plot_h
        body.append(f'<rect x="{cx - bar_w / 2:.1f}" y="{y0 - h_acc:.1f}" width="{bar_w:.1f}" height="{h_acc:.1f}" '
                    f'fill="{PALETTE[0]}"><title>round {r["id"]}: {accepted} accepted</title></rect>')
        if h_rej:
            body.append(f'<rect x="{cx - bar_w / 2:.1f}" y="{y0 - h_acc - h_rej:.1f}" width="{bar_w:.1f}" '
                        f'height="{h_rej:.1f}" fill="{PALETTE[1]}"><title>round {r["id"]}: {r["rejected"]} rejected'
                        f"</title></rect>")
        body.append(f'<text x="{cx:.1f}" y="{y0 + 16}" text-anchor="middle" class="tick">{r["id"]}</text>')
        if r.get("val_perplexity") is not None:
            y = top + plot_h - plot_h * (r["val_perplexity"] - lo) / (hi - lo) * 0.8 - plot_h * 0.1
            points.append((cx, y, r["val_perplexity"], r["id"]))
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE[3]}" stroke-width="2.5"/>')
        for x, y, v, rid in points:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{PALETTE[3]}"><title>round {rid}: '
                        f"validation perplexity {v:.3f}</title></circle>")
            body.append(f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" class="tick">{v:.2f}</text>')
    body.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" class="label">round</text>')
    body.append(f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
                f'text-anchor="middle" class="label">submissions</text>')
    legend = [(PALETTE[0], "accepted"), (PALETTE[1], "rejected"), (PALETTE[3], "validation perplexity")]
    x = left + 8
    for color, name in legend:
        body.append(f'<rect x="{x}" y="{top - 2}" width="10" height="10" fill="{color}"/>'
                    f'<text x="{x + 14}" y="{top + 7}" class="tick">{name}</text>')
        x += 14 + 7 * len(name) + 16
    return _svg(width, height, body, "submissions and validation perplexity per round")


def perplexity_chart(rows: Sequence[dict[str, Any]]) -> Markup:
    """Grouped bars per org: base, before and after unlearning (with intervals when given)."""
    keys = [k for k in ("base", "before", "after", "retrain") if any(r.get(k) is not None for r in rows)]
    width, height, left, right, top, bottom = 640, 260, 48, 16, 28, 44
    if not rows or not keys:
        return _svg(width, 60, ['<text x="10" y="35" class="muted">no figures in this receipt</text>'],
                    "no figures")
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(r[k]) for r in rows for k in keys if r.get(k) is not None]
    highs = [float(r[k + "_interval"][1]) for r in rows for k in keys
             if r.get(k + "_interval") and r[k + "_interval"][1] is not None]
    top_value = _nice_max(max(values + highs))
    group = plot_w / len(rows)
    bar = group * 0.8 / len(keys)
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>']
    for k in range(5):
        v = top_value * k / 4
        y = top + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>')
    for i, r in enumerate(rows):
        gx = left + group * i + group * 0.1
        for j, key in enumerate(keys):
            if r.get(key) is None:
                continue
            v = float(r[key])
            h = plot_h * v / top_value
            x = gx + bar * j
            body.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar * 0.92:.1f}" height="{h:.1f}" '
                        f'fill="{PALETTE[j]}"><title>{escape(str(r["org"]))} {key}: {v:.3f}</title></rect>')
            interval = r.get(key + "_interval")
            if interval and None not in interval:
                y1 = top + plot_h - plot_h * float(interval[0]) / top_value
                y2 = top + plot_h - plot_h * float(interval[1]) / top_value
                cx = x + bar * 0.46
                body.append(f'<line x1="{cx:.1f}" y1="{y1:.1f}" x2="{cx:.1f}" y2="{y2:.1f}" class="whisker"/>')
        label = escape(str(r["org"])) + (" (forgotten)" if r.get("forgotten") else "")
        body.append(f'<text x="{left + group * (i + 0.5):.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                    f'class="tick{" strong" if r.get("forgotten") else ""}">{label}</text>')
    x = left
    for j, key in enumerate(keys):
        body.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{PALETTE[j]}"/>'
                    f'<text x="{x + 14}" y="15" class="tick">{key}</text>')
        x += 14 + 7 * len(key) + 18
    body.append(f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
                f'text-anchor="middle" class="label">perplexity</text>')
    return _svg(width, height, body, "perplexity per topic before and after unlearning")


def lineage_graph(versions: Sequence[dict[str, Any]]) -> Markup:
    """Model versions left to right; an edge from each version to its parent."""
    if not versions:
        return _svg(640, 60, ['<text x="10" y="35" class="muted">no model versions yet</text>'], "no versions")
    gap, node_w, node_h = 120, 96, 44
    width = max(640, 40 + gap * len(versions))
    height = 140
    pos = {v["id"]: (30 + gap * i, 12 if v["kind"] == "round" else 12 + node_h + 40) for i, v in enumerate(versions)}
    pos[0] = (-10000, 0)  # version 0 (the base model) is not drawn as a node
    body = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for v in versions:
        if v["parent"] in pos and v["parent"] != 0:
            px, py = pos[v["parent"]]
            x, y = pos[v["id"]]
            body.append(f'<path d="M {px + node_w} {py + node_h / 2} C {px + node_w + 20} {py + node_h / 2}, '
                        f'{x - 20} {y + node_h / 2}, {x} {y + node_h / 2}" class="edge" marker-end="url(#arrow)"/>')
    for v in versions:
        x, y = pos[v["id"]]
        css = "node-unlearn" if v["kind"] == "unlearning" else "node-round"
        sub = f"forgets {v['forgotten']}" if v["kind"] == "unlearning" else f"round {v['round']}"
        body.append(f'<a href="#version-{v["id"]}"><rect x="{x}" y="{y}" width="{node_w}" height="{node_h}" rx="6" '
                    f'class="{css}"/><text x="{x + node_w / 2}" y="{y + 18}" text-anchor="middle" class="node-title">'
                    f'v{v["id"]}</text><text x="{x + node_w / 2}" y="{y + 34}" text-anchor="middle" class="tick">'
                    f"{escape(str(sub))}</text></a>")
    return _svg(width, height, body, "model version graph")
