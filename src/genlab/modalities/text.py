"""The text modality: documents in, text out (prose, code).

Data: a corpus (``shakespeare``, ``pycode``, or the user's ``.txt`` file or folder of ``.txt``/``.md``/``.py``
files) split into training and held-out documents, tokenized (character or byte-level BPE) into memory-mapped
token files (``data/text.py``, ``data/tokens.py``). Outputs: continuations of a prompt (``Texts``), shown in the
terminal or written as ``.txt`` files holding prompt and continuation. Watermark: the keyed green list, added
while the text is generated. Audit: verbatim copies of the training text and gendered words after occupation
prompts (``text_audit.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genlab.data.text import TEXT_SUFFIXES, corpus_from_path
from genlab.data.tokens import TextData, TextDataConfig, prepare_text
from genlab.modalities.base import Modality, Option, Outputs
from genlab.responsible.marks import TextMarks


class Texts(Outputs, list):
    """Continuations (one string each) of one prompt; ``prompt`` is kept to write whole documents."""

    modality = "text"

    def __init__(self, texts: Any = (), *, prompt: str = "") -> None:
        super().__init__(texts)
        self.prompt = prompt

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        for i, text in enumerate(self):
            yield f"{prefix}-{i:04d}.txt", (self.prompt + text).encode("utf-8")

    def sections(self) -> list[tuple[str, str]]:
        return [(f"sample {i + 1}", self.prompt + text) for i, text in enumerate(self)]


class TextModality(Modality):
    name = "text"
    endpoint = "texts"  # POST /v1/texts/generations
    data_interface = "tokens"
    DataConfig = TextDataConfig
    Marks = TextMarks
    unit, unit_name = "tok", "token"
    prints = streams = True
    audit_samples = 64
    pipeline_tag = "text-generation"
    path_hint = "a .txt file, or a folder of .txt, .md and .py files"
    sample_options = (
        Option("prompt", str, "what to continue (empty: start a new document)", default="", private=True,
               example="..."),
        Option("max_new_tokens", int, "tokens to generate per sample", default=200, cap="max_tokens"),
        Option("temperature", float, "0 = greedy; higher = more random (default 0.8)", default=0.8),
        Option("top_k", int, "sample among the k most likely tokens"),
        Option("top_p", float, "sample within the smallest set of tokens holding this probability mass"),
    )
    eval_options = (
        Option("max_tokens", int, "evaluate on at most this many held-out tokens (0 = all)", default=0),
    )
    intended_use = (
        ("A small language model trained from scratch on the user's own corpus, on one machine. It continues text "
         "in the style and vocabulary of that corpus: for learning how language models work, for style experiments, "
         "and as a baseline."),
        ("It is not a source of facts: it invents names, dates, quotations and claims that read fluently. Do not "
         "use it for advice, or for decisions about people."),
        ("It can reproduce passages of its training text verbatim, more so for small corpora and long training; "
         "see the audit before sharing outputs or weights trained on private or copyrighted text."),
        "It knows nothing outside its corpus, and repeats that corpus's biases and stereotypes.",
        ("Generated text carries a statistical watermark (Kirchenbauer et al.'s green list: a bias on the "
         "next-token choice) that `genlab detect FILE --run RUN` finds with this run's secret key. Paraphrasing, "
         "translation or heavy editing removes it, and a short text (a few dozen tokens) cannot be told apart "
         "reliably; the absence of the mark proves nothing."),
    )

    def prepare(self, source: Any, config: TextDataConfig, folder: Path) -> TextData:
        return prepare_text(source, config, folder)

    def load(self, config: TextDataConfig, folder: Path) -> TextData:
        from genlab.data.tokenizers import load_tokenizer

        return TextData(load_tokenizer(folder.parent / "tokenizer.json"), folder)  # the run's tokenizer

    def from_path(self, path: Path) -> Any:
        return corpus_from_path(path)

    def claims(self, path: Path) -> bool:
        suffixes = {p.suffix.lower() for p in ([path] if path.is_file() else path.rglob("*"))}
        return bool(suffixes & set(TEXT_SUFFIXES))

    def example(self, folder: Path) -> str:
        """The first 60,000 characters of Hamlet (from the installed Shakespeare package), as a user's file."""
        from genlab.registry import get_dataset

        hamlet = next(p for p in get_dataset("shakespeare").load().files if p.name.startswith("hamlet"))
        path = Path(folder) / "hamlet.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(hamlet.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
        return str(path)

    def audit(self, run: Any, *, n: int, seed: int, out: Path | None) -> dict:
        from genlab.modalities.text_audit import audit_text

        return audit_text(run, n=n, seed=seed, out=out)

    def partial(self, options: dict[str, Any], data: Any) -> str | None:
        cap, total = options.get("max_tokens") or 0, data.n_tokens("val")
        return f"the first {cap:,} of {total:,} held-out tokens" if 0 < cap < total else None

    def stream_prefix(self, options: dict[str, Any]) -> str:
        return options.get("prompt", "")


TEXT = TextModality()
