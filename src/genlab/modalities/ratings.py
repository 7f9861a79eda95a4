"""The ratings modality: who liked what in, ranked recommendations out.

Data: MovieLens 100k (``movielens-100k``, inside the ``recbole`` package) or the user's CSV of
``user,item[,rating][,timestamp]``, split by user as the Mult-VAE paper does (``data/ratings.py``). Outputs: the top
``k`` items for a known user or for a new history (``Recommendations``: rank, item, title, genres, score and the
history items that weigh most), written as CSV. Seen items are never recommended. Evaluation ranks every item for
the held-out test users from their fold-in items (``evaluate/recommend.py``), beside item popularity and EASE fitted
now on the same training users. Recommendations carry no watermark; their provenance is the signed manifest.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.data.ratings import RATINGS_SUFFIXES, RatingsData, RatingsDataConfig, RatingsSource, prepare_ratings, \
    read_ratings_csv
from genlab.errors import BadArgument, GenlabError
from genlab.modalities.base import Modality, Option, Outputs, own_options

BASELINES = ("popularity", "ease")  # families every ratings report is shown beside, fitted on the same users
BECAUSE = 3  # history items named as the reason for each recommendation
MAX_K = 1000  # most recommendations one request may ask for


class Recommendations(Outputs, list):
    """Rows of dicts: rank, item, title, genres, score, because (the history titles that weigh most)."""

    modality = "ratings"
    unknown: tuple[str, ...] = ()  # history items the run does not know (left out, with a warning)

    def csv_bytes(self) -> bytes:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["rank", "item", "title", "genres", "score", "because"],
                           lineterminator="\n")
        w.writeheader()
        for row in self:
            w.writerow({**row, "score": f"{row['score']:.6g}", "because": "; ".join(row["because"])})
        return buf.getvalue().encode("utf-8")

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        yield f"{prefix}.csv", self.csv_bytes()

    def sections(self) -> list[tuple[str, str]]:
        lines = [f"{r['rank']:>3}. {r['title']}" + (f" [{r['genres']}]" if r["genres"] else "")
                 + f"  score {r['score']:.4g}" + (f"  because: {'; '.join(r['because'])}" if r["because"] else "")
                 for r in self]
        return [(self.prompt or "recommendations", "\n".join(lines))]


def history_row(data: RatingsData, user: str | None, history: list[str] | None) -> tuple[torch.Tensor, list, str]:
    """(I,) the 0/1 history to recommend from, the unknown history items, and who it is for."""
    if user is not None and history:
        raise BadArgument("history", "cannot be given with user: recommend for a known user or for a new history")
    if user is not None:
        user = str(user).strip()
        if user not in data.user_index:
            raise BadArgument("user", f"'{user}' is not a user of this run's data (or has fewer than "
                                      f"{data.meta['min_positives']} positives)")
        u = data.user_index[user]
        row = data.shown[u] if data.split[u] else data.full[u]  # a held-out user: what the model may see
        return row.clone(), [], f"user {user}"
    if not history:
        raise BadArgument("user", "is required (or a history of item ids)", valid=("user", "history"))
    items = list(dict.fromkeys(str(i).strip() for i in history if str(i).strip()))
    unknown = [i for i in items if i not in data.item_index]
    known = [data.item_index[i] for i in items if i in data.item_index]
    if not known:
        raise BadArgument("history", f"names no item of this run's data (unknown: {', '.join(unknown[:10])})")
    if unknown:
        warnings.warn(f"unknown items left out of the history: {', '.join(unknown[:20])}"
                      + (f" ... ({len(unknown)} in all)" if len(unknown) > 20 else ""), stacklevel=3)
    row = torch.zeros(data.n_items)
    row[known] = 1.0
    return row, unknown, f"a history of {len(known)} item(s)"


def recommend(model: Any, data: RatingsData, row: torch.Tensor, k: int) -> list[dict[str, Any]]:
    """The top ``k`` unseen items for one history row, with scores and reasons."""
    if k < 1 or k > MAX_K:
        raise BadArgument("k", f"must be in [1, {MAX_K}], got {k}")
    scores = model.score(row[None])[0].double().cpu().numpy()
    seen = row.numpy() > 0
    if seen.all():
        raise GenlabError("this history holds every item: there is nothing left to recommend")
    scores[seen] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -scores))[: min(k, int((~seen).sum()))]
    titles, genres = data.meta["titles"], data.meta["genres"]
    rows = []
    for rank, j in enumerate(order, 1):
        weights = model.because(row, int(j)).cpu().numpy()
        idx = [int(i) for i in np.argsort(-weights, kind="stable") if seen[i] and weights[i] > 0][:BECAUSE]
        rows.append({"rank": rank, "item": data.items[j], "title": titles[j], "genres": genres[j],
                     "score": float(scores[j]), "because": [titles[i] for i in idx]})
    return rows


class RatingsModality(Modality):
    name = "ratings"
    endpoint = "recommendations"  # POST /v1/recommendations/generations
    data_interface = "ratings"
    DataConfig = RatingsDataConfig
    Marks = None  # no watermark in a ranking: provenance is the signed manifest
    unit, unit_name = "user", "user"
    prints = True
    pipeline_tag = "other"
    path_hint = "a .csv of user,item[,rating][,timestamp]"
    sample_options = (
        Option("user", str, "a user id of the run's data to recommend for", example="1"),
        Option("history", list, "item ids a new user liked (instead of --user); unknown ones are left out"),
        Option("k", int, "how many items to recommend, 1-1000", default=10),
    )
    intended_use = (
        ("A recommender of items like those in its training ratings, for research and teaching: how a variational "
         "autoencoder ranks items beside popularity and EASE, measured on users it never trained on."),
        ("Recommendations reflect what the training users liked, popularity biases included; do not use them for "
         "decisions about people."),
    )

    def prepare(self, source: RatingsSource, config: RatingsDataConfig, folder: Path) -> RatingsData:
        return prepare_ratings(source, config, folder)

    def load(self, config: RatingsDataConfig, folder: Path) -> RatingsData:
        return RatingsData(folder)

    def from_path(self, path: Path) -> RatingsSource:
        return read_ratings_csv(path)

    def claims(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in RATINGS_SUFFIXES

    def example(self, folder: Path) -> str:
        return "movielens-100k"  # 943 users x 1,682 movies

    def check_sample(self, model: Any, options: dict[str, Any]) -> None:
        own_options(self, "sample", options)
        if options.get("k") is not None and not 1 <= int(options["k"]) <= MAX_K:
            raise BadArgument("k", f"must be in [1, {MAX_K}], got {options['k']}")

    def sample(self, model: Any, n: int, *, data: Any = None, seed: int | None = None, user: str | None = None,
               history: list[str] | None = None, k: int = 10, **options: Any) -> Recommendations:
        """The top ``k`` items for ``user`` or a new ``history`` (``n`` and ``seed`` change nothing: a ranking is
        deterministic)."""
        own_options(self, "sample", options)
        if data is None:
            raise GenlabError("recommendations need the run's data: use run.sample(user=..., k=...)")
        if isinstance(history, str):
            history = [history]
        row, unknown, who = history_row(data, user, history)
        out = Recommendations(recommend(model, data, row, int(k)))
        out.prompt, out.unknown = f"top {len(out)} for {who}", tuple(unknown)
        return out

    def check_evaluate(self, model: Any, options: dict[str, Any]) -> None:
        own_options(self, "evaluate", options, "seed")

    def evaluate(self, model: Any, data: RatingsData, **options: Any) -> dict[str, Any]:
        """Recall@20, Recall@50 and NDCG@100 (with standard errors over test users), the model's and each
        baseline's (fitted now on the run's training users)."""
        report: dict[str, Any] = {**ranking(model, data), "data_summary": [data.summary()]}  # a list: not a row
        for name in BASELINES:
            if name != model.name:
                report[name] = {"name": name, **ranking(fit_baseline(name, data), data)}
        return report

    def card_notes(self, meta: dict[str, Any]) -> list[str]:
        return [f"Learned from {meta.get('n_train', '?')} users' positives; {meta.get('n_val', '?')} validation and "
                f"{meta.get('n_test', '?')} test users were held out and never trained on."]


def ranking(model: Any, data: RatingsData, split: str = "test") -> dict[str, float]:
    """The ranking metrics of ``model`` on the held-out users of ``split``."""
    from genlab.evaluate.recommend import ranking_report

    shown, targets = data.heldout(split)
    scores = torch.cat([model.score(shown[i:i + 256]) for i in range(0, len(shown), 256)]).double().cpu().numpy()
    return ranking_report(scores, shown.numpy(), targets.numpy())


def fit_baseline(name: str, data: RatingsData) -> Any:
    """A baseline family (named in the registry: a modality imports no family) fitted on the training users."""
    from genlab import registry

    family = registry.get_family(name)
    model = family(family.Config())
    model.build(data, seed=0)
    model.solve(data)
    return model


RATINGS = RatingsModality()
