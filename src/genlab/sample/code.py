"""The code assistant: complete Python source at a cursor with a ``gpt`` run, stopping at a statement or block end.

The cursor is a position in a file; the *prefix* is all text before it. :func:`prefix_at` gives the prefix for
"complete at line N" (lines 1..N-1, so the completion starts at the beginning of line N). :func:`complete` asks
the run for a continuation (through ``Run.sample``, so the release layer watermarks it as for any sample) and keeps
the part that finishes *one unit* of code, as :func:`cut_completion` decides from ``tokenize``'s logical lines:

* cursor in the middle of a statement (an unfinished line, an open bracket or string): the rest of that statement;
* cursor at the start of a line right after a block header (a logical line ending in ``:``): that block's body,
  up to the first statement indented at the header's level or less;
* cursor at the start of any other line: one statement; if it opens a block, its whole body.

A compound statement's ``elif``/``else``/``except``/``finally`` clauses at the header's own indentation belong to
it. A completion is always whole lines (it ends with a newline) or empty: if the token budget runs out before the
unit ends, the completion keeps the complete logical lines generated so far; blank and comment-only lines after
the last statement are dropped.

:func:`close_and_parse` says whether the prefix plus a completion is a syntactically valid file once an open block
is closed with ``pass``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genlab.data.text import read_text_file
from genlab.errors import BadArgument, GenlabError

PY_SUFFIXES = (".py", ".pyi")
CLAUSES = frozenset({"elif", "else", "except", "finally"})  # continue a compound statement at its own indentation
_HEAL = re.compile(r"[ \t\n]*\w*\Z")  # what heal_suffix leaves for the model to generate
INDENT_STEP = 4  # the indentation ``close_and_parse`` gives the ``pass`` that closes an empty block
# complete()'s default n for NoRepeatInCompletion: on the code recipe's model, valid-and-non-empty completions
# went from 0.63 to 0.76 (n = 3: 0.75, 6: 0.70, 8: 0.72) on its 100 held-out cuts, 0.50 to 0.62 on 100 others
NO_REPEAT_NGRAM = 4


# -- the prefix at a line ---------------------------------------------------------------------------------------
def prefix_at(path: Path, line: int) -> str:
    """The text of ``path`` before line ``line`` (1-based): lines 1..line-1 with their newlines.

    ``line`` may be one past the last line (complete at the end of the file). Only ``.py``/``.pyi`` files that are
    UTF-8 text without NUL bytes are accepted; anything else is a ``GenlabError``.
    """
    path = Path(path)
    if path.suffix.lower() not in PY_SUFFIXES:
        raise GenlabError(f"{path} is not a Python file (expected a {' or '.join(PY_SUFFIXES)} name)")
    text = read_text_file(path, allow_empty=True)  # no such file, unreadable, binary, not UTF-8: one line each
    lines = text.splitlines(keepends=True)
    if not 1 <= line <= len(lines) + 1:
        raise BadArgument("line", f"{line} is outside {path}, which has {len(lines)} lines (give 1 to {len(lines) + 1})")
    return "".join(lines[: line - 1])


# -- logical lines ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Logical:
    """One logical line (statement line) of source: offsets into the text tokenized."""

    start: int  # offset of its first token
    end: int | None  # offset just after its newline; None while the line is unfinished
    indent: int  # column of its first token
    first: str  # its first token
    opens_block: bool  # ends with ':' (a compound statement's header)


@dataclass(frozen=True)
class Scan:
    lines: list[Logical]  # in order; the last may be unfinished (end None)
    bad_indent: bool  # tokenizing stopped at a dedent matching no outer level


def scan(text: str) -> Scan:
    """The logical lines of ``text``, tolerating an unfinished end (open bracket or string, partial line)."""
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def offset(pos: tuple[int, int]) -> int:
        row, col = pos
        return starts[row - 1] + col if row - 1 < len(starts) else len(text)

    lines: list[Logical] = []
    first: tokenize.TokenInfo | None = None
    last_sig: str = ""
    skip = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NEWLINE:
                if first is not None:
                    real = tok.string != ""  # tokenize invents a NEWLINE for a last line with no line break
                    lines.append(Logical(offset(first.start), offset(tok.end) if real else None, first.start[1],
                                         first.string, last_sig == ":"))
                first, last_sig = None, ""
            elif tok.type not in skip:
                if first is None:
                    first = tok
                last_sig = tok.string
    except tokenize.TokenError as e:  # EOF inside a bracket or a multi-line string
        if first is None and len(e.args) > 1:  # the string starts the line: the error says where
            row, col = e.args[1]
            lines.append(Logical(offset((row, col)), None, col, "", False))
        elif first is not None:
            lines.append(Logical(offset(first.start), None, first.start[1], first.string, False))
        return Scan(lines, False)
    except SyntaxError:  # IndentationError: a dedent to a column no enclosing block has
        return Scan(lines, True)
    return Scan(lines, False)


# -- where a completion ends ------------------------------------------------------------------------------------
class Boundary:
    """Decides where a completion of ``prefix`` ends; the prefix is tokenized once, each check only its tail."""

    def __init__(self, prefix: str) -> None:
        lines = scan(prefix).lines
        tops = [ln.start for ln in lines if ln.indent == 0]
        # Re-tokenize from the last top-level statement: its indentation stack is clean there.
        self.anchor = tops[-1] if tops else 0
        self.cursor = len(prefix) - self.anchor
        self.tail = prefix[self.anchor :]
        self.mode, self.header_indent, self.stmt_start = "statement", -1, -1
        if lines and lines[-1].end is None:
            self.mode, self.stmt_start = "mid", lines[-1].start - self.anchor
        elif lines and lines[-1].opens_block:
            self.mode, self.header_indent = "block", lines[-1].indent

    def cut(self, generated: str, *, final: bool = False) -> str | None:
        """The completion if ``generated`` has reached the unit's end (or, with ``final``, its whole lines)."""
        s = scan(self.tail + generated)
        end = self._end(s)
        if end is None and (final or s.bad_indent):
            done = [ln.end for ln in s.lines if ln.end is not None and ln.end > self.cursor]
            end = done[-1] if done else self.cursor
        return None if end is None else generated[: max(end - self.cursor, 0)]

    def _end(self, s: Scan) -> int | None:
        after = [ln for ln in s.lines if ln.start >= self.cursor]
        if self.mode == "block":
            return _block_end(after, self.header_indent, self.cursor, clauses=False)
        if self.mode == "mid":
            unit = next((ln for ln in s.lines if ln.start == self.stmt_start), None)
            rest = [ln for ln in s.lines if ln.start > self.stmt_start]
        else:
            unit, rest = (after[0], after[1:]) if after else (None, [])
        if unit is None or unit.end is None:
            return None
        if not unit.opens_block:
            return unit.end
        return _block_end(rest, unit.indent, unit.end, clauses=True)


def _block_end(lines: list[Logical], header_indent: int, header_end: int, *, clauses: bool) -> int | None:
    """End offset of a block whose header is at ``header_indent``: before the first line dedented to it or less."""
    last = header_end
    for ln in lines:
        if ln.indent > header_indent:
            if ln.end is None:
                return None
            last = ln.end
            continue
        if ln.indent == header_indent:
            if ln.end is None:
                return None  # wait for the whole line: it may be an else/except clause
            if clauses and ln.first in CLAUSES:
                last = ln.end
                continue
        return last
    return None


def cut_completion(prefix: str, generated: str, *, final: bool = False) -> str | None:
    """Pure form of :class:`Boundary`: the completion of ``prefix`` within ``generated``, or None if unfinished."""
    return Boundary(prefix).cut(generated, final=final)


# -- validity ---------------------------------------------------------------------------------------------------
def close_and_parse(prefix: str, completion: str) -> bool:
    """Whether ``prefix + completion`` parses once closed.

    Closing: (1) a trailing partial line (text after the last newline) is dropped; (2) if the last statement is a
    block header (ends with ``:``), ``pass`` is appended one indentation step deeper. A statement still open (an
    unclosed bracket or string) is not repaired: that text is invalid.
    """
    text = prefix + completion
    text = text[: text.rfind("\n") + 1]
    lines = scan(text).lines
    if lines and lines[-1].end is not None and lines[-1].opens_block:
        text += " " * (lines[-1].indent + INDENT_STEP) + "pass\n"
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def pass_line(prefix: str) -> str:
    """The trivial completion: ``pass`` at the indentation the next statement would have."""
    lines = [ln for ln in scan(prefix).lines if ln.end is not None]
    if not lines:
        return "pass\n"
    last = lines[-1]
    return " " * (last.indent + (INDENT_STEP if last.opens_block else 0)) + "pass\n"


# -- completing with a run --------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised from the streaming hook to end generation early."""


def fit_context(text: str, tokenizer: Any, *, budget: int, limit: int) -> str:
    """The longest tail of ``text`` starting at a line start that is at most ``budget`` tokens.

    If no line start fits the budget, the last line alone is used if it fits ``limit`` (the model's context);
    otherwise a ``GenlabError``: the model cannot even see the line being completed.
    """
    enc = tokenizer.encode(text)
    if len(enc.ids) <= budget:
        return text
    first = enc.offsets[len(enc.ids) - budget][0]  # where the last `budget` tokens begin (checked below)
    last_line = text.rfind("\n", 0, len(text.rstrip("\n"))) + 1
    start = text.find("\n", max(first - 1, 0), last_line)
    while 0 <= start < last_line:
        if len(tokenizer.encode(text[start + 1 :]).ids) <= budget:
            return text[start + 1 :]
        start = text.find("\n", start + 1, last_line)
    n = len(tokenizer.encode(text[last_line:]).ids)
    if n > limit:
        raise GenlabError(f"the line at the cursor is {n} tokens, longer than the model's context of {limit}; "
                          "break it up")
    return text[last_line:]


def complete(
    run: Any,
    prefix: str,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: int | None = None,
    watermark: bool | None = None,
    no_repeat_ngram: int = NO_REPEAT_NGRAM,
) -> str:
    """Complete ``prefix`` (the text before the cursor) with a gpt run: whole lines ending one unit of code.

    The model sees the prefix's last lines that fit in ``max(block_size // 2, block_size - max_new_tokens)``
    tokens (so the answer is generated without the window sliding); a prefix longer than that is the normal case
    for code and is not an error, but a last line longer than the whole context is. The prefix's trailing
    whitespace and partial word (:func:`heal_suffix`) are left out of the prompt and must be generated again
    (token healing); if the model's text does not begin with them, the completion is made again from the whole
    prefix.
    """
    check_options(max_new_tokens, temperature)
    model = run.model
    if not _continues_text(model):
        raise GenlabError(f"code completion needs a run that continues text (a gpt run); {run.path} is a "
                          f"{run.config.family} run")
    block = model.config.block_size
    budget = max(block // 2, block - max_new_tokens)
    boundary = Boundary(prefix)
    healed = heal_suffix(prefix)
    for trim in ((healed, "") if healed else ("",)):
        prompt = fit_context(prefix[: len(prefix) - len(trim)], model.tokenizer_, budget=budget, limit=block)
        text = _generate(run, prompt, trim, boundary, no_repeat_ngram, max_new_tokens=max_new_tokens +
                         _tokens(model, trim), temperature=temperature, seed=seed, watermark=watermark)
        if text is not None:
            return text
    return ""


def _continues_text(model: Any) -> bool:
    """Whether the model continues a prompt token by token, streaming, with logits processors (what `complete` needs)."""
    import inspect

    needs = {"prompt", "on_text", "logits_processor"}
    return getattr(model, "generates", False) and needs <= set(inspect.signature(model.sample).parameters)


def heal_suffix(prefix: str) -> str:
    """The prefix's end that the model should generate itself: trailing whitespace and a partial word before it.

    A byte-level BPE model saw ``"\\n    "`` and ``" values"`` as single tokens; a prompt ending in ``"\\n"`` or
    ``" val"`` would ask it to continue after a token boundary it rarely saw. Empty when the prefix is all trim.
    """
    trim = _HEAL.search(prefix)
    return prefix[trim.start() :] if trim and trim.start() > 0 else ""


class StartsWith:
    """Logits processor for token healing: the generated text must begin with ``text``.

    Until ``text`` has been generated, only tokens that keep the generated text and ``text`` one a prefix of the
    other are allowed (the rest get -inf); after that the logits pass unchanged. If no token fits (a character no
    token starts with), nothing is forbidden and :func:`complete` sees the mismatch and falls back.
    """

    def __init__(self, tokenizer: Any, text: str) -> None:
        self.tokenizer, self.text = tokenizer, text
        self.start: int | None = None  # the prompt's length: the width of ``ids`` at the first call
        self.pieces = tokenizer.decode_batch([[i] for i in range(tokenizer.get_vocab_size())])  # "" for specials

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.start is None:
            self.start = ids.shape[1]
        bias = None
        for row in range(ids.shape[0]):  # ids (n, P + t), logits (n, V)
            done = self.tokenizer.decode(ids[row, self.start :].tolist())
            if len(done) >= len(self.text) or not self.text.startswith(done):
                continue
            need = self.text[len(done) :]
            allowed = [i for i, p in enumerate(self.pieces) if p and (p.startswith(need) or need.startswith(p))]
            if allowed:
                bias = torch.zeros_like(logits) if bias is None else bias  # (n, V)
                bias[row] = float("-inf")
                bias[row, allowed] = 0.0
        return logits if bias is None else logits + bias


class NoRepeatInCompletion:
    """Logits processor: no n-gram of ``n`` tokens twice within the generated text (the prompt is not counted).

    Code rightly reuses what the prompt holds, but a completion that repeats itself is a small model's loop
    (``node.node.node.``, ``'w', 'w', 'w'``): greedy decoding of a CPU-sized model fell into one in about one
    benchmark cut in seven (non-empty completions 0.71 without this, 0.85 with it), and the statement never ends. transformers' ``NoRepeatNGramLogitsProcessor`` does the
    banning; this wrapper shows it only the generated tokens.
    """

    def __init__(self, n: int) -> None:
        from transformers import NoRepeatNGramLogitsProcessor

        self.inner = NoRepeatNGramLogitsProcessor(n)
        self.start: int | None = None  # the prompt's length: the width of ``ids`` at the first call

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.start is None:
            self.start = ids.shape[1]
        return self.inner(ids[:, self.start :], logits)  # (n, t) generated so far, (n, V)


def check_options(max_new_tokens: int, temperature: float, no_repeat_ngram: int = 0) -> None:
    """Refuse bad generation options before any work (loading a run) is done."""
    from genlab.sample.text import check_sampling

    check_sampling(1, max_new_tokens, temperature, None, None, no_repeat_ngram)


def _tokens(model: Any, text: str) -> int:
    return len(model.tokenizer_.encode(text).ids) if text else 0


def _generate(run: Any, prompt: str, trim: str, boundary: Boundary, no_repeat_ngram: int,
              **kwargs: Any) -> str | None:
    """Generate after ``prompt``; the text must begin with ``trim`` (else None); returns the cut completion."""
    pieces: list[str] = []
    state = {"result": None, "mismatch": False}

    def on_text(piece: str) -> None:
        pieces.append(piece)
        raw = "".join(pieces)
        if not (raw.startswith(trim) or trim.startswith(raw)):
            state["mismatch"] = True
            raise _Stop
        if "\n" in piece and len(raw) > len(trim):
            cut = boundary.cut(raw[len(trim) :])
            if cut is not None:
                state["result"] = cut
                raise _Stop

    from genlab.sample.text import chain

    constraints = chain(StartsWith(run.model.tokenizer_, trim) if trim else None,
                        NoRepeatInCompletion(no_repeat_ngram) if no_repeat_ngram else None)
    try:
        raw = run.sample(1, prompt=prompt, on_text=on_text, logits_processor=constraints, **kwargs)[0]
    except _Stop:
        return None if state["mismatch"] else state["result"]
    if not raw.startswith(trim):
        return None
    return boundary.cut(raw[len(trim) :], final=True)
