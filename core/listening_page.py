"""The HTML of a listening report: one or several report manifests (``listening.py``) as one page.

Plain HTML and one inline style sheet: no script, no external resource, so the page works from a
folder, offline, with JavaScript off, and reads on a phone (tables scroll sideways, images fit the
screen). Every text that comes from outside (track and source names, provenance) is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from .evaluation import METRICS

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 0 12px 40px; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin: 1.2em 0 .3em; }
.scroll { overflow-x: auto; } table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
.row { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: flex-start; }
figure { margin: 4px 0; } figcaption { font-size: .85em; color: #555; } audio { width: 260px; max-width: 100%; }
img { max-width: 100%; height: auto; }
pre { white-space: pre-wrap; font-size: .8em; background: #f6f6f6; padding: 6px; }
.note { color: #555; font-size: .9em; } nav a { margin-right: 1em; }
"""

SIR_NOTE = "On rendered music BSSEval's SIR and SAR are ill-conditioned and can fall below SDR; SDR stays sound."


def _url(prefix: str, relative: str) -> str:
    return escape(quote(prefix + relative), quote=True)


def _player(caption: str, prefix: str, relative: str) -> str:
    return (
        f"<figure><figcaption>{escape(caption)}</figcaption>"
        f'<audio controls preload="none" src="{_url(prefix, relative)}"></audio></figure>'
    )


def _image(alt: str, prefix: str, relative: str) -> str:
    return f'<img src="{_url(prefix, relative)}" alt="{escape(alt, quote=True)}" loading="lazy">'


def _number(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def _scores_table(rows: Sequence[tuple[str, dict]], caption: str) -> str:
    """Rows of (label, metric -> value)."""
    head = "".join(f"<th>{m} (dB)</th>" for m in METRICS)
    body = "".join(
        f"<tr><td>{escape(label)}</td>" + "".join(f"<td>{_number(values.get(m))}</td>" for m in METRICS) + "</tr>"
        for label, values in rows
    )
    caption = f'<caption class="note">{escape(caption)}</caption>'
    return f'<div class="scroll"><table>{caption}<tr><th></th>{head}</tr>{body}</table></div>'


def _sources(manifest: dict) -> list[str]:
    return list(manifest["tracks"][0]["stems"]) if manifest["tracks"] else []


def _summary(reports: Sequence[tuple[str, dict]]) -> str:
    several = len(reports) > 1
    parts = ["<h2 id='summary'>Summary</h2>"]
    rows = [
        (f"{source} · {manifest['title']}" if several else source, manifest["summary"][source])
        for source in _sources(reports[0][1])
        for _, manifest in reports
        if source in manifest["summary"]
    ]
    if rows:
        tracks = len(reports[0][1]["tracks"])
        parts.append(_scores_table(rows, f"mean over {tracks} tracks of the median over 1 s windows"))
        parts.append(f"<p class='note'>{SIR_NOTE}</p>")
    figures = [
        f"<figure>{_image('box plot of per-track SDR', prefix, m['box_plot'])}"
        f"<figcaption>{escape(m['title'])}: SDR per track</figcaption></figure>"
        for prefix, m in reports
        if m.get("box_plot")
    ]
    if figures:
        parts.append("<div class='row'>" + "".join(figures) + "</div>")
    return "".join(parts)


def _track(index: int, reports: Sequence[tuple[str, dict]]) -> str:
    several = len(reports) > 1
    first_prefix, first = reports[0]
    track = first["tracks"][index]
    name = track["name"]
    others = [(p, m, next(t for t in m["tracks"] if t["name"] == name)) for p, m in reports]
    start, stop = track["excerpt"]
    parts = [
        f"<h2 id='track-{index + 1}'>{escape(name)}</h2>",
        f"<p class='note'>excerpt {start:.0f}–{stop:.0f} s of {track['duration']:.1f} s; every player of the "
        f"track at the same gain ({track['gain']:.2f})</p>",
    ]
    if "scores" in track:
        rows = [
            (f"{source} · {m['title']}" if several else source, t["scores"][source])
            for source in track["stems"]
            for _, m, t in others
            if source in t.get("scores", {})
        ]
        parts.append(_scores_table(rows, "median over the track's 1 s windows"))
        parts.append(
            "<div class='row'>"
            + "".join(
                f"<figure>{_image('scores per window: ' + m['title'], p, t['windows'])}"
                f"<figcaption>{escape(m['title'])}</figcaption></figure>"
                for p, m, t in others
                if t.get("windows")
            )
            + "</div>"
        )
    parts.append("<div class='row'>" + _player("mixture", first_prefix, track["mixture"]) + "</div>")
    for source, files in track["stems"].items():
        parts.append(f"<h3>{escape(source)}</h3><div class='row'>")
        if "reference" in files:
            parts.append(_player(f"{source}: reference", first_prefix, files["reference"]))
        for prefix, m, t in others:
            stem = t["stems"].get(source)
            if stem is None:
                continue
            label = f" · {m['title']}" if several else ""
            parts.append(_player(f"{source}: estimate{label}", prefix, stem["estimate"]))
            if "residual" in stem:
                parts.append(_player(f"{source}: residual (estimate − reference){label}", prefix, stem["residual"]))
        parts.append("</div><div class='row'>")
        for prefix, m, t in others:
            stem = t["stems"].get(source)
            if stem is not None:
                parts.append(
                    f"<figure>{_image(source + ' spectrogram', prefix, stem['spectrogram'])}"
                    f"<figcaption>{escape(m['title'])}</figcaption></figure>"
                    if several
                    else _image(f"{source} spectrogram", prefix, stem["spectrogram"])
                )
        parts.append("</div>")
    return "".join(parts)


def _details(reports: Sequence[tuple[str, dict]]) -> str:
    parts = ["<h2 id='model'>Model and protocol</h2>"]
    for _, manifest in reports:
        parts.append(f"<h3>{escape(manifest['title'])}</h3>")
        for heading, fields in (("model", manifest.get("model", {})), ("protocol", manifest.get("protocol", {}))):
            if fields:
                text = json.dumps(fields, indent=1, ensure_ascii=False)
                parts.append(f"<p class='note'>{heading}</p><pre>{escape(text)}</pre>")
    return "".join(parts)


def render(reports: Sequence[tuple[str, dict]], size: int | None = None) -> str:
    """The page for ``reports``: (URL prefix of its files, manifest) pairs, one column each; the
    first report's tracks, references and mixtures. ``size``: the folder's size in bytes, stated."""
    first = reports[0][1]
    title = first["title"] if len(reports) == 1 else "comparison: " + " · ".join(m["title"] for _, m in reports)
    kind = "separation" if first["kind"] == "separation" else "evaluation"
    nav = "".join(f"<a href='#track-{k + 1}'>{escape(t['name'])}</a>" for k, t in enumerate(first["tracks"]))
    intro = (
        f"{len(first['tracks'])} tracks, one excerpt of each (at most {first['excerpt_seconds']:.0f} s"
        + (", where the quietest reference source is loudest" if kind == "evaluation" else "")
        + "), MP3 at 56 kbit/s."
        + (f" This folder holds {size / 1e6:.1f} MB." if size is not None else "")
    )
    body = [
        f"<h1>{escape(title)}</h1><p class='note'>septool {kind} report. {escape(intro)}</p>",
        f"<nav><a href='#summary'>summary</a>{nav}<a href='#model'>model and protocol</a></nav>"
        if kind == "evaluation"
        else f"<nav>{nav}<a href='#model'>model</a></nav>",
    ]
    if kind == "evaluation":
        body.append(_summary(reports))
    body += [_track(k, reports) for k in range(len(first["tracks"]))]
    body.append(_details(reports))
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
