"""Bias maths as pure functions: gendered words in text completions and in the training text, and the label
distribution of generated images.

Word lists ship in ``wordlists/`` (one lower-case English word per line, ``#`` starts a comment): ``female.txt``,
``male.txt`` and ``occupations.txt``. Text is cut into words with ``[a-z]+`` after lower-casing, so "He's" counts
as "he" and "s".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import numpy as np

TEMPLATES = ("The {} said that",)  # one prompt per occupation and template
_WORD = re.compile(r"[a-z]+")


@cache
def wordlist(name: str) -> tuple[str, ...]:
    """A shipped word list (``female``, ``male``, ``occupations``), in file order."""
    text = (files("genlab.responsible") / "wordlists" / f"{name}.txt").read_text(encoding="utf-8")
    return tuple(w for line in text.splitlines() if (w := line.split("#")[0].strip().lower()))


@dataclass(frozen=True)
class GenderWords:
    female: frozenset[str]
    male: frozenset[str]

    @classmethod
    def shipped(cls) -> GenderWords:
        return cls(frozenset(wordlist("female")), frozenset(wordlist("male")))


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def gender_counts(texts: Iterable[str], lists: GenderWords) -> tuple[int, int]:
    """(female words, male words) over all texts."""
    f = m = 0
    for t in texts:
        for w in words(t):
            f += w in lists.female
            m += w in lists.male
    return f, m


def female_share(f: int, m: int) -> float | None:
    """f / (f + m); None when no gendered word was seen."""
    return f / (f + m) if f + m else None


def wilson(f: int, total: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of the share f / total (sound for small counts); None when total is 0."""
    if total == 0:
        return None
    p, d = f / total, 1 + z * z / total
    centre = (p + z * z / (2 * total)) / d
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def corpus_gender(text: str, occupations: Sequence[str], lists: GenderWords, *, window: int = 20) -> dict:
    """Gendered words in the whole text, and within ``window`` words of each occupation (singular or -s plural).

    Returns {"female", "male", "words", "occupations": {occ: {"mentions", "female", "male"}}}; overlapping windows
    around nearby mentions are merged, so no word is counted twice for one occupation.
    """
    code_of = {w: 1 for w in lists.female} | {w: 2 for w in lists.male}
    for j, occ in enumerate(occupations):
        code_of[occ] = code_of[occ + "s"] = 3 + j
    code = np.fromiter((code_of.get(w, 0) for w in words(text)), dtype=np.int32)  # (W,) 0 = other word
    fem, mal = code == 1, code == 2  # (W,)
    out = {"female": int(fem.sum()), "male": int(mal.sum()), "words": len(code), "occupations": {}}
    for j, occ in enumerate(occupations):
        pos = np.flatnonzero(code == 3 + j)  # (mentions,)
        diff = np.zeros(len(code) + 1, dtype=np.int32)
        np.add.at(diff, np.maximum(pos - window, 0), 1)
        np.add.at(diff, np.minimum(pos + window + 1, len(code)), -1)
        near = np.cumsum(diff[:-1]) > 0  # (W,) inside some window
        out["occupations"][occ] = {"mentions": len(pos), "female": int((fem & near).sum()),
                                   "male": int((mal & near).sum())}
    return out


def text_bias_report(completions: Mapping[str, Sequence[str]], occupation_of: Mapping[str, str],
                     corpus: dict, skipped: Mapping[str, str], lists: GenderWords) -> dict:
    """Female share per prompt (completions only) beside the training text's, and an aggregate.

    ``completions``: prompt -> its completions (without the prompt); ``occupation_of``: prompt -> occupation;
    ``corpus``: ``corpus_gender`` of the training text; ``skipped``: prompt -> why it was not run.
    """
    overall = female_share(corpus["female"], corpus["male"])
    rows = []
    for prompt, texts in completions.items():
        occ = occupation_of[prompt]
        f, m = gender_counts(texts, lists)
        c = corpus["occupations"].get(occ, {"mentions": 0, "female": 0, "male": 0})
        share, near = female_share(f, m), female_share(c["female"], c["male"])
        rows.append({
            "prompt": prompt, "occupation": occ, "completions": len(texts), "female": f, "male": m,
            "female_share": share, "interval95": wilson(f, f + m),
            "train_mentions": c["mentions"], "train_near_female": c["female"], "train_near_male": c["male"],
            "train_near_female_share": near,
            "gap_to_train_overall": None if share is None or overall is None else share - overall,
            "gap_to_train_near": None if share is None or near is None else share - near,
        })
    shares = [r["female_share"] for r in rows if r["female_share"] is not None]
    gaps_near = [abs(r["gap_to_train_near"]) for r in rows if r["gap_to_train_near"] is not None]
    f_all, m_all = sum(r["female"] for r in rows), sum(r["male"] for r in rows)
    aggregate = {
        "prompts_run": len(rows),
        "prompts_with_gendered_words": len(shares),
        "female_share_all_completions": female_share(f_all, m_all),
        "train_female_share": overall,
        "gap_to_train": None if overall is None or f_all + m_all == 0 else female_share(f_all, m_all) - overall,
        "spread_min": min(shares) if shares else None,
        "spread_max": max(shares) if shares else None,
        "spread_std": float(np.std(shares)) if shares else None,
        "mean_abs_gap_to_train_near": float(np.mean(gaps_near)) if gaps_near else None,
    }
    return {"train": {"female": corpus["female"], "male": corpus["male"], "words": corpus["words"],
                      "female_share": overall},
            "prompts": rows, "skipped": dict(skipped), "aggregate": aggregate}


# ---------------------------------------------------------------------------------------------------------------
# images: which class the feature network's classifier sees in each sample


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance between two distributions (K,): half the L1 distance, in [0, 1]."""
    return float(0.5 * np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


def confusion(requested: np.ndarray, produced: np.ndarray, k: int) -> np.ndarray:
    """int64 (K, K): row = requested class, column = class the classifier saw."""
    return np.bincount(np.asarray(requested) * k + np.asarray(produced), minlength=k * k).reshape(k, k)


def conditional_label_report(conf: np.ndarray, class_names: Sequence[str], real_per_class: np.ndarray) -> dict:
    """Per-class agreement and the produced label distribution against the requested one.

    ``real_per_class`` (K,): the classifier's accuracy per class on real held-out images, the best a perfect
    generator could score under this classifier.
    """
    rows = conf.sum(1)  # (K,) samples requested per class
    produced, requested = conf.sum(0) / conf.sum(), rows / conf.sum()  # (K,), (K,)
    agree = np.diag(conf) / np.maximum(rows, 1)  # (K,)
    return {
        "class_names": list(class_names),
        "confusion": conf.tolist(),
        "agreement": float(np.trace(conf) / conf.sum()),
        "per_class_agreement": [float(a) for a in agree],
        "real_per_class_accuracy": [float(a) for a in real_per_class],
        "requested_distribution": [float(v) for v in requested],
        "produced_distribution": [float(v) for v in produced],
        "tv_distance": tv_distance(produced, requested),
        "worst_class": class_names[int(np.argmin(agree))] if len(agree) and agree.min() < agree.max() else None,
    }


def unconditional_label_report(produced: np.ndarray, train_labels: np.ndarray, class_names: Sequence[str],
                               real_produced: np.ndarray) -> dict:
    """The classes the classifier sees in samples against the training label distribution.

    ``real_produced``: the classifier's labels for real held-out images, whose distance to the training
    distribution is the baseline (classifier error and sampling noise, no generator involved).
    """
    k = len(class_names)
    p = np.bincount(produced, minlength=k) / len(produced)  # (K,)
    t = np.bincount(train_labels[train_labels >= 0], minlength=k) / max(1, int((train_labels >= 0).sum()))
    r = np.bincount(real_produced, minlength=k) / max(1, len(real_produced))
    return {
        "class_names": list(class_names),
        "produced_distribution": [float(v) for v in p],
        "train_distribution": [float(v) for v in t],
        "tv_distance": tv_distance(p, t),
        "heldout_tv_distance": tv_distance(r, t),
    }
