"""Text watermark: the green-list scheme of Kirchenbauer et al. (2023).

At each step the context (the previous token, or the two previous ones) and the run's secret key seed a random
split of the vocabulary; a share ``gamma`` of it is "green" and gets a bias added to its logits, so a watermarked
text holds more green tokens than chance. Detection needs the key (stored in the run's ``release.json``) and the
tokenizer, not the model: count the green tokens and compare with the ``gamma * T`` expected of text written
without the key,

    z = (green - gamma * T) / sqrt(T * gamma * (1 - gamma)),   p = P(N(0, 1) > z).

A repeated (context, token) pair counts once (``ignore_repeated=True``), as in the paper's detector: repetitive
human text (refrains, speakers' names) then does not look watermarked. Two schemes (``SCHEMES``); each run records
its own in ``release.json``, so a run keeps detecting what it generated:

- ``lefthash-1`` (runs made before genlab recorded a scheme): transformers' ``WatermarkLogitsProcessor``
  ("lefthash", context 1, bias ``delta``), so the green lists are exactly those of transformers'
  ``WatermarkDetector``; each green list is computed once per distinct previous token.
- ``lefthash-2-adaptive`` (new runs): the two previous tokens seed the split, through a fixed 64-bit hash
  (splitmix64) in which every (context, token) pair is green with probability ``gamma`` independently; the bias is
  ``2 * delta * (1 - sum(p^2))`` for the step's (post-temperature) distribution ``p``: up to ``2 * delta`` where the
  model has many likely choices, close to 0 where it has one (where a bias costs perplexity and buys no signal).
  A wider context makes (context, token) pairs far less repetitive than with one token, so fewer are discarded as
  repeats; an edited token spoils the pairs of the next two tokens instead of one. bench/watermark_text.py compares
  both (docs/watermark-text.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from genlab.errors import GenlabError

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids (B, T), logits (B, V)) -> logits
SCHEMES = ("lefthash-1", "lefthash-2-adaptive")  # green-list schemes, oldest first (``release.json``'s text_scheme)
_CONTEXT = {"lefthash-1": 1, "lefthash-2-adaptive": 2}  # tokens before each token that seed its green list


@dataclass(frozen=True)
class Score:
    """The watermark test on one stretch of tokens."""

    tokens_scored: int  # tokens counted (distinct (context, token) pairs when repeats are ignored)
    green: int  # how many of them were green
    z: float  # standard score of the green count against chance
    p_value: float  # chance that text written without the key scores z or more
    watermarked: bool  # z above the threshold
    start: int = 0  # first token of the stretch (for windows)
    end: int = 0  # one past its last token

    @property
    def green_fraction(self) -> float:
        return self.green / self.tokens_scored if self.tokens_scored else math.nan


@dataclass(frozen=True)
class Detection:
    """A document's verdict, and the same test on sliding windows (to find a watermarked passage in human text)."""

    document: Score
    windows: list[Score] = field(default_factory=list)
    window: int = 0  # window length in tokens

    @property
    def best_window(self) -> Score | None:
        return max(self.windows, key=lambda s: s.z) if self.windows else None


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic): a fixed hash, the same on every platform."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class TextWatermark:
    """A run's text watermark: the processor that marks generation and the detector that finds the mark."""

    def __init__(self, vocab_size: int, key: int, *, gamma: float = 0.25, delta: float = 2.0,
                 z_threshold: float = 4.0, ignore_repeated: bool = True, scheme: str = "lefthash-1") -> None:
        if scheme not in SCHEMES:
            raise GenlabError(f"unknown text watermark scheme {scheme!r} (this genlab knows {', '.join(SCHEMES)}); "
                              "the run was made by a newer genlab")
        self.scheme, self.context = scheme, _CONTEXT[scheme]
        self.vocab_size, self.key, self.gamma, self.delta = vocab_size, key, gamma, delta
        self.z_threshold, self.ignore_repeated = z_threshold, ignore_repeated
        self._green: dict[int, torch.Tensor] = {}  # lefthash-1: previous token -> (V,) bool mask
        if scheme == "lefthash-1":
            from transformers import WatermarkLogitsProcessor

            self._hf = WatermarkLogitsProcessor(vocab_size=vocab_size, device="cpu", greenlist_ratio=gamma,
                                                bias=delta, hashing_key=key, seeding_scheme="lefthash", context_width=1)
        self._cut = np.uint64(min(int(gamma * 2.0**64), 2**64 - 1))  # hash values below it are green
        self._key = _mix(np.array([key % 2**64], np.uint64))  # (1,)
        self._vocab = np.arange(vocab_size, dtype=np.uint64)  # (V,)

    def processor(self) -> LogitsProcessor:
        """Adds the bias to each row's green list; for ``generate_ids(logits_processor=...)``."""
        return self._hf if self.scheme == "lefthash-1" else self._adaptive

    @property
    def generation_params(self) -> dict[str, float | str]:
        """What a manifest records about the mark (never the key)."""
        return {"scheme": f"kirchenbauer-2023-{self.scheme}", "gamma": self.gamma, "delta": self.delta}

    def _seeds(self, contexts: np.ndarray) -> np.ndarray:
        """(N, h) context tokens -> (N,) uint64 seeds of their green lists (lefthash-2-adaptive)."""
        seeds = np.repeat(self._key, len(contexts))
        for j in range(contexts.shape[1]):
            seeds = _mix(seeds ^ contexts[:, j].astype(np.uint64))
        return seeds

    def _adaptive(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """lefthash-2-adaptive's processor: ids (B, T), logits (B, V) -> logits with each row's green list biased."""
        return logits + (self._bias(logits) * self._green_rows(ids).to(logits.device)).to(logits.dtype)

    def _green_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, V) bool: the green list of each row's next token."""
        contexts = ids[:, -self.context :].cpu().numpy()  # (B, h), fewer columns after a 1-token prompt
        if self.scheme == "lefthash-1":
            return torch.stack([self.green_mask(int(c[-1])) for c in contexts])
        return torch.from_numpy(_mix(self._seeds(contexts)[:, None] ^ self._vocab[None, :]) < self._cut)

    def _bias(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, V) -> (B, 1): 2 delta (1 - sum p^2), the chance that two draws differ; 0 when one is certain."""
        p = logits.float().softmax(-1)  # (B, V)
        return 2.0 * self.delta * (1.0 - (p * p).sum(-1, keepdim=True))

    def green_mask(self, context: int | Sequence[int]) -> torch.Tensor:
        """(V,) bool: the green list that follows ``context`` (its last ``self.context`` tokens matter)."""
        ctx = [int(context)] if isinstance(context, (int, np.integer)) else list(context)[-self.context :]
        if self.scheme != "lefthash-1":
            seed = self._seeds(np.array([ctx], np.int64))  # (1,)
            return torch.from_numpy(_mix(seed ^ self._vocab) < self._cut)
        previous = int(ctx[-1])
        mask = self._green.get(previous)
        if mask is None:  # as the processor computes it
            biased = self._hf(torch.tensor([[previous]]), torch.zeros(1, self.vocab_size))  # (1, V)
            mask = self._green[previous] = biased[0] > 0
        return mask

    def _flags(self, ids: Sequence[int], start: int, end: int) -> list[tuple[tuple[int, ...], bool]]:
        """((context..., token), green) for each token in ``ids[start:end]`` that has a full context."""
        first, h, end = max(start, self.context), self.context, min(end, len(ids))
        if end <= first:
            return []
        keys = [tuple(int(t) for t in ids[i - h : i + 1]) for i in range(first, end)]
        if self.scheme == "lefthash-1":
            return [(k, bool(self.green_mask(k[0])[k[1]])) for k in keys]
        arr = np.array(keys, np.int64)  # (n, h + 1)
        green = _mix(self._seeds(arr[:, :h]) ^ arr[:, h].astype(np.uint64)) < self._cut  # (n,)
        return list(zip(keys, green.tolist()))

    def green_flags(self, ids: Sequence[int]) -> list[bool]:
        """For each token after the first ``self.context``: was it green given the tokens before it?"""
        return [g for _, g in self._flags(ids, 0, len(ids))]

    def score(self, ids: Sequence[int], *, start: int = 0, end: int | None = None) -> Score:
        """The z-test on tokens ``ids[start:end]`` (each scored against the tokens before it)."""
        end = len(ids) if end is None else end
        flags = self._flags(ids, start, end)
        if self.ignore_repeated:
            flags = list(dict(flags).items())  # each (context, token) pair once (its flag is always the same)
        t = len(flags)
        green = sum(g for _, g in flags)
        if t == 0:
            return Score(0, 0, math.nan, math.nan, False, start, end)
        z = (green - self.gamma * t) / math.sqrt(t * self.gamma * (1 - self.gamma))
        p = 0.5 * math.erfc(z / math.sqrt(2))
        return Score(t, green, z, p, z > self.z_threshold, start, end)

    def detect(self, ids: Sequence[int], *, window: int = 100, stride: int | None = None) -> Detection:
        """The whole document, then windows of ``window`` tokens every ``stride`` (default window // 2)."""
        doc = self.score(ids)
        if window <= 0 or len(ids) <= window:
            return Detection(doc, [], window)
        stride = stride or max(1, window // 2)
        starts = list(range(0, len(ids) - window + 1, stride))
        if starts[-1] != len(ids) - window:
            starts.append(len(ids) - window)  # the last window ends at the last token
        return Detection(doc, [self.score(ids, start=s, end=s + window) for s in starts], window)
