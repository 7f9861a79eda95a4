"""What genlab knows of a built-in dataset: its description, size, licence, how to install it, and how to load it.

Datasets come from installed packages or from the user's own files; nothing is downloaded at run time. Each
built-in dataset is one ``DatasetInfo`` object in the ``data/`` module that reads it, named in
``genlab.registry.DATASETS`` together with the modality of its data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # the name used on the command line
    description: str  # one line for `genlab data list`
    size: str  # human-readable size, e.g. "42 plays, 5.1 M characters"
    licence: str  # licence of the data itself
    install: str  # how to install it when it is missing
    installed: Callable[[], bool]  # whether it can be loaded now
    load: Callable[[], Any]  # returns the modality's source object (e.g. a TextCorpus)
    license_id: str = "other"  # the licence as a Hugging Face card names it ("cc-by-2.5", "mit", ...)
    language: tuple[str, ...] = ()  # ISO 639-1 codes of its text ("en"), or "code" for source code
