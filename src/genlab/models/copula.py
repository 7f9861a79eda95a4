"""Gaussian copula: each column's own distribution, joined by the correlations of their normal scores (no gradient
steps); the fast baseline every table synthesiser is reported beside.

    u_j = F_j(x_j),   z_j = Phi^-1(u_j),   z ~ N(0, R)

Fitting (``solve``): each continuous column's marginal F_j is its empirical distribution, kept as ``quantiles``
points and sampled by linear interpolation between them; a categorical column (missing as one more category) is
placed on [0, 1] by the "uniform encoding" (category k owns the interval [P(<k), P(<=k)), a row's u drawn inside
its category's interval), as SDV's GaussianCopula does; a continuous column with missing values gets one more
dimension, its missingness, encoded the same way, so missingness can correlate with the other columns. R is the
correlation matrix of the training rows' normal scores. Sampling draws z ~ N(0, R) and maps each z_j back through
Phi and the inverse marginal. It captures every marginal and every pairwise (monotone) association, and nothing
beyond pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import ndtr, ndtri
from torch import nn

from genlab.data.tables import TableData
from genlab.evaluate.shapes import shape_distance
from genlab.modalities.table import Table, conditioned
from genlab.models.base import Family

EPS = 1e-6  # u is kept inside (EPS, 1 - EPS) so that Phi^-1(u) is finite


@dataclass(frozen=True)
class CopulaConfig:
    """How finely each marginal is kept."""

    quantiles: int = 512  # points of each continuous column's empirical quantile function
    min_eigenvalue: float = 1e-6  # floor on the correlation matrix's eigenvalues (keeps it a valid covariance)

    limits: ClassVar[dict[str, str]] = {"quantiles": "[2, 100000]", "min_eigenvalue": "[0, 0.1]"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


class CopulaNet(nn.Module):
    """The fitted marginals and correlation matrix (buffers; fitted by ``solve``, never by gradients)."""

    def __init__(self, categories: list[int], missing: list[bool], q: int) -> None:
        super().__init__()
        c, kmax = len(categories), max([1, *categories])
        dims = c + sum(1 for k, m in zip(categories, missing) if not k and m)  # one per column + missingness dims
        self.register_buffer("quantiles", torch.zeros(c, q, dtype=torch.float64))  # (C, Q) continuous columns
        self.register_buffer("cumulative", torch.ones(c, kmax + 1, dtype=torch.float64))  # (C, K+1) P(<= k)
        self.register_buffer("missing", torch.zeros(c, dtype=torch.float64))  # (C,) missing rate, continuous
        self.register_buffer("corr", torch.eye(dims, dtype=torch.float64))  # (D, D) R


class Copula(Family):
    name = "copula"
    modality = "table"
    data_interface = "table"
    Config = CopulaConfig
    iterative: ClassVar[bool] = False
    cites = "Patki et al. 2016, The Synthetic Data Vault (Gaussian copula)"
    example: ClassVar[dict[str, Any]] = {"set": ["model.quantiles=64"]}

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: TableData, *, seed: int) -> None:
        self.meta_ = data.meta
        self.categories_ = data.categories()  # per column: 0 = continuous, else its number of categories
        self.has_missing_ = [c.get("missing", 0) > 0 for c in data.columns.values()]
        self.seed_ = seed
        self.networks_ = {"model": CopulaNet(self.categories_, self.has_missing_, self.config.quantiles).eval()}

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        arch.pop("min_eigenvalue")  # changes the fit, not what the buffers mean
        return {**arch, "categories": list(self.categories_), "missing": list(self.has_missing_)}

    @property
    def model_(self) -> CopulaNet:
        return self.networks_["model"]

    # -- fitting --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def solve(self, data: TableData) -> None:
        """Marginals, then the normal scores' correlation matrix, from the training rows."""
        x = data.rows["train"]  # (N, C)
        n, net = len(x), self.model_
        rng = np.random.default_rng(self.seed_)  # the uniform encoding's draws inside each category
        grid = np.linspace(0, 1, self.config.quantiles)
        scores, extra = [], []  # (N,) normal scores per dimension: one per column, then the missingness dims
        for j, k in enumerate(self.categories_):
            col, miss = x[:, j], np.isnan(x[:, j])
            if k:  # 1. categorical: shares (missing last), uniform encoding
                codes = np.where(miss, k, np.nan_to_num(col)).astype(int)
                cum = np.cumsum(np.bincount(codes, minlength=k + 1)) / n  # (K+1,) P(<= k)
                net.cumulative[j, : k + 1] = torch.from_numpy(cum)
                scores.append(_uniform_scores(codes, cum, rng))
                continue
            present = col[~miss]  # 2. continuous: empirical quantiles of present values, ranks as scores
            net.quantiles[j] = torch.from_numpy(np.quantile(present, grid))
            net.missing[j] = float(miss.mean())
            ranks = _ranks(present)
            z = np.zeros(n)
            z[~miss] = ndtri(np.clip((ranks - 0.5) / len(present), EPS, 1 - EPS))
            scores.append(z)
            if self.has_missing_[j]:  # 3. its missingness as a 2-category dimension
                cum = np.array([1 - miss.mean(), 1.0])
                extra.append(_uniform_scores(miss.astype(int), cum, rng))
        z = np.stack(scores + extra, axis=1)  # (N, D)
        corr = np.corrcoef(z, rowvar=False) if len(z) > 1 else np.eye(z.shape[1])
        net.corr.copy_(torch.from_numpy(_valid_correlation(np.nan_to_num(corr), self.config.min_eigenvalue)))

    # -- sampling -------------------------------------------------------------------------------------------------
    def _draw(self, n: int, seed: int) -> np.ndarray:
        """``n`` rows (n, C): z ~ N(0, R), each dimension mapped back through its marginal."""
        net = self.model_
        rng = np.random.default_rng(seed)
        chol = np.linalg.cholesky(net.corr.numpy())  # (D, D)
        u = np.clip(ndtr(rng.standard_normal((n, len(chol))) @ chol.T), 0, 1)  # (n, D) in [0, 1]
        grid = np.linspace(0, 1, self.config.quantiles)
        out = np.empty((n, len(self.categories_)))
        extra = len(self.categories_)  # index of the next missingness dimension
        for j, k in enumerate(self.categories_):
            if k:
                cum = net.cumulative[j, : k + 1].numpy()
                codes = np.minimum(np.searchsorted(cum, u[:, j], side="right"), k).astype(float)
                out[:, j] = np.where(codes == k, np.nan, codes)  # category K = missing
                continue
            out[:, j] = np.interp(u[:, j], grid, net.quantiles[j].numpy())
            if self.has_missing_[j]:
                out[u[:, extra] >= 1 - float(net.missing[j]), j] = np.nan
                extra += 1
        return out

    def sample(self, n: int = 1, *, seed: int | None = None, condition: dict[str, int] | None = None) -> Table:
        """``n`` synthetic rows; ``condition`` {column: category index} keeps only rows with those values."""
        return Table(self.meta_, conditioned(self._draw, n, condition, self.meta_, seed))

    @torch.no_grad()
    def validation_loss(self, batch: torch.Tensor) -> float:
        """``shape_distance`` between the batch and as many rows drawn with a seed taken from the batch."""
        real = batch.double().cpu().numpy()  # (B, C)
        seed = int(np.nan_to_num(real).sum() * 1000) % 2**32
        return shape_distance(real, self._draw(len(real), seed), self.categories_)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    from scipy.stats import rankdata

    return rankdata(values)


def _uniform_scores(codes: np.ndarray, cum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normal scores of categories under the uniform encoding: u uniform in [P(<k), P(<=k))."""
    lo = np.concatenate([[0.0], cum[:-1]])[codes]
    u = lo + rng.random(len(codes)) * (cum[codes] - lo)
    return ndtri(np.clip(u, EPS, 1 - EPS))


def _valid_correlation(corr: np.ndarray, floor: float) -> np.ndarray:
    """The nearest matrix with eigenvalues >= ``floor`` and a unit diagonal (a constant column gives a 0 row)."""
    np.fill_diagonal(corr, 1.0)
    values, vectors = np.linalg.eigh((corr + corr.T) / 2)
    fixed = vectors @ np.diag(np.maximum(values, max(floor, 1e-9))) @ vectors.T
    d = np.sqrt(np.diag(fixed))
    return fixed / d[:, None] / d[None, :]
