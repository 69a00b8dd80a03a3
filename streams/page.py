"""The profile page (GET /ui/users/{user_id}, streams/views.py): one user's three layers as bars,
how each layer's top labels moved across the versions recorded on this worker (an inline SVG
chart), the keywords, and the latest recommendations with their reasons.

One self-contained HTML document: inline CSS and SVG, no script, no external asset. Every string
taken from a document is escaped, attributes included: user ids, item ids and event text (hence
keywords) come from producers, labels from a taxonomy file, reasons are built from both.
"""
from __future__ import annotations

import math
from html import escape

from model.taxonomy import LAYERS
from state.trail import TRAIL_VERSIONS, Trail, TrailPoint

LAYER_MEANING = {"surface": "what now", "middle": "what holds across contexts", "deep": "long-term core"}
CHART_TOP = 3  # a label gets a line once it was among a layer's 3 most probable at some version
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
# The chart's drawing area in SVG units (it scales with its card).
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 360, 160, 38, 12, 10, 22

STYLE = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2933;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","WenQuanYi Micro Hei","PingFang SC",
 "Microsoft YaHei",sans-serif}
header,main,footer{max-width:1320px;margin:0 auto;padding:0 24px}
header{padding-top:24px}
.kicker{margin:0;color:#64748b;font-size:12px;letter-spacing:.08em;text-transform:uppercase}
h1{margin:2px 0 8px;font-size:24px;word-break:break-all}
.facts{display:flex;flex-wrap:wrap;gap:6px 20px;margin:0 0 16px;padding:0;list-style:none;color:#52606d}
.facts strong{color:#1f2933;font-weight:600}
.layers{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
.card{background:#fff;border:1px solid #e4e7eb;border-radius:10px;padding:16px 18px}
h2{margin:0 0 12px;font-size:17px}
h2 small{margin-left:6px;color:#7b8794;font-size:13px;font-weight:400}
h3{margin:16px 0 6px;color:#52606d;font-size:12px;letter-spacing:.06em;text-transform:uppercase}
.bar{display:grid;grid-template-columns:8.5em 1fr 4em;align-items:center;gap:8px;margin:5px 0}
.bar .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{height:12px;background:#eef1f4;border-radius:6px;overflow:hidden}
.fill{display:block;height:100%;background:#64748b;border-radius:6px}
.bar.rest .name,.bar.rest .value{color:#7b8794}
.bar.rest .fill{background:#b8c2cc}
.bar.inferred .fill{background:repeating-linear-gradient(45deg,#d97706 0 4px,#f59e0b 4px 8px)}
.value{text-align:right;font-variant-numeric:tabular-nums}
.keywords{display:flex;flex-wrap:wrap;gap:6px;margin:0;padding:0;list-style:none}
.keywords li{background:#eef2ff;color:#3730a3;border-radius:12px;padding:1px 10px}
.none{color:#7b8794;margin:0}
svg.chart{display:block;width:100%;height:auto}
.chart .grid{stroke:#e4e7eb;stroke-width:1}
.chart text{fill:#7b8794;font-size:10px}
.chart polyline{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0 0;padding:0;list-style:none;font-size:13px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.recs{margin-top:16px}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #eef1f4;vertical-align:top}
th{color:#52606d;font-size:12px;font-weight:600;letter-spacing:.04em;text-transform:uppercase}
.num{text-align:right;font-variant-numeric:tabular-nums}
.rank{width:2.5em;color:#7b8794}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.note{color:#7b8794;margin:8px 0 0}
footer{padding:16px 24px 32px;color:#7b8794}
.message{max-width:640px;margin:15vh auto;padding:28px 32px}
"""


def _e(value) -> str:
    return escape(str(value), quote=True)


def _percent(p: float) -> str:
    return f"{100 * p:.1f}%"


def _when(iso: str) -> str:
    """2026-11-01T08:30:00.000Z -> 2026-11-01 08:30:00 UTC"""
    return f"{iso[:19].replace('T', ' ')} UTC" if iso else "—"


def _document(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n")


def message_page(title: str, message: str) -> str:
    """A page for what is not a profile: 400, 401, 404, 500."""
    return _document(f"Strata · {title}",
                     f'<main><div class="card message"><p class="kicker">Strata profile page</p>'
                     f"<h1>{_e(title)}</h1><p>{_e(message)}</p></div></main>")


def _bar(label: str, p: float, kind: str, colour: str = "") -> str:
    width = min(max(float(p), 0.0), 1.0)
    fill = f"width:{100 * width:.2f}%" + (f";background:{colour}" if colour else "")
    return (f'<div class="bar {kind}" data-label="{_e(label)}">'
            f'<span class="name" title="{_e(label)}">{_e(label)}</span>'
            f'<span class="track"><span class="fill" style="{fill}"></span></span>'
            f'<span class="value">{_percent(width)}</span></div>')


def _colours(series: list[tuple[str, list[float | None]]]) -> dict[str, str]:
    """A label's colour, the same for its bar and its line."""
    return {label: PALETTE[k % len(PALETTE)] for k, (label, _) in enumerate(series)}


def chart_series(layer: str, points: list[TrailPoint]) -> list[tuple[str, list[float | None]]]:
    """(label, probability per point or None where it was not among the recorded top labels) for
    every label in the layer's top CHART_TOP at some point; the newest point's order first."""
    labels: list[str] = []
    for point in reversed(points):
        for label, _ in point.top.get(layer, [])[:CHART_TOP]:
            if label not in labels:
                labels.append(label)
    values = [dict(point.top.get(layer, [])) for point in points]
    return [(label, [v.get(label) for v in values]) for label in labels]


def _scale_max(series: list[tuple[str, list[float | None]]]) -> float:
    """The y axis' top: the smallest of a few round values (their halves round too) above every probability."""
    top = max((p for _, ps in series for p in ps if p is not None), default=0.0)
    return next(m for m in (0.1, 0.2, 0.4, 0.6, 0.8, 1.0) if top <= m)


def chart_svg(layer: str, points: list[TrailPoint], series: list[tuple[str, list[float | None]]]) -> str:
    """A line per label of `series` (chart_series), the probability at each recorded version. A line
    breaks where the label left the recorded top labels and where versions were not recorded here."""
    colours = _colours(series)
    y_max = _scale_max(series)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(points)
    xs = [LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]

    def y(p: float) -> float:
        return TOP + plot_h * (1 - min(p, y_max) / y_max)

    out = [f'<svg class="chart" data-layer="{_e(layer)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{_e(layer)}: top labels per version</title>']
    for p in (0.0, y_max / 2, y_max):
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(p):.1f}" y2="{y(p):.1f}"/>'
                   f'<text x="{LEFT - 6}" y="{y(p) + 3:.1f}" text-anchor="end">{100 * p:.0f}%</text>')
    step = math.ceil(n / 8)
    for i, point in enumerate(points):
        if i % step == 0 or i == n - 1:
            out.append(f'<text x="{xs[i]:.1f}" y="{HEIGHT - 6}" text-anchor="middle">v{point.version}</text>')
    for label, ps in series:
        out.append(f'<g class="series" data-label="{_e(label)}" stroke="{colours[label]}" fill="{colours[label]}">')
        segment: list[str] = []
        for i, p in enumerate(ps):
            joined = i > 0 and ps[i - 1] is not None and points[i].version == points[i - 1].version + 1
            if segment and (p is None or not joined):
                out.append(_polyline(segment))
                segment = []
            if p is not None:
                segment.append(f"{xs[i]:.1f},{y(p):.1f}")
                out.append(f'<circle cx="{xs[i]:.1f}" cy="{y(p):.1f}" r="2.5" stroke="none">'
                           f"<title>{_e(label)} · v{points[i].version} · {_percent(p)}</title></circle>")
        out.append(_polyline(segment) + "</g>")
    out.append("</svg>")
    legend = "".join(f'<li><i style="background:{colours[label]}"></i>{_e(label)}</li>' for label, _ in series)
    return "".join(out) + f'<ul class="legend">{legend}</ul>'


def _polyline(segment: list[str]) -> str:
    return f'<polyline points="{" ".join(segment)}"/>' if len(segment) > 1 else ""


def _layer_card(layer: str, doc: dict, keywords: list[str], points: list[TrailPoint]) -> str:
    series = chart_series(layer, points)
    colours = _colours(series)
    bars = "".join(_bar(x["label"], x["p"], "label", colours.get(x["label"], "")) for x in doc["top"])
    words = ("<ul class=\"keywords\">" + "".join(f"<li>{_e(w)}</li>" for w in keywords) + "</ul>" if keywords
             else '<p class="none">none</p>')
    return (f'<article class="card layer" id="layer-{_e(layer)}"><h2>{_e(layer.capitalize())}'
            f"<small>{_e(LAYER_MEANING.get(layer, ''))}</small></h2>"
            f'<div class="bars">{bars}{_bar("other labels", doc["rest"], "rest")}</div>'
            f'<h3>Evidence inferred from text</h3>{_bar("share", doc["inferred"], "inferred")}'
            f"<h3>Keywords</h3>{words}"
            f"<h3>Top labels across versions</h3>{chart_svg(layer, points, series)}</article>")


def _recommendations(profile: dict, recs: dict | None) -> str:
    if recs is None:
        return '<p class="none">No recommendations recorded on this worker yet.</p>'
    rows = "".join(f'<tr><td class="rank">{i}</td><td><code>{_e(r["item_id"])}</code></td>'
                   f'<td class="num">{float(r["score"]):.3f}</td><td>{_e(r["layer"])}</td>'
                   f'<td>{_e(r["reason"])}</td></tr>'
                   for i, r in enumerate(recs["items"], 1))
    table = (f'<table><thead><tr><th class="rank">#</th><th>Item</th><th class="num">Score</th><th>Layer</th>'
             f"<th>Reason</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>" if rows else '<p class="none">No catalogue item to recommend.</p>')
    note = ""
    if recs["profile_version"] != profile["version"]:
        note = (f'<p class="note">These came with version {_e(recs["profile_version"])}; version '
                f'{_e(profile["version"])} and its recommendations were published by the user\'s previous worker.</p>')
    return f'{table}{note}'


def _ranges(versions: list[int]) -> str:
    """[1, 2, 3, 7, 8] -> v1–v3, v7–v8"""
    runs: list[list[int]] = []
    for v in versions:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(f"v{r[0]}" if len(r) == 1 else f"v{r[0]}–v{r[-1]}" for r in runs)


def _trail_note(profile: dict, trail: Trail) -> str:
    n = len(trail.points)
    versions = _ranges([p.version for p in trail.points])
    recorded = (f"{n} version{'s' if n != 1 else ''} recorded on this worker ({versions}); " if n
                else "No version recorded on this worker yet; ")
    note = f"{recorded}it keeps the last {TRAIL_VERSIONS} per user. "
    if not n or trail.points[-1].version < profile["version"]:
        note += (f"The current version, v{_e(profile['version'])}, was not recorded here: it came from the profiles "
                 f"topic, published while another worker owned this user. ")
    return note + "Versions published while another worker owned this user are not in the chart."


def profile_page(profile: dict, trail: Trail) -> str:
    """The page for a profile document (model/documents.py `Profile`) and the user's trail on this worker."""
    user = profile["user_id"]
    window = profile["window"]
    points = trail.through(profile)
    facts = [("version", profile["version"]), ("model", profile["model_version"]),
             ("updated", _when(profile["updated_at"])), ("events seen", profile["events_seen"]),
             ("window", f"{window['events']} events, {_when(window['from'])} – {_when(window['to'])}")]
    cards = "".join(_layer_card(layer, profile["layers"][layer], profile["keywords"].get(layer, []), points)
                    for layer in LAYERS if layer in profile["layers"])
    recs_version = f" (with version {_e(trail.recommendations['profile_version'])})" if trail.recommendations else ""
    body = (f'<header><p class="kicker">Strata profile</p><h1 id="user">{_e(user)}</h1>'
            f'<ul class="facts">{"".join(f"<li>{_e(k)} <strong>{_e(v)}</strong></li>" for k, v in facts)}</ul></header>'
            f'<main><section class="layers">{cards}</section>'
            f'<section class="card recs"><h2>Latest recommendations<small>{recs_version}</small></h2>'
            f"{_recommendations(profile, trail.recommendations)}</section></main>"
            f'<footer><p id="trail-note">{_trail_note(profile, trail)}</p></footer>')
    return _document(f"Strata · {user}", body)
