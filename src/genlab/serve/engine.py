"""Continuous batching: one thread per served text model runs every completion request in one batch.

Requests join the running batch at a token boundary (their prompt is encoded into free rows of the cache) and
leave it when their last row ends, each with its own sampling settings, random generator (its seed) and stop
strings; the run's watermark marks every row as it does in ``genlab sample``. A request's tokens are chosen exactly
as ``generate_ids`` chooses them (the same ``pick``, the same generator calls in the same order), so a seeded
request gives ``genlab sample``'s text whatever else is in the batch, up to float rounding in the batched matrix
products. With batching off the engine takes one request at a time (the baseline ``bench/serve.py`` measures).

Each iteration:
  1. admit waiting requests while rows are free: encode each prompt (``SlotDecoder.prefill``)
  2. choose every active request's next tokens from its logits; send the new text; finished requests leave
  3. slide the window of rows that reached the model's context (re-encode their last half, as ``generate_ids``)
  4. one ``step_rows`` over all active rows at their own positions -> the next logits of every request
"""

from __future__ import annotations

import collections
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from genlab.sample.batched import SlotDecoder, filter_rows
from genlab.serve.errors import APIError

log = logging.getLogger("genlab.serve")
CONTEXT = 8  # tokens a watermark processor is shown per row (its green lists depend on the last one or two)


@dataclass
class Completion:
    """One completion request: ``n`` continuations of one prompt; events go to ``sink`` (from the engine thread)."""

    ids: list[int]  # the prompt's tokens (at most the model's context)
    n: int
    max_new_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int | None
    stop: tuple[str, ...]  # strings that end a row (not included in its text)
    logprobs: int | None  # how many alternatives' log-probabilities to return per token (None: none)
    sink: Callable[[list[dict[str, Any]]], None]  # receives each step's events at once
    cancelled: bool = False  # set by the caller (a client that went away): the request leaves at the next token


@dataclass
class _Row:
    ids: list[int] = field(default_factory=list)  # generated tokens, up to the end of text
    sent: int = 0  # characters of the decoded text already sent
    done: str | None = None  # finish reason once the row has ended
    tokens: list[dict[str, Any]] = field(default_factory=list)  # log-probabilities not sent yet


class _Active:
    """A request in the batch: its rows of the cache, its sequences so far and its generator."""

    def __init__(self, req: Completion, rows: list[int], device: torch.device) -> None:
        self.req, self.rows = req, rows
        P = len(req.ids)
        self.seq = torch.empty(req.n, P + req.max_new_tokens, dtype=torch.long, device=device)  # (n, P + max_new)
        self.seq[:, :P] = torch.tensor(req.ids, device=device)
        self.t = 0  # tokens chosen so far
        self.pos = P  # tokens in the cache of each of its rows
        self.done = torch.zeros(req.n, dtype=torch.bool, device=device)  # rows past the end of text
        self.out = [_Row() for _ in range(req.n)]
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(req.seed if req.seed is not None else secrets.randbits(63))
        self.logits: torch.Tensor | None = None  # (n, V) of the next token
        self.last: torch.Tensor | None = None  # (n,) the tokens just chosen
        self.pending: list[dict[str, Any]] = []  # events to send at the end of this step

    @property
    def finished(self) -> bool:
        return all(r.done for r in self.out)


class Engine:
    """The batch of one text model, run by its own thread (``start`` it; ``close`` stops it)."""

    def __init__(self, model: Any, tokenizer: Any, eot: int, *, processor: Callable | None, batching: bool,
                 max_batch: int, queue: int, threads: int = 0) -> None:
        self.threads = threads  # PyTorch threads of the batch's own thread (0: the default)
        self.decoder = SlotDecoder(model, max_batch)
        self.tokenizer, self.eot, self.processor = tokenizer, eot, processor
        self.batching, self.max_batch, self.queue = batching, max_batch, queue
        self.window = self.decoder.T_max
        self.waiting: collections.deque[Completion] = collections.deque()
        self.active: list[_Active] = []
        self.owner: list[tuple[_Active, int]] = []  # row -> (request, its row index)
        self.cond = threading.Condition()
        self.closed = False
        self.rate = collections.deque(maxlen=64)  # (time, tokens) of recent iterations: for Retry-After
        self.thread = threading.Thread(target=self._loop, name="genlab-batch", daemon=True)

    @classmethod
    def for_run(cls, run: Any, *, batching: bool = True, max_batch: int = 64, queue: int = 256,
                threads: int = 0) -> Engine:
        """The batch of a loaded run: the network its family decodes (``causal_lm``), marked as its release says."""
        from genlab.data.tokenizers import eot_id

        model = run.model
        return cls(model.causal_lm(), model.tokenizer_, eot_id(model.tokenizer_),
                   processor=run.release.during().get("logits_processor"), batching=batching, max_batch=max_batch,
                   queue=queue, threads=threads)

    def start(self) -> Engine:
        self.thread.start()
        return self

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.active)

    def submit(self, req: Completion) -> None:
        """Queue ``req``; a full queue answers 429 with the seconds after which to retry."""
        if req.n > self.max_batch:
            raise APIError(400, f"n must be at most {self.max_batch} (the batch's rows)", param="n")
        with self.cond:
            if len(self.waiting) >= self.queue:
                raise APIError(429, f"{len(self.waiting)} requests are waiting for this model; retry later",
                               code="queue_full", headers={"Retry-After": str(self.retry_after())})
            self.waiting.append(req)
            self.cond.notify()

    def retry_after(self) -> int:
        """Seconds until the queue has room, from the recent rate of finished tokens (at least 1)."""
        if len(self.rate) < 2:
            return 1
        span = self.rate[-1][0] - self.rate[0][0]
        per_second = sum(n for _, n in self.rate) / span if span > 0 else 0
        queued = sum(r.n * r.max_new_tokens for r in self.waiting)
        return max(1, min(60, math.ceil(queued / per_second))) if per_second else 1

    # -- the loop ---------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        if self.threads:
            torch.set_num_threads(self.threads)
        while True:
            with self.cond:
                while not self.closed and not self.waiting and not self.active:
                    self.cond.wait()
                if self.closed:
                    break
            try:
                with torch.inference_mode():
                    self._iterate()
            except Exception as e:  # a bug: every request in the batch gets the error, the engine goes on
                log.exception("batch failed")
                failed = APIError(500, f"generation failed: {type(e).__name__}", code="internal_error")
                for a in self.active:
                    a.req.sink([{"error": failed}])
                self.active, self.owner = [], []

    def _iterate(self) -> None:
        self._admit()  # 1.
        live = []
        for a in list(self.active):
            if a.req.cancelled:
                self._leave(a)
            else:
                live.append(a)
        if live:  # 2.
            self._choose(live)
        for a in live:
            if a.finished or a.t == a.req.max_new_tokens:
                self._finish(a)
            elif a.pending:
                a.req.sink(a.pending)
                a.pending = []
        self.rate.append((time.monotonic(), sum(a.req.n for a in live)))
        if not self.active:
            return
        for a in self.active:  # 3.
            if a.pos == self.window:
                self._slide(a)
        B = len(self.owner)  # 4.
        ids = torch.empty(B, dtype=torch.long)
        pos = torch.empty(B, dtype=torch.long)
        for row, (a, j) in enumerate(self.owner):
            ids[row], pos[row] = a.last[j], a.pos
        logits = self.decoder.step_rows(ids, pos)  # (B, V)
        for a in self.active:
            a.logits = logits[a.rows]  # (n, V)
            a.pos += 1

    def _admit(self) -> None:
        while True:
            with self.cond:
                if not self.waiting or (self.active and not self.batching):
                    return
                if len(self.owner) + self.waiting[0].n > self.max_batch:
                    return
                req = self.waiting.popleft()
            if req.cancelled:
                continue
            first = len(self.owner)
            self.decoder.reserve(first + req.n)
            a = _Active(req, list(range(first, first + req.n)), self.decoder.wte.device)
            a.logits = self.decoder.prefill(first, req.n, req.ids)  # (n, V)
            self.owner += [(a, j) for j in range(req.n)]
            self.active.append(a)

    def _choose(self, live: list[_Active]) -> None:
        """The next token of every row of ``live``, each chosen as ``generate_ids`` chooses it: the batch's logits
        scaled, marked and filtered together, then each request's draw from its own generator."""
        raw = torch.cat([a.logits for a in live]).float()  # (B, V)
        sizes = torch.tensor([a.req.n for a in live])
        temps = torch.tensor([a.req.temperature or 1.0 for a in live]).repeat_interleave(sizes)[:, None]  # (B, 1)
        x = raw / temps  # greedy rows are divided by 1
        if self.processor is not None:  # after temperature, as in transformers' generate()
            x = self._mark(live, x)
        top_k = [a.req.top_k for a in live for _ in range(a.req.n)]
        top_p = [a.req.top_p for a in live for _ in range(a.req.n)]
        x = filter_rows(x, top_k, top_p)
        probs = x.softmax(-1)  # (B, V)
        start = 0
        for a in live:
            rows = slice(start, start + a.req.n)
            start += a.req.n
            if a.req.temperature == 0:
                nxt = x[rows].argmax(-1)
            else:
                nxt = torch.multinomial(probs[rows], 1, generator=a.gen).squeeze(-1)  # (n,)
            scores = torch.log_softmax(raw[rows], -1) if a.req.logprobs is not None else None  # (n, V)
            self._take(a, nxt, scores)

    def _mark(self, live: list[_Active], x: torch.Tensor) -> torch.Tensor:
        """The watermark processor on every row, given each row's last ``CONTEXT`` tokens (rows with fewer tokens
        so far, early in an empty prompt, in groups of their own length)."""
        groups: dict[int, list[tuple[int, torch.Tensor]]] = {}
        start = 0
        for a in live:
            T = len(a.req.ids) + a.t
            width = min(T, CONTEXT)
            groups.setdefault(width, []).append((start, a.seq[:, T - width : T]))
            start += a.req.n
        for parts in groups.values():
            ctx = torch.cat([p for _, p in parts])  # (r, width)
            if len(groups) == 1:
                return self.processor(ctx, x)
            rows = torch.cat([torch.arange(s, s + p.shape[0]) for s, p in parts])
            x[rows] = self.processor(ctx, x[rows])
        return x

    def _take(self, a: _Active, nxt: torch.Tensor, scores: torch.Tensor | None) -> None:
        """Record ``a``'s chosen tokens (n,); rows past the end of text get it again; new text is queued to send."""
        req = a.req
        P = len(req.ids)
        nxt = nxt.masked_fill(a.done, self.eot)
        a.done |= nxt == self.eot
        a.seq[:, P + a.t] = nxt
        a.t += 1
        a.last = nxt
        for j, token in enumerate(nxt.tolist()):
            row = a.out[j]
            if row.done:
                continue
            if token == self.eot:
                row.done = "stop"
            else:
                row.ids.append(token)
                if scores is not None:
                    row.tokens.append(self._logprob(scores[j], token, req.logprobs))
            if not row.done and a.t == req.max_new_tokens:
                row.done = "length"
            self._send(a, j)
        a.done |= torch.tensor([r.done is not None for r in a.out], device=a.done.device)

    def _logprob(self, scores: torch.Tensor, token: int, k: int) -> dict[str, Any]:
        top = torch.topk(scores, k) if k > 0 else None
        return {"token": self.tokenizer.decode([token]), "logprob": float(scores[token]),
                "top": {self.tokenizer.decode([i]): float(v) for v, i in zip(*top)} if top is not None else {}}

    def _send(self, a: _Active, j: int) -> None:
        """Row ``j``'s new text (held back while it may be the start of a stop string), then its end."""
        row, stop = a.out[j], a.req.stop
        text = self.tokenizer.decode(row.ids)
        if stop and not row.done:
            cut = min((i for i in (text.find(s, max(0, row.sent - len(s))) for s in stop) if i >= 0), default=-1)
            if cut >= 0:
                text, row.done = text[:cut], "stop"
        end = len(text)
        if not row.done:
            end -= max((len(s) for s in stop), default=1) - 1  # a stop string may be beginning
            if text.endswith("\ufffd"):  # a character split across tokens: wait for its end
                end = min(end, len(text) - 1)
        if end > row.sent or row.done or row.tokens:
            piece = text[row.sent : max(end, row.sent)]
            row.sent = max(end, row.sent)
            a.pending.append({"index": j, "text": piece, "tokens": row.tokens, "finish_reason": row.done,
                              "completion_tokens": len(row.ids)})
            row.tokens = []

    def _slide(self, a: _Active) -> None:
        """Rows at the end of the context keep their last half (re-encoded); the step feeds their newest token."""
        P = len(a.req.ids)
        keep = self.window // 2
        for j, row in enumerate(a.rows):
            tail = a.seq[j, : P + a.t][-keep:].tolist()
            if len(tail) > 1:
                self.decoder.prefill(row, 1, tail[:-1])
        a.pos = min(keep, P + a.t) - 1

    def _finish(self, a: _Active) -> None:
        for j, row in enumerate(a.out):
            if not row.done:
                row.done = "length"
                self._send(a, j)
        a.pending.append({"done": True, "prompt_tokens": len(a.req.ids),
                          "completion_tokens": sum(len(r.ids) for r in a.out)})
        a.req.sink(a.pending)
        a.pending = []
        self._leave(a)

    def _leave(self, a: _Active) -> None:
        """Free ``a``'s rows: the last active rows move into them, so rows 0..B-1 stay the active ones."""
        self.active.remove(a)
        for row in sorted(a.rows, reverse=True):
            last = len(self.owner) - 1
            if row != last:
                b, j = self.owner[last]
                self.decoder.move(last, row, b.pos)
                b.rows[j] = row
                self.owner[row] = (b, j)
            self.owner.pop()
