"""Token ids on disk: each split is a flat memory-mapped array, so a large corpus never becomes Python objects.

``encode_splits`` writes ``train.bin`` and ``val.bin`` (uint16 when the vocabulary fits, else uint32) and
``meta.json`` (token and character counts, used for bits per character). ``TextData`` serves random
(input, target) blocks from them with an explicit ``torch.Generator``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from tokenizers import Tokenizer

from genlab.data.tokenizers import eot_id
from genlab.errors import BadArgument, GenlabError
from genlab.files import atomic_write, atomic_write_bytes
from genlab.progress import task

CHUNK_CHARS = 1 << 20  # encode about 1 MB of text at a time


def encode_splits(tok: Tokenizer, splits: dict[str, Sequence[str]], folder: Path) -> dict:
    """Encode each split's documents (separated by <|endoftext|>) into ``folder/{split}.bin``."""
    dtype = np.uint16 if tok.get_vocab_size() <= 2**16 else np.uint32
    eot = eot_id(tok)
    meta: dict = {"dtype": np.dtype(dtype).name, "vocab_size": tok.get_vocab_size(), "splits": {}}
    for split, docs in splits.items():
        counts = {"tokens": 0, "chars": 0}

        def write(tmp: Path, docs=docs, counts=counts, split=split) -> None:
            with open(tmp, "wb") as f, task(f"tokenizing the {split} split", total=sum(map(len, docs))) as advance:
                for i, doc in enumerate(docs):
                    if i:
                        np.array([eot], dtype=dtype).tofile(f)
                        counts["tokens"] += 1
                    for chunk in _chunks(doc):
                        ids = np.asarray(tok.encode(chunk).ids, dtype=dtype)
                        ids.tofile(f)
                        counts["tokens"] += len(ids)
                        advance(len(chunk))
                    counts["chars"] += len(doc)

        atomic_write(folder / f"{split}.bin", write)
        meta["splits"][split] = counts
    atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=1).encode())
    return meta


def _checked_meta(path: Path, tokenizer: Tokenizer) -> dict:
    """``meta.json`` of tokenized splits, refused unless it agrees with itself and with the run's tokenizer."""
    damaged = f"{path} is damaged or was edited"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        dtype, vocab = meta["dtype"], meta["vocab_size"]
        counts = {s: meta["splits"][s] for s in ("train", "val")}  # "chars": text only (music counts pieces)
        splits = {s: (int(c["tokens"]), int(c["chars"] if "chars" in c else c["tokens"])) for s, c in counts.items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GenlabError(f"{damaged} ({type(e).__name__}: {e})") from None
    if dtype not in ("uint16", "uint32") or not isinstance(vocab, int) or isinstance(vocab, bool):
        raise GenlabError(f"{damaged}: dtype {dtype!r} and vocab_size {vocab!r} are not what genlab writes")
    if vocab != tokenizer.get_vocab_size():
        raise GenlabError(f"{damaged}: its vocab_size {vocab} differs from the tokenizer's "
                          f"{tokenizer.get_vocab_size()} tokens")
    if vocab > np.iinfo(dtype).max + 1 or min(n for pair in splits.values() for n in pair) < 0:
        raise GenlabError(f"{damaged}: a vocabulary of {vocab} does not fit {dtype}, or a count is negative")
    return meta


def _chunks(text: str) -> Iterator[str]:
    """Cut at line breaks into pieces of about CHUNK_CHARS (BPE merges never cross a line break here)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + CHUNK_CHARS)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


@dataclass
class TextData:
    """Tokenized train and validation splits, memory-mapped, with the tokenizer that made them."""

    tokenizer: Tokenizer
    folder: Path  # holds train.bin, val.bin, meta.json
    block_size: int = 0  # tokens per training example; set by the family before batching

    def __post_init__(self) -> None:
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise GenlabError(f"{self.folder}: token files missing; the run folder is incomplete")
        self.meta = _checked_meta(meta_path, self.tokenizer)
        self.arrays = {}
        for s in ("train", "val"):
            path = self.folder / f"{s}.bin"
            if not path.is_file() or path.stat().st_size % np.dtype(self.meta["dtype"]).itemsize:
                raise GenlabError(f"{path} is missing or cut short; the run folder is incomplete or damaged")
            self.arrays[s] = np.memmap(path, dtype=self.meta["dtype"], mode="r") if path.stat().st_size else \
                np.zeros(0, dtype=self.meta["dtype"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def n_tokens(self, split: str) -> int:
        return len(self.arrays[split])

    def chars_per_token(self, split: str) -> float:
        s = self.meta["splits"][split]
        return s.get("chars", s["tokens"]) / max(1, s["tokens"])  # data without characters: 1

    def check_block(self, block_size: int) -> None:
        for split in ("train", "val"):
            if self.n_tokens(split) < block_size + 1:
                raise GenlabError(
                    f"the {split} split has {self.n_tokens(split)} tokens, shorter than one block of "
                    f"{block_size} + 1; give more text or lower model.block_size"
                )

    def batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Random blocks: x (B, T) and y = x shifted by one (B, T), as int64."""
        arr, T = self.arrays[split], self.block_size
        starts = torch.randint(len(arr) - T, (batch_size,), generator=generator).tolist()
        xy = self._checked(torch.from_numpy(np.stack([arr[i : i + T + 1].astype(np.int64) for i in starts])), split)
        return xy[:, :-1], xy[:, 1:]  # xy: (B, T+1)

    def _checked(self, xy: torch.Tensor, split: str) -> torch.Tensor:
        """Token ids as read from disk, refused when one is outside the vocabulary (an edited or damaged file)."""
        if xy.numel() and int(xy.max()) >= self.vocab_size:
            raise GenlabError(f"{self.folder / split}.bin holds token {int(xy.max())}, outside the vocabulary of "
                              f"{self.vocab_size}; the file is damaged or was edited")
        return xy

    @staticmethod
    def units(batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        """Tokens in a batch (what throughput counts)."""
        return batch[0].numel()

    def blocks(self, split: str, batch_size: int, max_tokens: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive non-overlapping blocks covering the split (or its first max_tokens), for evaluation."""
        if max_tokens < 0:
            raise BadArgument("max_tokens", f"must be 0 (all) or positive, got {max_tokens}")
        arr, T = self.arrays[split], self.block_size
        n_blocks = (len(arr) - 1) // T
        if max_tokens:
            n_blocks = min(n_blocks, max(1, max_tokens // T))
        with task(f"{split} tokens", total=n_blocks * T) as advance:
            for b0 in range(0, n_blocks, batch_size):
                idx = range(b0, min(n_blocks, b0 + batch_size))
                xy = self._checked(torch.from_numpy(np.stack([arr[i * T : i * T + T + 1].astype(np.int64)
                                                              for i in idx])), split)
                yield xy[:, :-1], xy[:, 1:]
                advance(len(idx) * T)


@dataclass(frozen=True)
class TextDataConfig:
    """How text becomes tokens."""

    tokenizer: str = "char"  # "char" (one token per character) or "bpe" (byte-level BPE)
    vocab_size: int = 4096  # BPE vocabulary size, special tokens included (ignored by "char")
    val_fraction: float = 0.1  # share of the corpus held out for validation

    limits: ClassVar[dict[str, str]] = {"vocab_size": "[257, 1048576]", "val_fraction": "(0, 0.5)"}

    def validate(self) -> None:
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"data.tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")

    def unused(self) -> dict[str, str]:
        """Settings that had no effect, and why (a model card says so instead of showing them as used)."""
        return {"vocab_size": "not used by the char tokenizer: one token per character seen"} \
            if self.tokenizer == "char" else {}


def prepare_text(corpus, cfg: TextDataConfig, folder: Path) -> TextData:
    """Split the corpus, train the tokenizer on the train split, encode both splits into ``folder``."""
    from genlab.data.tokenizers import train_tokenizer

    train_docs, val_docs = corpus.split(cfg.val_fraction)
    with task(f"training the {cfg.tokenizer} tokenizer on {sum(map(len, train_docs)):,} characters"):
        tok = train_tokenizer(cfg.tokenizer, train_docs, vocab_size=cfg.vocab_size)
    folder.mkdir(parents=True, exist_ok=True)
    encode_splits(tok, {"train": train_docs, "val": val_docs}, folder)
    return TextData(tok, folder)
