"""The pairs modality: source -> target texts (code to its docstring, a question to its answer).

Data: pairs from ``pycode-docstrings`` or the user's ``.jsonl`` / ``.csv`` file with ``source`` and ``target``
columns, tokenized with one byte-level BPE and cached as padded arrays (``data/pairs.py``). Outputs: ``n`` targets
per source (``PairTexts``), shown in the terminal or written as ``.txt`` files. Watermark: the same keyed green
list as text, added while each target is generated. Audit: generated targets against the training targets
(exact copies and verbatim n-grams), beside the held-out true targets (``pairs_audit.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genlab.data.pairs import PAIR_SUFFIXES, PairsData, PairsDataConfig, _Lazy, pairs_source, prepare_pairs
from genlab.modalities.base import Modality, Option, Outputs
from genlab.responsible.marks import TextMarks


class PairTexts(Outputs, list):
    """``n`` generated targets for each of ``sources``, in source order."""

    modality = "pairs"

    def __init__(self, texts: Any = (), *, sources: list[str] = (), n: int = 1) -> None:
        super().__init__(texts)
        self.sources, self.n = list(sources), n
        self.prompt = "\n".join(self.sources)  # what a manifest hashes

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        for i, text in enumerate(self):
            yield f"{prefix}-{i:04d}.txt", text.encode("utf-8")

    def sections(self) -> list[tuple[str, str]]:
        return [(f"source {i + 1}", "\n".join(self[i * self.n : (i + 1) * self.n])) for i in range(len(self.sources))]


class PairsModality(Modality):
    name = "pairs"
    endpoint = "seq2seq"  # POST /v1/seq2seq/generations
    data_interface = "token-pairs"
    DataConfig = PairsDataConfig
    Marks = TextMarks
    unit, unit_name = "tok", "token"  # source + target tokens, padding excluded
    prints = True
    audit_samples = 200
    pipeline_tag = "text2text-generation"
    path_hint = "a .jsonl or .csv file with source and target columns"
    sample_options = (
        Option("source", list, "the input to transform (repeat it; - reads standard input)", private=True,
               stdin=True, example="..."),
        Option("beams", int, "beam search width (1 = greedy, or sampling with a temperature)", default=1),
        Option("no_repeat_ngram", int, "never repeat an n-gram of this many tokens (0 = off)", default=0),
        Option("max_new_tokens", int, "at most this many tokens per output", default=200, cap="max_tokens"),
        Option("temperature", float, "0 = greedy or beam search; higher = sample more randomly", default=0.0),
        Option("top_k", int, "sample among the k most likely tokens"),
        Option("top_p", float, "sample within the smallest set of tokens holding this probability mass"),
    )
    eval_options = (
        Option("n", int, "held-out pairs to score", default=1000),
        Option("beams", int, "decode with beam search of this width (1 = greedy)", default=1),
        Option("no_repeat_ngram", int, "never repeat an n-gram of this many tokens (0 = off)", default=0),
    )
    intended_use = (
        ("A small sequence-to-sequence model trained from scratch on the user's own source -> target pairs, on one "
         "machine: for learning how encoder-decoder models work, for drafts a person reviews, and as a baseline."),
        ("Its outputs are in the register of the training targets but often miss what the source says: read "
         "every output before using it, and never as documentation of code without checking the code."),
        ("It can return training targets verbatim (a common docstring for a different function); see the audit's "
         "exact-copy share before sharing outputs or weights trained on private data."),
        ("Generated targets carry the same statistical watermark as text (Kirchenbauer et al.'s green list) that "
         "`genlab detect FILE --run RUN` finds with this run's secret key; outputs of a few tokens are too short "
         "to test, and the absence of the mark proves nothing."),
    )

    def prepare(self, source: Any, config: PairsDataConfig, folder: Path) -> PairsData:
        return prepare_pairs(source, config, folder)

    def load(self, config: PairsDataConfig, folder: Path) -> PairsData:
        from genlab.data.tokenizers import load_tokenizer

        return PairsData(load_tokenizer(folder / "tokenizer.json"), folder)

    def from_path(self, path: Path) -> _Lazy:
        return pairs_source(path)

    def claims(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in PAIR_SUFFIXES

    def example(self, folder: Path) -> str:
        """About 400 (function, docstring line) pairs mined from the first standard-library files, as a user's
        .jsonl file."""
        import json

        from genlab.data.pairs import mine_docstring_pairs
        from genlab.data.text import stdlib_files

        pairs: list[tuple[str, str]] = []
        for path in stdlib_files():
            pairs += mine_docstring_pairs(path.read_text(encoding="utf-8", errors="replace"))
            if len(pairs) >= 400:
                break
        out = Path(folder) / "docstrings.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in pairs[:400]), encoding="utf-8")
        return str(out)

    def partial(self, options: dict[str, Any], data: Any) -> str | None:
        n, total = options.get("n") or 0, data.n_pairs("val")
        return f"the first {n:,} of {total:,} held-out pairs" if 0 < n < total else None

    def audit(self, run: Any, *, n: int, seed: int, out: Path | None) -> dict:
        from genlab.modalities.pairs_audit import audit_pairs

        return audit_pairs(run, n=n, seed=seed)


PAIRS = PairsModality()

