"""What every family of ratings shares: scoring items from a user's history, explaining a score, and the
recommendation outputs made through the ratings modality (which holds the item names).

A ratings family implements ``score(history) -> scores`` ((B, I) 0/1 rows -> (B, I) real scores, higher is
better) and ``because(history, item) -> weights`` ((I,) row, an item index -> (I,) how much each history item
weighs in that item's score; zeros where the family cannot say).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.evaluate.recommend import recall_at_k, top_k
from genlab.models.base import Family

HIDDEN_EVERY = 5  # closed-form validation: every fifth positive of a row is hidden and predicted from the rest


class RatingsFamily(Family):
    modality = "ratings"
    data_interface = "ratings"
    hints: ClassVar[tuple[str, ...]] = ("genlab recommend {run} --user 1 --k 10",)  # as the user option's example

    def build(self, data: Any, *, seed: int) -> None:
        self.n_items_ = data.n_items
        self.seed_ = seed
        self.networks_ = self._networks(data)

    def _networks(self, data: Any) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def architecture(self) -> dict[str, Any]:
        return {**super().architecture(), "items": self.n_items_}

    def score(self, history: torch.Tensor) -> torch.Tensor:
        """(B, I) 0/1 histories -> (B, I) scores of every item (higher: recommended first)."""
        raise NotImplementedError

    def because(self, history: torch.Tensor, item: int) -> torch.Tensor:
        """(I,) how much each item of the history weighs in ``item``'s score (0 where the family cannot say)."""
        return torch.zeros_like(history)

    def sample(self, n: int = 1, *, seed: int | None = None, **options: Any) -> Any:
        raise GenlabError(f"{self.name} recommends through a run, which holds the item names: "
                          "run.sample(user=..., k=...) or `genlab recommend RUN --user ID`")

    @torch.no_grad()
    def validation_loss(self, batch: torch.Tensor) -> float:
        """1 - Recall@20 of every fifth positive of each row, predicted from the others (a closed-form family's
        validation figure: lower is better, like a loss)."""
        x = batch.float()
        hidden = torch.zeros_like(x)
        for r in range(len(x)):
            pos = torch.nonzero(x[r]).flatten()
            hidden[r, pos[HIDDEN_EVERY - 1 :: HIDDEN_EVERY]] = 1.0
        shown = x - hidden
        keep = hidden.sum(1) > 0
        if not bool(keep.any()):
            return 1.0
        s = self.score(shown[keep]).float().cpu().numpy()
        ranked = top_k(s, shown[keep].cpu().numpy(), 20)
        return float(1.0 - np.mean(recall_at_k(ranked, hidden[keep].cpu().numpy(), 20)))

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, Any]:
        raise GenlabError("ratings runs are evaluated by the ratings modality (`genlab eval RUN`)")
