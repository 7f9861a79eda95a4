"""Typed, frozen configuration: dataclasses with a comment on every field, TOML files and ``--set`` overrides.

A run's configuration has these parts::

    family = "gpt"             # which model family (models/)
    dataset = "shakespeare"    # which dataset (data/), or a path
    modality = "text"          # which kind of data (modalities/), chosen from the dataset
    [model]  the family's own config (e.g. ``GPTConfig``)
    [data]   the modality's data config (e.g. ``TextDataConfig``)
    [train]  ``TrainConfig``, shared by every family
    [release] ``ReleaseConfig``: watermarks, signing and energy accounting, shared by every family
    [privacy] ``PrivacyConfig``: a differential-privacy budget, for the families that support one

Unknown keys and wrong types are errors that name the key and the closest valid one; nothing is silently fixed.
Every number has a range: each config class lists its fields' ``limits`` as intervals (``"[1, 1024]"``,
``"[0, 1)"``), checked with finiteness (no NaN, no infinity) before anything is built; ``validate`` adds what
relates two fields. Sizes that only multiply out to too much memory are refused by the memory estimate
(``genlab.memory``) before allocation.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from genlab.errors import GenlabError


@dataclass(frozen=True)
class TrainConfig:
    """The one training loop's settings, the same for every family."""

    seed: int = 1337  # seeds weights, batches and dropout; the same seed gives the same run (bit for bit with a fixed train.threads)
    max_steps: int = 2000  # optimizer steps to train for (the cosine schedule ends here)
    max_minutes: float = 0.0  # wall-clock budget; training stops and checkpoints when it runs out (0 = none)
    batch_size: int = 32  # examples per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size * grad_accum)
    lr: float = 1e-3  # peak learning rate, reached after warm-up
    min_lr: float = 1e-4  # learning rate at the end of the cosine decay
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    weight_decay: float = 0.1  # AdamW decoupled weight decay (not applied to biases and norms)
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.99  # AdamW second-moment decay; 0.99 suits small batches
    grad_clip: float = 1.0  # clip the global gradient norm to this value (0 = off)
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto = bf16 where the hardware has fast bf16, else fp32
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    compile: bool = False  # torch.compile the network (first step compiles for 30 s or more)
    threads: int = 0  # CPU threads for PyTorch (0 = adapt to the cores other processes leave free, at most one per physical core; N = exactly N, fixed)
    log_every: int = 10  # steps between training-loss lines in metrics.jsonl
    eval_every: int = 250  # steps between validation estimates (0 = only at the end)
    eval_batches: int = 20  # batches per validation estimate
    checkpoint_every: int = 500  # steps between checkpoints (one is always written at the end)
    sample_every: int = 0  # steps between preview samples in samples/ (0 = at each validation)
    keep_best: bool = False  # keep the weights of the best validation point in model.safetensors (the checkpoint keeps the last, for resume)

    limits: ClassVar[dict[str, str]] = {
        "seed": "[0, 9223372036854775807]", "max_steps": "[1, 1000000000]", "max_minutes": "[0, 1000000]",
        "batch_size": "[1, 65536]", "grad_accum": "[1, 65536]", "lr": "(0, 10]", "min_lr": "(0, 10]",
        "warmup_steps": "[0, 1000000000]", "weight_decay": "[0, 10]", "beta1": "[0, 1)", "beta2": "[0, 1)",
        "grad_clip": "[0, 1000000]", "threads": "[0, 1024]", "log_every": "[1, 1000000000]",
        "eval_every": "[0, 1000000000]", "eval_batches": "[1, 1000000]", "checkpoint_every": "[1, 1000000000]",
        "sample_every": "[0, 1000000000]"}

    def validate(self) -> None:
        if not self.min_lr <= self.lr:
            raise ValueError(f"train.min_lr ({self.min_lr}) must be at most train.lr ({self.lr})")


@dataclass(frozen=True)
class ReleaseConfig:
    """How a run's outputs are released: watermarked, signed, and what its training costs, for every family."""

    watermark: bool = True  # mark generated text and images so they can be told apart as machine-made
    text_gamma: float = 0.25  # text watermark: share of the vocabulary on each step's green list
    text_delta: float = 2.0  # text watermark: green-token bias, scaled per step by how open it is (0 to 2x)
    z_threshold: float = 4.0  # text watermark: z-score above which a text is called watermarked
    sign: bool = True  # sign every generated file with a C2PA manifest (embedded, or a .c2pa sidecar)
    track_energy: bool = True  # record training energy and CO2 with CodeCarbon's offline tracker
    country: str = "auto"  # ISO 3166 alpha-3 code for the electricity mix, e.g. "FRA" (auto = from the time zone)

    limits: ClassVar[dict[str, str]] = {"text_gamma": "(0, 1)", "text_delta": "[0, 100]", "z_threshold": "(0, 1000]"}

    def validate(self) -> None:
        if self.country != "auto" and not (len(self.country) == 3 and self.country.isalpha()):
            raise ValueError(f"release.country must be 'auto' or a 3-letter ISO code such as 'FRA', got '{self.country}'")


@dataclass(frozen=True)
class PrivacyConfig:
    """Differential privacy of training (families with ``supports_privacy``: ctgan, tvae, mst); see
    ``responsible/privacy.py``."""

    epsilon: float | None = None  # the privacy budget (none = not private); smaller is more private: 1 strong, 10 weak
    delta: float = 1e-5  # chance the epsilon bound fails; must be below 1 / training rows
    max_grad_norm: float = 1.0  # DP-SGD: each row's gradient is clipped to this norm before the noise is added
    preprocess_share: float = 0.1  # share of epsilon spent on what preprocessing reads from the rows (mixture fits)

    limits: ClassVar[dict[str, str]] = {"epsilon": "(0, 1000]", "delta": "(0, 0.1]", "max_grad_norm": "(0, 1000]",
                                        "preprocess_share": "(0, 0.9]"}

    @property
    def private(self) -> bool:
        return self.epsilon is not None


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a run: which family, on which data, with which settings."""

    family: str  # model family name, e.g. "gpt"
    dataset: str  # dataset name from `genlab data list`, or a path to the user's files
    model: Any  # the family's config dataclass
    data: Any  # the modality's data config dataclass
    train: TrainConfig = field(default_factory=TrainConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    modality: str = ""  # the kind of data, e.g. "text" (chosen from the dataset; "" = the family's own)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "dataset": self.dataset,
            "modality": self.modality,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "release": dataclasses.asdict(self.release),
            "privacy": {k: v for k, v in dataclasses.asdict(self.privacy).items() if v is not None},  # TOML has no null
        }


SECTIONS = ("model", "data", "train", "release", "privacy")


def build(
    family: str,
    dataset: str,
    model_cls: type,
    data_cls: type,
    *,
    base: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    overrides: typing.Sequence[str] = (),
    modality: str = "",
    where: str = "config",
) -> RunConfig:
    """Layer defaults <- base dict <- TOML file <- ``section.key=value`` overrides, checking every key and type.

    ``where`` names the base dict in errors (a run's ``config.toml`` when it comes from one)."""
    classes = {"model": model_cls, "data": data_cls, "train": TrainConfig, "release": ReleaseConfig,
               "privacy": PrivacyConfig}
    values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    layers: list[tuple[str, dict[str, Any]]] = []
    if base:
        layers.append((where, base))
    if config_file is not None:
        layers.append((str(config_file), read_toml(config_file)))
    for where, layer in layers:
        for key, val in layer.items():
            if key in ("family", "dataset", "modality"):
                continue  # given on the command line (or chosen from it); a run's config.toml records them
            if key not in SECTIONS or not isinstance(val, dict):
                raise GenlabError(f"{where}: unknown section '{key}'{_closest(key, SECTIONS)}")
            for k, v in val.items():
                values[key][k] = _check(classes[key], key, k, v, where)
    for item in overrides:
        section, key, raw = _split_override(item)
        if section not in SECTIONS:
            raise GenlabError(f"--set {item}: unknown section '{section}'{_closest(section, SECTIONS)}")
        ftype = _field_types(classes[section]).get(key)
        if ftype is None:
            _check(classes[section], section, key, None, "--set")  # raises with the closest key
        values[section][key] = _check(classes[section], section, key, parse_value(raw, ftype, f"{section}.{key}"), "--set")
    parts = {s: _construct(classes[s], s, values[s]) for s in SECTIONS}
    return RunConfig(family=family, dataset=dataset, modality=modality, **parts)


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise GenlabError(f"config file {path} is not valid TOML: {e}") from None


def write_toml(config: RunConfig, path: Path) -> None:
    """Write ``config.toml`` atomically (temporary file, then rename)."""
    import tomli_w

    from genlab.files import atomic_write_bytes

    atomic_write_bytes(path, tomli_w.dumps(config.to_dict()).encode("utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _closest(name: str, options: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid: {', '.join(sorted(options))})"


def _split_override(item: str) -> tuple[str, str, str]:
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise GenlabError(f"--set {item!r}: expected section.key=value, e.g. --set train.max_steps=500")
    lhs, raw = item.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    return section, key, raw.strip()


def _check(cls: type, section: str, key: str, value: Any, where: str) -> Any:
    types_ = _field_types(cls)
    if key not in types_:
        hint = _closest(key, types_).replace(" '", f" '{section}.", 1)
        raise GenlabError(f"{where}: unknown key '{section}.{key}'{hint}")
    return _coerce(value, types_[key], f"{section}.{key}", where)


def _coerce(value: Any, ftype: Any, name: str, where: str) -> Any:
    """Accept a value only if it has the field's type (ints are accepted for floats, lists for tuples)."""
    origin = typing.get_origin(ftype)
    bad = GenlabError(f"{where}: {name} = {value!r} is not {_describe(ftype)}")
    if origin is Literal:
        if value not in typing.get_args(ftype):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(ftype):
            if arg is type(None) and value is None:
                return None
            try:
                return _coerce(value, arg, name, where)
            except GenlabError:
                pass
        raise bad
    if origin is tuple:
        (inner, *_rest) = typing.get_args(ftype)
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(_coerce(v, inner, name, where) for v in value)
    if ftype is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if ftype is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if ftype is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if ftype is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"config field {name} has an unsupported type {ftype}")  # a bug in genlab, not bad input


def _describe(ftype: Any) -> str:
    origin = typing.get_origin(ftype)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(ftype))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(ftype))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(ftype)[0])}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(ftype, str(ftype))


def parse_value(raw: str, ftype: Any, name: str) -> Any:
    """Parse a ``--set`` value as TOML (``3``, ``1e-3``, ``true``, ``[64, 128]``); bare words become strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if ftype is str or typing.get_origin(ftype) is Literal or ftype in (str | None,):
            return raw
        raise GenlabError(f"--set {name}={raw}: cannot read {raw!r} as {_describe(ftype)}") from None


def _construct(cls: type, section: str, values: dict[str, Any]) -> Any:
    try:
        obj = cls(**values)
    except (ValueError, TypeError) as e:
        raise GenlabError(f"[{section}] {e}") from None
    try:
        check_limits(obj, section)
        check = getattr(obj, "validate", None)
        if check is not None:
            check()
    except ValueError as e:
        raise GenlabError(f"[{section}] {e}") from None
    return obj


def check_limits(obj: Any, section: str) -> None:
    """Every number of a config (each entry of a list too) finite and inside its class's ``limits``."""
    limits = getattr(type(obj), "limits", {})
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{section}.{f.name} must be a finite number, got {v}")
            problem = interval_problem(limits[f.name], v) if f.name in limits else None
            if problem:
                raise ValueError(f"{section}.{f.name} {problem}, got {v}")


_INTERVAL = re.compile(r"^([\[(])\s*(-?[\d.e+]+)\s*,\s*(-?[\d.e+]+)\s*([\])])$")


def interval_problem(interval: str, v: float) -> str | None:
    """What is wrong with ``v`` for an interval written ``"[lo, hi)"`` (brackets include, parentheses exclude), or None.

    A value below a wide interval reads "must be at least lo"; a narrow one (hi <= 1000) is named whole.
    """
    m = _INTERVAL.match(interval)
    if m is None:
        raise TypeError(f"bad interval {interval!r}")  # a bug in a config class, not bad input
    lo_incl, hi_incl = m.group(1) == "[", m.group(4) == "]"
    lo, hi = (float(x) if any(c in x for c in ".e") else int(x) for x in (m.group(2), m.group(3)))
    low = v < lo or (v == lo and not lo_incl)
    high = v > hi or (v == hi and not hi_incl)
    if not (low or high):
        return None
    if hi <= 1000:
        return f"must be in {interval}"
    if low:
        return f"must be at least {lo}" if lo_incl else f"must be more than {lo}"
    return f"must be at most {hi}" if hi_incl else f"must be less than {hi}"
