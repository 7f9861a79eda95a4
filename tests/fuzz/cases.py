"""Fuzz inputs: a reader's seeds, the cases made from them, and how a case becomes files or a crash file.

A reader's seeds are the entries of ``seeds/<reader>/``: a file is a seed for a reader of files, a folder (its files
at any depth) a seed for a reader of folders; a reader of either kind takes both. A ``FileCase`` is one file: a
seed's name and mutated bytes. A ``FolderCase`` is a seed folder plus one to three edits: a file mutated, deleted or
added, or a path replaced by a symlink, a FIFO or a folder. A crash file is ``<sha>.<file name>`` (a file case's
bytes) or ``<sha>.folder.json`` (a folder case's seed name and edits, so a crash in a run folder needs no copy of
the run's weights); ``load_case`` reads either back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from hypothesis import strategies as st

from .mutate import mutated

FOLDER_SUFFIX = "folder.json"
# where a symlink may point: endless devices, the file system's root, the folder's parent or itself, nowhere
LINKS = ("/dev/zero", "/dev/null", "/", "..", ".", "missing")


@dataclass(frozen=True, eq=False)
class Seed:
    """One valid input: a file (``data``) or a folder (``files``: relative path -> bytes)."""

    name: str
    data: bytes | None = None
    files: dict[str, bytes] | None = None


def load_seeds(folder: Path) -> list[Seed]:
    """Every entry of ``folder`` as a seed, sorted by name; none when it does not exist."""
    if not folder.is_dir():
        return []
    return [folder_seed(p) if p.is_dir() else Seed(p.name, data=p.read_bytes()) for p in sorted(folder.iterdir())]


def folder_seed(folder: Path, name: str | None = None) -> Seed:
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return Seed(name or folder.name, files=files)


@dataclass(frozen=True)
class FileCase:
    name: str  # the seed's file name (its suffix decides how readers take it)
    data: bytes

    def materialize(self, where: Path, seeds: dict[str, Seed]) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        (where / self.name).write_bytes(self.data)
        return where / self.name

    def dump(self) -> tuple[str, bytes]:
        return self.name, self.data


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the case's folder
    action: str  # "write", "delete", "symlink", "fifo" or "folder"
    data: bytes = b""  # write: the new content; symlink: where it points


@dataclass(frozen=True)
class FolderCase:
    seed: str  # the name of the seed folder it starts from
    edits: tuple[Edit, ...]

    def materialize(self, where: Path, seeds: dict[str, Seed]) -> Path:
        root = where / self.seed
        root.mkdir(parents=True, exist_ok=True)
        for rel, data in seeds[self.seed].files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        for edit in self.edits:
            _apply(root, edit)
        return root

    def dump(self) -> tuple[str, bytes]:
        edits = [{"path": e.path, "action": e.action, "data": base64.b64encode(e.data).decode("ascii")}
                 for e in self.edits]
        return FOLDER_SUFFIX, json.dumps({"seed": self.seed, "edits": edits}, indent=1).encode()


def _apply(root: Path, edit: Edit) -> None:
    """One edit, never outside ``root``: a symlink or file in the way of a parent folder is replaced first."""
    rel = PurePosixPath(edit.path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"edit path {edit.path!r} leaves the case folder")
    parent = root
    for part in rel.parts[:-1]:
        parent = parent / part
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            parent.unlink()
        parent.mkdir(exist_ok=True)
    target = root / rel
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if edit.action == "write":
        target.write_bytes(edit.data)
    elif edit.action == "symlink":
        os.symlink(edit.data.decode(), target)
    elif edit.action == "fifo":
        os.mkfifo(target)
    elif edit.action == "folder":
        target.mkdir()
    elif edit.action != "delete":
        raise ValueError(f"unknown edit {edit.action!r}")


def size(case: FileCase | FolderCase) -> int:
    """How big a case is (the smallest case of a crash is the one kept)."""
    return len(case.dump()[1])


def crash_name(case: FileCase | FolderCase) -> str:
    """``<sha>.<file name>`` or ``<sha>.folder.json``: the content's hash, then what tells how to read it back."""
    suffix, data = case.dump()
    return f"{hashlib.sha256(suffix.encode() + b'/' + data).hexdigest()[:16]}.{suffix}"


def load_case(path: Path) -> FileCase | FolderCase:
    """A crash file read back as the case it was saved from."""
    rest = path.name.split(".", 1)[1]
    if rest != FOLDER_SUFFIX:
        return FileCase(rest, path.read_bytes())
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    edits = tuple(Edit(e["path"], e["action"], base64.b64decode(e["data"])) for e in raw["edits"])
    return FolderCase(raw["seed"], edits)


# -- strategies ----------------------------------------------------------------------------------------------------
@st.composite
def file_cases(draw, seeds: list[Seed], pool: list[bytes]) -> FileCase:
    seed = draw(st.sampled_from(seeds))
    return FileCase(seed.name, draw(mutated(seed.data, pool)))


@st.composite
def folder_cases(draw, seeds: list[Seed], pool: list[bytes], names: tuple[str, ...]) -> FolderCase:
    """A seed folder and one to three edits; ``names`` are paths worth adding (other seeds' names, a run's files)."""
    seed = draw(st.sampled_from(seeds))
    have = tuple(sorted(seed.files))
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(("write", "write", "write", "delete", "add", "symlink", "fifo", "folder")))
        if action == "write" and have:
            path = draw(st.sampled_from(have))
            edits.append(Edit(path, "write", draw(mutated(seed.files[path], pool))))
        elif action in ("write", "add"):
            content = draw(st.sampled_from(pool))
            edits.append(Edit(draw(st.sampled_from(names + have)), "write", draw(mutated(content, pool))))
        elif action == "delete" and have:
            edits.append(Edit(draw(st.sampled_from(have)), "delete"))
        elif action == "symlink":
            target = draw(st.sampled_from(LINKS + have))
            edits.append(Edit(draw(st.sampled_from(have + names)), "symlink", target.encode()))
        elif action in ("fifo", "folder"):
            edits.append(Edit(draw(st.sampled_from(have + names)), action))
    return FolderCase(seed.name, tuple(edits))


def cases(seeds: list[Seed], names: tuple[str, ...]) -> st.SearchStrategy:
    """Cases of every kind the seeds allow: file cases from file seeds, folder cases from folder seeds."""
    pool = [s.data for s in seeds if s.data is not None] + [d for s in seeds if s.files for d in s.files.values()]
    pool = [p for p in pool if p] or [b""]
    files = [s for s in seeds if s.data is not None]
    folders = [s for s in seeds if s.files is not None]
    kinds = ([file_cases(files, pool)] if files else []) + ([folder_cases(folders, pool, names)] if folders else [])
    return st.one_of(kinds)
