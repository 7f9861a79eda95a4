"""What the tabular families (``ctgan``, ``tvae``) share: mode-specific normalisation (and the conditional
vector's layout), and the family plumbing for sampling, validation and differential privacy (Xu et al. 2019,
"Modeling Tabular Data using Conditional GAN", https://arxiv.org/abs/1907.00503; written from the paper).

Encoded row layout, fixed by the metadata and ``model.modes`` alone (so networks are sized before anything is
fitted, and a DP run's sizes reveal nothing about the rows)::

    continuous column: [alpha (1, tanh) | component one-hot (modes) | present/missing one-hot (2)]
    discrete column:   [category one-hot (K) + missing slot (1)]

A continuous value x in [min, max] is scaled to u = (x - min) / (max - min), a component k of the column's
Bayesian Gaussian mixture is sampled from its posterior, and alpha = (u - mu_k) / (4 sigma_k) clipped to [-1, 1].
Components lighter than ``MIN_WEIGHT`` and missing slots of columns without missing values are inactive: their
logits are masked, so generators never produce them. A missing continuous value gets a filler drawn from the
mixture itself (a component by weight, alpha ~ N(0, 1/4^2)), so a discriminator cannot tell it from a present one.

Under DP, the mixtures and category frequencies come only from ``noisy_histograms`` (bins over the public
min/max); bins (and missing counts) under three noise stds count as empty, so noise alone neither spreads a
mixture over the whole range nor makes a column missing (the networks learn missing rates through DP-SGD).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from genlab.data.table_meta import CONTINUOUS
from genlab.errors import BadArgument, GenlabError
from genlab.models.base import Family
from genlab.nets import eval_mode, seeded_generator
from genlab.responsible import privacy

MIN_WEIGHT = 0.005  # mixture components lighter than this are dropped, as in CTGAN
FILL_STD = 0.25  # a missing value's filler alpha: a draw from its component is N(0, (sigma / (4 sigma))^2)
DP_BINS = 64  # histogram bins per continuous column when the mixtures are fitted under DP
DP_RESAMPLE = 4000  # points resampled from a noisy histogram to fit a mixture to
NOISE_SIGMAS = 3.0  # under DP, noisy bin counts below this many noise stds count as empty (missing bins too)
MASKED = -1e4  # logit added to an inactive slot
SAMPLE_BATCH = 1000  # rows generated per forward pass when sampling


def noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
          kind: str = "uniform") -> torch.Tensor:
    """Uniform (0, 1) or standard normal noise: from ``generator`` (a CPU one, moved) or else the global RNG."""
    draw = torch.rand if kind == "uniform" else torch.randn
    return draw(shape, device=device) if generator is None else draw(shape, generator=generator).to(device)


def gumbel(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    u = noise(shape, generator, device).clamp(1e-10, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def fit_mixture(u: np.ndarray, modes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Dirichlet-process Bayesian Gaussian mixture on values ``u`` (N,) -> means, stds, weights (modes,)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    means, stds, weights = np.full(modes, 0.5), np.full(modes, 0.25), np.zeros(modes)
    if len(np.unique(u)) < 2:  # nothing to fit: one narrow component (or a neutral one for an empty column)
        means[0], stds[0], weights[0] = (u[0], 1e-3, 1.0) if len(u) else (0.5, 0.25, 1.0)
        return means, stds, weights
    k = min(modes, len(u))
    # in one dimension "spherical" is the same model as "full", fitted without per-step Cholesky factorisations:
    # the same components (checked on breast-cancer's 30 columns), 2.3x faster
    bgm = BayesianGaussianMixture(n_components=k, weight_concentration_prior_type="dirichlet_process",
                                  weight_concentration_prior=0.001, covariance_type="spherical", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bgm.fit(u.reshape(-1, 1))
    means[:k], stds[:k] = bgm.means_.reshape(-1), np.sqrt(bgm.covariances_.reshape(-1))
    weights[:k] = bgm.weights_
    return means, np.maximum(stds, 1e-4), weights


class ModeTransformer(nn.Module):
    """Rows (B, C) float (NaN = missing) <-> encoded rows (B, D); its buffers hold the fitted preprocessing."""

    def __init__(self, columns: dict[str, dict[str, Any]], modes: int) -> None:
        super().__init__()
        types = [c["type"] for c in columns.values()]
        self.n_cols, self.modes = len(types), modes
        self.cont = [j for j, t in enumerate(types) if t in CONTINUOUS]  # matrix columns held as numbers
        self.disc = [j for j, t in enumerate(types) if t not in CONTINUOUS]  # matrix columns held as categories
        self.sizes = [len(c["categories"]) for c in columns.values() if c["type"] not in CONTINUOUS]  # K each
        self.integer = [types[j] == "integer" for j in self.cont]
        width = [3 + modes if t in CONTINUOUS else 0 for t in types]  # a block per column, in matrix order
        for j, k in zip(self.disc, self.sizes):
            width[j] = k + 1
        start = np.cumsum([0] + width).tolist()
        self.dim = start[-1]  # D
        value_at, disc_at = [start[j] for j in self.cont], [start[j] for j in self.disc]
        mode_at, miss_at = [s + 1 for s in value_at], [s + 1 + modes for s in value_at]
        self.spans = sorted([(s, s + 1, "tanh") for s in value_at] + [(s, s + modes, "softmax") for s in mode_at]
                            + [(s, s + 2, "softmax") for s in miss_at]
                            + [(s, s + k + 1, "softmax") for s, k in zip(disc_at, self.sizes)])  # (start, end, kind)
        self.disc_at = disc_at
        self.cond_at = np.cumsum([0] + [k + 1 for k in self.sizes])[:-1].tolist()  # starts in the cond vector
        self.cond_dim = sum(k + 1 for k in self.sizes)  # the conditional vector: every discrete one-hot, side by side
        lo, hi = zip(*[bounds(c) for c in columns.values() if c["type"] in CONTINUOUS]) if self.cont else ((), ())
        nc, f64 = len(self.cont), torch.float64
        self.register_buffer("fitted", torch.zeros((), dtype=torch.long))  # 1 once fitted (or restored)
        self.register_buffer("lo", torch.tensor(lo, dtype=f64))  # (Cc,) each continuous column's public min
        self.register_buffer("span", torch.tensor([max(h - l, 1e-9) for l, h in zip(lo, hi)], dtype=f64))  # max-min
        self.register_buffer("means", torch.full((nc, modes), 0.5, dtype=f64))  # (Cc, M) component means, in u
        self.register_buffer("stds", torch.full((nc, modes), 0.25, dtype=f64))  # (Cc, M) component stds, in u
        self.register_buffer("weights", torch.full((nc, modes), 1.0 / modes, dtype=f64))  # (Cc, M) mixture weights
        self.register_buffer("active", torch.ones(nc, modes, dtype=torch.bool))  # (Cc, M) components kept
        self.register_buffer("missing", torch.ones(self.n_cols, dtype=torch.bool))  # (C,) may be missing
        self.register_buffer("counts", torch.ones(self.cond_dim, dtype=f64))  # category (+ missing) counts
        idx = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
        for name, v in (("value_idx", value_at), ("mode_idx", mode_at), ("miss_idx", miss_at),
                        ("disc_idx", disc_at), ("cont_cols", self.cont), ("disc_cols", self.disc)):
            self.register_buffer(name, idx(v), persistent=False)  # layout, rebuilt from the metadata

    # -- the layout -----------------------------------------------------------------------------------------------
    def slot_bias(self) -> torch.Tensor:
        """(D,) 0 for a slot the data uses, ``MASKED`` for an inactive component or missing slot."""
        ok = torch.ones(self.dim, dtype=torch.bool, device=self.fitted.device)
        if self.cont:
            ok[self.mode_idx[:, None] + torch.arange(self.modes, device=ok.device)] = self.active
            ok[self.miss_idx + 1] = self.missing[self.cont_cols]
        ok[self.disc_idx + torch.tensor(self.sizes, dtype=torch.long, device=ok.device)] = self.missing[self.disc_cols]
        return torch.where(ok, 0.0, MASKED)

    def activate(self, raw: torch.Tensor, *, tau: float = 0.2, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Raw network output (B, D) -> an encoded row: tanh on alphas, Gumbel-softmax at ``tau`` on one-hots (one
        softmax per group of same-width spans, not one per span)."""
        logits = (raw + self.slot_bias().to(raw.dtype) + gumbel(raw.shape, generator, raw.device)) / tau  # (B, D)
        out = torch.empty(raw.shape, dtype=torch.promote_types(raw.dtype, torch.float32), device=raw.device)
        tanh, groups = self._span_index(raw.device)
        out[:, tanh] = torch.tanh(raw[:, tanh]).to(out.dtype)
        for idx in groups:  # (n, w): n spans of width w
            out[:, idx] = torch.softmax(logits[:, idx], dim=2).to(out.dtype)  # (B, n, w)
        return out  # (B, D)

    def _span_index(self, device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Column indices of the tanh slots (T,), and of the one-hot spans grouped by width [(n, w)]."""
        key = str(device)
        if getattr(self, "_spans_at", (None,))[0] != key:
            tanh = [s for s, e, kind in self.spans if kind == "tanh"]
            widths: dict[int, list[list[int]]] = {}
            for s, e, kind in self.spans:
                if kind != "tanh":
                    widths.setdefault(e - s, []).append(list(range(s, e)))
            groups = [torch.tensor(v, dtype=torch.long, device=device) for v in widths.values()]
            self._spans_at = (key, torch.tensor(tanh, dtype=torch.long, device=device), groups)
        return self._spans_at[1], self._spans_at[2]

    def codes(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows (B, C) -> (B, Cd) category indices, K for missing."""
        x = rows[:, self.disc_cols]
        k = torch.tensor(self.sizes, dtype=x.dtype, device=x.device)
        return torch.where(torch.isnan(x), k, x).round().long()

    # -- encoding and decoding ------------------------------------------------------------------------------------
    def transform(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rows (B, C) -> (B, D) float32; each value's component is sampled from its posterior (as CTGAN does)."""
        b, dev = len(rows), rows.device
        out = torch.zeros(b, self.dim, dtype=torch.float32, device=dev)
        if self.cont:
            x = rows[:, self.cont_cols].double()  # (B, Cc)
            miss = torch.isnan(x)
            u = torch.where(miss, 0.0, (x - self.lo) / self.span)[..., None]  # (B, Cc, 1)
            logw = torch.log(self.weights.clamp_min(1e-300)).masked_fill(~self.active, -torch.inf)  # (Cc, M)
            logp = logw - torch.log(self.stds) - 0.5 * ((u - self.means) / self.stds) ** 2  # (B, Cc, M)
            far = (u - self.means).abs() > 4 * self.stds  # alpha would be clipped: such a component cannot invert
            logp = torch.where(far & ~(far | ~self.active).all(-1, keepdim=True), -torch.inf, logp)
            logp = torch.where(miss[..., None], logw.expand_as(logp), logp)  # missing: a component by weight
            k = (logp + gumbel(tuple(logp.shape), generator, dev).double()).argmax(-1)  # (B, Cc) Gumbel-max
            mu, sd = (t.expand(b, -1, -1).gather(2, k[..., None]) for t in (self.means, self.stds))  # (B, Cc, 1)
            alpha = ((u - mu) / (4 * sd)).squeeze(2).clamp(-1, 1)  # (B, Cc)
            fill = (FILL_STD * noise(tuple(alpha.shape), generator, dev, "normal")).double().clamp(-1, 1)
            out[:, self.value_idx] = torch.where(miss, fill, alpha).float()
            out.scatter_(1, self.mode_idx + k, 1.0)
            out.scatter_(1, self.miss_idx + miss.long(), 1.0)
        if self.disc:
            out.scatter_(1, self.disc_idx + self.codes(rows), 1.0)
        return out

    def inverse(self, x: torch.Tensor) -> np.ndarray:
        """Encoded rows (B, D) (one-hot or soft) -> rows (B, C) float64: the argmax slot of each one-hot, NaN for
        missing; continuous values clipped to [min, max] and integers rounded."""
        x = x.detach().double()
        bias = self.slot_bias().double()
        out = torch.empty(len(x), self.n_cols, dtype=torch.float64, device=x.device)
        if self.cont:
            where = self.mode_idx[:, None] + torch.arange(self.modes, device=x.device)  # (Cc, M)
            k = (x[:, where] + bias[where]).argmax(-1, keepdim=True)  # (B, Cc, 1)
            mu, sd = (t.expand(len(x), -1, -1).gather(2, k).squeeze(2) for t in (self.means, self.stds))
            u = x[:, self.value_idx].clamp(-1, 1) * 4 * sd + mu  # (B, Cc)
            value = (u * self.span + self.lo).clamp(self.lo, self.lo + self.span)
            integer = torch.tensor(self.integer, device=x.device)
            value = torch.where(integer, value.round(), value)
            missing = (x[:, self.miss_idx + 1] + bias[self.miss_idx + 1]) > (x[:, self.miss_idx] + bias[self.miss_idx])
            out[:, self.cont_cols] = torch.where(missing, torch.nan, value)
        for i, (s, k) in enumerate(zip(self.disc_at, self.sizes)):
            code = (x[:, s : s + k + 1] + bias[s : s + k + 1]).argmax(1).double()  # (B,)
            out[:, self.disc[i]] = torch.where(code == k, torch.nan, code)
        return out.cpu().numpy()

    # -- fitting --------------------------------------------------------------------------------------------------
    def fit(self, rows: np.ndarray, seed: int) -> None:
        """Mixtures, missing flags and category counts read from the training rows (N, C) themselves."""
        for i, j in enumerate(self.cont):
            u = (rows[:, j] - self.lo[i].item()) / self.span[i].item()
            self._set_mixture(i, *fit_mixture(u[~np.isnan(u)], self.modes, seed))
        self.missing.copy_(torch.from_numpy(np.isnan(rows).any(axis=0)))
        self._done([np.bincount(np.where(np.isnan(rows[:, j]), k, rows[:, j]).astype(int), minlength=k + 1)
                    for j, k in zip(self.disc, self.sizes)])

    def fit_private(self, rows: np.ndarray, rho: float, seed: int) -> None:
        """The same, read only through ``noisy_histograms`` at ``rho``-zCDP; all else is post-processing."""
        bins = [np.linspace(0.0, 1.0, DP_BINS + 1) for _ in self.cont] + [np.arange(k) for k in self.sizes]
        lo, span = self.lo.cpu().numpy(), self.span.cpu().numpy()
        scaled = np.concatenate([(rows[:, self.cont] - lo) / span, rows[:, self.disc]], axis=1)
        hists = privacy.noisy_histograms(scaled, bins, rho)  # per column: counts per bin + a last bin for missing
        rng, sigma = np.random.default_rng(seed), privacy.histogram_sigma(rho, len(bins))
        for i in range(len(self.cont)):
            counts = np.where(hists[i][:-1] > NOISE_SIGMAS * sigma, hists[i][:-1], 0.0)  # noise-only bins dropped
            p = counts / counts.sum() if counts.sum() > 0 else np.full(DP_BINS, 1.0 / DP_BINS)
            which = rng.choice(DP_BINS, size=DP_RESAMPLE, p=p)
            u = (which + rng.random(DP_RESAMPLE)) / DP_BINS  # uniform inside each drawn bin
            self._set_mixture(i, *fit_mixture(u, self.modes, seed))
        for j, h in zip(self.cont + self.disc, hists):  # rare missingness is lost; never-missing columns stay so
            self.missing[j] = bool(h[-1] > NOISE_SIGMAS * sigma)
        self._done(hists[len(self.cont):])

    def _set_mixture(self, i: int, means: np.ndarray, stds: np.ndarray, weights: np.ndarray) -> None:
        active = weights > MIN_WEIGHT
        active[np.argmax(weights)] = True
        for buf, v in ((self.means, means), (self.stds, stds), (self.weights, weights)):
            buf[i] = torch.from_numpy(np.asarray(v, dtype=np.float64))
        self.active[i] = torch.from_numpy(active)

    def _done(self, counts: list[np.ndarray]) -> None:
        self.counts.copy_(torch.from_numpy(np.concatenate([np.zeros(0), *counts]).astype(np.float64)))
        self.fitted.fill_(1)


def bounds(col: dict[str, Any]) -> tuple[float, float]:
    """A continuous column's public [min, max] in the matrix's units (epoch seconds for dates)."""
    if col["type"] == "datetime":
        return pd.Timestamp(col["min"]).value / 1e9, pd.Timestamp(col["max"]).value / 1e9
    return float(col["min"]), float(col["max"])


# -- the family plumbing ------------------------------------------------------------------------------------------
class TabularFamily(Family):
    """What ctgan and tvae share: building the transformer, DP checks and accounting, sampling, validation."""

    modality = "table"
    data_interface = "table"
    supports_privacy = True
    TRAINING_ONLY: tuple[str, ...] = ()  # config fields that change training, not the weights' shapes or meaning
    PRIVATE: str = "model"  # the network that reads real rows: the one DP-SGD trains under privacy.epsilon

    def build(self, data: Any, *, seed: int) -> None:
        self.config.validate()
        self.meta_, self.seed_, self.steps_done_ = data.meta, seed, 0
        self.names_, self.categories_ = list(data.columns), data.categories()  # categories: K, or 0 if continuous
        self.n_rows_ = len(data.rows["train"])
        if self.privacy.private:
            privacy.check_public(data.meta)
            self._refuse_private()
        tf = ModeTransformer(data.columns, self.config.modes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.networks_ = {"transformer": tf, **self._networks(tf)}

    def _networks(self, tf: ModeTransformer) -> dict[str, nn.Module]:
        raise NotImplementedError

    def _refuse_private(self) -> None:
        """Raise for settings that cannot be trained under DP (the family's own)."""

    @property
    def transformer_(self) -> ModeTransformer:
        return self.networks_["transformer"]

    def architecture(self) -> dict[str, Any]:
        arch = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in self.TRAINING_ONLY}
        tf = self.transformer_
        return {"family": self.name, **arch, "columns": [[n, k] for n, k in zip(self.names_, self.categories_)],
                "data_dim": tf.dim, "cond_dim": tf.cond_dim}

    def _plan(self, train: Any, d_steps: int = 1) -> Any:
        """Under DP: check the settings and plan the budget (``d_steps`` private updates per training step)."""
        if not self.privacy.private:
            return None
        privacy.check(self.privacy, train, n_rows=self.n_rows_)
        if train.keep_best:
            raise GenlabError("train.keep_best cannot be used with privacy.epsilon: choosing weights by their "
                              "validation loss reads the held-out rows outside the privacy budget")
        self.plan_ = privacy.plan(self.privacy, n_rows=self.n_rows_, batch_size=train.batch_size,
                                  steps=train.max_steps * d_steps, preprocess=True)
        self.d_steps_ = d_steps
        return self.plan_

    def _make_private(self, opts: dict[str, torch.optim.Optimizer], train: Any) -> None:
        """Opacus around network ``PRIVATE``: its per-row gradients (``wrap``) and its DP optimizer in ``opts``."""
        if getattr(self, "_gsm", None) is not None:  # trained before in this process: drop the old hooks
            self._gsm.to_standard_module()
        net = self.networks_[self.PRIVATE]
        self._gsm, opts[self.PRIVATE] = privacy.make_private(net, opts[self.PRIVATE], self.plan_, train.batch_size)

    def wrap(self, name: str, net: nn.Module) -> nn.Module:
        gsm = getattr(self, "_gsm", None)
        return gsm if name == self.PRIVATE and gsm is not None and self.privacy.private else net

    def _prepare(self, data: Any) -> None:
        """Start of training: fit the transformer unless restored (flag set), and Poisson batches under DP."""
        if self.privacy.private and getattr(self, "plan_", None) is None:
            raise GenlabError("a private run plans its budget in optimizers() before its phases")
        tf = self.transformer_
        if not int(tf.fitted):
            rows = data.rows["train"]
            tf.fit_private(rows, self.plan_.rho_pre, self.seed_) if self.privacy.private else tf.fit(rows, self.seed_)
        if self.privacy.private:
            data.poisson_rate = self.plan_.sample_rate

    def after_step(self, step: int) -> None:
        self.steps_done_ = step + 1

    def spent(self) -> float:
        """The epsilon spent so far (0 when not private)."""
        plan = getattr(self, "plan_", None)
        return plan.spent(self.steps_done_ * self.d_steps_) if plan is not None else 0.0

    def extra_files(self, folder: Path) -> None:
        super().extra_files(folder)
        plan = getattr(self, "plan_", None)
        if plan is not None:
            info = privacy.record(plan, self.steps_done_ * self.d_steps_, preprocessing=(
                f"Bayesian Gaussian mixtures and category frequencies fitted to noisy histograms ({DP_BINS} bins per "
                "continuous column over its public range)"))
            privacy.write_record(folder, info)

    # -- sampling and validation ----------------------------------------------------------------------------------
    def _generate(self, n: int, generator: torch.Generator, first: tuple[int, int] | None) -> np.ndarray:
        """``n`` rows (n, C) float64; ``first`` = (discrete column index, category) to condition on, if any."""
        raise NotImplementedError

    def _rows(self, n: int, generator: torch.Generator, first: tuple[int, int] | None = None) -> np.ndarray:
        nets = [net for name, net in self.networks_.items() if name != "transformer"]
        with eval_mode(*nets):
            parts = [self._generate(min(SAMPLE_BATCH, n - i), generator, first) for i in range(0, n, SAMPLE_BATCH)]
        return np.concatenate(parts) if parts else np.empty((0, len(self.names_)))

    def _conditions(self, condition: dict[str, int] | None) -> list[tuple[int, int]]:
        """{column name: category index} -> [(matrix column, category)], each checked."""
        if condition is not None and not isinstance(condition, dict):
            raise BadArgument("condition", "must be a dict {column name: category index}")
        out = []
        for name, k in (condition or {}).items():
            if name not in self.names_:
                raise BadArgument("condition", f"'{name}' is not a column (columns: {', '.join(self.names_)})")
            j = self.names_.index(name)
            if not self.categories_[j]:
                raise BadArgument("condition", f"'{name}' is continuous; only categorical columns can be conditioned")
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < self.categories_[j]:
                raise BadArgument("condition", f"'{name}' takes a category index in [0, {self.categories_[j] - 1}], "
                                  f"got {k!r}")
            out.append((j, int(k)))
        return out

    def sample(self, n: int = 1, *, seed: int | None = None, condition: dict[str, int] | None = None) -> Any:
        """``n`` synthetic rows as a ``Table``; ``condition`` {column: category index} keeps only rows with those
        categories (by rejection; ctgan also asks its generator for the first one)."""
        from genlab.modalities.table import Table, conditioned

        conds = self._conditions(condition)
        first = (self.transformer_.disc.index(conds[0][0]), conds[0][1]) if conds else None
        draw = lambda m, s: self._rows(m, seeded_generator(s), first)  # noqa: E731
        return Table(self.meta_, conditioned(draw, n, condition, self.meta_, seed))

    @torch.no_grad()
    def validation_loss(self, batch: torch.Tensor) -> float:
        """``shape_distance`` between a held-out batch and as many synthetic rows, drawn from a generator seeded
        from the batch's values, so the loop's fixed validation batches meet the same fakes every time."""
        from genlab.evaluate.shapes import shape_distance

        real = batch.detach().double().cpu()
        seed = int(torch.nan_to_num(real, nan=-1.0).abs().sum().item() * 1000) % (2**63 - 1)
        return shape_distance(real.numpy(), self._rows(len(real), seeded_generator(seed)), self.categories_)

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError("the table modality evaluates the tabular families")
