"""Item popularity: every user gets the items most users liked in training (the floor a recommender must beat)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from genlab.models.ratings import RatingsFamily


@dataclass(frozen=True)
class PopularityConfig:
    """Nothing to choose: an item's score is the number of training users who liked it."""

    limits: ClassVar[dict[str, str]] = {}

    def validate(self) -> None:
        pass


class PopularityNet(nn.Module):
    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(n_items))  # (I,) training users with the item as a positive


class Popularity(RatingsFamily):
    name = "popularity"
    Config = PopularityConfig
    iterative: ClassVar[bool] = False
    cites = "the most-popular baseline"
    example: ClassVar[dict[str, Any]] = {"set": []}

    def _networks(self, data: Any) -> dict[str, nn.Module]:
        return {"model": PopularityNet(data.n_items).eval()}

    @torch.no_grad()
    def solve(self, data: Any) -> None:
        self.networks_["model"].counts.copy_(data.train_matrix().sum(0))

    def score(self, history: torch.Tensor) -> torch.Tensor:
        counts = self.networks_["model"].counts
        return counts.expand(len(history), -1).clone()  # (B, I): the same ranking for everyone
