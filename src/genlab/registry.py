"""The registries: every family, modality and dataset genlab knows, by name, as ``"module:attr"`` strings.

Nothing is registered as a side effect of importing: a name maps to where its object lives, and the module is
imported the first time the name is asked for. Adding a family is one file in ``models/`` plus one line in
``FAMILIES``; a kind of data is one file in ``modalities/`` plus one line in ``MODALITIES``; a dataset is one object
in ``data/`` plus one line in ``DATASETS`` (which names the modality of its data); a reader of user data is one
function plus one line in ``READERS`` (``genlab.readers`` lists them with one reader per modality added).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from genlab.errors import GenlabError

# name -> "module:Class" of a ``models.base.Family`` subclass
FAMILIES: dict[str, str] = {
    "gpt": "genlab.models.gpt:GPT",
    "gan": "genlab.models.gan:GAN",
    "vae": "genlab.models.vae:VAE",
    "diffusion": "genlab.models.diffusion:Diffusion",
    "t5": "genlab.models.t5:T5",
    "bert": "genlab.models.bert:BERT",
    "ppca": "genlab.models.ppca:PPCA",
    "copula": "genlab.models.copula:Copula",
    "ctgan": "genlab.models.ctgan:CTGAN",
    "tvae": "genlab.models.tvae:TVAE",
    "mst": "genlab.models.mst:MST",
    "multvae": "genlab.models.multvae:MultVAE",
    "popularity": "genlab.models.popularity:Popularity",
    "ease": "genlab.models.ease:EASE",
    "lora": "genlab.models.lora:Lora",
    "vdm": "genlab.models.vdm:VDM",
}

# name -> "module:object" of a ``modalities.base.Modality``
MODALITIES: dict[str, str] = {
    "text": "genlab.modalities.text:TEXT",
    "pairs": "genlab.modalities.pairs:PAIRS",
    "image": "genlab.modalities.image:IMAGE",
    "table": "genlab.modalities.table:TABLE",
    "music": "genlab.modalities.music:MUSIC",
    "ratings": "genlab.modalities.ratings:RATINGS",
    "video": "genlab.modalities.video:VIDEO",
}

# name -> (modality, "module:object" of a ``data.dataset.DatasetInfo``)
DATASETS: dict[str, tuple[str, str]] = {
    "shakespeare": ("text", "genlab.data.text:SHAKESPEARE"),
    "pycode": ("text", "genlab.data.text:PYCODE"),
    "pycode-docstrings": ("pairs", "genlab.data.pairs:PYCODE_DOCSTRINGS"),
    "mnist": ("image", "genlab.data.images:MNIST"),
    "digits": ("image", "genlab.data.images:DIGITS"),
    "faces": ("image", "genlab.data.images:FACES"),
    "fashion-mnist": ("image", "genlab.data.images:FASHION_MNIST"),
    "breast-cancer": ("table", "genlab.data.tables:BREAST_CANCER"),
    "diabetes": ("table", "genlab.data.tables:DIABETES"),
    "medexp": ("table", "genlab.data.tables:MEDEXP"),
    "nhefs": ("table", "genlab.data.tables:NHEFS"),
    "chorales": ("music", "genlab.data.music:CHORALES"),
    "folk": ("music", "genlab.data.music:FOLK"),
    "movielens-100k": ("ratings", "genlab.data.ratings:MOVIELENS_100K"),
    "moving-digits": ("video", "genlab.data.video:MOVING_DIGITS"),
}

# name -> (what it reads: "file", "folder" or "any", "module:function" of a reader of the user's data). A reader takes
# one path and returns what it read, or raises a one-line GenlabError; the fuzz harness (tests/fuzz) feeds each one
# mutated copies of its seed inputs (tests/fuzz/seeds/<name>/). Every modality's own reader of a user path is added
# by ``genlab.readers.all_readers`` as "modality-<name>", so a new modality needs no line here.
READERS: dict[str, tuple[str, str]] = {
    "text-file": ("file", "genlab.data.text:read_text_file"),
    "image-file": ("file", "genlab.sample.images:load_image"),
    "code-file": ("file", "genlab.readers:read_code_file"),
    "config-file": ("file", "genlab.readers:read_config_file"),
    "set-values": ("file", "genlab.readers:read_set_values"),
    "run-folder": ("folder", "genlab.readers:read_run_folder"),
    "c2pa": ("folder", "genlab.readers:verify_folder"),
    "trusted-roots": ("folder", "genlab.responsible.keys:trusted_roots"),
    "table-metadata": ("file", "genlab.data.table_meta:read_metadata"),
    "midi-file": ("file", "genlab.data.music:read_midi_file"),
    "clip": ("any", "genlab.data.clips:read_clip"),  # a GIF, an MP4 or a folder of frames (`genlab continue`)
    "http-request": ("file", "genlab.serve.requests:read_request"),  # every request body of `genlab serve`
}


def load(ref: str) -> Any:
    """The object a ``"module:attr"`` string names (its module imported on first use)."""
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def get_family(name: str) -> Any:
    """The ``Family`` subclass registered as ``name``."""
    return load(FAMILIES[_known(name, FAMILIES, "family", "families")])


def get_modality(name: str) -> Any:
    """The ``Modality`` registered as ``name``."""
    return load(MODALITIES[_known(name, MODALITIES, "modality", "modalities")])


def dataset_modality(name: str) -> str | None:
    """The modality of a registered dataset, or None when ``name`` is not one."""
    entry = DATASETS.get(name)
    return entry[0] if entry else None


def get_dataset(name: str) -> Any:
    """The ``DatasetInfo`` registered as ``name``."""
    return load(DATASETS[_known(name, DATASETS, "dataset", "datasets")][1])


def list_datasets() -> list[tuple[str, Any]]:
    """(modality, DatasetInfo) of every registered dataset, by modality then name."""
    return [(modality, load(ref)) for _, (modality, ref) in sorted(DATASETS.items(), key=lambda kv: (kv[1][0], kv[0]))]


def _known(name: str, table: dict[str, Any], kind: str, plural: str) -> str:
    if name in table:
        return name
    match = difflib.get_close_matches(name, list(table), n=1)
    hint = f"did you mean '{match[0]}'?" if match else f"{plural}: {', '.join(sorted(table))}"
    raise GenlabError(f"unknown {kind} '{name}' ({hint})")
