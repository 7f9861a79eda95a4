"""Composing through a token family: a prompt MIDI to the family's tokens, sampling that stops after the bars
asked for, token rows back to scores, and the checks and references the music metrics use (valid MIDI, grammar
errors, random tokens).

The family (gpt) knows only tokens; ``compose`` is where bars become a stop condition and a budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.data.music import BAR, MIDI_SUFFIXES, MUSIC_SUFFIXES, MusicData, read_midi_file, source_from_path
from genlab.errors import BadArgument, GenlabError

SPECIAL = ("PAD_None", "BOS_None", "EOS_None", "MASK_None")  # miditok's, never part of a piece
MAX_BARS = 512


def check_bars(bars: Any, prompt_bars: Any) -> None:
    if not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
        raise BadArgument("bars", f"must be a whole number of bars from 1 to {MAX_BARS}, got {bars}")
    if prompt_bars is not None and (not isinstance(prompt_bars, int) or prompt_bars < 1):
        raise BadArgument("prompt_bars", f"must be at least 1 bar, got {prompt_bars}")


def read_prompt(path: Path) -> Any:
    """The user's prompt as a score: a MIDI file as it is, a MusicXML or ABC file converted first."""
    if not path.is_file():
        raise GenlabError(f"{path}: no such file (the prompt to continue)")
    if path.suffix.lower() not in MUSIC_SUFFIXES:
        raise GenlabError(f"{path}: not a music file genlab reads; give a MIDI, MusicXML or ABC file to continue")
    if path.suffix.lower() not in MIDI_SUFFIXES:
        pieces = source_from_path(path).pieces()
        path = pieces[0][1]
    return read_midi_file(path)


def prompt_tokens(data: MusicData, score: Any, bars: int | None, context: int) -> list[int]:
    """The prompt's first ``bars`` bars (all when None) as tokens, refused when they exceed the model's context."""
    if bars is not None:
        downbeats = score.get_downbeats()
        if bars > len(downbeats):
            raise BadArgument("prompt_bars", f"is {bars}, but the prompt has only {len(downbeats)} bars")
        if bars < len(downbeats):
            score = score.clip(0, int(downbeats[bars]), clip_end=False)
    ids = data.encode(score) + [data.names.index(BAR)]  # the next bar opens: the continuation starts after it
    if len(ids) >= context:
        n_bars = int(data.bars_in[ids[:-1]].sum())
        raise GenlabError(f"the prompt is {len(ids):,} tokens ({n_bars} bars), longer than the model's context of "
                          f"{context:,}; continue from fewer bars (--prompt-bars K)")
    return ids


def compose(model: Any, data: MusicData, prompt: list[int], *, n: int, bars: int, seed: int | None,
            temperature: float = 1.0, top_p: float | None = 0.95, top_k: int | None = None) -> list[list[int]]:
    """``n`` token rows: the prompt, then new tokens until ``bars`` more bars are written (the bar line after them
    ends a row, unkept; a prompt that ends with a bar line has opened the first), within a budget of the
    99th-percentile tokens per bar of the training pieces, times 1.5. The end of a piece (``<|endoftext|>``) and
    miditok's special tokens are never drawn: the user asked for ``bars`` bars."""
    bars_in = torch.as_tensor(data.bars_in, dtype=torch.long)
    seen = torch.zeros(n, dtype=torch.long)
    limit = bars - int(bool(prompt) and data.bars_in[prompt[-1]] > 0)
    special = [data.names.index(s) for s in SPECIAL if s in data.names]
    banned = torch.tensor([*special, data.eot])

    def stop(chosen: torch.Tensor) -> torch.Tensor:
        seen.add_(bars_in[chosen])
        return seen > limit

    def no_end(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:  # (n, P + t), (n, V)
        return logits.index_fill(-1, banned.to(logits.device), float("-inf"))

    budget = int((bars + 1) * data.music["tokens_per_bar"]["p99"] * 1.5) + 32
    text = " ".join(data.names[i] for i in prompt)
    texts = model.sample(n, seed=seed, prompt=text, max_new_tokens=budget, temperature=temperature, top_p=top_p,
                         top_k=top_k, stop=stop, logits_processor=no_end)
    rows = []
    for t in texts:
        new = data.tokenizer.encode(t).ids if t else []
        rows.append(prompt + new)
    return rows


def to_score(data: MusicData, ids: list[int]) -> Any:
    """Decode token ids to a score; a sequence miditok cannot decode gives an empty score."""
    import symusic

    try:
        return data.decode(ids)
    except Exception:  # miditok raises many types on token sequences that make no music
        return symusic.Score(data.midi_tokenizer.time_division)


def prompt_end(score: Any, prompt_bars: int) -> int:
    """The tick where the continuation starts: the downbeat after the prompt's bars (else the prompt's end)."""
    downbeats = score.get_downbeats()
    return int(downbeats[prompt_bars]) if prompt_bars < len(downbeats) else int(score.end())


def valid_midi(score: Any) -> bool:
    """A score with notes whose MIDI file a strict reader (mido) reads back."""
    import io

    import mido

    if not score.note_num():
        return False
    try:
        mido.MidiFile(file=io.BytesIO(score.dumps_midi()))
    except Exception:  # mido raises several types on a malformed file
        return False
    return True


def token_errors(data: MusicData, ids: list[int]) -> float:
    """Share of the tokens that break REMI's grammar where they stand (miditok's ``tokens_errors``: a pitch with no
    position before it, a position that goes back in time, ...); 0 for an empty row."""
    from miditok import TokSequence

    tok = data.midi_tokenizer
    if not ids:
        return 0.0
    seq = TokSequence(ids=[int(i) for i in ids], are_ids_encoded=tok.is_trained)
    if tok.is_trained:
        tok.decode_token_ids(seq)  # BPE ids to base tokens
    tok.complete_sequence(seq)
    return float(tok.tokens_errors(seq))


def random_tokens(data: MusicData, rows: list[list[int]], seed: int) -> list[list[int]]:
    """The floor: for each row, as many REMI tokens as it holds drawn uniformly from REMI's base vocabulary
    (specials left out). With BPE the draws are merged as the tokenizer merges: a random draw among the learned
    merges would already hold the corpus's note combinations, and would be no floor."""
    from miditok import TokSequence

    tok = data.midi_tokenizer
    rng = np.random.default_rng(seed)
    base = [i for name, i in tok.vocab.items() if name not in SPECIAL]
    out = []
    for row in rows:
        length = max(1, sum(data.names[i].count("+") + 1 for i in row))  # base tokens in the row
        ids = rng.choice(base, size=length).tolist()
        if tok.is_trained:
            seq = TokSequence(ids=ids)
            tok.encode_token_ids(seq)  # BPE merges, as the model's tokens were made
            ids = list(seq.ids)
        out.append(ids)
    return out
