"""The pairs modality's audit: generated targets against the training targets (exact copies and verbatim token
n-grams), beside the held-out true targets of the same sources. ``PAIRS.audit`` calls ``audit_pairs``; the maths
lives in ``responsible/memorise.py``."""

from __future__ import annotations

from typing import Any

import numpy as np

from genlab.numbers import pct
from genlab.progress import task


PAIRS_MEMO_METHOD = (
    "Memorisation: targets are generated for up to n held-out sources with the released sampler's defaults "
    "(greedy); each is compared with the training targets: an exact copy (the same text as some training target, "
    "surrounding whitespace ignored) and verbatim token n-grams (n = 4, 8) found in the training targets. Beside "
    "each figure stands the same figure for the true held-out targets of the same sources: the overlap natural in "
    "this data (short targets repeat: 'Return the name.')."
)
PAIRS_MEMO_LIMITS = (
    "Only verbatim copies are found; a paraphrased training target is not. Short targets make n-gram shares "
    "noisy, and an exact copy of a common target is not a privacy leak by itself: compare with the held-out figure."
)
PAIRS_BIAS = (
    "No bias measure for source-to-target pairs yet: what a fair output is depends on the task (docstrings of "
    "code concern no people), so none is computed."
)
NGRAM_SIZES = (4, 8)


def audit_pairs(run: Any, *, n: int, seed: int = 0, batch_size: int = 32) -> dict:
    from genlab.responsible import memorise as M

    data, tok = run.data, run.model.tokenizer_
    rng = np.random.default_rng(seed)
    held = data.texts("val")
    idx = np.sort(rng.choice(len(held), min(n, len(held)), replace=False))
    sources, truths = [held[i][0] for i in idx], [held[i][1] for i in idx]
    outputs: list[str] = []
    with task(f"generating targets for {len(sources)} held-out sources", total=len(sources)) as advance:
        for i in range(0, len(sources), batch_size):
            outputs += run.sample(1, source=sources[i : i + batch_size], seed=seed)
            advance(len(sources[i : i + batch_size]))
    train_targets = [t for _, t in data.texts("train")]
    known = {t.strip() for t in train_targets}

    def ids(texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(texts, add_special_tokens=False)]

    eos = tok.token_to_id("<|endoftext|>")
    train = np.concatenate([np.append(s, eos) for s in ids(train_targets)])  # targets end to end, (N,)
    memo = M.text_memorisation(train, ids(outputs), ids(truths), lambda t: tok.decode(t), sizes=NGRAM_SIZES)
    copied = [o for o in outputs if o.strip() in known]
    memo |= {
        "exact_copies": {"generated": len(copied), "generated_share": len(copied) / max(1, len(outputs)),
                         "heldout_share": sum(t.strip() in known for t in truths) / max(1, len(truths)),
                         "examples": sorted(set(copied))[:5]},
        "n_sources": len(sources), "method": PAIRS_MEMO_METHOD, "limits": PAIRS_MEMO_LIMITS,
    }
    bias = {"skipped": PAIRS_BIAS, "method": "", "limits": ""}
    ex, by = memo["exact_copies"], memo["by_size"]
    g8, h8 = by["8"]["generated_share"] or 0.0, by["8"]["heldout_share"] or 0.0
    g, h = ex["generated_share"], ex["heldout_share"]
    repeats = g > max(2 * h, h + 0.01) or g8 > max(2 * h8, h8 + 0.01)  # clearly more than the held-out targets
    verdict = ("Verdict: possible memorisation: outputs repeat training targets more than held-out true targets do; "
               "read the examples." if repeats else
               "Verdict: no sign of memorisation: outputs repeat training targets no more than held-out true targets do.")
    summary = [
        verdict,
        (f"Exact copies of a training target: {ex['generated']} of {len(outputs)} outputs "
         f"({pct(ex['generated_share'])}); held-out true targets that are training targets too: "
         f"{pct(ex['heldout_share'])}."),
        "Verbatim overlap with the training targets (share of token n-grams, generated vs held-out true targets): "
        + "; ".join(f"{k} tokens {pct(v['generated_share'])} vs {pct(v['heldout_share'])}" for k, v in by.items())
        + ".",
        PAIRS_BIAS,
    ]
    return {"memorisation": memo, "bias": bias, "verdict": verdict, "summary": summary}
