"""Synthetic tables judged three ways: how alike (quality), how useful (utility) and how private (privacy).

- ``quality``: SDMetrics' single-table QualityReport (0.32), recomputed. Column Shapes = mean over columns of
  KSComplement (1 - two-sample Kolmogorov-Smirnov statistic of the present values; numeric, integer, datetime) or
  TVComplement (1 - total variation distance of the category shares, missing values left out; categorical,
  boolean). Column Pair Trends = mean over column pairs of CorrelationSimilarity (two continuous columns:
  1 - |pearson_real - pearson_synth| / 2 on the rows where both are present) or ContingencySimilarity (a pair
  with a discrete column: 1 - total variation distance of the joint shares, missing as a category, a continuous
  column cut into SDMetrics' 10 equal-width bins). As SDMetrics does, a pair counts only where the real table
  shows a trend (|pearson| > 0.5, Cramér's V > 0.3; thresholds 0 count every pair, as SDMetrics before 0.2x did)
  and each table is binned on its own range, its maximum sharing a bin with its missing values. Score = mean of
  the two properties. 1 = alike.
- ``utility``: machine-learning efficacy. A histogram gradient-boosting model predicts the target from the other
  columns, trained on real training rows (TRTR) or on synthetic rows (TSTR), both scored on the same real test
  rows; ratio = synthetic / real of the headline figure (macro F1, or R^2). About 1 = as useful as real data.
- ``privacy``: distance to closest record (DCR: each row's distance to its nearest real training row, columns
  min-max scaled on the training range, categories one-hot, RMS over columns so 1 = every column maximally far;
  synthetic rows against held-out real rows as the baseline), exact copies of training rows, and a distance-based
  membership-inference attack (AUC 0.5 = it cannot tell training rows from held-out rows; 1 = it always can).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from genlab.data.table_meta import CONTINUOUS
from genlab.errors import GenlabError

DISCRETE = ("categorical", "boolean")
MAX_DECIMALS = 14  # SDMetrics rounds values to this many decimals before the KS test
BINS = 10  # SDMetrics' bins for a continuous column in a contingency table
CORRELATION_THRESHOLD, ASSOCIATION_THRESHOLD = 0.5, 0.3  # SDMetrics' QualityReport defaults
MAX_HGB_CATEGORIES = 250  # HistGradientBoosting's limit (max_bins); more categories go in as their codes
DCR_BINS = 30  # bins of the DCR histograms kept in the privacy figures


# -- columns as numbers -------------------------------------------------------------------------------------------
def _kept(columns: dict[str, dict], frames: dict[str, pd.DataFrame]) -> tuple[list[str], list[str]]:
    """(continuous, discrete) column names of ``columns`` that are evaluated; every frame must hold them."""
    if not isinstance(columns, dict) or not columns:
        raise GenlabError("columns must be a non-empty dict of column name -> {'type': ...}")
    cont = [c for c, m in columns.items() if m.get("type") in CONTINUOUS]
    disc = [c for c, m in columns.items() if m.get("type") in DISCRETE]
    if not cont and not disc:
        raise GenlabError("no column to evaluate: none is numeric, integer, datetime, categorical or boolean")
    for name, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise GenlabError(f"the {name} table must be a pandas DataFrame, not {type(frame).__name__}")
        if not len(frame):
            raise GenlabError(f"the {name} table has no rows")
        lacking = [c for c in (*cont, *disc) if c not in frame.columns]
        if lacking:
            raise GenlabError(f"the {name} table lacks column '{lacking[0]}'")
    return cont, disc


def _numbers(col: pd.Series, kind: str, name: str) -> np.ndarray:
    """A continuous column as float64 (N,), NaN = missing; datetimes as seconds since 1970."""
    try:
        if kind == "datetime":
            dates = col if pd.api.types.is_datetime64_any_dtype(col) else pd.to_datetime(col)
            if getattr(dates.dt, "tz", None) is not None:
                dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
            ns = dates.to_numpy(dtype="datetime64[ns]")
            return np.where(np.isnat(ns), np.nan, ns.astype(np.int64) / 1e9)
        return pd.to_numeric(col).to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as err:
        raise GenlabError(f"column '{name}' is declared {kind} but holds a value that is not one") from err


def _codes(*cols: pd.Series) -> tuple[list[np.ndarray], int]:
    """Category codes (one array per frame) on a shared list of categories; missing = -1. Returns (codes, K)."""
    codes, uniques = _factorize(*cols)
    return codes, len(uniques)


def _factorize(*cols: pd.Series) -> tuple[list[np.ndarray], list]:
    """(codes per frame, categories): codes index the categories shared by all frames; missing = -1."""
    codes, uniques = pd.factorize(pd.concat([pd.Series(c, dtype=object) for c in cols], ignore_index=True))
    cuts = np.cumsum([len(c) for c in cols])[:-1]
    return np.split(codes.astype(np.int64), cuts), list(uniques)


def _sdm_bins(x: np.ndarray) -> np.ndarray:
    """SDMetrics' discretisation: 10 equal-width bins on the present values' range, np.digitize (codes 1..11;
    the maximum and missing values both get 11)."""
    present = x[~np.isnan(x)]
    edges = np.histogram_bin_edges(present, bins=BINS) if len(present) else np.linspace(0, 1, BINS + 1)
    return np.digitize(x, edges)


# -- quality --------------------------------------------------------------------------------------------------------
def _ks_complement(r: np.ndarray, s: np.ndarray) -> float:
    """1 - KS statistic of the present values; NaN when a side has none."""
    r, s = np.sort(np.round(r[~np.isnan(r)], MAX_DECIMALS)), np.sort(np.round(s[~np.isnan(s)], MAX_DECIMALS))
    if not len(r) or not len(s):
        return math.nan
    grid = np.concatenate([r, s])
    gap = np.abs(np.searchsorted(r, grid, side="right") / len(r) - np.searchsorted(s, grid, side="right") / len(s))
    return float(1 - gap.max())


def _tv_complement(r: np.ndarray, s: np.ndarray, k: int) -> float:
    """1 - total variation distance of the category shares, missing (-1) left out; NaN when a side has none."""
    r, s = r[r >= 0], s[s >= 0]
    if not len(r) or not len(s):
        return math.nan
    return float(1 - 0.5 * np.abs(np.bincount(r, minlength=k) / len(r) - np.bincount(s, minlength=k) / len(s)).sum())


def _pearson(x: np.ndarray) -> np.ndarray:
    """Pearson correlations (C, C) of the columns of ``x`` (N, C), each pair on the rows where both are present;
    NaN where a pair has under 2 such rows or a constant column. Vectorised: masked sums by matrix products."""
    mask = ~np.isnan(x)
    mean, std = np.nanmean(np.where(mask.any(0), x, 0), axis=0), np.nanstd(np.where(mask.any(0), x, 0), axis=0)
    z = np.where(mask, (x - mean) / np.where(std > 0, std, 1), 0.0)  # standardised: no cancellation below
    m = mask.astype(np.float64)
    n, sx, sxx, sxy = m.T @ m, z.T @ m, (z * z).T @ m, z.T @ z  # sx[i, j] = sum of x_i over rows with x_i, x_j
    with np.errstate(divide="ignore", invalid="ignore"):
        vx = sxx - sx * sx / n
        cov, vy = sxy - sx * sx.T / n, vx.T
        r = cov / np.sqrt(vx * vy)
        bad = (n < 2) | (vx <= 1e-12 * n) | (vy <= 1e-12 * n)
    return np.where(bad, np.nan, np.clip(r, -1, 1))


def _contingency(ar, br, as_, bs, ka: int, kb: int) -> tuple[float, float]:
    """(1 - TVD of the joint shares, real Cramér's V) of a pair given as codes 0..ka-1 and 0..kb-1."""
    real = np.bincount(ar * kb + br, minlength=ka * kb).reshape(ka, kb).astype(np.float64)
    synth = np.bincount(as_ * kb + bs, minlength=ka * kb)
    score = 1 - 0.5 * np.abs(real.ravel() / len(ar) - synth / len(as_)).sum()
    real = real[real.sum(1) > 0][:, real.sum(0) > 0]  # the categories the real table shows
    if min(real.shape) < 2:
        return float(score), math.nan
    expected = np.outer(real.sum(1), real.sum(0)) / len(ar)
    chi2 = ((real - expected) ** 2 / expected).sum()
    return float(score), math.sqrt(chi2 / len(ar) / (min(real.shape) - 1))


def _mean(scores: list[float]) -> float | None:
    kept = [s for s in scores if not math.isnan(s)]
    return float(np.mean(kept)) if kept else None


def quality(real: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, dict], *,
            correlation_threshold: float = CORRELATION_THRESHOLD,
            association_threshold: float = ASSOCIATION_THRESHOLD) -> dict[str, Any]:
    """SDMetrics' quality score of ``synth`` against ``real`` (module docstring); None = not computable. Every
    pair keeps its score; ``counted`` says whether it enters the mean (SDMetrics shows NaN for the others)."""
    cont, disc = _kept(columns, {"real": real, "synthetic": synth})
    if not (0 <= correlation_threshold <= 1 and 0 <= association_threshold <= 1):
        raise GenlabError("quality thresholds must lie in [0, 1]")
    names = [c for c in columns if c in cont or c in disc]  # in the metadata's order, as SDMetrics pairs them
    nums = {c: (_numbers(real[c], columns[c]["type"], c), _numbers(synth[c], columns[c]["type"], c)) for c in cont}
    cats = {c: _codes(real[c], synth[c]) for c in disc}  # {name: ([real codes, synth codes], K)}
    col_out: dict[str, dict] = {}
    for c in names:  # column shapes
        score = _ks_complement(*nums[c]) if c in nums else _tv_complement(*cats[c][0], cats[c][1])
        col_out[c] = {"metric": "KSComplement" if c in nums else "TVComplement", "score": _none(score)}
    # pair codes: a discrete column's categories with missing as one more (K); a continuous column's SDMetrics bins
    codes = {c: (np.where(r < 0, k, r), np.where(s < 0, k, s), k + 1) for c, ((r, s), k) in cats.items()}
    codes |= {c: (_sdm_bins(r), _sdm_bins(s), BINS + 2) for c, (r, s) in nums.items()}
    corr_real = _pearson(np.column_stack([nums[c][0] for c in cont])) if cont else None
    corr_synth = _pearson(np.column_stack([nums[c][1] for c in cont])) if cont else None
    at = {c: i for i, c in enumerate(cont)}
    pairs: dict[str, dict] = {}
    counted: list[float] = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if a in at and b in at:
                cr, cs = corr_real[at[a], at[b]], corr_synth[at[a], at[b]]
                score, metric = 1 - abs(cr - cs) / 2, "CorrelationSimilarity"
                counts = not math.isnan(score) and (correlation_threshold <= 0 or abs(cr) > correlation_threshold)
            else:
                (ar, as_, ka), (br, bs, kb) = codes[a], codes[b]
                score, assoc = _contingency(ar, br, as_, bs, ka, kb)
                metric = "ContingencySimilarity"
                counts = association_threshold <= 0 or (not math.isnan(assoc) and assoc > association_threshold)
            pairs[f"{a} / {b}"] = {"metric": metric, "score": _none(score), "counted": bool(counts)}
            if counts:
                counted.append(score)
    shapes = _mean([s["score"] for s in col_out.values() if s["score"] is not None])
    trends = _mean(counted)
    return {"score": _mean([v for v in (shapes, trends) if v is not None]), "column_shapes": shapes,
            "column_pair_trends": trends, "columns": col_out, "pairs": pairs,
            "thresholds": {"correlation": correlation_threshold, "association": association_threshold}}


def _none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


# -- utility --------------------------------------------------------------------------------------------------------
def _features(frames: list[pd.DataFrame], cont: list[str], disc: list[str], columns: dict) -> list[pd.DataFrame]:
    """One encoding for every frame: continuous columns as float (NaN kept), categories as pandas categoricals
    on their shared codes (HGB's categorical features), or as plain codes past HGB's category limit."""
    out: list[dict[str, Any]] = [{} for _ in frames]
    for c in cont:
        for o, f in zip(out, frames):
            o[c] = _numbers(f[c], columns[c]["type"], c)
    for c in disc:
        codes, k = _codes(*(f[c] for f in frames))
        for o, x in zip(out, codes):
            o[c] = (pd.Categorical.from_codes(x, categories=range(k)) if k <= MAX_HGB_CATEGORIES
                    else np.where(x < 0, np.nan, x.astype(np.float64)))
    return [pd.DataFrame(o) for o in out]


def _classification(model, x, y: np.ndarray, classes: list[int], positive: int) -> dict[str, float | None]:
    """Accuracy, macro F1 over the test classes, ROC AUC (binary: the positive class; else one-vs-rest macro)."""
    from sklearn.metrics import f1_score, roc_auc_score

    pred, proba = model.predict(x), model.predict_proba(x)
    score = {int(c): proba[:, i] for i, c in enumerate(model.classes_)}  # a class the model never saw: 0
    zero = np.zeros(len(y))
    if len(classes) < 2:
        auc = None
    elif len(classes) == 2:
        auc = float(roc_auc_score(y == positive, score.get(positive, zero)))
    else:
        auc = float(np.mean([roc_auc_score(y == c, score.get(c, zero)) for c in classes]))
    return {"accuracy": float(np.mean(pred == y)), "auc": auc,
            "f1_macro": float(f1_score(y, pred, labels=classes, average="macro", zero_division=0))}


def utility(train: pd.DataFrame, test: pd.DataFrame, synth: pd.DataFrame, target: str,
            columns: dict[str, dict], *, seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Machine-learning efficacy of ``synth`` for predicting ``target``: TRTR against TSTR (module docstring).

    ``threads`` caps the OpenMP threads of the boosting (None: scikit-learn's default, one per core; on a shared
    machine 1 is much faster, as OpenMP threads spin while a neighbour holds their core)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _utility(train, test, synth, target, columns, seed)


def _utility(train, test, synth, target: str, columns: dict[str, dict], seed: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import mean_absolute_error, r2_score

    cont, disc = _kept(columns, {"training": train, "test": test, "synthetic": synth})
    if target not in cont and target not in disc:
        raise GenlabError(f"target '{target}' is not a numeric, integer, datetime, categorical or boolean column "
                          "of the metadata")
    if len(cont) + len(disc) < 2:
        raise GenlabError(f"no column besides the target '{target}' to predict it from")
    frames = [train, test, synth]
    features = _features(frames, [c for c in cont if c != target], [c for c in disc if c != target], columns)
    if target in disc:  # labels as shared category codes; missing = -1
        targets, labels = _factorize(*(f[target] for f in frames))
        present = [y >= 0 for y in targets]
    else:
        targets = [_numbers(f[target], columns[target]["type"], target) for f in frames]
        present = [~np.isnan(y) for y in targets]
    dropped = {k: int((~p).sum()) for k, p in zip(("train", "test", "synthetic"), present)}
    xr, xt, xs = (x[p].reset_index(drop=True) for x, p in zip(features, present))
    yr, yt, ys = (y[p] for y, p in zip(targets, present))
    for name, y in (("training", yr), ("test", yt), ("synthetic", ys)):
        if len(y) < 2:
            raise GenlabError(f"the {name} table has under 2 rows with the target '{target}' present")
    out: dict[str, Any] = {"target": target, "dropped_missing_target": dropped,
                           "rows": {"train": len(yr), "test": len(yt), "synthetic": len(ys)}}
    if target in disc:
        for name, y in (("training", yr), ("synthetic", ys)):
            if len(np.unique(y)) < 2:
                raise GenlabError(f"the {name} table's target '{target}' has a single class: nothing to learn")
        classes = sorted(np.unique(yt).tolist(), key=lambda c: str(labels[c]))
        positive = classes[-1]  # binary: the last class in sorted order ('malignant', True, 1, 'yes')
        figures = {}
        for side, (x, y) in (("real", (xr, yr)), ("synthetic", (xs, ys))):
            model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
            figures[side] = _classification(model.fit(x, y), xt, yt, classes, positive)
        out |= {"task": "classification", "headline": "f1_macro", "classes": len(classes),
                "positive_class": str(labels[positive]) if len(classes) == 2 else None}
    else:
        figures = {}
        for side, (x, y) in (("real", (xr, yr)), ("synthetic", (xs, ys))):
            pred = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed).fit(x, y)
            pred = pred.predict(xt)
            figures[side] = {"r2": float(r2_score(yt, pred)), "mae": float(mean_absolute_error(yt, pred))}
        out |= {"task": "regression", "headline": "r2"}
    real, fake = figures["real"][out["headline"]], figures["synthetic"][out["headline"]]
    return out | figures | {"ratio": fake / real if real > 0 else None}


# -- privacy --------------------------------------------------------------------------------------------------------
def _encode(frames: list[pd.DataFrame], cont: list[str], disc: list[str], columns: dict) -> list[np.ndarray]:
    """Rows in one numeric space (N, D), frames[0] being the training rows: continuous columns min-max scaled on
    the training range and clipped, with a missing indicator; categories one-hot, missing as one more, scaled so
    that a mismatch adds 1 to the squared distance, as a continuous column's full range does."""
    blocks: list[list[np.ndarray]] = [[] for _ in frames]
    for c in cont:
        xs = [_numbers(f[c], columns[c]["type"], c) for f in frames]
        lo, hi = (np.nanmin(xs[0]), np.nanmax(xs[0])) if (~np.isnan(xs[0])).any() else (0.0, 1.0)
        span = hi - lo if hi > lo else 1.0
        anymiss = any(np.isnan(x).any() for x in xs)
        for b, x in zip(blocks, xs):
            b.append(np.nan_to_num(np.clip((x - lo) / span, 0, 1))[:, None])
            if anymiss:
                b.append(np.isnan(x)[:, None].astype(np.float64))
    for c in disc:
        codes, k = _codes(*(f[c] for f in frames))
        for b, x in zip(blocks, codes):
            b.append(np.eye(k + 1)[np.where(x < 0, k, x)] / math.sqrt(2))
    return [np.hstack(b) for b in blocks]


def _nearest(query: np.ndarray, ref: np.ndarray, n_columns: int) -> np.ndarray:
    """Each query row's distance to its nearest ``ref`` row (Q,): Euclidean, as RMS over the table's columns.
    Chunked numpy: |q|^2 + |r|^2 - 2 q.r on blocks of at most 4M pairs."""
    rr = (ref * ref).sum(1)
    out = np.empty(len(query))
    step = max(1, (1 << 22) // max(1, len(ref)))
    for i in range(0, len(query), step):
        q = query[i:i + step]
        d2 = ((q * q).sum(1)[:, None] + rr[None, :] - 2 * q @ ref.T).min(1)
        out[i:i + step] = np.where(d2 < 1e-12, 0.0, d2)  # rounding below 1e-6 is a copy
    return np.sqrt(out / n_columns)


def _row_ids(frames: list[pd.DataFrame], cont: list[str], disc: list[str], columns: dict) -> list[np.ndarray]:
    """An id per row, equal exactly when all kept columns are equal (missing equals missing)."""
    codes = []
    for c in cont:
        xs = [_numbers(f[c], columns[c]["type"], c) for f in frames]
        codes.append(np.split(pd.factorize(np.concatenate(xs))[0], np.cumsum([len(x) for x in xs])[:-1]))
    codes += [_codes(*(f[c] for f in frames))[0] for c in disc]
    rows = np.vstack([np.column_stack(parts) for parts in zip(*codes)])
    ids = np.unique(rows, axis=0, return_inverse=True)[1].ravel()
    return np.split(ids, np.cumsum([len(f) for f in frames])[:-1])


def privacy(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, dict], *,
            seed: int = 0, max_rows: int = 2000) -> dict[str, Any]:
    """DCR, exact copies and a membership-inference attack on ``synth`` (module docstring)."""
    from sklearn.metrics import roc_auc_score

    cont, disc = _kept(columns, {"training": train, "holdout": holdout, "synthetic": synth})
    if max_rows < 10:
        raise GenlabError(f"max_rows must be at least 10, not {max_rows}")
    rng = np.random.default_rng(seed)
    n_columns = len(cont) + len(disc)
    enc_train, enc_hold, enc_synth = _encode([train, holdout, synth], cont, disc, columns)

    def pick(n: int, k: int) -> np.ndarray:  # k of n rows at random (all, in order, when n <= k)
        return np.arange(n) if n <= k else np.sort(rng.choice(n, k, replace=False))

    # (a) distance to closest record: synthetic rows and, as the baseline, held-out rows to the training rows
    dcr_synth = _nearest(enc_synth[pick(len(synth), max_rows)], enc_train, n_columns)
    dcr_hold = _nearest(enc_hold[pick(len(holdout), max_rows)], enc_train, n_columns)
    hold_median, hold_p5 = float(np.median(dcr_hold)), float(np.percentile(dcr_hold, 5))
    synth_median = float(np.median(dcr_synth))
    edges = np.linspace(0, max(dcr_synth.max(), dcr_hold.max(), 1e-9), DCR_BINS + 1)
    # (b) exact copies of training rows
    id_train, id_hold, id_synth = _row_ids([train, holdout, synth], cont, disc, columns)
    copies = np.isin(id_synth, id_train)
    # (c) membership inference: score = -distance to the nearest synthetic row; members = training rows
    n = min(len(train), len(holdout), max_rows)
    members = enc_train[pick(len(train), n)]
    others = enc_hold[pick(len(holdout), n)]
    score = -_nearest(np.vstack([members, others]), enc_synth, n_columns)
    auc = float(roc_auc_score(np.r_[np.ones(len(members)), np.zeros(len(others))], score))
    return {"rows": {"train": len(train), "holdout": len(holdout), "synthetic": len(synth)},
            "distance": "euclidean on min-max scaled and one-hot columns, RMS per column",
            "dcr_synthetic_median": synth_median, "dcr_synthetic_p5": float(np.percentile(dcr_synth, 5)),
            "dcr_holdout_median": hold_median, "dcr_holdout_p5": hold_p5,
            "dcr_ratio": synth_median / hold_median if hold_median > 0 else None,
            "closer_than_holdout_p5": float(np.mean(dcr_synth < hold_p5)),
            "exact_copies": int(copies.sum()), "exact_copy_share": float(copies.mean()),
            "holdout_copy_share": float(np.isin(id_hold, id_train).mean()),
            "mia_auc": auc, "mia_rows": int(n),
            "dcr_histogram": {"edges": edges.tolist(), "synthetic": np.histogram(dcr_synth, edges)[0].tolist(),
                              "holdout": np.histogram(dcr_hold, edges)[0].tolist()}}
