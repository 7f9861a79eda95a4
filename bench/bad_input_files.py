"""Hostile and damaged inputs for ``bench/bad_inputs.py``: image files, text files, and edits of a copied run folder.

Every helper here returns a *setup*: a function ``setup(case_dir, bases)`` that builds what one case needs inside
its own empty folder (the case's working directory). ``bases`` maps a kind ("gpt", "vae", "bert", "t5") to a tiny
trained run built once at the start; ``run(kind, edit)`` copies one into ``case_dir/run`` and applies an edit.
"""

from __future__ import annotations

import json
import shutil
import struct
import tomllib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Setup = Callable[[Path, dict[str, Path]], None]
Edit = Callable[[Path], None]


@dataclass(frozen=True)
class Expect:
    codes: tuple[int, ...] = (2,)
    contains: str = ""  # stderr must contain this text (e.g. a path with [brackets] printed as it is)


ERR = Expect()
OK = Expect((0,))
VERDICT = Expect((1, 2))
TOLERANT = Expect((0, 2))  # odd but harmless: going on without it (0) and refusing it (2) both keep the contract


def ERR_SAYING(text: str) -> Expect:
    return Expect(contains=text)


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    setup: Setup | None = None
    expect: Expect = ERR
    timeout: float = 60.0
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)  # "{d}" in a value is the case folder
    check: Callable[[Path], str | None] | None = None  # after the run: a problem, or None

    @property
    def verb(self) -> str:
        two = " ".join(self.argv[:2])
        return two if two in ("data list", "keys init", "config show", "config list") else self.argv[0]


# -- composing setups --------------------------------------------------------------------------------------------
def run(kind: str = "gpt", *edits: Edit, name: str = "run") -> Setup:
    """Copy the tiny ``kind`` run into ``case_dir/name``, then apply each edit to the copy."""

    def setup(d: Path, bases: dict[str, Path]) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bases[kind], d / name, symlinks=True)
        for edit in edits:
            edit(d / name)

    setup.kinds = {kind}  # type: ignore[attr-defined]  # which tiny runs to build
    return setup


def files(**named: bytes | str | None) -> Setup:
    """Files in the case folder: ``name=content`` (str as UTF-8, None for an empty folder); "__" in a name is "/"."""

    def setup(d: Path, bases: dict[str, Path]) -> None:
        for key, content in named.items():
            path = d / key.replace("__", "/")
            if content is None:
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def both(*setups: Setup) -> Setup:
    """Each setup in turn, in the same case folder."""

    def setup(d: Path, bases: dict[str, Path]) -> None:
        for s in setups:
            s(d, bases)

    setup.kinds = set().union(*(kinds(s) for s in setups))  # type: ignore[attr-defined]
    return setup


def kinds(setup: Setup | None) -> set[str]:
    """The tiny runs a setup copies."""
    return set(getattr(setup, "kinds", set()))


def in_case(fn: Callable[[Path], None]) -> Setup:
    """A setup from a function of the case folder alone (symlinks, odd names)."""
    return lambda d, bases: fn(d)


# -- images ------------------------------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int = 8, height: int = 8, *, color_type: int = 0, pixels: bytes | None = None) -> bytes:
    """A PNG (8-bit grey by default) whose header declares ``width`` x ``height``; ``pixels`` overrides the data."""
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    if pixels is None:
        pixels = b"".join(b"\x00" + bytes((x * 37 + y * 11) % 256 for x in range(width * bpp)) for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(pixels)) + \
        _chunk(b"IEND", b"")


def png_bomb(side: int = 30000) -> bytes:
    """About 200 bytes that declare ``side`` x ``side`` pixels (900 M for the default): a decompression bomb."""
    return png(side, side, pixels=b"\x00" * 4096)


def png_truncated() -> bytes:
    """A real 64x64 PNG cut off in the middle of its image data."""
    whole = png(64, 64, color_type=2)
    return whole[: len(whole) // 2]


def png_bad_crc() -> bytes:
    """A PNG whose header chunk's checksum is wrong."""
    data = bytearray(png(8, 8))
    data[29] ^= 0xFF  # a byte of IHDR's CRC
    return bytes(data)


GOOD_PNG = png(8, 8)


def gif(frames: int = 4, side: int = 32, *, sizes: tuple[int, ...] = ()) -> bytes:
    """An animated grey GIF of a bright square moving right (every frame ``side`` pixels, or ``sizes`` in turn)."""
    import io

    from PIL import Image

    pics = []
    for i in range(frames):
        s = sizes[i % len(sizes)] if sizes else side
        im = Image.new("L", (s, s), 0)
        im.paste(255, (2 * i % max(1, s - 4), 4, 2 * i % max(1, s - 4) + 4, 8))
        pics.append(im)
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=100, loop=0)
    return buf.getvalue()
NOT_A_PNG = b"this is text, not an image\n"
BINARY = bytes(range(256)) * 64  # NUL bytes and every other byte
INVALID_UTF8 = b"def f():\n    return '\xff\xfe\xc3\x28'\n"  # no NUL byte, but not UTF-8


# -- text corpora and pairs --------------------------------------------------------------------------------------
def corpus(chars: int = 20000) -> str:
    """A small plain-text corpus for text training cases (fast to tokenize)."""
    line = "the quick brown fox jumps over the lazy dog, and then the dog sleeps again.\n"
    return line * (chars // len(line) + 1)


def pairs_jsonl(n: int = 40) -> str:
    return "".join(json.dumps({"source": f"def f{i}(x): return x + {i}", "target": f"add {i}"}) + "\n"
                   for i in range(n))


def image_folder(*contents: bytes) -> Setup:
    """images/ holding a few good 8x8 PNGs and then each of ``contents`` as a .png file."""
    named = {f"images__good{i}.png": png(8, 8) for i in range(12)}
    named.update({f"images__bad{i}.png": c for i, c in enumerate(contents)})
    return files(**named)


# -- edits of a copied run ---------------------------------------------------------------------------------------
def toml_set(section: str | None, key: str, value: Any) -> Edit:
    """Set one key of config.toml (``section`` None: the top level), written back as TOML."""

    def edit(r: Path) -> None:
        cfg = tomllib.loads((r / "config.toml").read_text())
        (cfg if section is None else cfg[section])[key] = value
        (r / "config.toml").write_text(_dump_toml(cfg))

    return edit


def _dump_toml(cfg: dict[str, Any]) -> str:
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(map(val, v)) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + "}"
        return json.dumps(v) if isinstance(v, str) else repr(v)  # floats: inf and nan are TOML too

    top = [f"{k} = {val(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    sections = [f"\n[{k}]\n" + "\n".join(f"{kk} = {val(vv)}" for kk, vv in v.items())
                for k, v in cfg.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(sections) + "\n"


def json_set(name: str, path: str, value: Any) -> Edit:
    """Set ``path`` (dotted keys) in the run's JSON file ``name`` (e.g. "summary.json", "data/meta.json")."""

    def edit(r: Path) -> None:
        data = json.loads((r / name).read_text())
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
        (r / name).write_text(json.dumps(data))

    return edit


def write(name: str, content: bytes | str) -> Edit:
    """Replace the run's file ``name`` with ``content``."""
    return lambda r: (r / name).write_bytes(content.encode() if isinstance(content, str) else content)


def remove(name: str) -> Edit:
    def edit(r: Path) -> None:
        p = r / name
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    return edit


def make_dir(name: str) -> Edit:
    """Replace the run's file ``name`` with an empty folder of that name."""
    return lambda r: (remove(name)(r), (r / name).mkdir())


def symlink(name: str, target: str) -> Edit:
    """Replace ``name`` in the run with a symlink to ``target`` (relative to the run's parent, or absolute)."""

    def edit(r: Path) -> None:
        p = r / name
        if p.exists() or p.is_symlink():
            remove(name)(r)
        dest = Path(target) if Path(target).is_absolute() else (r.parent / target).resolve()
        p.symlink_to(dest, target_is_directory=dest.is_dir())

    return edit


def weights(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Edit:
    """Rewrite model.safetensors with ``change(tensors)`` (a dict of numpy arrays)."""

    def edit(r: Path) -> None:
        from safetensors.numpy import load_file, save_file

        tensors = load_file(str(r / "model.safetensors"))
        save_file(change(tensors), str(r / "model.safetensors"), metadata={"format": "pt"})

    return edit


def drop_first_tensor(t: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in t.items() if k != sorted(t)[0]}


def reshape_biggest(t: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    big = max(t, key=lambda k: t[k].size)
    return {**t, big: np.zeros((t[big].shape[0] + 3,) + t[big].shape[1:], dtype=t[big].dtype)}


def all_nan(t: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    return {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in t.items()}


def grow_tokenizer(extra: str = "éàüßøæ☃") -> Edit:
    """Add tokens beyond the model's vocabulary to a char-level tokenizer.json (ids past the embedding)."""

    def edit(r: Path) -> None:
        tok = json.loads((r / "tokenizer.json").read_text())
        vocab = tok["model"]["vocab"]
        for ch in extra:
            vocab.setdefault(ch, len(vocab) + 100)
        (r / "tokenizer.json").write_text(json.dumps(tok))

    return edit


def outside(name: str, content: bytes | str | None) -> Setup:
    """A file (or, for None, a folder) outside the run, in the case folder: a symlink target."""
    return files(**{name: content})


def link_loop(d: Path) -> None:
    (d / "a.png").symlink_to(d / "b.png")
    (d / "b.png").symlink_to(d / "a.png")


def runs_loop(d: Path) -> None:
    """runs/loop -> runs: a folder of runs that holds itself."""
    (d / "runs" / "loop").symlink_to(d / "runs", target_is_directory=True)


def sparse(name: str, size: int) -> Setup:
    """A sparse file of ``size`` bytes (a huge file that costs no disk)."""

    def setup(d: Path, bases: dict[str, Path]) -> None:
        with open(d / name, "wb") as f:
            f.truncate(size)

    return setup
