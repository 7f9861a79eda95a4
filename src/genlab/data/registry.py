"""The dataset registry: every dataset genlab knows by name, with its modality, size, licence and installed state.

Datasets come from installed packages or from the user's own files; nothing is downloaded at run time.
A modality module (``data/text.py``, ...) registers its datasets and a loader for user paths.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # the name used on the command line
    modality: str  # "text", "image", ...
    description: str  # one line for `genlab data list`
    size: str  # human-readable size, e.g. "42 plays, 5.1 M characters"
    licence: str  # licence of the data itself
    install: str  # how to install it when it is missing
    installed: Callable[[], bool]  # whether it can be loaded now
    load: Callable[[], Any]  # returns the modality's source object (e.g. a TextCorpus)


DATASETS: dict[str, DatasetInfo] = {}
PATH_LOADERS: dict[str, Callable[[Path], Any]] = {}  # modality -> loader for a user path


def register(info: DatasetInfo) -> DatasetInfo:
    DATASETS[info.name] = info
    return info


def register_path_loader(modality: str, loader: Callable[[Path], Any]) -> None:
    PATH_LOADERS[modality] = loader


def list_datasets() -> list[DatasetInfo]:
    _load_modalities()
    return sorted(DATASETS.values(), key=lambda d: (d.modality, d.name))


def resolve(name: str, modality: str) -> Any:
    """Return the source object for a registered dataset name or a user path of the given modality."""
    _load_modalities()
    info = DATASETS.get(name)
    if info is not None:
        if info.modality != modality:
            raise GenlabError(f"dataset '{name}' is {info.modality} data; this family needs {modality} data")
        if not info.installed():
            raise GenlabError(f"dataset '{name}' is not installed: {info.install}")
        return info.load()
    looks_like_path = any(c in name for c in "/\\.") or Path(name).exists()
    if looks_like_path:
        path = Path(name).expanduser()
        if not path.exists():
            raise GenlabError(f"{name}: no such file or folder")
        return PATH_LOADERS[modality](path)
    names = [d.name for d in DATASETS.values() if d.modality == modality]
    match = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{match[0]}'?" if match else f"{modality} datasets: {', '.join(sorted(names))}"
    raise GenlabError(f"unknown dataset '{name}' and no such file ({hint}; see `genlab data list`)")


def _load_modalities() -> None:
    # Importing a modality module registers its datasets.
    from genlab.data import images, pairs, text  # noqa: F401
