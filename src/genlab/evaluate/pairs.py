"""Metrics for generated text against references (sequence-to-sequence families), as pure functions.

- ``bleu``: sacreBLEU's corpus BLEU (0-100): the geometric mean of 1- to 4-gram precisions of the predictions
  against the references, times a brevity penalty; default 13a tokenization. Orders no prediction reaches are
  left out (effective order), so a corpus of two-word targets predicted perfectly scores 100, not 0. Short single-line targets make it
  harsh (one wrong word loses many n-grams), so read it beside chrF.
- ``chrf``: sacreBLEU's chrF (0-100): F-score (beta 2) of character 1- to 6-gram overlap; kinder to near misses
  ("Return the file name" vs "Return the filename").
- ``exact_match``: share of predictions equal to their reference after stripping surrounding whitespace.
"""

from __future__ import annotations

from collections.abc import Sequence


def text_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU, chrF and exact match (as a fraction) of ``predictions`` against one reference each."""
    import sacrebleu
    from sacrebleu.metrics import BLEU

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return {"bleu": float("nan"), "chrf": float("nan"), "exact_match": float("nan")}
    preds, refs = list(predictions), list(references)
    exact = sum(p.strip() == r.strip() for p, r in zip(preds, refs)) / len(preds)
    return {
        "bleu": round(BLEU(effective_order=True).corpus_score(preds, [refs]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(preds, [refs]).score, 2),
        "exact_match": round(exact, 4),
    }
