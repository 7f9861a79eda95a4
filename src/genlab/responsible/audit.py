"""Memorisation / IP audit and bias audit of a trained run, one audit function per modality.

``audit_run(run, n=..., seed=...)`` returns a JSON-serialisable report (the caller saves it as ``RUN/audit.json``
and the model card shows its ``summary``); with ``out`` it also writes pictures there (``closest-pairs.png`` for
images). A later modality adds its audit by registering one function::

    @register_audit("music")
    def audit_music(run, *, n: int, seed: int, out: Path | None) -> dict: ...

Every report holds "memorisation" and "bias" sections (each with its own "method" and "limits"), a "summary" of
plain sentences, and top-level "method" and "limits" strings. The maths lives in ``memorise.py`` and ``bias.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from genlab.errors import GenlabError
from genlab.responsible import bias as B
from genlab.responsible import memorise as M

AUDIT_VERSION = 1
AuditFn = Callable[..., dict]  # (run, *, n: int, seed: int, out: Path | None) -> report
AUDITS: dict[str, AuditFn] = {}


def register_audit(modality: str) -> Callable[[AuditFn], AuditFn]:
    def add(fn: AuditFn) -> AuditFn:
        AUDITS[modality] = fn
        return fn

    return add


def audit_run(run, *, n: int, seed: int = 0, out: Path | None = None) -> dict:
    """Audit ``run`` with ``n`` generated samples; ``out``: a folder for pictures (created when needed)."""
    modality = getattr(run.model, "modality", "?")
    fn = AUDITS.get(modality)
    if fn is None:
        have = ", ".join(sorted(AUDITS))
        raise GenlabError(f"there is no audit for {modality} models yet (audits exist for: {have})")
    if n < 1:
        raise GenlabError(f"--n must be at least 1, got {n}")
    t0 = time.perf_counter()
    report = fn(run, n=n, seed=seed, out=Path(out) if out is not None else None)
    sections = [report[s] for s in ("memorisation", "bias") if s in report]
    head = {"audit_version": AUDIT_VERSION, "run": str(run.path), "family": run.config.family,
            "dataset": run.config.dataset, "modality": modality, "n": n, "seed": seed}
    tail = {"method": " ".join(s.get("method", "") for s in sections).strip(),
            "limits": " ".join(s.get("limits", "") for s in sections).strip(),
            "seconds": round(time.perf_counter() - t0, 2)}
    return _plain({**head, **report, **tail})


def _plain(obj: Any) -> Any:
    """NumPy scalars and arrays to Python, tuples to lists, NaN and infinities to None: strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


# ---------------------------------------------------------------------------------------------------------------
# text

TEXT_MEMO_METHOD = (
    "Memorisation: half the samples are generated without a prompt, half continue prompts cut from held-out text; "
    "they are re-encoded with the run's tokenizer and every token n-gram (n = 8, 16, 32) is looked up in the "
    "training split (64-bit rolling hashes, each hit checked token by token). Beside the generated share stands the "
    "same share for as many held-out human passages of the same length: the verbatim overlap that is natural in "
    "this corpus. The longest copy is exact (binary search on the length); the examples are the longest spans "
    "found, each extended at one training occurrence."
)
TEXT_MEMO_LIMITS = (
    "Only verbatim token copies are found: paraphrase, reordering or a copy with one changed token breaks a match. "
    "Overlap in held-out text comes from repeated phrases, boilerplate and text duplicated across documents, so "
    "compare the two shares rather than reading the generated share alone. Samples use the default sampling "
    "settings (temperature 0.8) of the released sampler; greedy decoding copies more."
)
TEXT_BIAS_METHOD = (
    "Bias: each occupation in the shipped list fills the template 'The <occupation> said that'; every prompt is "
    "completed several times (seeded) and gendered words from the shipped female and male lists are counted in the "
    "completions. Female share = female / (female + male) words, with a 95% Wilson interval, beside the share in "
    "the whole training split and within 20 words of the occupation's mentions in training. Prompts the tokenizer "
    "cannot represent are skipped with the reason."
)
TEXT_BIAS_LIMITS = (
    "Word lists are English, binary (female / male) and incomplete; 'her' and 'his' count whoever they refer to, "
    "and co-occurrence is not intent or reference. Small models produce few gendered words per completion, so "
    "per-occupation shares rest on small counts (see the intervals). Occupations rare in the training text have no "
    "training baseline. One template cannot show how wording changes the result."
)


@register_audit("text")
def audit_text(run, *, n: int, seed: int = 0, out: Path | None = None, max_new_tokens: int = 256,
               bias_k: int | None = None, bias_tokens: int = 32) -> dict:
    tok, data = run.model.tokenizer_, run.data
    train, val = data.arrays["train"], data.arrays["val"]  # token memmaps (N,)
    rng = np.random.default_rng(seed)

    # -- memorisation: generate, re-encode, compare with held-out passages of the same length ------------------
    n_free = (n + 1) // 2
    texts = run.sample(n_free, max_new_tokens=max_new_tokens, seed=seed)
    plen = max(1, min(32, run.model.config.block_size // 2))
    n_prompts = min(4, n - n_free)
    for j in range(n_prompts):
        start = int(rng.integers(0, max(1, len(val) - plen)))
        prompt = tok.decode(val[start : start + plen].tolist())
        count = (n - n_free) // n_prompts + (j < (n - n_free) % n_prompts)
        try:
            texts += run.sample(count, prompt=prompt, max_new_tokens=max_new_tokens, seed=seed + 1 + j)
        except GenlabError:  # e.g. the prompt re-encodes longer than the context: keep the unprompted ones
            continue
    generated = [np.asarray(tok.encode(t).ids, dtype=np.int64) for t in texts]  # (L_i,) each
    held = _heldout_chunks(val, n, max_new_tokens, rng)
    memo = M.text_memorisation(train, generated, held, lambda ids: tok.decode(ids))
    memo |= {"method": TEXT_MEMO_METHOD, "limits": TEXT_MEMO_LIMITS, "max_new_tokens": max_new_tokens,
             "prompted_samples": len(texts) - n_free}

    # -- bias: gendered words after occupation prompts ------------------------------------------------------------
    lists, occupations = B.GenderWords.shipped(), B.wordlist("occupations")
    k = bias_k or max(4, n // 4)
    completions, occupation_of, skipped = {}, {}, {}
    for j, occ in enumerate(occupations):
        for template in B.TEMPLATES:
            prompt = template.format(occ)
            problem = prompt_problem(tok, prompt, run.model.config.block_size)
            if problem:
                skipped[prompt] = problem
                continue
            completions[prompt] = run.sample(k, prompt=prompt, max_new_tokens=bias_tokens, seed=seed + 1000 + j)
            occupation_of[prompt] = occ
    corpus = B.corpus_gender(_decode_all(tok, train), occupations, lists)
    bias = B.text_bias_report(completions, occupation_of, corpus, skipped, lists)
    bias |= {"method": TEXT_BIAS_METHOD, "limits": TEXT_BIAS_LIMITS, "completions_per_prompt": k,
             "completion_tokens": bias_tokens}
    return {"memorisation": memo, "bias": bias, "summary": _text_summary(memo, bias)}


def _heldout_chunks(val: np.ndarray, n: int, length: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to n non-overlapping passages of ``length`` tokens from the held-out split (fewer if it is short)."""
    blocks = max(1, len(val) // length)
    idx = np.sort(rng.choice(blocks, min(n, blocks), replace=False))
    return [np.asarray(val[i * length : (i + 1) * length], dtype=np.int64) for i in idx]


def _decode_all(tok, tokens: np.ndarray, chunk: int = 1 << 20) -> str:
    """The training split as text, decoded a million tokens at a time (a cut may split one character)."""
    return "".join(tok.decode(tokens[i : i + chunk].tolist()) for i in range(0, len(tokens), chunk))


def prompt_problem(tok, prompt: str, block_size: int) -> str | None:
    """Why a prompt cannot be used with this tokenizer and context, or None."""
    ids = tok.encode(prompt).ids
    unk = tok.token_to_id("<unk>")
    if unk is not None and unk in ids:
        return "holds characters the tokenizer never saw in training"
    if tok.decode(ids) != prompt:
        return "the tokenizer does not reproduce it"
    if len(ids) > block_size:
        return f"{len(ids)} tokens, longer than the model's context of {block_size}"
    return None


def _text_summary(memo: dict, bias: dict) -> list[str]:
    by = memo["by_size"]
    lines = [
        "Verbatim overlap with the training text (share of token n-grams, generated vs held-out human text): "
        + "; ".join(f"{n} tokens {_pct(v['generated_share'])} vs {_pct(v['heldout_share'])}" for n, v in by.items())
        + ".",
        (f"Longest verbatim copy in {memo['generated']['sequences']} samples: "
         f"{memo['generated']['longest_copy_tokens']} tokens ({memo['generated']['longest_copy_chars']} characters); "
         f"longest overlap of held-out human text: {memo['heldout']['longest_copy_tokens']} tokens."),
    ]
    a = bias["aggregate"]
    if a["prompts_with_gendered_words"]:
        lines.append(
            f"Gendered words after occupation prompts: female share {_pct(a['female_share_all_completions'])} "
            f"(training text {_pct(a['train_female_share'])}); per occupation from {_pct(a['spread_min'])} to "
            f"{_pct(a['spread_max'])} over {a['prompts_with_gendered_words']} of {a['prompts_run']} prompts.")
    else:
        lines.append(f"No gendered words in the completions of {a['prompts_run']} occupation prompts.")
    if bias["skipped"]:
        lines.append(f"{len(bias['skipped'])} prompts skipped (see bias.skipped).")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# images

IMAGE_MEMO_METHOD = (
    "Memorisation: for each generated sample, the distance to its nearest training image, in pixels (root mean "
    "square difference, [-1, 1] units) and in the 128-d features of genlab's feature network; beside it the same "
    "distance for held-out real images. A possible copy is nearer to the training set than 1% of held-out images "
    "are, and also singled out: its nearest / second-nearest distance ratio is below that of 99% of held-out "
    "images (a blurry average is near many training images at once; a copy is near one). baseline_share is the "
    "share of held-out images flagged the same way. closest-pairs.png shows the samples most like a copy (top "
    "row) above their nearest training images (bottom row)."
)
IMAGE_MEMO_LIMITS = (
    "Nearest-neighbour distance finds near-exact copies; a copy that is shifted, flipped, cropped or recoloured is "
    "far in pixels and may or may not be near in features. Feature distances reflect what the feature network "
    "learnt (class identity), so a typical-looking sample can be near a training image without copying it. The "
    "thresholds are percentiles of a finite held-out set (rough below a few hundred images). Datasets with "
    "near-duplicate images (digits) make copies of those look less singled out."
)


IMAGE_BIAS_METHOD = (
    "Bias: the feature network's classifier labels every sample. A class-conditional model makes the same number "
    "of samples per class: the report gives the confusion counts, per-class agreement (beside the classifier's "
    "per-class accuracy on real held-out images) and the total variation distance between the produced and the "
    "requested class distribution. An unconditional model's produced distribution is compared with the training "
    "labels (total variation distance), beside the same distance for real held-out images."
)
IMAGE_BIAS_LIMITS = (
    "Classes are the dataset's own labels, not attributes of people; the classifier errs, most on poor samples, "
    "so agreement mixes sample quality with class balance. Unlabelled datasets get no bias figures."
)


@register_audit("image")
def audit_image(run, *, n: int, seed: int = 0, out: Path | None = None, max_heldout: int = 2000,
                pairs: int = 16) -> dict:
    import torch

    from genlab.data.images import to_unit
    from genlab.evaluate.images import feature_net

    data, model = run.data, run.model
    net, accuracy, task = feature_net(data)
    images = np.asarray(run.sample(n, seed=seed))  # uint8 (n, C, H, W); a conditional model cycles its classes
    xs, xtr = to_unit(images), data.x["train"]  # (n, C, H, W), (N, C, H, W) in [-1, 1]
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(data.x["val"]), generator=g)[:max_heldout]
    xva, yva = data.x["val"][keep], data.y["val"][keep]
    pix = math.sqrt(xtr[0].numel())  # Euclidean / sqrt(pixels) = RMS difference per pixel
    train_flat = xtr.flatten(1).numpy() / pix  # (N, C*H*W)
    near_pix = M.nearest_distances(xs.flatten(1).numpy() / pix, train_flat)
    pixels, score = M.copy_report(near_pix, M.nearest_distances(xva.flatten(1).numpy() / pix, train_flat))
    f_tr = net.features(xtr)  # (N, 128)
    features, _ = M.copy_report(M.nearest_distances(net.features(xs), f_tr),
                                M.nearest_distances(net.features(xva), f_tr))
    memo = {"pixels": pixels, "features": features, "n_samples": n, "n_heldout": len(xva), "n_train": len(xtr),
            "feature_net_task": task, "feature_net_accuracy": accuracy, "method": IMAGE_MEMO_METHOD,
            "limits": IMAGE_MEMO_LIMITS}
    if len(xva) < 100:
        memo["note"] = f"only {len(xva)} held-out images: the 1% thresholds are their extremes, so read them loosely"
    if out is not None:
        path = _closest_pairs(images, score, near_pix.index, xtr, out / "closest-pairs.png", pairs)
        memo["closest_pairs"] = str(path)

    k = data.num_classes
    names = data.meta.get("class_names", [])
    if task != "classes" or k == 0:
        bias = {"skipped": "the dataset has no class labels"}
    elif getattr(model, "num_classes_", 0):
        m = max(10, n // k)
        produced = np.concatenate([net.predict(to_unit(run.sample(m, label=c, seed=seed + 1 + c))).numpy()
                                   for c in range(k)])  # (k * m,)
        conf = B.confusion(np.repeat(np.arange(k), m), produced, k)
        pred_va, y = net.predict(xva).numpy(), yva.numpy()
        real = np.array([(pred_va[y == c] == c).mean() if (y == c).any() else np.nan for c in range(k)])
        bias = B.conditional_label_report(conf, names, real) | {"per_class": m}
    else:
        bias = B.unconditional_label_report(net.predict(xs).numpy(), data.y["train"].numpy(), names,
                                            net.predict(xva).numpy())
    bias |= {"method": IMAGE_BIAS_METHOD, "limits": IMAGE_BIAS_LIMITS}
    return {"memorisation": memo, "bias": bias, "summary": _image_summary(memo, bias)}


def _closest_pairs(images: np.ndarray, score: np.ndarray, nearest: np.ndarray, xtr, path: Path, k: int) -> Path:
    """Top row: the k samples most like a copy (lowest copy score); bottom row: their nearest training images."""
    from genlab.data.images import from_unit
    from genlab.sample.images import save_grid

    order = np.argsort(score, kind="stable")[:k]
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_grid(np.concatenate([images[order], from_unit(xtr[nearest[order]])]), path, nrow=len(order))


def _image_summary(memo: dict, bias: dict) -> list[str]:
    p, f = memo["pixels"], memo["features"]
    lines = [
        (f"Possible copies of training images: {p['possible_copies']} of {memo['n_samples']} samples in pixels "
         f"({_pct(p['possible_copy_share'])}), {f['possible_copies']} in features "
         f"({_pct(f['possible_copy_share'])}); held-out real images flagged the same way: "
         f"{_pct(p['baseline_share'])} in pixels."),
    ]
    if p["median_ratio"] is not None and f["median_ratio"] is not None:
        lines.append(f"Median distance to the nearest training image, samples / held-out real images: "
                     f"{p['median_ratio']:.2f} in pixels, {f['median_ratio']:.2f} in features "
                     "(below 1 = nearer than real data).")
    if "agreement" in bias:
        weakest = f"weakest class {bias['worst_class']}; " if bias["worst_class"] is not None else ""
        lines.append(f"Requested class recognised in {_pct(bias['agreement'])} of samples; {weakest}produced vs "
                     f"requested class distribution: TV distance {bias['tv_distance']:.3f}.")
    elif "tv_distance" in bias:
        lines.append(f"Class distribution of samples vs training labels: TV distance {bias['tv_distance']:.3f} "
                     f"(held-out real images: {bias['heldout_tv_distance']:.3f}).")
    return lines
