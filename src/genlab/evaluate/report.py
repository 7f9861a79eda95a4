"""How an evaluation report reads as a table, for the command line and the model card alike.

A report (``Run.evaluate``) holds the model's figures at its top level (and, for some families, in a ``model``
dict) and its references as dicts beside them: ``floor`` (the same network with random weights), ``ceiling``
(real data scored as samples), ``baseline`` (a simple predictor, named by its ``name``). Each reference becomes a
column; lists (examples), ``per_frame`` curves (video) and the run's labels are left out.
"""

from __future__ import annotations

from typing import Any

LABELS = ("run", "family", "dataset", "partial")  # who and what, not figures
DETAILS = ("model", "per_frame")  # dicts that are not references (the model's own figures; figures as curves)
TITLES = {"floor": "floor (random weights)", "ceiling": "ceiling (real data)"}


def report_rows(report: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column titles, rows): each row a figure's name, the model's value, then each reference's value (or None)."""
    mine = {k: v for k, v in report.items() if not isinstance(v, (dict, list)) and k not in LABELS}
    if isinstance(report.get("model"), dict):
        mine.update(report["model"])
    refs = {k: v for k, v in report.items() if isinstance(v, dict) and k not in DETAILS}
    titles = ["metric", "model",
              *(f"{k} ({v['name']})" if "name" in v else TITLES.get(k, k) for k, v in refs.items())]
    keys = [*mine, *dict.fromkeys(k for ref in refs.values() for k in ref if k not in mine and k != "name")]
    return titles, [(key, mine.get(key), *(ref.get(key) for ref in refs.values())) for key in keys]
