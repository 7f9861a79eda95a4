"""The pairs modality: source -> target texts (code to its docstring, a question to its answer).

Data: pairs from ``pycode-docstrings`` or the user's ``.jsonl`` / ``.csv`` file with ``source`` and ``target``
columns, tokenized with one byte-level BPE and cached as padded arrays (``data/pairs.py``). Outputs: ``n`` targets
per source (``PairTexts``), shown in the terminal or written as ``.txt`` files. Watermark: the same keyed green
list as text, added while each target is generated. Audit: generated targets against the training targets
(exact copies and verbatim n-grams), beside the held-out true targets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genlab.data.pairs import PAIR_SUFFIXES, PairsData, PairsDataConfig, _Lazy, pairs_source, prepare_pairs
from genlab.modalities.base import Modality, Option, Outputs
from genlab.numbers import pct
from genlab.progress import task
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
        Option("max_new_tokens", int, "at most this many tokens per output", default=200),
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
        return audit_pairs(run, n=n, seed=seed)


PAIRS = PairsModality()


# -- audit ------------------------------------------------------------------------------------------------------
PAIRS_MEMO_METHOD = (
    "Memorisation: targets are generated for up to n held-out sources with the released sampler's defaults "
    "(greedy); each is compared with the training targets: an exact copy (the same text as some training target, "
    "surrounding whitespace ignored) and verbatim token n-grams (n = 4, 8) found in the training targets. Beside "
    "each figure stands the same figure for the true held-out targets of the same sources: the overlap natural in "
    "this data (short targets repeat: 'Return the name.')."
)
PAIRS_MEMO_LIMITS = (
    "Only verbatim copies are found; a paraphrased training target is not. Short targets make n-gram shares "
    "noisy, and an exact copy of a common target is not a privacy leak by itself: compare with the held-out figure."
)
PAIRS_BIAS = (
    "No bias measure for source-to-target pairs yet: what a fair output is depends on the task (docstrings of "
    "code concern no people), so none is computed."
)
NGRAM_SIZES = (4, 8)


def audit_pairs(run: Any, *, n: int, seed: int = 0, batch_size: int = 32) -> dict:
    from genlab.responsible import memorise as M

    data, tok = run.data, run.model.tokenizer_
    rng = np.random.default_rng(seed)
    held = data.texts("val")
    idx = np.sort(rng.choice(len(held), min(n, len(held)), replace=False))
    sources, truths = [held[i][0] for i in idx], [held[i][1] for i in idx]
    outputs: list[str] = []
    with task(f"generating targets for {len(sources)} held-out sources", total=len(sources)) as advance:
        for i in range(0, len(sources), batch_size):
            outputs += run.sample(1, source=sources[i : i + batch_size], seed=seed)
            advance(len(sources[i : i + batch_size]))
    train_targets = [t for _, t in data.texts("train")]
    known = {t.strip() for t in train_targets}

    def ids(texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(texts, add_special_tokens=False)]

    eos = tok.token_to_id("<|endoftext|>")
    train = np.concatenate([np.append(s, eos) for s in ids(train_targets)])  # targets end to end, (N,)
    memo = M.text_memorisation(train, ids(outputs), ids(truths), lambda t: tok.decode(t), sizes=NGRAM_SIZES)
    copies = [o for o in outputs if o.strip() in known]
    memo |= {
        "exact_copies": {"generated": len(copies), "generated_share": len(copies) / max(1, len(outputs)),
                         "heldout_share": sum(t.strip() in known for t in truths) / max(1, len(truths)),
                         "examples": sorted(set(copies))[:5]},
        "n_sources": len(sources), "method": PAIRS_MEMO_METHOD, "limits": PAIRS_MEMO_LIMITS,
    }
    bias = {"skipped": PAIRS_BIAS, "method": "", "limits": ""}
    ex, by = memo["exact_copies"], memo["by_size"]
    g8, h8 = by["8"]["generated_share"] or 0.0, by["8"]["heldout_share"] or 0.0
    copies = ex["generated_share"] > max(2 * ex["heldout_share"], ex["heldout_share"] + 0.01) or g8 > max(2 * h8, h8 + 0.01)
    verdict = ("Verdict: possible memorisation: outputs repeat training targets more than held-out true targets do; "
               "read the examples." if copies else
               "Verdict: no sign of memorisation: outputs repeat training targets no more than held-out true targets do.")
    summary = [
        verdict,
        (f"Exact copies of a training target: {ex['generated']} of {len(outputs)} outputs "
         f"({pct(ex['generated_share'])}); held-out true targets that are training targets too: "
         f"{pct(ex['heldout_share'])}."),
        "Verbatim overlap with the training targets (share of token n-grams, generated vs held-out true targets): "
        + "; ".join(f"{k} tokens {pct(v['generated_share'])} vs {pct(v['heldout_share'])}" for k, v in by.items())
        + ".",
        PAIRS_BIAS,
    ]
    return {"memorisation": memo, "bias": bias, "verdict": verdict, "summary": summary}
