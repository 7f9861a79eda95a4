"""A synthetic table's evaluation as one self-contained HTML page: figures, then plots that show where they come from.

The page holds, for the model and (when given) a baseline synthesiser: the headline figures of ``evaluate/tables.py``
(quality and its two properties, utility TRTR / TSTR, privacy), per-column plots of the worst-scoring columns and
the target (real against synthetic against the baseline's synthetic rows), the real and synthetic correlation
matrices of the continuous columns, and the DCR histograms (synthetic-to-training against holdout-to-training
distances). Plots are PNGs drawn with matplotlib's Agg canvas (no pyplot, no global state) and embedded as base64
data URIs: no external asset, no JavaScript. Every text that comes from the data (column names, categories) is
escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genlab.errors import GenlabError
from genlab.evaluate.tables import CONTINUOUS, DISCRETE, _numbers, _pearson
from genlab.files import atomic_write_bytes

MAX_COLUMN_PLOTS = 12
MAX_BARS = 15  # categories shown per discrete column; the rest are summed as "(other)"
MAX_HEATMAP = 40  # continuous columns in the correlation heatmaps
COLORS = {"real": "#1f4e79", "synthetic": "#d9822b", "baseline": "#5b9a5b"}
YEAR_S = 365.2425 * 86400
CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f0f0}h2{margin-top:1.6em}
.plots img{max-width:48%;margin:.5%}.wide img{max-width:98%}.note{color:#555;font-size:.9em}"""
# headline rows: (section, key in that section's dict, label); utility rows are built from the dict itself
QUALITY_ROWS = [("score", "quality score (1 = alike)"), ("column_shapes", "column shapes"),
                ("column_pair_trends", "column pair trends")]
PRIVACY_ROWS = [("dcr_ratio", "DCR ratio: median synthetic / holdout (>= 1 safe)"),
                ("dcr_synthetic_median", "DCR median, synthetic to training"),
                ("dcr_holdout_median", "DCR median, holdout to training"),
                ("closer_than_holdout_p5", "share of synthetic rows closer than the holdout's 5th percentile"),
                ("exact_copy_share", "share of synthetic rows copying a training row"),
                ("holdout_copy_share", "same share for holdout rows (baseline)"),
                ("mia_auc", "membership-inference AUC (0.5 = safe)")]


def _png(fig: Figure, alt: str) -> str:
    """``fig`` as an <img> with a base64 PNG data URI."""
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.4f}"
    return html.escape(str(x))


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _headline(report: dict, baseline_name: str) -> str:
    """The figures table: a row per figure, a column for the model and one for the baseline (if any)."""
    base = report.get("baseline") if isinstance(report.get("baseline"), dict) else None
    sides = [report] + ([base] if base else [])
    rows: list[tuple[str, list[Any]]] = []
    rows += [(label, [_get(s, "quality", k) for s in sides]) for k, label in QUALITY_ROWS]
    util = report.get("utility") or (base or {}).get("utility")
    if isinstance(util, dict):
        head = util.get("headline")
        rows.append((f"utility ratio: TSTR / TRTR {head}", [_get(s, "utility", "ratio") for s in sides]))
        for metric in util.get("real", {}):
            rows.append((f"{metric}, trained on real (TRTR)", [_get(s, "utility", "real", metric) for s in sides]))
            rows.append((f"{metric}, trained on synthetic (TSTR)",
                         [_get(s, "utility", "synthetic", metric) for s in sides]))
    rows += [(label, [_get(s, "privacy", k) for s in sides]) for k, label in PRIVACY_ROWS]
    titles = ["figure", "this model"] + ([f"baseline ({baseline_name})"] if base else [])
    out = ["<table><tr>" + "".join(f"<th>{html.escape(t)}</th>" for t in titles) + "</tr>"]
    out += [f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{_fmt(v)}</td>" for v in values) + "</tr>"
            for label, values in rows]
    return "\n".join(out) + "</table>"


def _chosen(report: dict, names: list[str]) -> list[str]:
    """The target, then the worst-scoring columns: up to MAX_COLUMN_PLOTS."""
    scores = _get(report, "quality", "columns") or {}
    target = _get(report, "utility", "target")
    key = {c: (scores.get(c) or {}).get("score") for c in names}
    worst = sorted(names, key=lambda c: (key[c] is not None, key[c] if key[c] is not None else 0))
    ordered = ([target] if target in names else []) + [c for c in worst if c != target]
    return ordered[:MAX_COLUMN_PLOTS]


def _column_plot(name: str, kind: str, tables: dict[str, pd.DataFrame], score: Any) -> str:
    """Histogram overlay (continuous) or side-by-side category shares (discrete) of one column in every table."""
    fig = Figure(figsize=(5.2, 3.2))
    ax = fig.add_subplot()
    missing = {k: float(f[name].isna().mean()) for k, f in tables.items()}
    if kind in CONTINUOUS:
        values = {k: _numbers(f[name], kind, name) for k, f in tables.items()}
        if kind == "datetime":  # seconds -> calendar years, to read the axis
            values = {k: 1970 + v / YEAR_S for k, v in values.items()}
        present = {k: v[~np.isnan(v)] for k, v in values.items()}
        pooled = np.concatenate([v for v in present.values() if len(v)] or [np.zeros(1)])
        edges = np.histogram_bin_edges(pooled, bins=30)
        for k, v in present.items():
            if len(v):
                ax.hist(v, bins=edges, density=True, histtype="step" if k != "real" else "stepfilled",
                        alpha=0.35 if k == "real" else 1.0, color=COLORS[k], label=k, linewidth=1.5)
        ax.set_ylabel("density")
        ax.set_xlabel("year" if kind == "datetime" else "value")
    else:
        shares = {k: f[name].map(lambda v: "(missing)" if v is None or v is pd.NA or v != v else str(v))
                  .value_counts(normalize=True) for k, f in tables.items()}
        cats = list(shares["real"].index[:MAX_BARS])
        extra = dict.fromkeys(c for s in shares.values() for c in s.index[:MAX_BARS] if c not in cats)
        cats += list(extra)[: max(0, MAX_BARS - len(cats))]  # categories only synthetic rows show, if room
        other = any(set(s.index) - set(cats) for s in shares.values())
        labels = cats + (["(other)"] if other else [])
        x, width = np.arange(len(labels)), 0.8 / len(shares)
        for i, (k, s) in enumerate(shares.items()):
            heights = [float(s.get(c, 0.0)) for c in cats] + ([float(s.drop(cats, errors="ignore").sum())] * other)
            ax.bar(x + (i - (len(shares) - 1) / 2) * width, heights, width, color=COLORS[k], label=k)
        tilt = len(labels) > 4
        ax.set_xticks(x, [lab[:14] for lab in labels], rotation=45 * tilt, ha="right" if tilt else "center",
                      fontsize=8)
        ax.set_ylabel("share of rows")
    gaps = ", ".join(f"{k} {v:.0%}" for k, v in missing.items())
    ax.set_title(f"{name[:40]} (score {_fmt(score)}; missing: {gaps})", fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig, f"column {name}")


def _heatmaps(real: pd.DataFrame, synth: pd.DataFrame, columns: dict, names: list[str]) -> str:
    """The real and synthetic Pearson correlation matrices of the continuous columns, side by side."""
    cont = [c for c in names if columns[c]["type"] in CONTINUOUS][:MAX_HEATMAP]
    if len(cont) < 2:
        return '<p class="note">Fewer than two continuous columns: no correlation matrix.</p>'
    fig = Figure(figsize=(11, 5.2))
    for i, (title, frame) in enumerate((("real", real), ("synthetic", synth))):
        ax = fig.add_subplot(1, 2, i + 1)
        corr = _pearson(np.column_stack([_numbers(frame[c], columns[c]["type"], c) for c in cont]))
        image = ax.imshow(corr, vmin=-1, vmax=1, cmap=colormaps["RdBu_r"].with_extremes(bad="#bbbbbb"))
        labels = [c[:16] for c in cont] if len(cont) <= 25 else []
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{title} correlations", fontsize=10)
    fig.colorbar(image, ax=fig.axes, shrink=0.8)
    note = f" (the first {MAX_HEATMAP} of them)" if len(cont) == MAX_HEATMAP else ""
    return f'<div class="wide">{_png(fig, "correlation matrices")}</div><p class="note">Continuous columns{note}; ' \
           "grey = undefined (a constant column, or too few rows where both are present).</p>"


def _dcr_plot(report: dict, baseline_name: str) -> str:
    """Histograms of the distances to the closest training row: synthetic rows against holdout rows."""
    hist = _get(report, "privacy", "dcr_histogram")
    if not isinstance(hist, dict):
        return '<p class="note">No privacy figures in this report.</p>'
    fig = Figure(figsize=(6.5, 3.4))
    ax = fig.add_subplot()
    series = [("holdout to training", hist, "holdout", COLORS["real"]),
              ("synthetic to training", hist, "synthetic", COLORS["synthetic"])]
    base = _get(report, "baseline", "privacy", "dcr_histogram")
    if isinstance(base, dict):
        series.append((f"{baseline_name} synthetic to training", base, "synthetic", COLORS["baseline"]))
    for label, h, key, color in series:
        counts, edges = np.asarray(h[key], dtype=float), np.asarray(h["edges"], dtype=float)
        density = counts / max(counts.sum(), 1) / np.maximum(np.diff(edges), 1e-12)  # each table has its own bins
        ax.stairs(density, edges, label=label, color=color, linewidth=1.8)
    ax.set_xlabel("distance to the closest training row (RMS per column)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return _png(fig, "distance to closest record")


def _column_table(report: dict) -> str:
    """Per-column scores, worst first."""
    scores = _get(report, "quality", "columns") or {}
    items = sorted(scores.items(), key=lambda kv: (kv[1].get("score") is not None, kv[1].get("score") or 0))
    rows = "".join(f"<tr><td>{html.escape(str(c))}</td><td>{html.escape(str(s.get('metric')))}</td>"
                   f"<td>{_fmt(s.get('score'))}</td></tr>" for c, s in items)
    return f"<table><tr><th>column</th><th>metric</th><th>score</th></tr>{rows}</table>"


def _privacy_budget(report: dict[str, Any]) -> str:
    """The differential-privacy record (``privacy.json``) as a small table, or a line saying there is none."""
    dp = report.get("differential_privacy")
    if not isinstance(dp, dict):
        return ('<p class="note">Trained without a differential-privacy budget: the privacy figures above are '
                "measurements, not a guarantee.</p>")
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in dp.items())
    return f"<h2>Differential privacy</h2><table>{rows}</table>"


def write_report(path: Path, report: dict[str, Any], real: pd.DataFrame, synth: pd.DataFrame,
                 columns: dict[str, dict], *, baseline: pd.DataFrame | None = None,
                 baseline_name: str = "copula") -> Path:
    """Write the HTML page of ``report`` (``{"quality", "utility", "privacy", "baseline": {...}}``) to ``path``,
    atomically; ``real`` and ``synth`` (and ``baseline``, the baseline's synthetic rows) feed the plots."""
    if not isinstance(report, dict):
        raise GenlabError(f"the report must be a dict, not {type(report).__name__}")
    tables = {"real": real, "synthetic": synth} | ({"baseline": baseline} if baseline is not None else {})
    for k, f in tables.items():
        if not isinstance(f, pd.DataFrame):
            raise GenlabError(f"the {k} table must be a pandas DataFrame, not {type(f).__name__}")
    names = [c for c, m in columns.items() if m.get("type") in (*CONTINUOUS, *DISCRETE)
             and all(c in f.columns for f in tables.values())]
    scores = _get(report, "quality", "columns") or {}
    plots = "".join(_column_plot(c, columns[c]["type"], tables, (scores.get(c) or {}).get("score"))
                    for c in _chosen(report, names))
    base_note = (f"; baseline = the {html.escape(baseline_name)} synthesiser" if "baseline" in report else "")
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Synthetic table report</title><style>{CSS}</style></head>
<body><h1>Synthetic table report</h1>
<p class="note">{len(real)} real rows, {len(synth)} synthetic rows, {len(names)} columns evaluated{base_note}.
Quality follows SDMetrics' QualityReport; utility trains a gradient-boosting model on real (TRTR) or synthetic
(TSTR) rows and scores both on the same real test rows; privacy compares synthetic rows' distance to the training
rows with held-out real rows' distance.</p>
<h2>Headline figures</h2>
{_headline(report, baseline_name)}
{_privacy_budget(report)}
<h2>Columns</h2>
<p class="note">The target and the worst-scoring columns: {" against ".join(tables)}.</p>
<div class="plots">{plots}</div>
{_column_table(report)}
<h2>Correlations</h2>
{_heatmaps(real, synth, columns, names)}
<h2>Distance to closest record</h2>
<p class="note">Synthetic rows that sit much closer to training rows than held-out real rows do are copies or
near-copies of training records.</p>
{_dcr_plot(report, baseline_name)}
</body></html>
"""
    path = Path(path)
    atomic_write_bytes(path, body.encode("utf-8"))
    return path
