"""Language-model metrics on held-out text: loss, perplexity, bits per character.

- ``val_loss``: mean cross-entropy per token, in nats, over consecutive non-overlapping blocks of the
  validation split (each block starts with no context, so this is slightly pessimistic).
- ``perplexity``: exp(val_loss), the effective number of equally likely next tokens.
- ``bits_per_char``: total nats / (characters * ln 2), comparable across tokenizers (a character model's
  bits per character is val_loss / ln 2; a BPE model's spreads each token's cost over its characters).
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from genlab.nets import eval_mode


def perplexity(loss_nats: float) -> float:
    return math.exp(loss_nats)


def bits_per_char(loss_nats_per_token: float, chars_per_token: float) -> float:
    return loss_nats_per_token / (chars_per_token * math.log(2))


def evaluate_lm(model, data, *, batch_size: int = 16, max_tokens: int = 0) -> dict[str, float]:
    """Evaluate a causal LM (``model(input_ids=x).logits``) on ``data``'s validation split, in fp32."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with eval_mode(model):
        for x, y in data.blocks("val", batch_size, max_tokens):
            logits = model(input_ids=x.to(device)).logits  # (B, T, V)
            total += float(F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten(), reduction="sum"))
            count += y.numel()
    loss = total / count
    return {
        "val_loss": loss,
        "perplexity": perplexity(loss),
        "bits_per_char": bits_per_char(loss, data.chars_per_token("val")),
        "tokens": count,
    }


def unigram_entropy(data) -> float:
    """Entropy (nats per token) of the training split's token frequencies: the loss of a model with no context."""
    import numpy as np

    counts = np.bincount(np.asarray(data.arrays["train"]), minlength=data.vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
