"""The music modality's audit: how much of the generated music is copied, note for note, from the training pieces.

``MUSIC.audit`` calls ``audit_music``; the maths is the text audit's (``responsible/memorise.py``: token n-grams
looked up in the training token file by rolling hashes, each hit checked token by token), with n-gram sizes of one,
two and four bars (the training pieces' median tokens per bar). The training file includes the transposed copies,
so a phrase copied in another key counts as copied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genlab.numbers import pct
from genlab.responsible import memorise as M

METHOD = (
    "Memorisation: pieces of 16 bars are generated without a prompt and their tokens looked up in the training "
    "split (with its transposed copies) as n-grams of one, two and four bars' worth of tokens (the training pieces' "
    "median tokens per bar), by 64-bit rolling hashes, each hit checked token by token. Beside the generated share "
    "stands the same share for as many held-out pieces cut to the same lengths: the overlap that is natural in this "
    "corpus (cadences, repeated figures). The longest copy is exact (binary search on the length)."
)
LIMITS = (
    "Only exact token copies are found: a phrase with one changed note, duration or velocity breaks a match. "
    "Shared formulas (a cadence, a scale) are common in real music too, so compare the two shares rather than "
    "reading the generated share alone. There is no bias audit for music: no measure of representation in scores "
    "is established here."
)
RULES = (
    "Verdict rules: memorisation is flagged when the share of generated two-bar n-grams found in the training "
    "pieces exceeds twice the held-out share (and that share plus one point), or the longest copy is over twice the "
    "held-out one and over four bars' worth of tokens."
)


def audit_music(run, *, n: int, seed: int = 0, out: Path | None = None, bars: int = 16) -> dict:
    from genlab.sample.music_compose import compose

    data = run.data
    per_bar = max(2, int(round(data.music["tokens_per_bar"]["median"])))
    sizes = (per_bar, 2 * per_bar, 4 * per_bar)
    rows = compose(run.model, data, [], n=n, bars=bars, seed=seed)
    generated = [np.asarray(r, dtype=np.int64) for r in rows]
    held_pieces = data.pieces("val")
    rng = np.random.default_rng(seed)
    held = [np.asarray(held_pieces[int(i)][: max(1, len(g))], dtype=np.int64)
            for i, g in zip(rng.integers(0, len(held_pieces), len(generated)), generated)]
    memo = M.text_memorisation(np.asarray(data.arrays["train"]), generated, held,
                               lambda ids: " ".join(data.names[i] for i in ids), sizes=sizes)
    memo |= {"method": f"{METHOD} {RULES}", "limits": LIMITS, "bars": bars, "tokens_per_bar": per_bar}
    verdict = music_verdict(memo, sizes)
    return {"memorisation": memo, "verdict": verdict, "summary": [verdict, *_summary(memo, per_bar)]}


def music_verdict(memo: dict, sizes: tuple[int, ...]) -> str:
    row = memo["by_size"][str(sizes[1])]
    g, h = row["generated_share"], row["heldout_share"]
    longest, held_longest = memo["generated"]["longest_copy_tokens"], memo["heldout"]["longest_copy_tokens"]
    if g is None or h is None:
        return "Verdict: memorisation could not be measured (the pieces are too short)."
    if g <= max(2 * h, h + 0.01) and longest <= max(2 * held_longest, sizes[2]):
        return ("Verdict: no sign of memorisation: the pieces repeat the training music no more than held-out music "
                "does.")
    return (f"Verdict: possible memorisation: {pct(g)} of generated two-bar n-grams are in the training pieces against "
            f"{pct(h)} of held-out music's, longest copy {longest} tokens; listen to the examples before sharing.")


def _summary(memo: dict, per_bar: int) -> list[str]:
    by = memo["by_size"]
    bars = {str(per_bar): "1 bar", str(2 * per_bar): "2 bars", str(4 * per_bar): "4 bars"}
    return [
        "Exact overlap with the training pieces (share of token n-grams, generated vs held-out music): "
        + "; ".join(f"{bars.get(n, n)} ({n} tokens) {pct(v['generated_share'])} vs {pct(v['heldout_share'])}"
                    for n, v in by.items()) + ".",
        (f"Longest exact copy in {memo['generated']['sequences']} pieces: {memo['generated']['longest_copy_tokens']} "
         f"tokens (about {memo['generated']['longest_copy_tokens'] / per_bar:.1f} bars); held-out music's longest "
         f"overlap: {memo['heldout']['longest_copy_tokens']} tokens."),
    ]
