"""Every reader of the user's data, as one function of one path: what the fuzz harness (``tests/fuzz``) attacks.

A reader takes one ``pathlib.Path`` (a file or a folder) and returns what it read, or raises ``GenlabError``
with a one-line message; nothing else (a traceback, a hang, an unbounded allocation) is acceptable for any input.
``registry.READERS`` names the readers by ``"module:function"``; where the command line's entry point is not such
a function, it is written here as a thin one that does what the command does with its file (``--config``,
``--set``, a run folder, ``genlab verify``, ``genlab complete``). ``all_readers`` adds one reader per registered
modality (``modality-<name>``): what training does with a user's path of that kind (``claims``, ``resolve``,
``prepare``), so a new modality is fuzzed as soon as it is registered.
"""

from __future__ import annotations

import inspect
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab import registry

# sampling options a run folder's reader sets, where the modality has them: small, so one read stays fast
FEW = {"max_new_tokens": 4, "steps": 2, "beams": 1}


@dataclass(frozen=True)
class Reader:
    """One reader of user data, callable on a path."""

    name: str  # e.g. "text-file", "modality-image"; its seeds live in tests/fuzz/seeds/<name>/
    kind: str  # what the path is: "file", "folder", or "any" (either, as each seed input is)
    ref: str  # "module:function" taking the path (for a modality: the modality's registry name)
    modality: bool = False  # ``ref`` names a modality, read with ``read_user_data``

    def __call__(self, path: Path) -> Any:
        if self.modality:
            return read_user_data(self.ref, Path(path))
        return registry.load(self.ref)(Path(path))


def all_readers() -> dict[str, Reader]:
    """Every registered reader, and one per registered modality (``modality-<name>``), by name."""
    found = {name: Reader(name, kind, ref) for name, (kind, ref) in registry.READERS.items()}
    for name in registry.MODALITIES:
        found[f"modality-{name}"] = Reader(f"modality-{name}", "any", name, modality=True)
    return found


# -- the modalities: a user's own data, as training reads it --------------------------------------------------------
def read_user_data(modality: str, path: Path) -> Any:
    """A user's path of ``modality`` read as training reads it: claimed (how a family picks its modality),
    resolved (checked) and prepared with the modality's default data settings into a scratch folder."""
    plugin = registry.get_modality(modality)
    plugin.claims(path)  # asked of every user path when a family chooses a modality: it must not fail either
    source = plugin.resolve(str(path))
    with tempfile.TemporaryDirectory(prefix="genlab-read-") as scratch:
        data = plugin.prepare(source, plugin.DataConfig(), Path(scratch) / "data")
        return type(data).__name__


# -- configuration: a --config file, and --set values --------------------------------------------------------------
def read_config_file(path: Path) -> Any:
    """A TOML file given as ``--config``, built into a run config: for the family it names, else gpt."""
    from genlab.config import read_toml

    raw = read_toml(path)
    family = raw.get("family")
    family = family if isinstance(family, str) and family in registry.FAMILIES else "gpt"
    return _build(family, raw.get("modality"), str(path), config_file=path)


def read_set_values(path: Path) -> Any:
    """``--set section.key=value`` overrides, one per line (blank lines and ``#`` comments skipped), built into a
    gpt run config; a first line ``family=NAME`` picks another family."""
    from genlab.data.text import read_text_file

    lines = [ln.strip() for ln in read_text_file(path, allow_empty=True).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    family = "gpt"
    if lines and lines[0].replace(" ", "").startswith("family="):
        family = lines.pop(0).split("=", 1)[1].strip()
        registry.get_family(family)  # an unknown family is a one-line error naming the closest
    return _build(family, None, str(path), overrides=lines)


def _build(family: str, modality: Any, dataset: str, **given: Any) -> Any:
    """``config.build`` as ``genlab train`` calls it (the family's training defaults first)."""
    from genlab.config import build

    cls = registry.get_family(family)
    feeds = isinstance(modality, str) and modality in registry.MODALITIES and \
        registry.get_modality(modality).data_interface == cls.data_interface
    modality = modality if feeds else cls.modality
    return build(family, dataset, cls.Config, cls.data_config_class(modality), base={"train": dict(cls.train_defaults)},
                 modality=modality, **given)


# -- a run folder ----------------------------------------------------------------------------------------------------
def read_run_folder(path: Path) -> dict[str, Any]:
    """A run folder opened as every verb opens it (``genlab.load``), one short sample made from it, its summary
    (``genlab runs``) and its model card rendered."""
    from genlab.api import load
    from genlab.responsible.card import render_card
    from genlab.runfiles import summarize

    run = load(path)
    params = inspect.signature(run.model.sample).parameters
    options: dict[str, Any] = {}
    for option in run.modality.sample_options:
        if option.name in FEW and option.name in params:  # the family's own sampling takes it
            options[option.name] = FEW[option.name]
        elif option.example and option.default is None:  # a required input (a source to transform)
            options[option.name] = [option.example] if option.type is list else option.type(option.example)
    outputs = run.sample(1, seed=0, **options)
    card = render_card(path).encode("utf-8")  # as `genlab card` writes it
    return {"summary": summarize(path), "lineage": run.lineage, "card": len(card), "outputs": len(outputs)}


# -- content credentials ---------------------------------------------------------------------------------------------
def verify_folder(path: Path) -> list[Any]:
    """``genlab verify`` of every file in a folder (a signed file, and its ``.c2pa`` sidecar when it has one); a
    sidecar is read through the file it describes, and on its own only when that file is missing."""
    from genlab.responsible.provenance import SIDECAR_SUFFIX
    from genlab.responsible.verify import verify

    files = sorted(p for p in Path(path).iterdir() if not p.is_dir())
    names = {p.name for p in files}
    return [verify(p, runs=None) for p in files
            if not (p.name.endswith(SIDECAR_SUFFIX) and p.name[: -len(SIDECAR_SUFFIX)] in names)]


# -- code to complete ------------------------------------------------------------------------------------------------
def read_code_file(path: Path) -> dict[str, Any]:
    """A ``.py`` file as ``genlab complete FILE`` reads it before any model runs: the text before the cursor (at
    its end), where a completion of it would end, and what closes it."""
    from genlab.data.text import read_text_file
    from genlab.sample.code import Boundary, close_and_parse, heal_suffix, pass_line, prefix_at

    prefix_at(path, 1)  # the checks `genlab complete` makes first: a Python file name, UTF-8 text
    prefix = prefix_at(path, len(read_text_file(path, allow_empty=True).splitlines()) + 1)
    boundary = Boundary(prefix)
    return {"mode": boundary.mode, "heal": heal_suffix(prefix), "closes": close_and_parse(prefix, pass_line(prefix))}
