"""MST: marginal-based synthetic tables under differential privacy (McKenna, Miklau & Sheldon 2021); our own code
(the authors' ``mbi`` needs JAX), with a simpler estimator than their Private-PGM.

Columns are made discrete from the *metadata* alone (public under privacy, ``check_public``): a continuous one in
``bins`` equal-width bins over its min..max (an integer range of at most ``bins`` values: a bin per integer), a
categorical one by category index, plus a value "missing" where the metadata says a column can be missing. The
model is a forest over the d columns, with edges among the pairs whose 2-way table has at most ``max_cells`` cells.
A budget (epsilon, delta) becomes rho-zCDP (``responsible.privacy.zcdp_budget``), split rho_1 : rho_sel : rho_2 in
the ratio of the ``weight_*`` settings (MST: thirds). Neighbours differ by one added or removed row; the row count
is public.

1. The d 1-way histograms get noise N(0, s1^2); one row moves one cell of each by 1 (L2 sensitivity sqrt(d)), so
   s1 = sqrt(d / (2 rho_1)). N^ = the inverse-variance mean of the noisy totals (variance K s1^2 over K cells);
   mu_a = each histogram projected onto {m >= 0, sum m = N^}.
2. Pair (a, b) scores q = || M_ab - mu_a mu_b^T / N^ ||_1, M_ab its true 2-way counts: mu, N^ are released and one
   row moves one cell of M_ab by 1 (sensitivity 1). Kruskal's algorithm makes T = d - c picks (c: components of the
   candidate graph, known from the domains), each by the exponential mechanism P(e) ~ exp(eps q(e) / 2) over the
   pairs joining two trees: eps-DP, hence eps^2 / 8-zCDP (bounded range, Cesar & Rogers 2021), so T picks spend
   rho_sel with eps = sqrt(8 rho_sel / T).
3. The T chosen 2-way tables get noise N(0, s2^2), s2 = sqrt(T / (2 rho_2)). zCDP adds: rho_1 + rho_sel + rho_2 = rho.
4. Estimation (ours): a column's histogram = the inverse-variance mean of its noisy 1-way and the margins of its
   noisy 2-way tables (variance K s2^2 per cell of a margin over K values), projected as in 1; each noisy 2-way table
   = its least-squares projection onto the non-negative tables with exactly those margins (Dykstra's algorithm).
   Tables agreeing on shared margins make the forest a valid distribution, prod P(root) prod P(child | parent).
   Private-PGM instead fits all marginals jointly to all measurements (maximum likelihood by mirror descent), and
   MST first merges values whose noisy count is below 3 s1; neither is done here.

Sampling is ancestral; a bin becomes a value uniform inside it, "missing" NaN (``TableData.decode`` rounds
integers). A condition {column: category} is exact: leaf-to-root messages P(condition below | value) weight each
draw. Without a budget the same code runs noise-free and takes the maximum-weight tree for mutual information
(Miller-Madow corrected): a Chow-Liu tree, whose tables are the training rows' own counts (rare rows can be copied).
"""

from __future__ import annotations

import math
import secrets
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from genlab.data.table_meta import CONTINUOUS
from genlab.errors import BadArgument, GenlabError
from genlab.evaluate.shapes import shape_distance
from genlab.models.base import Family
from genlab.nets import check_seed
from genlab.responsible.privacy import check_delta, check_public, write_record, zcdp_budget

MECHANISM = "MST: Gaussian 1-way and 2-way marginals, exponential-mechanism tree selection"


@dataclass(frozen=True)
class MSTConfig:
    """How columns are discretised, which pairs may be modelled, and how a privacy budget is split."""

    bins: int = 32  # equal-width bins of a continuous column over its metadata min..max
    max_cells: int = 10000  # a pair whose 2-way table has more cells (missing included) is never modelled
    weight_one_way: float = 1.0  # share of the zCDP budget for the 1-way marginals (relative to the other two)
    weight_select: float = 1.0  # share for choosing the tree (exponential mechanism)
    weight_two_way: float = 1.0  # share for the chosen 2-way marginals
    projection_iters: int = 500  # most rounds of Dykstra's projection that makes each noisy 2-way table consistent

    limits: ClassVar[dict[str, str]] = {"bins": "[2, 4096]", "max_cells": "[4, 100000000]",
                                        "weight_one_way": "(0, 100]", "weight_select": "(0, 100]",
                                        "weight_two_way": "(0, 100]", "projection_iters": "[1, 100000]"}

    def validate(self) -> None:
        if self.max_cells < 2 * self.bins:
            raise GenlabError(f"model.max_cells ({self.max_cells}) must be at least 2 x model.bins "
                              f"({2 * self.bins}), or no continuous column could be paired even with a yes/no one")


class Column(NamedTuple):  # one column's discrete domain: ``size`` values, the last "missing" when ``missing``
    size: int
    missing: bool
    edges: np.ndarray | None  # bin edges of a continuous column (None: categorical)
    lo: float = 0.0  # its metadata range, which sampled values are clipped to
    hi: float = 0.0


def domains(data: Any, bins: int) -> list[Column]:
    """Each column's discrete domain, from the metadata alone."""
    out = []
    for col in data.columns.values():
        missing = bool(col.get("missing", 0) > 0)
        if col["type"] not in CONTINUOUS:
            out.append(Column(len(col["categories"]) + missing, missing, None))
            continue
        stamp = col["type"] == "datetime"
        lo, hi = (pd.Timestamp(col[k]).value / 1e9 if stamp else float(col[k]) for k in ("min", "max"))
        if hi <= lo:
            edges = np.array([lo, lo])
        elif col["type"] == "integer" and hi - lo + 1 <= bins:
            edges = np.arange(lo - 0.5, hi + 1.0)  # one bin per integer
        else:
            edges = np.linspace(lo, hi, bins + 1)
        out.append(Column(len(edges) - 1 + missing, missing, edges, lo, hi))
    return out


class MSTNet(nn.Module):
    """The fitted forest (buffers, set by ``solve``): ``parent`` (d,) (-1: a root), ``order`` (d,) (parents first),
    per column ``table_j`` (P_j, K_j), row v = P(column j | parent = v) (row 0 = P(column j) for a root; P_j the
    largest parent domain j may have) and, if binned, ``edges_j``. Fresh: independent uniform columns."""

    def __init__(self, cols: list[Column], max_cells: int) -> None:
        super().__init__()
        self.register_buffer("parent", torch.full((len(cols),), -1, dtype=torch.long))
        self.register_buffer("order", torch.arange(len(cols)))
        for j, c in enumerate(cols):
            rows = max([1] + [o.size for i, o in enumerate(cols) if i != j and o.size * c.size <= max_cells])
            self.register_buffer(f"table_{j}", torch.full((rows, c.size), 1.0 / c.size, dtype=torch.float64))
            if c.edges is not None:
                self.register_buffer(f"edges_{j}", torch.from_numpy(c.edges.astype(np.float64)))

    def get(self, name: str, j: int) -> np.ndarray:  # table_j or edges_j as numpy
        return getattr(self, f"{name}_{j}").cpu().numpy()


class MST(Family):
    name = "mst"
    modality = "table"
    data_interface = "table"
    Config = MSTConfig
    iterative: ClassVar[bool] = False
    supports_privacy: ClassVar[bool] = True
    cites = ("McKenna, Miklau & Sheldon 2021, Winning the NIST Contest: A scalable and general approach to "
             "differentially private synthetic data")
    example: ClassVar[dict[str, Any]] = {"set": ["model.bins=16"]}

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: Any, *, seed: int) -> None:
        self.config.validate()
        self.meta_ = data.meta
        self.names_ = list(data.columns)
        self.categories_ = data.categories()  # per column: 0 = continuous, else its number of categories
        self.cols_ = domains(data, self.config.bins)
        self.privacy_: dict[str, Any] | None = None  # what a private fit spent (privacy.json)
        self.networks_ = {"model": MSTNet(self.cols_, self.config.max_cells).eval()}

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        for key in ("weight_one_way", "weight_select", "weight_two_way", "projection_iters"):
            arch.pop(key)  # they change the fit, not what the buffers mean
        return {**arch, "sizes": [c.size for c in self.cols_], "binned": [c.edges is not None for c in self.cols_]}

    @property
    def model_(self) -> MSTNet:
        return self.networks_["model"]

    def tree(self) -> list[tuple[str, str]]:  # the fitted forest's edges as (parent, child) column names
        return [(self.names_[p], self.names_[j]) for j, p in enumerate(self.model_.parent.tolist()) if p >= 0]

    # -- fitting --------------------------------------------------------------------------------------------------
    def codes(self, rows: np.ndarray) -> np.ndarray:
        """Rows (N, C) as discrete values (N, C) int64, per ``domains``."""
        out = np.empty(rows.shape, dtype=np.int64)
        for j, c in enumerate(self.cols_):
            miss, present = np.isnan(rows[:, j]), c.size - c.missing
            if miss.any() and not c.missing:
                raise GenlabError(f"column '{self.names_[j]}' has missing values but its metadata says none "
                                  "(\"missing\": 0); correct the metadata file")
            x = np.nan_to_num(rows[:, j], nan=c.lo)
            v = x.round() if c.edges is None else np.searchsorted(c.edges, x, side="right") - 1
            out[:, j] = np.where(miss, present, np.clip(v, 0, present - 1))
        return out

    @torch.no_grad()
    def solve(self, data: Any) -> None:
        """Measure, select, measure, estimate (module docstring); noise only under a privacy budget."""
        cfg, sizes = self.config, [c.size for c in self.cols_]
        x = self.codes(data.rows["train"])
        n, d = x.shape
        private, rho1, rho_sel, rho2 = self.privacy.private, 0.0, 0.0, 0.0
        if private:
            check_public(data.meta)
            check_delta(self.privacy, n_rows=n)
        cand = [(a, b) for a in range(d) for b in range(a + 1, d) if sizes[a] * sizes[b] <= cfg.max_cells]
        roots = list(range(d))
        for a, b in cand:
            roots[_find(roots, a)] = _find(roots, b)
        n_edges = d - len({_find(roots, j) for j in range(d)})  # a spanning forest of the candidate graph
        if private:
            rho, spent = zcdp_budget(self.privacy.epsilon, self.privacy.delta)
            w = np.array([cfg.weight_one_way, cfg.weight_select * bool(n_edges), cfg.weight_two_way * bool(n_edges)])
            rho1, rho_sel, rho2 = rho * w / w.sum()  # with no pair to model, all of rho goes to the 1-way step
        rng = np.random.default_rng(secrets.randbits(63))  # DP noise: never from train.seed
        # 1. 1-way marginals, their total, and the independent estimate
        s1 = math.sqrt(d / (2 * rho1)) if private else 0.0
        y1 = [np.bincount(x[:, j], minlength=k) + rng.normal(0, s1, k) for j, k in enumerate(sizes)]
        total = float(n)
        if private:  # a total over K cells has noise variance K s1^2
            total = max(1.0, sum(y.sum() / k for y, k in zip(y1, sizes)) / sum(1 / k for k in sizes))
        mu = [_simplex(y, total) for y in y1]
        # 2. the tree; 3. its 2-way marginals
        chosen = _select(x, sizes, cand, mu, total, n_edges, rho_sel, rng)
        s2 = math.sqrt(len(chosen) / (2 * rho2)) if private and chosen else 0.0
        y2 = {(a, b): _pair(x, a, b, sizes) + rng.normal(0, s2, (sizes[a], sizes[b])) for a, b in chosen}
        if private:  # 4. consistent, non-negative estimates
            mu = [_one_way(j, y1[j], s1, y2, s2, total) for j in range(d)]
        self._store(d, {(a, b): _transport(y2[a, b], mu[a], mu[b], cfg.projection_iters) for a, b in chosen}, mu)
        self.privacy_ = None if not private else {
            "epsilon_target": self.privacy.epsilon, "epsilon_spent": min(self.privacy.epsilon, round(spent, 6)),
            "delta": self.privacy.delta, "accountant": "zcdp", "rho": rho, "mechanism": MECHANISM,
            "noise_std": {"one_way": s1, "two_way": s2}, "domains": "declared public in the metadata file"}

    def _store(self, d: int, fitted: dict[tuple[int, int], np.ndarray], mu: list[np.ndarray]) -> None:
        """The forest into the buffers: roots by lowest index, breadth first; P(child | parent) from the tables."""
        net, links = self.model_, {j: [] for j in range(d)}
        for a, b in fitted:
            links[a].append(b)
            links[b].append(a)
        parent, order = [-1] * d, []
        for root in (j for j in range(d) if j not in order):
            queue = [root]
            for j in queue:  # the list grows while it is walked: breadth first
                order.append(j)
                for c in sorted(set(links[j]) - set(order) - set(queue)):
                    parent[c] = j
                    queue.append(c)
        for j, p in enumerate(parent):
            table, prior = net.get("table", j) * 0, mu[j] / mu[j].sum()
            table[0] = prior  # a root's marginal (a child's rows are overwritten below)
            if p >= 0:
                m = fitted[p, j] if (p, j) in fitted else fitted[j, p].T  # (K_p, K_j)
                rows = m.sum(1, keepdims=True)
                table[: len(m)] = np.where(rows > 0, m / np.maximum(rows, 1e-300), prior)
            getattr(net, f"table_{j}").copy_(torch.from_numpy(table))
        net.parent.copy_(torch.tensor(parent))
        net.order.copy_(torch.tensor(order))

    def extra_files(self, folder: Path) -> None:
        """``privacy.json``: the budget, what was spent, and how (private runs only)."""
        super().extra_files(folder)
        if getattr(self, "privacy_", None):
            write_record(folder, self.privacy_)

    # -- sampling -------------------------------------------------------------------------------------------------
    def _evidence(self, condition: dict[str, int] | None) -> dict[int, int]:
        out = {}
        for name, v in (condition or {}).items():
            k = self.categories_[self.names_.index(name)] if name in self.names_ else None
            if not k:
                raise BadArgument("condition", f"'{name}' is not a categorical or boolean column of the table")
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < k:
                raise BadArgument("condition", f"'{name}' takes a category index from 0 to {k - 1}, got {v!r}")
            out[self.names_.index(name)] = int(v)
        return out

    def _draw(self, n: int, rng: np.random.Generator, evidence: dict[int, int]) -> np.ndarray:
        """``n`` rows (n, C) by ancestral sampling, each value weighted by the chance of the evidence below it."""
        net, cols = self.model_, self.cols_
        parent, order = net.parent.tolist(), net.order.tolist()
        tables = [net.get("table", j) for j in range(len(cols))]
        beta = [np.eye(c.size)[evidence[j]] if j in evidence else np.ones(c.size) for j, c in enumerate(cols)]
        chance = 1.0  # beta_j(v) = P(evidence in j's subtree | x_j = v), from the leaves up
        for j in reversed(order):
            if parent[j] >= 0:
                beta[parent[j]] = beta[parent[j]] * (tables[j][: cols[parent[j]].size] @ beta[j])
            else:
                chance *= float(tables[j][0] @ beta[j])
        if not chance > 0:
            wanted = ", ".join(f"{self.names_[j]}={v}" for j, v in evidence.items())
            raise GenlabError(f"condition {wanted} has probability 0 under this model: no row can match it")
        codes = np.zeros((n, len(cols)), dtype=np.int64)
        for j in order:
            probs = (tables[j][:1] if parent[j] < 0 else tables[j][codes[:, parent[j]]]) * beta[j]  # (n or 1, K_j)
            cum = np.cumsum(np.broadcast_to(probs, (n, probs.shape[1])), axis=1)
            u = rng.random(n) * cum[:, -1]
            codes[:, j] = np.minimum((cum <= u[:, None]).sum(1), probs.shape[1] - 1)
        out = codes.astype(np.float64)  # categories as they are; a bin as a value uniform inside it
        for j, c in enumerate(cols):
            if c.edges is not None:
                e, b = net.get("edges", j), np.minimum(codes[:, j], len(c.edges) - 2)
                out[:, j] = np.clip(e[b] + rng.random(n) * (e[b + 1] - e[b]), c.lo, c.hi)
            out[c.missing & (codes[:, j] == c.size - 1), j] = np.nan
        return out

    def sample(self, n: int = 1, *, seed: int | None = None, condition: dict[str, int] | None = None) -> Any:
        """``n`` rows (the same seed, the same rows); ``condition`` {column: category index}: exactly conditional."""
        from genlab.modalities.table import Table

        check_seed(seed)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise BadArgument("n", f"must be at least 1, got {n!r}")
        evidence = self._evidence(condition)
        return Table(self.meta_, self._draw(int(n), np.random.default_rng(seed), evidence))

    @torch.no_grad()
    def validation_loss(self, batch: Any) -> float:
        """``shape_distance`` between the batch and as many rows drawn with a seed taken from the batch's bytes."""
        real = batch.double().cpu().numpy() if torch.is_tensor(batch) else np.asarray(batch, dtype=np.float64)
        rng = np.random.default_rng(zlib.crc32(real.tobytes()))
        return shape_distance(real, self._draw(len(real), rng, {}), self.categories_)


# -- the steps ----------------------------------------------------------------------------------------------------
def _pair(x: np.ndarray, a: int, b: int, sizes: list[int]) -> np.ndarray:
    """The 2-way counts (K_a, K_b) of columns a and b."""
    return np.bincount(x[:, a] * sizes[b] + x[:, b], minlength=sizes[a] * sizes[b]).reshape(sizes[a], -1) * 1.0


def _find(roots: list[int], j: int) -> int:
    while roots[j] != j:
        roots[j] = roots[roots[j]]
        j = roots[j]
    return j


def _select(x: np.ndarray, sizes: list[int], cand: list[tuple[int, int]], mu: list[np.ndarray], total: float,
            n_edges: int, rho_sel: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Kruskal's algorithm: with a budget, each edge by the exponential mechanism on the L1 error of independence;
    without, the largest Miller-Madow mutual information (a Chow-Liu tree)."""
    score = np.array([_score(_pair(x, a, b, sizes), mu[a], mu[b], total, rho_sel > 0) for a, b in cand])
    eps = math.sqrt(8 * rho_sel / max(n_edges, 1))
    roots, chosen = list(range(len(sizes))), []
    for _ in range(n_edges):
        live = np.array([i for i, (a, b) in enumerate(cand) if _find(roots, a) != _find(roots, b)])
        if rho_sel > 0:
            logits = eps * score[live] / 2  # sensitivity 1
            p = np.exp(logits - logits.max())
            pick = int(live[rng.choice(len(live), p=p / p.sum())])
        else:
            pick = int(live[np.argmax(score[live])])
        a, b = cand[pick]
        roots[_find(roots, a)] = _find(roots, b)
        chosen.append((a, b))
    return chosen


def _score(counts: np.ndarray, mu_a: np.ndarray, mu_b: np.ndarray, total: float, private: bool) -> float:
    """Private: the L1 error of the independent estimate. Otherwise: the plug-in mutual information less its
    Miller-Madow bias (cells - rows - columns + 1) / 2n (so that many sparse cells are not favoured)."""
    if private:
        return float(np.abs(counts - np.outer(mu_a, mu_b) / total).sum())
    p = counts / counts.sum()
    pa, pb, nz = p.sum(1), p.sum(0), p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    return mi - (nz.sum() - (pa > 0).sum() - (pb > 0).sum() + 1) / (2 * counts.sum())


def _simplex(y: np.ndarray, total: float) -> np.ndarray:
    """The Euclidean projection of ``y`` onto {m >= 0, sum m = total}."""
    s = np.sort(y)[::-1]
    cum = np.cumsum(s) - total
    k = np.nonzero(s - cum / np.arange(1, len(y) + 1) > 0)[0][-1]
    return np.maximum(y - cum[k] / (k + 1), 0)


def _one_way(j: int, y: np.ndarray, s1: float, y2: dict, s2: float, total: float) -> np.ndarray:
    """Column j's histogram: inverse-variance mean of its noisy 1-way and the margins of its noisy 2-way tables."""
    num, den = y / s1**2, 1 / s1**2
    for (a, b), t in y2.items():
        if j in (a, b):
            margin, other = (t.sum(1), t.shape[1]) if a == j else (t.sum(0), t.shape[0])
            num, den = num + margin / (other * s2**2), den + 1 / (other * s2**2)
    return _simplex(num / den, total)


def _transport(y: np.ndarray, r: np.ndarray, c: np.ndarray, iters: int) -> np.ndarray:
    """The least-squares projection of ``y`` onto {M >= 0, M 1 = r, M^T 1 = c}: Dykstra's algorithm (the affine
    set needs no correction term), stopped once the margins are within 1e-9 of the total."""
    ka, kb = y.shape
    m, q, total = y.copy(), np.zeros_like(y), r.sum()
    for _ in range(iters):
        z = m - (m.sum(1) - r)[:, None] / kb - (m.sum(0) - c)[None, :] / ka + (m.sum() - total) / (ka * kb)
        m = np.maximum(z + q, 0)
        q = z + q - m
        if max(np.abs(m.sum(1) - r).max(), np.abs(m.sum(0) - c).max()) <= 1e-9 * max(total, 1):
            break
    return m
