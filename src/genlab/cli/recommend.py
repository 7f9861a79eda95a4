"""The ``recommend`` verb: the top items for a user of a ratings run, or for a new user's history file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

import genlab
from genlab.cli.common import RunArg, check_new, err, out, print_json, saved


def recommend(
    run: RunArg,
    user: Annotated[Optional[str], typer.Option("--user", help="a user id of the run's data")] = None,
    history: Annotated[Optional[Path], typer.Option("--history", help="a new user's items: a CSV with an item column, "
                                                    "or one item id per line (folded in without retraining)")] = None,
    k: Annotated[int, typer.Option("--k", help="how many items to recommend")] = 10,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="new folder for recommendations.csv (signed)")
                        ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the recommendations as JSON")] = False,
) -> None:
    """Recommend items for a user of a ratings run (or a new history), with scores and the history items that weigh
    most. Items the user has already seen are never recommended."""
    from genlab.data.ratings import read_history

    check_new(out_file)
    options = {"user": user, "k": k}
    if history is not None:
        options["history"] = read_history(history)
    r = genlab.load(run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = r.sample(1, **{k_: v for k_, v in options.items() if v is not None})
    for w in caught:
        err.print(f"warning: {w.message}", highlight=False)
    if out_file is not None:
        saved(recs, out_file, None, prefix="recommendations")
    if as_json:
        print_json(list(recs))
        return
    for title, text in recs.sections() or []:
        out.print(title, style="bold")
        out.print(text, highlight=False)
