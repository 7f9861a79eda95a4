"""A key/value cache whose rows are at different positions: the decoder of continuous batching.

``KVDecoder`` (``text.py``) runs one batch whose rows all began together. Here each row of the cache is a sequence
of its own: a request's prompt is encoded into free rows (``prefill``) while other rows are in the middle of their
answers, then one ``step`` feeds every active row its next token at that row's own position, each row attending
only to its own cached keys (a mask over the positions). Rows ``0..B-1`` are the active ones: when a sequence
leaves, the last active row moves into its place (``move``), so a step always works on one contiguous block.
The cache grows by doubling up to ``capacity`` rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genlab.sample.text import KVDecoder


class SlotDecoder(KVDecoder):
    """``prefill`` rows with a prompt, ``step`` all active rows at their own positions, ``move`` rows to compact."""

    def __init__(self, model, capacity: int, *, start: int = 4) -> None:
        self.capacity = capacity
        super().__init__(model, min(start, capacity))
        self.rows = self.k.shape[1]  # rows allocated (grows to ``capacity``)

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` active rows (the cache doubles, keeping what it holds)."""
        if rows > self.capacity:
            raise ValueError(f"{rows} rows asked of a cache of {self.capacity}")
        if rows <= self.rows:
            return
        size = self.rows
        while size < rows:
            size = min(2 * size, self.capacity)
        k, v = self.k, self.v
        self.allocate(size)
        self.k[:, : k.shape[1]] = k
        self.v[:, : v.shape[1]] = v
        self.rows = size

    def prefill(self, first: int, n: int, ids: list[int]) -> torch.Tensor:
        """Encode ``ids`` (one prompt, at most ``T_max`` tokens) into rows ``first .. first+n-1``; returns the
        logits of its last position (n, V), the same for every row."""
        T = len(ids)
        x = F.embedding(torch.tensor([ids], device=self.wte.device), self.wte) + self.wpe[:T]  # (1, T, C)

        def cached(kc: torch.Tensor, vc: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
            kc[first : first + n, :, :T] = k  # (1, H, T, D) copied into each of the n rows
            vc[first : first + n, :, :T] = v
            return k, v

        x = self.blocks(x, cached, causal=T > 1)  # (1, T, C)
        return self.head(x[:, -1]).expand(n, -1)  # (n, V)

    def step_rows(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Feed rows ``0..B-1`` their next token ``ids`` (B,) at positions ``pos`` (B,); returns logits (B, V)."""
        B = ids.shape[0]
        top = int(pos.max()) + 1  # keys up to the furthest row's position
        same = int(pos.min()) + 1 == top  # every row at one position: no mask needed
        rows = torch.arange(B, device=ids.device)
        mask = None if same else (torch.arange(top, device=ids.device)[None, :] <= pos[:, None])[:, None, None, :]

        def cached(kc: torch.Tensor, vc: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
            kc[rows, :, pos] = k[:, :, 0]  # each row's key at its own position: (B, H, D)
            vc[rows, :, pos] = v[:, :, 0]
            return kc[:B, :, :top], vc[:B, :, :top]  # (B, H, top, D); the mask hides other rows' lengths

        x = F.embedding(ids, self.wte)[:, None] + self.wpe[pos][:, None]  # (B, 1, C)
        x = self.blocks(x, cached, mask=mask)
        return self.head(x[:, -1])  # (B, V)

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy row ``src``'s first ``length`` cached positions into row ``dst``."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]


def filter_rows(x: torch.Tensor, top_k: list[int | None], top_p: list[float | None]) -> torch.Tensor:
    """``pick``'s top-k and top-p filters on x (B, V) float, each row with its own settings (None: that filter off),
    computed row by row exactly as ``pick`` computes them for a batch sharing one setting."""
    for k in sorted({k for k in top_k if k}):  # one top-k per distinct k
        rows = torch.tensor([i for i, kk in enumerate(top_k) if kk == k])
        part = x[rows]
        kth = torch.topk(part, min(k, part.size(-1))).values[:, -1:]  # (r, 1)
        x[rows] = part.masked_fill(part < kth, float("-inf"))
    nucleus = [i for i, p in enumerate(top_p) if p is not None and p < 1.0]
    if nucleus:
        rows = torch.tensor(nucleus)
        part = x[rows]
        limit = torch.tensor([top_p[i] for i in nucleus], dtype=part.dtype)[:, None]  # (r, 1)
        sorted_logits, order = torch.sort(part, descending=True)
        p = sorted_logits.softmax(-1)
        drop = p.cumsum(-1) - p >= limit  # keep the smallest set whose mass reaches top_p
        drop[:, 0] = False  # and always the most likely token
        x[rows] = part.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return x
