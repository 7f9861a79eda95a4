"""The modality contract: everything specific to one kind of data, in one plugin per kind.

A modality (``modalities/text.py``, ``pairs.py``, ``image.py``) says how its data is configured, prepared, cached
and reopened; which built-in datasets it reads and how it reads the user's own files; what its outputs are and how
they become files (``Outputs``); which options sampling and evaluation take (``Option`` schemas that the command
line and the HTTP API build their parameters from); how its outputs are watermarked (``Marks``); how a run of it
is audited; and what a model card says about it. ``genlab.registry.MODALITIES`` names each plugin. A run's
modality comes from its data; a family learns from every modality whose ``data_interface`` it takes. Nothing
outside a plugin tests a modality's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from genlab.errors import BadArgument, GenlabError
from genlab.files import Writer, atomic_folder, write_plain


@dataclass(frozen=True)
class Option:
    """One option of sampling or evaluation, as every front-end (CLI, HTTP API) offers it."""

    name: str  # the Python argument name, e.g. "max_new_tokens" (the CLI flag is --max-new-tokens)
    type: type  # int, float, str, or list (of str)
    help: str  # one line: what it does, its range, its default
    default: Any = None  # what front-ends pass when the user gives nothing; None = the family's own default
    private: bool = False  # user content (a prompt): kept out of manifests, which record only its SHA-256
    stdin: bool = False  # the CLI reads the value "-" from standard input
    example: str = ""  # a value that always works, for hints (e.g. "..." for a prompt); "" = none needed
    path: bool = False  # the value names a file: the HTTP API takes the file's content instead (base64)
    cap: str = ""  # the server's limit on it over HTTP (a ``ServeConfig`` field, e.g. "max_tokens"); "" = none


# -- outputs ----------------------------------------------------------------------------------------------------
class Outputs:
    """What a generating family's ``sample`` returns: the content, plus what is needed to write it to files.

    Each modality subclasses it together with a container (``Texts(Outputs, list)``, ``Images(Outputs, ndarray)``),
    so outputs are used like plain lists of strings or arrays. ``Run.sample`` attaches the run's release layer
    (``release``) and what a manifest records about the generation (``generation``); ``save`` then writes every
    file atomically, signed as ``[release] sign`` says. Outputs made without a run are saved unsigned.
    """

    modality: ClassVar[str]  # the registry name of the modality that made them
    prompt: str | None = None  # user content the outputs answer (hashed into manifests), if any
    release: Any = None  # the run's release layer, attached by ``Run.sample`` (None: made without a run)
    generation: dict[str, Any] | None = None  # what a manifest says about how they were made (with ``release``)

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """(file name, content) of every file the outputs become."""
        raise NotImplementedError

    def sections(self) -> list[tuple[str, str]] | None:
        """(title, text) blocks to show in a terminal, or None for outputs that only live in files."""
        return None

    def save(self, folder: str | Path, *, sign: bool | None = None, prefix: str = "sample") -> Path:
        """Write every file into the new folder ``folder`` (built under a temporary name, then renamed)."""
        folder = Path(folder)
        if folder.exists():
            raise GenlabError(f"{folder} already exists; choose a new folder for the outputs")
        write = self.writer(sign)
        atomic_folder(folder, lambda tmp: [write(tmp / name, data) for name, data in self.files(prefix)])
        return folder

    def writer(self, sign: bool | None = None) -> Writer:
        """The function that writes one file: the run's signing writer, or a plain atomic write."""
        if self.release is None:
            if sign:
                raise GenlabError("these outputs were not made through a run, so there is no run to sign them for")
            return write_plain
        return self.release.writer(self.generation, sign=sign)


class PixelOutputs(Outputs, np.ndarray):
    """Outputs that are a uint8 NumPy array (images, clips): arithmetic on them gives plain arrays (no longer
    outputs); slices and copies keep the type and what is attached to them (``attached``)."""

    attached: ClassVar[tuple[str, ...]] = ("prompt", "release", "generation")  # carried besides the pixels

    def __new__(cls, pixels: Any) -> PixelOutputs:
        return np.asarray(pixels, dtype=np.uint8).view(cls)

    def __array_finalize__(self, obj: Any) -> None:
        for name in self.attached:
            if name in getattr(obj, "__dict__", {}):
                setattr(self, name, obj.__dict__[name])

    def __array_wrap__(self, array: Any, context: Any = None, return_scalar: bool = False) -> Any:
        array = np.asarray(array)
        return array[()] if return_scalar else array


# -- the modality -----------------------------------------------------------------------------------------------
class Modality:
    """Base of every modality plugin; each plugin module holds one instance, named in the registry."""

    name: ClassVar[str]  # registry name, e.g. "text"
    data_interface: ClassVar[str]  # what its prepared data offers: "tokens" (a ``data.tokens.TextData``), ...
    DataConfig: ClassVar[type]  # the [data] config section of its runs
    Marks: ClassVar[type | None] = None  # its watermark scheme (a ``responsible.marks.Marks``), or None
    unit: ClassVar[str]  # what training throughput counts, short ("tok", "img")
    unit_name: ClassVar[str]  # the same in words ("token", "image"), e.g. for loss axes
    sample_options: ClassVar[tuple[Option, ...]] = ()  # the options of `sample`, beside n and seed
    eval_options: ClassVar[tuple[Option, ...]] = ()  # the options of `evaluate`
    prints: ClassVar[bool] = False  # outputs can be shown in a terminal (else they are written to a folder)
    streams: ClassVar[bool] = False  # one output can be shown while it is generated (``on_text``)
    audit_samples: ClassVar[int] = 64  # outputs an audit generates by default
    pipeline_tag: ClassVar[str]  # the Hugging Face task a model card names
    intended_use: ClassVar[tuple[str, ...]] = ()  # model-card paragraphs: what its models are for, and not
    path_hint: ClassVar[str] = "a path to your own files"  # what a user path of this modality is
    endpoint: ClassVar[str]  # the HTTP API's POST /v1/{endpoint}/generations, e.g. "images"
    counts: ClassVar[str] = "outputs"  # what sampling's n counts: "outputs" (files each) or "rows" (of one file)

    # -- data ---------------------------------------------------------------------------------------------------
    def prepare(self, source: Any, config: Any, folder: Path) -> Any:
        """First use of a dataset: split it, fit its tokenizer or scaler, and cache it in ``folder``."""
        raise NotImplementedError

    def load(self, config: Any, folder: Path) -> Any:
        """Reopen what ``prepare`` cached."""
        raise NotImplementedError

    def from_path(self, path: Path) -> Any:
        """The source object for a user's file or folder (checked, not yet read in full)."""
        raise NotImplementedError

    def claims(self, path: Path) -> bool:
        """Whether a user's path holds this kind of data (by its file types), to choose among the modalities that
        feed one family; the family's own modality is asked first and is the fallback."""
        return False

    def resolve(self, name: str) -> Any:
        """The source object of a registered dataset name, or of a user path."""
        from genlab import registry

        modality = registry.dataset_modality(name)
        if modality is not None:
            if modality != self.name:
                raise GenlabError(f"dataset '{name}' is {modality} data; this family needs {self.name} data")
            info = registry.get_dataset(name)
            if not info.installed():
                raise GenlabError(f"dataset '{name}' is not installed: {info.install}")
            return info.load()
        if any(c in name for c in "/\\.") or Path(name).exists():
            path = Path(name).expanduser()
            if not path.exists():
                raise GenlabError(f"{name}: no such file or folder")
            return self.from_path(path)
        names = [n for n, (m, _) in registry.DATASETS.items() if m == self.name]
        hint = _close(name, names) or f"{self.name} datasets: {', '.join(sorted(names))}"
        raise GenlabError(f"unknown dataset '{name}' and no such file ({hint}; see `genlab data list`)")

    def describe(self, source: Any, *, target: str | None = None) -> dict[str, Any]:
        """The metadata of a source (column types and domains) that the user can edit and pass back."""
        raise GenlabError(f"{self.name} data has no metadata to describe")

    def example(self, folder: Path) -> str:
        """The smallest real dataset of this kind (a registered name, or a file it writes in ``folder``): what the
        family contract test and the docs train on."""
        raise NotImplementedError

    # -- generating ---------------------------------------------------------------------------------------------
    def sample(self, model: Any, n: int, *, data: Any = None, **options: Any) -> Outputs:
        """The family's outputs for these options: its own ``sample`` (a modality whose data is tokens of another
        kind, music, turns its options into the family's and the family's outputs into its own here, with the run's
        ``data``: its tokenizer)."""
        return model.sample(n, **options)

    def check_sample(self, model: Any, options: dict[str, Any]) -> None:
        """Refuse options that sampling this family on this modality does not take."""
        accepts(model.sample, options, f"{model.name} sampling")

    def output_bytes(self, model: Any, n: int, options: dict[str, Any]) -> int:
        """Memory that ``n`` outputs take while they are made (checked before sampling; 0: the family checks)."""
        return 0

    def evaluate(self, model: Any, data: Any, **options: Any) -> dict[str, Any]:
        """The report on the held-out split: the family's own ``evaluate`` (a modality may add its own figures)."""
        return model.evaluate(data, **options)

    def partial(self, options: dict[str, Any], data: Any) -> str | None:
        """Why an evaluation with these options covers only part of the held-out split, or None when it is whole."""
        return None

    def check_evaluate(self, model: Any, options: dict[str, Any]) -> None:
        """Refuse options that evaluating this family on this modality does not take."""
        accepts(model.evaluate, options, f"{model.name} evaluation")

    # -- release ------------------------------------------------------------------------------------------------
    def marks(self, release: Any) -> Any:
        """The run's watermark (``Marks`` bound to its release), or None when outputs carry none."""
        return self.Marks(release) if self.Marks is not None else None

    def audit(self, run: Any, *, n: int, seed: int, out: Path | None) -> dict:
        """Memorisation and bias report of a run's outputs (see ``responsible/audit.py`` for the shape)."""
        raise GenlabError(f"there is no audit for {self.name} models yet")

    def card_notes(self, meta: dict[str, Any]) -> list[str]:
        """Model-card sentences that depend on the run's data (``data/meta.json``), e.g. what the watermark survives
        at its image size."""
        return []

    def stream_prefix(self, options: dict[str, Any]) -> str:
        """What a streamed output is shown after (text: its prompt)."""
        return ""

    # -- options ------------------------------------------------------------------------------------------------
    def options(self, kind: str) -> tuple[Option, ...]:
        return {"sample": self.sample_options, "evaluate": self.eval_options}[kind]

    def check_options(self, kind: str, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` (front-end options the user set) refused if not this modality's; with its defaults added."""
        schema = {o.name: o for o in self.options(kind)}
        for name in given:
            if name not in schema:
                raise BadArgument(name, f"is not an option of {self.name} runs", valid=tuple(schema))
        return {**{k: o.default for k, o in schema.items() if o.default is not None}, **given}


def own_options(modality: Modality, kind: str, options: dict[str, Any], *extra: str) -> None:
    """Refuse options that are not ``modality``'s own for ``kind`` ("sample" or "evaluate"; a modality that samples
    or evaluates every family itself), besides ``extra`` names, and an ``n`` below 1."""
    valid = (*(o.name for o in modality.options(kind)), *extra)
    what = {"sample": "sampling", "evaluate": "evaluation"}[kind]
    for name in options:
        if name not in valid:
            raise BadArgument(name, f"is not an option of {modality.name} {what}", valid=valid)
    if options.get("n") is not None and options["n"] < 1:
        raise BadArgument("n", f"must be at least 1, got {options['n']}")


def accepts(fn: Callable[..., Any], options: dict[str, Any], what: str) -> None:
    """Refuse options that ``fn`` (a family's ``sample`` or ``evaluate``) does not take, naming the ones it does."""
    import inspect

    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    names = tuple(k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)
    for name in options:
        if name not in params:
            raise BadArgument(name, f"is not an option of {what}", valid=names)


def manifest_params(modality: Modality, options: dict[str, Any]) -> dict[str, Any]:
    """The options a manifest records: the modality's sampling options, private ones (a prompt) left out."""
    schema = {o.name: o for o in modality.sample_options}
    return {k: v for k, v in options.items() if k in schema and not schema[k].private and v is not None}


def _close(name: str, names: Sequence[str]) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(names), n=1)
    return f"did you mean '{match[0]}'?" if match else ""
