"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data", https://arxiv.org/abs/1905.03375): an
item-item weight matrix with a zero diagonal, in closed form (no gradient steps).

    G = X^T X + lambda I,   P = G^-1,   B_ij = -P_ij / P_jj  (i != j),   B_jj = 0,   scores = x B

A user's score for item j is the sum of the weights B_ij of the items i in the history: ``because`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.memory import require
from genlab.models.ratings import RatingsFamily


@dataclass(frozen=True)
class EASEConfig:
    """The L2 weight of the closed form."""

    l2: float = 500.0  # lambda: the weight of ||B||^2 (500 in the paper for MovieLens-sized data)

    limits: ClassVar[dict[str, str]] = {"l2": "(0, 1000000000]"}

    def validate(self) -> None:
        pass


class EASENet(nn.Module):
    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.register_buffer("weights", torch.zeros(n_items, n_items))  # (I, I) B, zero diagonal


def ease_weights(x: torch.Tensor, l2: float) -> torch.Tensor:
    """(I, I) B of EASE for the 0/1 matrix ``x`` (U, I), solved in float64."""
    x = x.double()
    g = x.T @ x + l2 * torch.eye(x.shape[1], dtype=torch.float64)
    p = torch.linalg.inv(g)
    b = -p / torch.diagonal(p)[None, :]  # column j divided by P_jj
    b.fill_diagonal_(0.0)
    return b


class EASE(RatingsFamily):
    name = "ease"
    Config = EASEConfig
    iterative: ClassVar[bool] = False
    cites = "Steck 2019, Embarrassingly Shallow Autoencoders for Sparse Data (EASE)"
    example: ClassVar[dict[str, Any]] = {"set": []}

    def _networks(self, data: Any) -> dict[str, nn.Module]:
        require(3 * data.n_items**2 * 8, f"EASE's {data.n_items:,} x {data.n_items:,} item matrix",
                "use fewer items or the multvae family")
        return {"model": EASENet(data.n_items).eval()}

    @torch.no_grad()
    def solve(self, data: Any) -> None:
        b = ease_weights(data.train_matrix(), self.config.l2)
        if not bool(torch.isfinite(b).all()):
            raise GenlabError("EASE's closed form is not finite for this data; raise model.l2")
        self.networks_["model"].weights.copy_(b.float())

    def score(self, history: torch.Tensor) -> torch.Tensor:
        return history.float() @ self.networks_["model"].weights  # (B, I)

    def because(self, history: torch.Tensor, item: int) -> torch.Tensor:
        return history.float() * self.networks_["model"].weights[:, item]  # B_ij of each history item i
