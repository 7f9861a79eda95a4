"""How good a music model is: its pieces and continuations measured against held-out music, between a floor and a
ceiling.

1. **Generated**: ``n`` new pieces of ``bars`` bars, against the held-out pieces' first ``bars`` bars: overlap of
   pitch-class, duration and interval histograms, pitch range, notes per bar, share of notes in the detected key,
   and the share of token rows that decode to a valid MIDI file.
2. **Continued**: up to ``n`` held-out pieces long enough, each cut after ``prompt_bars`` bars; the model writes
   the next ``bars`` bars, measured against the true next bars, and in the prompt's key.
3. **References**: the same measures for ``floor`` (uniformly random REMI tokens, as many as the model wrote),
   ``ceiling`` (real music: ``n`` training pieces; for continuation, the true next bars of another held-out
   piece, i.e. real music that ignores the prompt) and ``reference`` (the held-out music's own figures).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from genlab.evaluate.music import Notes, continuation, figures, notes_of, scalars
from genlab.sample.music_compose import compose, random_tokens, to_score, token_errors, valid_midi


def evaluate_music(model: Any, data: Any, *, n: int = 16, bars: int = 8, prompt_bars: int = 0, max_tokens: int = 0,
                   seed: int = 0) -> dict[str, Any]:
    report: dict[str, Any] = dict(model.evaluate(data, max_tokens=max_tokens))
    held = [notes_of(to_score(data, p)) for p in data.pieces("val")]
    reference = [h.bars(0, bars) for h in held]

    # 1. new pieces, and the floor's and ceiling's as many
    t0 = time.perf_counter()
    rows = compose(model, data, [], n=n, bars=bars, seed=seed)
    seconds = time.perf_counter() - t0
    floor_rows = random_tokens(data, rows, seed)
    train = data.pieces("train")
    pick = np.random.default_rng(seed).choice(len(train), size=min(n, len(train)), replace=False)
    real = [notes_of(to_score(data, train[i])).bars(0, bars) for i in pick]
    mine, floor = _pieces(data, rows, bars), _pieces(data, floor_rows, bars)
    report.pop("bits_per_char", None)  # a token is its own unit here: it would only repeat the loss in bits
    report.update(figures(mine[0], reference), **mine[1],
                  generated_tokens_per_s=sum(map(len, rows)) / max(seconds, 1e-9))
    refs = {"floor": {"name": "random tokens", **figures(floor[0], reference), **floor[1]},
            "ceiling": {**figures(real, reference), "valid_midi_share": 1.0},
            "reference": {"name": "held-out pieces", **scalars(reference)}}

    # 2. continuations of held-out pieces whose first bars fit the context (a prompt of 0 bars: as many as fit in
    #    half the context, by the training pieces' 99th-percentile bar, 1 to 4)
    context = model.config.block_size
    if not prompt_bars:
        prompt_bars = int(min(4, max(1, context // 2 // max(1.0, data.music["tokens_per_bar"]["p99"]))))
    long = [(p, h) for p, h in zip(data.pieces("val"), held) if h.n_bars >= prompt_bars + bars
            and len(_first_bars(data, p, prompt_bars)) < context][:n]
    report["continuation_prompt_bars"] = prompt_bars
    if long:
        pairs, floor_pairs, real_pairs = [], [], []
        for k, (ids, h) in enumerate(long):
            prompt = _first_bars(data, ids, prompt_bars)
            truth = h.bars(prompt_bars, prompt_bars + bars)
            head = h.bars(0, prompt_bars)
            row = compose(model, data, prompt, n=1, bars=bars, seed=seed + 1 + k)[0]
            pairs.append((head, _continued(data, row, prompt_bars, bars), truth))
            noise = prompt + random_tokens(data, [row[len(prompt):]], seed + 1 + k)[0]
            floor_pairs.append((head, _continued(data, noise, prompt_bars, bars), truth))
            other = long[(k + 1) % len(long)][1].bars(prompt_bars, prompt_bars + bars)
            real_pairs.append((head, other, truth))
        report.update(continuation(pairs), continued_pieces=len(pairs))
        refs["floor"].update(continuation(floor_pairs))
        refs["ceiling"].update(continuation(real_pairs) if len(long) > 1 else {})
        refs["reference"]["continuation_in_prompt_key"] = continuation([(p, t, t) for p, _, t in pairs])[
            "continuation_in_prompt_key"]
    return {**report, **refs}


def _pieces(data: Any, rows: list[list[int]], bars: int) -> tuple[list[Notes], dict[str, float]]:
    """The rows as note arrays (first ``bars`` bars); the share that decode to a valid MIDI file, and the share of
    tokens out of place."""
    scores = [to_score(data, r) for r in rows]
    return [notes_of(s).bars(0, bars) for s in scores], {
        "valid_midi_share": float(np.mean([valid_midi(s) for s in scores])),
        "token_error_share": float(np.mean([token_errors(data, r) for r in rows]))}


def _first_bars(data: Any, ids: list[int], bars: int) -> list[int]:
    """A piece's tokens up to the bar line that opens bar ``bars + 1``, that one included (as a prompt ends)."""
    seen = np.cumsum(data.bars_in[ids])
    return ids[: int(np.searchsorted(seen, bars + 1)) + 1]


def _continued(data: Any, row: list[int], prompt_bars: int, bars: int) -> Notes:
    return notes_of(to_score(data, row)).bars(prompt_bars, prompt_bars + bars)

