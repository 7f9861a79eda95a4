"""Column-shape distance between two tables held as matrices: the table families' validation loss.

For rows (N, C) of ``data/tables.py`` (numbers, or category indices; NaN = missing): per continuous column the
Kolmogorov-Smirnov statistic of the present values plus the gap in missing rate, per categorical column the total
variation distance of the category shares (missing as one more category); their mean. 0 = the same marginals,
1 = disjoint. It is 1 minus SDMetrics' "column shapes" score, so families of every kind (adversarial, variational,
closed-form) are compared on one scale, and a lower value means closer marginals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def shape_distance(real: np.ndarray, fake: np.ndarray, categories: Sequence[int]) -> float:
    """Mean per-column distance between ``real`` (N, C) and ``fake`` (M, C); ``categories[j]`` = 0 for a
    continuous column, else its number of categories."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    out = []
    for j, k in enumerate(categories):
        r, f = real[:, j], fake[:, j]
        if k:  # total variation over k categories + missing
            pr = np.bincount(np.where(np.isnan(r), k, np.nan_to_num(r)).round().astype(int).clip(0, k), minlength=k + 1)
            pf = np.bincount(np.where(np.isnan(f), k, np.nan_to_num(f)).round().astype(int).clip(0, k), minlength=k + 1)
            out.append(0.5 * np.abs(pr / len(r) - pf / len(f)).sum())
            continue
        miss = abs(np.isnan(r).mean() - np.isnan(f).mean())
        r, f = np.sort(r[~np.isnan(r)]), np.sort(f[~np.isnan(f)])
        if not len(r) or not len(f):
            out.append(1.0 if len(r) != len(f) else miss)
            continue
        grid = np.concatenate([r, f])
        ks = np.abs(np.searchsorted(r, grid, side="right") / len(r) - np.searchsorted(f, grid, side="right") / len(f))
        out.append(min(1.0, ks.max() + miss))
    return float(np.mean(out))
