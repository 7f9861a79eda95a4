"""Text watermark: the green-list scheme of Kirchenbauer et al. (2023), through transformers' logits processor.

At each step the previous token and the run's secret key seed a random split of the vocabulary; a share
``gamma`` of it is "green" and gets ``delta`` added to its logits, so a watermarked text holds more green tokens
than chance. Detection needs the key (stored in the run's ``release.json``), not the model: count the green tokens
and compare with the ``gamma * T`` expected of text written without the key,

    z = (green - gamma * T) / sqrt(T * gamma * (1 - gamma)),   p = P(N(0, 1) > z).

Generation uses ``transformers.WatermarkLogitsProcessor`` ("lefthash", context 1) so the green lists are exactly
those of transformers' ``WatermarkDetector``; scoring is ours because we also score sliding windows and want each
green list computed once per distinct previous token (a char-level vocabulary has only ~65 of them). As in the
paper's detector, a repeated (previous, token) pair counts once (``ignore_repeated=True``), which keeps
repetitive human text (refrains, verse speakers' names) from looking watermarked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from genlab.errors import GenlabError

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids (B, T), logits (B, V)) -> logits
SCHEMES = ("lefthash-1",)  # green-list seedings: "lefthash-1" = the previous token and the key (context width 1)


@dataclass(frozen=True)
class Score:
    """The watermark test on one stretch of tokens."""

    tokens_scored: int  # tokens counted (distinct (previous, token) pairs when repeats are ignored)
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


class TextWatermark:
    """A run's text watermark: the processor that marks generation and the detector that finds the mark."""

    def __init__(self, vocab_size: int, key: int, *, gamma: float = 0.25, delta: float = 2.0,
                 z_threshold: float = 4.0, ignore_repeated: bool = True, scheme: str = "lefthash-1") -> None:
        from transformers import WatermarkLogitsProcessor

        if scheme not in SCHEMES:
            raise GenlabError(f"unknown text watermark scheme {scheme!r} (this genlab knows {', '.join(SCHEMES)}); "
                              "the run was made by a newer genlab")
        self.scheme = scheme

        self.vocab_size, self.key, self.gamma, self.delta = vocab_size, key, gamma, delta
        self.z_threshold, self.ignore_repeated = z_threshold, ignore_repeated
        self._hf = WatermarkLogitsProcessor(vocab_size=vocab_size, device="cpu", greenlist_ratio=gamma, bias=delta,
                                            hashing_key=key, seeding_scheme="lefthash", context_width=1)
        self._green: dict[int, torch.Tensor] = {}  # previous token -> (V,) bool mask

    def processor(self) -> LogitsProcessor:
        """Adds ``delta`` to each row's green list; for ``generate_ids(logits_processor=...)``."""
        return self._hf

    @property
    def generation_params(self) -> dict[str, float | str]:
        """What a manifest records about the mark (never the key)."""
        return {"scheme": f"kirchenbauer-2023-{self.scheme}", "gamma": self.gamma, "delta": self.delta}

    def green_mask(self, previous: int) -> torch.Tensor:
        """(V,) bool: the green list that follows ``previous``, as the processor computes it."""
        mask = self._green.get(previous)
        if mask is None:
            biased = self._hf(torch.tensor([[previous]]), torch.zeros(1, self.vocab_size))  # (1, V)
            mask = self._green[previous] = biased[0] > 0
        return mask

    def green_flags(self, ids: Sequence[int]) -> list[bool]:
        """For each token after the first: was it green given the token before it?"""
        return [bool(self.green_mask(a)[b]) for a, b in zip(ids[:-1], ids[1:])]

    def score(self, ids: Sequence[int], *, start: int = 0, end: int | None = None) -> Score:
        """The z-test on tokens ``ids[start:end]`` (each scored against the token before it)."""
        end = len(ids) if end is None else end
        pairs = list(zip(ids[max(start - 1, 0) : end - 1], ids[max(start, 1) : end]))
        if self.ignore_repeated:
            pairs = list(dict.fromkeys(pairs))  # first occurrence of each (previous, token) pair
        t = len(pairs)
        green = sum(bool(self.green_mask(a)[b]) for a, b in pairs)
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
