"""Masked-language-model metrics on held-out text: masked-token accuracy, pseudo-perplexity, unigram baseline.

- ``masked_accuracy``: share of masked tokens whose most likely filler is the original token. A fixed share
  (``mask_prob``) of the held-out tokens, drawn with a fixed seed, is replaced by ``[MASK]``; the model sees the
  rest of its block. ``mlm_loss`` is the mean cross-entropy (nats) at those positions.
- ``unigram_accuracy``: the same positions guessed by always answering the most frequent training token: what a
  model that ignores the context scores. ``unigram_entropy`` (in ``evaluate/text.py``) is the matching loss.
- ``pseudo_perplexity`` (Salazar et al., 2020): mask each token in turn, alone, and score it given all the others
  of its block; exp of the mean negative log-likelihood. Costs one forward pass per token, so it is measured on
  the first ``pppl_tokens`` held-out tokens only (``pppl_tokens`` in the report says how many).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

# (input_ids (B, T), positions as (batch index (M,), time index (M,))) -> logits (M, V) at those positions
Scorer = Callable[[torch.Tensor, tuple[torch.Tensor, torch.Tensor]], torch.Tensor]


def most_frequent_token(data) -> int:
    counts = np.bincount(np.asarray(data.arrays["train"]), minlength=data.vocab_size)
    return int(counts.argmax())


@torch.no_grad()
def masked_accuracy(score: Scorer, data, *, mask_id: int, mask_prob: float, batch_size: int = 16,
                    max_tokens: int = 0, seed: int = 0) -> dict[str, float]:
    """Accuracy and loss at ``mask_prob`` of the held-out tokens replaced by ``[MASK]``, beside the unigram guess."""
    g = torch.Generator().manual_seed(seed)
    guess = most_frequent_token(data)
    correct = unigram_correct = count = 0
    total = 0.0
    for x, _ in data.blocks("val", batch_size, max_tokens):  # x (B, T)
        chosen = torch.rand(x.shape, generator=g) < mask_prob  # (B, T)
        if not chosen.any():
            continue
        where = chosen.nonzero(as_tuple=True)  # (M,), (M,)
        target = x[where]  # (M,)
        logits = score(x.masked_fill(chosen, mask_id), where).float().cpu()  # (M, V)
        total += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(-1) == target).sum())
        unigram_correct += int((target == guess).sum())
        count += target.numel()
    count = max(count, 1)
    return {"masked_accuracy": correct / count, "mlm_loss": total / count,
            "unigram_accuracy": unigram_correct / count, "masked_tokens": count}


@torch.no_grad()
def pseudo_perplexity(score: Scorer, data, *, mask_id: int, max_tokens: int = 256,
                      chunk: int = 64) -> dict[str, float]:
    """Each of the first ``max_tokens`` held-out tokens masked alone and scored given the rest of its block."""
    nll, count = 0.0, 0
    for x, _ in data.blocks("val", 1, max_tokens):  # x (1, T)
        T = x.size(1)
        for t0 in range(0, T, chunk):
            rows = torch.arange(t0, min(T, t0 + chunk))  # (C,) the position each copy masks
            copies = x.repeat(len(rows), 1)  # (C, T)
            where = (torch.arange(len(rows)), rows)
            copies[where] = mask_id
            logp = F.log_softmax(score(copies, where).float().cpu(), dim=-1)  # (C, V)
            nll -= float(logp.gather(1, x[0, rows].unsqueeze(1)).sum())
            count += len(rows)
    count = max(count, 1)
    return {"pseudo_perplexity": math.exp(nll / count), "pppl_tokens": count}
