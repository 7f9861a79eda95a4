"""Every setting, documented: the configurations genlab ships, and each config field's type, default and comment.

The comments are read from the dataclasses' own source (``n_embd: int = 128  # width of the residual stream``), so
``genlab config show FAMILY`` prints what the code says and cannot drift from it.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError


@dataclass(frozen=True)
class Setting:
    section: str  # "model", "data", "train" or "release"
    name: str  # the key, e.g. "n_embd"
    type: str  # as written in the dataclass, e.g. "int" or "Literal['char', 'bpe']"
    default: Any  # the default a new run of this family gets
    comment: str  # the field's comment in the source


def shipped_configs() -> dict[str, Path]:
    """Name -> path of the TOML configurations that come with genlab (``genlab/configs/*.toml``)."""
    folder = Path(str(resources.files("genlab") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def config_path(name: str | Path) -> Path:
    """A TOML file: ``name`` itself when it is a file, else the shipped configuration of that name."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = shipped_configs()
    stem = path.name.removesuffix(".toml")
    if path.parent == Path(".") and stem in shipped:
        return shipped[stem]
    raise GenlabError(f"config file {name} does not exist (configs genlab ships: {', '.join(shipped)}; "
                      "see `genlab config list`)")


def describe(section: str, cls: type, defaults: dict[str, Any] | None = None) -> list[Setting]:
    """The fields of config dataclass ``cls`` as ``Setting``s; ``defaults`` overrides the dataclass's own."""
    comments = _comments(cls)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        default = (defaults or {}).get(f.name, default)
        out.append(Setting(section, f.name, _type_name(hints[f.name]), default, comments.get(f.name, "")))
    return out


def _comments(cls: type) -> dict[str, str]:
    """Field name -> the comment after it on its line, from the class's source."""
    try:
        lines, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    tree = ast.parse("".join(_dedent(lines)))
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.lineno - 1]
            if "#" in line:
                out[node.target.id] = line.split("#", 1)[1].strip()
    return out


def _dedent(lines: list[str]) -> list[str]:
    indent = len(lines[0]) - len(lines[0].lstrip())
    return [ln[indent:] if ln[:indent].isspace() else ln for ln in lines]


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))
