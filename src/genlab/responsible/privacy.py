"""Differential privacy: the budget a run may spend, how it is split, and what it actually spent.

One Renyi-DP (RDP) ledger per run. DP-SGD (``ctgan``, ``tvae``) is the sampled Gaussian mechanism, accounted with
Opacus' RDP analysis for Poisson sampling at rate q = batch / rows over the steps taken; the preprocessing that
reads the private rows (the mixture fits and category frequencies, ``noisy_histograms``) and the marginal-based
synthesiser (``mst``) are Gaussian mechanisms, accounted exactly in zero-concentrated DP (rho-zCDP is RDP
rho * alpha at every order alpha). The ledger adds both at every order and converts to (epsilon, delta) once, so
the epsilon reported is the whole run's.

What is not read from the private rows spends nothing: the columns' domains (category lists, min and max) must be
public (declared ``"public": true`` in the metadata file), since a domain read from the rows would reveal e.g. a
rare diagnosis that one patient has. ``check_public`` refuses a private run otherwise, with the reason.

Noise is drawn from generators seeded by the operating system's randomness (``secure_generator``), not from
``train.seed``: a seed recorded in ``config.toml`` would let anyone subtract the noise again. A private run is
therefore not reproducible bit for bit, by design. The number of rows is treated as public, as usual in DP-SGD.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.errors import GenlabError

ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))  # RDP orders alpha (Opacus' defaults)
PRIVACY_FILE = "privacy.json"  # in a private run's folder: the budget, what was spent, and how


def rho_for(epsilon: float, delta: float) -> float:
    """The rho-zCDP whose (epsilon, delta) conversion (rho + 2 sqrt(rho ln(1/delta))) is ``epsilon``."""
    log = math.log(1 / delta)
    return (math.sqrt(log + epsilon) - math.sqrt(log)) ** 2


def epsilon_of(*, delta: float, rho: float = 0.0, noise: float = 0.0, sample_rate: float = 0.0,
               steps: int = 0) -> float:
    """The (epsilon, delta) of rho-zCDP composed with ``steps`` of the sampled Gaussian mechanism (RDP)."""
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = np.array(ORDERS)
    rdp = rho * orders
    if steps and noise:
        rdp = rdp + np.asarray(compute_rdp(q=sample_rate, noise_multiplier=noise, steps=steps, orders=ORDERS))
    if not rdp.any():
        return 0.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha": the bound is valid, if loose
        eps, _ = get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)
    return float(eps)


def zcdp_budget(epsilon: float, delta: float) -> tuple[float, float]:
    """The largest rho-zCDP within (``epsilon``, ``delta``), and the epsilon it spends: ``rho_for`` inverts the plain
    conversion rho + 2 sqrt(rho ln(1/delta)); ``epsilon_of``'s RDP conversion is tighter (1.5x the rho at epsilon 1),
    so bisect on the better of the two."""
    def spent(rho: float) -> float:
        # at a tiny rho Opacus' largest order is too small and the plain bound wins
        return min(epsilon_of(delta=delta, rho=rho), rho + 2 * math.sqrt(rho * math.log(1 / delta)))

    lo = hi = rho_for(epsilon, delta) * (1 - 1e-9)
    while spent(hi) <= epsilon:
        lo, hi = hi, 2 * hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if spent(mid) <= epsilon else (lo, mid)
    return lo, spent(lo)


@dataclass(frozen=True)
class Plan:
    """How one private run spends its budget."""

    epsilon: float  # the budget asked for
    delta: float
    rho_pre: float  # zCDP spent on preprocessing the private rows (0: none read)
    noise: float  # DP-SGD noise multiplier (sigma / clipping norm); 0 for a family without gradient steps
    sample_rate: float  # DP-SGD: the chance each row joins a batch (Poisson sampling)
    steps: int  # DP-SGD steps the noise was calibrated for
    max_grad_norm: float  # DP-SGD: each row's gradient is clipped to this norm

    def spent(self, steps: int) -> float:
        """The epsilon spent after ``steps`` DP-SGD steps (preprocessing included)."""
        return epsilon_of(delta=self.delta, rho=self.rho_pre, noise=self.noise, sample_rate=self.sample_rate,
                          steps=steps)


def plan(privacy: Any, *, n_rows: int, batch_size: int, steps: int, preprocess: bool) -> Plan:
    """The noise multiplier that makes ``steps`` DP-SGD steps plus the preprocessing share spend ``epsilon``."""
    eps, delta = privacy.epsilon, privacy.delta
    rho_pre = rho_for(privacy.preprocess_share * eps, delta) if preprocess and privacy.preprocess_share else 0.0
    q = batch_size / n_rows
    if q >= 1:
        raise GenlabError(f"train.batch_size ({batch_size}) must be below the {n_rows} training rows for DP-SGD, "
                          "whose guarantee comes from sampling a small share of rows per step")
    lo, hi = 0.05, 5000.0
    if epsilon_of(delta=delta, rho=rho_pre, noise=hi, sample_rate=q, steps=steps) > eps:
        raise GenlabError(f"privacy.epsilon={eps} cannot be met with {steps} steps at batch {batch_size} of "
                          f"{n_rows} rows; train fewer steps (train.max_steps) or smaller batches")
    while hi / lo > 1.001:  # bisection on log(sigma) to 0.1%: epsilon falls as the noise grows
        mid = math.sqrt(lo * hi)
        if epsilon_of(delta=delta, rho=rho_pre, noise=mid, sample_rate=q, steps=steps) > eps:
            lo = mid
        else:
            hi = mid
    return Plan(eps, delta, rho_pre, hi, q, steps, privacy.max_grad_norm)


def check_delta(privacy: Any, *, n_rows: int) -> None:
    """Refuse a delta that allows releasing a row outright (every private family)."""
    if privacy.delta >= 1 / n_rows:
        raise GenlabError(f"privacy.delta ({privacy.delta}) must be below 1 / training rows (1/{n_rows} = "
                          f"{1 / n_rows:.2g}): a larger delta allows releasing a whole row outright")


def check(privacy: Any, train: Any, *, n_rows: int) -> None:
    """Refuse DP-SGD settings under which the guarantee would not hold."""
    check_delta(privacy, n_rows=n_rows)
    if train.grad_accum != 1:
        raise GenlabError("train.grad_accum must be 1 with privacy.epsilon: DP-SGD clips and noises each step's "
                          "Poisson-sampled batch as a whole")


def check_public(meta: dict[str, Any]) -> None:
    """Refuse a private run whose column domains were read from the private rows."""
    private = [n for n, c in meta["columns"].items() if c["type"] != "id" and not c.get("public")]
    if private:
        raise GenlabError(
            f"{len(private)} column(s) have domains read from the private rows (first: '{private[0]}'), which would "
            "leak rare values outside the privacy budget; write the metadata with `genlab data describe DATA --out "
            "meta.json`, set \"public\": true on each column whose categories or range are public knowledge (e.g. "
            "age 0 to 120), and train with --set data.metadata=meta.json")


def secure_generator() -> torch.Generator:
    """A generator seeded from the operating system's randomness: DP noise must not be predictable."""
    return torch.Generator().manual_seed(secrets.randbits(63))


def histogram_sigma(rho: float, n_histograms: int) -> float:
    """Gaussian noise std for ``n_histograms`` histograms of the same rows under rho-zCDP (each row adds 1 to one bin
    of each: L2 sensitivity sqrt(n))."""
    return math.sqrt(n_histograms / (2 * rho))


def noisy_histograms(rows: np.ndarray, bins: list[np.ndarray], rho: float) -> list[np.ndarray]:
    """Per column of ``rows`` (N, C), the counts of its values in ``bins[j]`` (edges for a continuous column, or an
    array of category indices) plus a last bin for missing, each with Gaussian noise under rho-zCDP in all, clipped
    at 0. The results may be used freely: post-processing keeps the guarantee."""
    sigma = histogram_sigma(rho, rows.shape[1])
    rng = np.random.default_rng(secrets.randbits(63))
    out = []
    for j, edges in enumerate(bins):
        x = rows[:, j]
        present = x[~np.isnan(x)]
        if edges.dtype.kind in "iu":  # categories 0..K-1
            counts = np.bincount(present.astype(int), minlength=len(edges)).astype(float)
        else:
            counts = np.histogram(np.clip(present, edges[0], edges[-1]), bins=edges)[0].astype(float)
        counts = np.append(counts, np.isnan(x).sum())
        out.append(np.clip(counts + rng.normal(0.0, sigma, len(counts)), 0.0, None))
    return out


def make_private(net: torch.nn.Module, optimizer: torch.optim.Optimizer, plan: Plan,
                 batch_size: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """Opacus' per-example gradients for ``net`` and its DP optimizer (clip each row's gradient, add noise)."""
    import warnings

    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    for notice in ("Full backward hook", "Secure RNG turned off", "Optimal order is the"):  # Opacus' harmless notices
        warnings.filterwarnings("ignore", message=f".*{notice}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = GradSampleModule(net)
        dp = DPOptimizer(optimizer, noise_multiplier=plan.noise, max_grad_norm=plan.max_grad_norm,
                         expected_batch_size=batch_size, loss_reduction="mean", generator=secure_generator())
    dp.clips_per_example = True  # the loop's global clipping (and its gradient-norm log) would read raw gradients
    return wrapped, dp


def write_record(folder: Path, info: dict[str, Any]) -> None:
    """``privacy.json`` in a run folder, written atomically."""
    import json

    from genlab.files import atomic_write_bytes

    atomic_write_bytes(Path(folder) / PRIVACY_FILE, json.dumps(info, indent=2).encode())


def record(plan: Plan, steps: int, *, preprocessing: str) -> dict[str, Any]:
    """What ``privacy.json`` says: the budget, what was spent, and how."""
    return {"epsilon_target": plan.epsilon, "epsilon_spent": round(plan.spent(steps), 4), "delta": plan.delta,
            "accountant": "rdp", "noise_multiplier": round(plan.noise, 4), "sample_rate": plan.sample_rate,
            "steps": steps, "max_grad_norm": plan.max_grad_norm, "preprocessing": preprocessing,
            "domains": "declared public in the metadata file"}
