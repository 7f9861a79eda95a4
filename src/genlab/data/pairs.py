"""Paired text (source -> target) for sequence-to-sequence families such as ``t5``.

Sources: a user ``.jsonl`` or ``.csv`` file with ``source`` and ``target`` columns, or the built-in
``pycode-docstrings``: (a function's code without its docstring, the first line of that docstring) mined with
``ast`` from the running Python's standard library and split BY FILE, so no function's siblings leak across splits.

``prepare_pairs`` trains one byte-level BPE tokenizer on the training sources and targets (plus ``<pad>``; every
encoded sequence ends with ``<|endoftext|>``, T5's end-of-sequence), then caches each split in the run's ``data/``
folder as padded ``.npy`` arrays (no pickle) and a ``.jsonl`` of the raw texts (references for BLEU).
Sequences longer than ``max_source_tokens`` / ``max_target_tokens`` are truncated, and counted in ``meta.json``.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from tokenizers import Tokenizer, processors

from genlab.data.dataset import DatasetInfo
from genlab.data.text import _stable_fraction, stdlib_files
from genlab.data.tokenizers import EOT, eot_id
from genlab.errors import GenlabError
from genlab.files import atomic_write, atomic_write_bytes
from genlab.progress import task

PAD = "<pad>"  # padding; also T5's decoder start token
MIN_PAIRS = 10  # a pairs file needs at least this many pairs (one or more are held out)
PAIR_SUFFIXES = (".jsonl", ".csv")
# Training batches group pairs of similar source length: ``batch`` draws this many batches' worth of pairs at random,
# sorts them by source length and keeps one batch of neighbours, so little of each batch is padding (on
# pycode-docstrings sources average 97 tokens while a random batch of 32 pads to ~256: 2.6x the encoder's work).
# The kept batch is the one holding a uniformly chosen member of the pool, so every pair is still equally likely.
LENGTH_POOL = 16


@dataclass(frozen=True)
class PairsCorpus:
    """Source -> target pairs already split into train and validation."""

    name: str  # dataset name or the user's path
    train: tuple[tuple[str, str], ...]  # (source, target)
    val: tuple[tuple[str, str], ...]
    baseline: str  # "name_words" (docstrings: the function name as a sentence) or "first_line" (copy the source's)


# -- mining docstrings -------------------------------------------------------------------------------------------
def mine_docstring_pairs(source_code: str) -> list[tuple[str, str]]:
    """(function code without its docstring, first line of the docstring) for every documented function.

    Methods, nested and async functions count; decorators are left out (the code starts at ``def``). A function
    whose body is only its docstring, or whose docstring shares a line with other code, is skipped.
    Unparsable code gives no pairs.
    """
    try:
        tree = ast.parse(source_code)
    except (SyntaxError, ValueError):
        return []
    lines = source_code.splitlines(keepends=True)
    out: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node, clean=True)
        if not doc or not doc.strip() or len(node.body) < 2:
            continue
        target = doc.strip().splitlines()[0].strip()
        ds = node.body[0]  # the docstring expression
        if ds.lineno == node.body[1].lineno or ds.end_lineno == node.body[1].lineno or ds.lineno == node.lineno:
            continue
        assert ds.end_lineno is not None and node.end_lineno is not None
        kept = lines[node.lineno - 1 : ds.lineno - 1] + lines[ds.end_lineno : node.end_lineno]
        first = kept[0]
        kept[0] = first[node.col_offset :] if first[: node.col_offset].strip() == "" else first
        code = textwrap.dedent(" " * node.col_offset + "".join(kept)).rstrip()
        out.append((code, target))
    out.sort(key=lambda p: p[0])  # ast.walk is breadth-first; sort for a stable order independent of it
    return out


def name_as_sentence(code: str) -> str:
    """The baseline prediction for a docstring: the function's name as words, ``get_file_name`` -> "Get file name."."""
    m = re.search(r"def\s+(\w+)", code)
    if m is None:
        return ""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", m.group(1))  # camelCase -> camel_Case
    words = [w.lower() for w in name.split("_") if w]
    return (" ".join(words).capitalize() + ".") if words else ""


def first_line(text: str) -> str:
    """The baseline prediction for user pairs: the source's first non-empty line."""
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _pycode_docstrings(val_fraction: float) -> PairsCorpus:
    root = Path(sysconfig.get_paths()["stdlib"])
    train: dict[tuple[str, str], None] = {}
    val: dict[tuple[str, str], None] = {}
    files = list(stdlib_files())
    with task("mining docstrings from the standard library", total=len(files)) as advance:
        for path in files:
            advance()
            try:
                code = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            rel = path.relative_to(root).as_posix()
            split = val if _stable_fraction(rel) < val_fraction else train
            split.update(dict.fromkeys(mine_docstring_pairs(code)))  # exact duplicates once
    train_sources = {s for s, _ in train}
    held = tuple(p for p in val if p[0] not in train_sources)  # a function copied across files stays in train
    return PairsCorpus("pycode-docstrings", tuple(train), held, "name_words")


# -- user files --------------------------------------------------------------------------------------------------
def read_pairs_file(path: Path) -> list[tuple[str, str]]:
    """A ``.jsonl`` (one object per line) or ``.csv`` (header row) file with ``source`` and ``target`` columns."""
    suffix = path.suffix.lower()
    if suffix not in PAIR_SUFFIXES:
        raise GenlabError(f"{path}: pairs must be a .jsonl or .csv file with 'source' and 'target' columns")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise GenlabError(f"{path} is not UTF-8 text (byte offset {e.start}); convert it to UTF-8 first") from None
    except OSError as e:
        raise GenlabError(f"{path}: cannot read it ({e.strerror or e})") from None
    rows: list[tuple[int, dict]] = []  # (line number, row)
    if suffix == ".jsonl":
        # JSON Lines are split at "\n" only: a string may hold other line breaks (U+2028, \x1c, ...) unescaped
        for i, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise GenlabError(f"{path}, line {i}: not valid JSON ({e.msg})") from None
            except RecursionError:
                raise GenlabError(f"{path}, line {i}: JSON nested too deeply") from None
            except ValueError as e:  # an integer of more than 4,300 digits
                raise GenlabError(f"{path}, line {i}: cannot read this JSON ({_first_line(e)})") from None
            if not isinstance(row, dict):
                raise GenlabError(f"{path}, line {i}: each line must be a JSON object with 'source' and 'target'")
            rows.append((i, row))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))  # as csv reads a file: quoted line breaks kept
        try:
            rows = [(reader.line_num, row) for row in reader]
        except csv.Error as e:  # e.g. a field longer than csv.field_size_limit()
            line = reader.reader.line_num  # the csv reader's count, which includes the line it failed on
            raise GenlabError(f"{path}, line {line}: not valid CSV ({_first_line(e)})") from None
    found = sorted({k for _, row in rows for k in row if isinstance(k, str)})
    missing = [c for c in ("source", "target") if not rows or any(c not in row for _, row in rows)]
    if missing:
        names = ", ".join(map(_column_name, found[:10])) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
        raise GenlabError(f"{path}: missing column(s) {', '.join(missing)}; found: {names or 'none'}")
    for i, row in rows:  # JSON may hold numbers or lists: text is not made up from them
        for column in ("source", "target"):
            if row[column] is not None and not isinstance(row[column], str):
                shown = json.dumps(row[column])
                raise GenlabError(f"{path}, line {i}: the {column} is {shown[:40]}{'...' if len(shown) > 40 else ''}, "
                                  "not text; write it as a JSON string")
    empty = [i for i, row in rows if not str(row["target"] or "").strip()]
    if empty:
        raise GenlabError(f"{path}: {len(empty)} pair(s) have an empty target, the first on line {empty[0]}")
    pairs = [(str(row["source"] or ""), str(row["target"])) for _, row in rows]
    for (i, _), pair in zip(rows, pairs):
        for column, value in zip(("source", "target"), pair):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:  # JSON can escape half a character: "\ud800" alone
                raise GenlabError(f"{path}, line {i}: the {column} holds \\u{ord(value[e.start]):04x}, half of a "
                                  "UTF-16 surrogate pair, which is not text; remove it") from None
    if len(pairs) < MIN_PAIRS:
        raise GenlabError(f"{path}: {len(pairs)} pairs, fewer than {MIN_PAIRS}; give more pairs")
    return pairs


def _column_name(name: str) -> str:
    """A column name as a one-line message shows it: as it is when short and printable, else quoted and escaped (a
    CSV header may hold line breaks), cut to 40 characters."""
    return name if name.isprintable() and len(name) <= 40 else repr(name[:40]) + ("..." if len(name) > 40 else "")


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def pairs_from_path(path: Path, val_fraction: float = 0.1) -> PairsCorpus:
    """Split a user's pairs by a stable hash of the source text (identical sources stay together)."""
    pairs = read_pairs_file(path)
    train = [p for p in pairs if _stable_fraction(p[0]) >= val_fraction]
    val = [p for p in pairs if _stable_fraction(p[0]) < val_fraction]
    if not val:  # a small file: hold out the pair with the smallest hash
        smallest = min(pairs, key=lambda p: _stable_fraction(p[0]))[0]
        train, val = [p for p in pairs if p[0] != smallest], [p for p in pairs if p[0] == smallest]
    if not train:
        raise GenlabError(f"{path}: every pair has the same source; nothing is left to train on")
    return PairsCorpus(str(path), tuple(train), tuple(val), "first_line")


class _Lazy:
    """What the registry hands out: the split needs ``val_fraction``, known only at ``prepare_data``."""

    def __init__(self, make) -> None:
        self.make = make


# -- tokens ------------------------------------------------------------------------------------------------------
def train_pairs_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (genlab's) on the training texts, plus ``<pad>``; encoding appends ``<|endoftext|>``."""
    from genlab.data.tokenizers import train_tokenizer

    tok = train_tokenizer("bpe", texts, vocab_size=vocab_size - 1)
    tok.add_special_tokens([PAD])
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOT}", special_tokens=[(EOT, eot_id(tok))])
    return tok


def pad_id(tok: Tokenizer) -> int:
    i = tok.token_to_id(PAD)
    if i is None:
        raise GenlabError("the tokenizer has no <pad> token; it was not made for pairs")
    return i


def encode_texts(tok: Tokenizer, texts: list[str], max_tokens: int) -> tuple[np.ndarray, int]:
    """(N, max_tokens) ids ending in <|endoftext|>, padded with <pad>; and how many were truncated."""
    eos, pad = eot_id(tok), pad_id(tok)
    dtype = np.uint16 if tok.get_vocab_size() <= 2**16 else np.int32
    out = np.full((len(texts), max_tokens), pad, dtype=dtype)
    truncated = 0
    for i, enc in enumerate(tok.encode_batch(texts, add_special_tokens=False)):
        ids = enc.ids
        if len(ids) > max_tokens - 1:
            ids, truncated = ids[: max_tokens - 1], truncated + 1
        out[i, : len(ids) + 1] = ids + [eos]
    return out, truncated


@dataclass
class PairsData:
    """Encoded train and validation pairs (memory-mapped), their raw texts, and the tokenizer."""

    tokenizer: Tokenizer
    folder: Path  # holds {split}_source.npy, {split}_target.npy, {split}.jsonl, meta.json, tokenizer.json

    def __post_init__(self) -> None:
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise GenlabError(f"{self.folder}: pair files missing; the run folder is incomplete")
        self.meta = json.loads(meta_path.read_text())
        self.arrays = {
            (s, side): np.load(self.folder / f"{s}_{side}.npy", mmap_mode="r")
            for s in ("train", "val") for side in ("source", "target")
        }
        self._lengths: dict[str, np.ndarray] = {}

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def pad_id(self) -> int:
        return int(self.meta["pad_id"])

    @property
    def baseline(self) -> str:
        return str(self.meta["baseline"])

    def n_pairs(self, split: str) -> int:
        return len(self.arrays[(split, "source")])

    def texts(self, split: str) -> list[tuple[str, str]]:
        """The raw (source, target) pairs of a split, untruncated."""
        lines = (self.folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        return [(r["source"], r["target"]) for r in map(json.loads, lines)]

    def rows(self, split: str, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sources x (B, S) and targets y (B, T), int64, padded, cut to the longest row of each."""
        x = np.asarray(self.arrays[(split, "source")][idx], dtype=np.int64)  # (B, max_source_tokens)
        y = np.asarray(self.arrays[(split, "target")][idx], dtype=np.int64)  # (B, max_target_tokens)
        s = int((x != self.pad_id).sum(1).max())
        t = int((y != self.pad_id).sum(1).max())
        return torch.from_numpy(x[:, :s].copy()), torch.from_numpy(y[:, :t].copy())

    def source_lengths(self, split: str) -> np.ndarray:
        """Tokens in each source of a split (end token included), computed once."""
        if split not in self._lengths:
            self._lengths[split] = (np.asarray(self.arrays[(split, "source")]) != self.pad_id).sum(1)
        return self._lengths[split]

    def units(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        """Source and target tokens in a batch, padding excluded (what throughput counts)."""
        x, y = batch
        return int((x != self.pad_id).sum() + (y != self.pad_id).sum())

    def batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of pairs of similar source length (see ``LENGTH_POOL``), drawn from ``generator`` only."""
        pool = torch.randint(self.n_pairs(split), (batch_size * LENGTH_POOL,), generator=generator).numpy()
        pool = pool[np.argsort(self.source_lengths(split)[pool], kind="stable")]  # shortest source first
        k = int(torch.randint(batch_size * LENGTH_POOL, (1,), generator=generator)) // batch_size
        return self.rows(split, sorted(pool[k * batch_size : (k + 1) * batch_size].tolist()))


@dataclass(frozen=True)
class PairsDataConfig:
    """How pairs become tokens."""

    vocab_size: int = 4096  # BPE vocabulary size, <|endoftext|> and <pad> included
    max_source_tokens: int = 256  # longer sources are truncated (counted in data/meta.json), end token included
    max_target_tokens: int = 48  # longer targets are truncated (counted in data/meta.json), end token included
    val_fraction: float = 0.1  # share held out: of files for pycode-docstrings, of distinct sources for a file

    limits: ClassVar[dict[str, str]] = {"vocab_size": "[259, 1048576]", "max_source_tokens": "[2, 1048576]",
                                        "max_target_tokens": "[2, 1048576]", "val_fraction": "(0, 0.5)"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


def prepare_pairs(source: _Lazy | PairsCorpus, cfg: PairsDataConfig, folder: Path) -> PairsData:
    """Split, train the tokenizer on the training pairs, and cache both splits in ``folder``."""
    corpus = source.make(cfg.val_fraction) if isinstance(source, _Lazy) else source
    if not corpus.train or not corpus.val:
        raise GenlabError(f"{corpus.name}: too few pairs to hold out a validation split")
    tok = train_pairs_tokenizer([t for p in corpus.train for t in p], cfg.vocab_size)
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict = {"vocab_size": tok.get_vocab_size(), "pad_id": pad_id(tok), "eos_id": eot_id(tok),
                  "baseline": corpus.baseline, "dataset": corpus.name, "splits": {}}
    for split, pairs in (("train", corpus.train), ("val", corpus.val)):
        for side, i, limit in (("source", 0, cfg.max_source_tokens), ("target", 1, cfg.max_target_tokens)):
            arr, truncated = encode_texts(tok, [p[i] for p in pairs], limit)
            atomic_write(folder / f"{split}_{side}.npy", lambda tmp, arr=arr: _save_npy(tmp, arr))
            meta["splits"].setdefault(split, {"pairs": len(pairs)})[f"{side}s_truncated"] = truncated
        jsonl = "".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in pairs)
        atomic_write_bytes(folder / f"{split}.jsonl", jsonl.encode("utf-8"))
    atomic_write_bytes(folder / "tokenizer.json", tok.to_str().encode("utf-8"))
    atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=1).encode())
    return PairsData(tok, folder)


def _save_npy(tmp: Path, arr: np.ndarray) -> None:
    with open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)


PYCODE_DOCSTRINGS = DatasetInfo(
    name="pycode-docstrings",
    description="(function code, first docstring line) mined from the running Python's standard library",
    size="about 6,700 documented functions from 650 files",
    licence="PSF",
    install="part of Python itself",
    installed=lambda: True,
    load=lambda: _Lazy(_pycode_docstrings),
    license_id="psf-2.0",
    language=("en", "code"),
)


def pairs_source(path: Path) -> _Lazy:
    """A user's pairs file, split once ``data.val_fraction`` is known."""
    return _Lazy(lambda vf: pairs_from_path(path, vf))
