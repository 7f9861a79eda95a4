"""Write the fuzz seeds (``tests/fuzz/seeds/<reader>/``): small, real, valid inputs of every reader, made with genlab.

Run it from the repository root when a reader's input format changes: ``.venv/bin/python tests/fuzz/make_seeds.py``.
It trains two tiny runs in a scratch folder (a gpt on 20,000 characters of Hamlet, a ppca on 25x25 faces) under a
throw-away signing identity, and keeps only what they write that a user could hand back to genlab: signed outputs
and their sidecars, a run's config. Nothing of this machine (paths, user or host names) goes into a seed: the
identity is named ``genlab fuzz seeds`` and datasets are given by relative name.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

SEEDS = Path(__file__).resolve().parent / "seeds"
TINY_GPT = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=16", "train.batch_size=4",
            "train.max_steps=3", "train.eval_every=0", "train.eval_batches=1", "train.warmup_steps=1",
            "train.precision=fp32", "train.threads=1", "release.track_energy=false"]
PAIRS = [
    ("def add(a, b):\n    return a + b", "Return the sum of a and b."),
    ("def square(x):\n    return x * x", "Return x squared."),
    ("def is_even(n):\n    return n % 2 == 0", "Whether n is even."),
    ("def first(items):\n    return items[0]", "The first item."),
    ("def last(items):\n    return items[-1]", "The last item."),
    ("def greet(name):\n    return f'hello {name}'", "Greet someone by name."),
    ("def clamp(x, lo, hi):\n    return max(lo, min(x, hi))", "Clamp x into [lo, hi]."),
    ("def mean(xs):\n    return sum(xs) / len(xs)", "The arithmetic mean of xs."),
    ("def words(text):\n    return text.split()", "Split text into words."),
    ("def shout(text):\n    return text.upper() + '!'", "Upper-case text, with feeling."),
    ("def pairs(xs):\n    return list(zip(xs, xs[1:]))", "Neighbouring pairs of xs."),
    ("def nonempty(lines):\n    return [ln for ln in lines if ln.strip()]", "Lines with text, \"quoted\", kept."),
]
CODE = '''"""A small module to complete."""

import math


def area(radius: float) -> float:
    """The area of a circle."""
    return math.pi * radius ** 2


class Shape:
    def __init__(self, sides: int) -> None:
        self.sides = sides

    def describe(self):
        if self.sides > 2:
            return f"{self.sides} sides"
'''


def write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, fmt)
    return buf.getvalue()


def pictures() -> dict[str, bytes]:
    """Tiny images of every mode a user's folder may hold (grey, RGB, RGBA, palette, 16-bit, JPEG)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    buf = io.BytesIO()
    palette.save(buf, "PNG")
    return {"grey.png": png(grey), "rgb.png": png(rgb), "rgba.png": png(np.dstack([rgb, rgb[..., :1]])),
            "palette.png": buf.getvalue(), "grey16.png": png(grey.astype(np.uint16) * 257),
            "photo.jpg": png(rgb, fmt="JPEG")}


def settings_lines(family: str, **train: object) -> str:
    """``--set`` lines for every [model] field of ``family`` at its default, and some [train] ones."""
    import dataclasses

    from genlab import registry

    cls = registry.get_family(family)
    lines = [f"family={family}", f"# every [model] setting of {family} at its default"]
    for f in dataclasses.fields(cls.Config):
        value = getattr(cls.Config(), f.name)
        if value is not None:
            lines.append(f"model.{f.name}={json.dumps(list(value) if isinstance(value, tuple) else value)}")
    lines += [f"train.{k}={json.dumps(v)}" for k, v in train.items()]
    return "\n".join(lines) + "\n"


ABC = """X:1
T:A small tune
M:3/4
L:1/8
K:G
D2 | G2 B2 d2 | c2 A2 F2 | G4 :|
"""


def music_seeds() -> None:
    """MIDI files (a chorale from music21's corpus, two tracks with drums and a tempo change) and an ABC tune."""
    import symusic
    from music21 import corpus

    chorale = corpus.parse("bach/bwv269").measures(1, 3)
    buf = io.BytesIO()
    from music21.midi.translate import music21ObjectToMidiFile

    buf.write(music21ObjectToMidiFile(chorale).writestr())
    score = symusic.Score(96)
    score.tempos.extend([symusic.Tempo(0, 100), symusic.Tempo(384, 140)])
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    melody, drums = symusic.Track("flute", 73, False), symusic.Track("drums", 0, True)
    melody.notes.extend(symusic.Note(i * 96, 96, 60 + (i * 5) % 12, 80) for i in range(12))
    drums.notes.extend(symusic.Note(i * 48, 24, 36 + i % 3, 100) for i in range(24))
    score.tracks.extend([melody, drums])
    for folder in (SEEDS / "midi-file", SEEDS / "modality-music/two"):  # training needs two pieces (one held out)
        write(folder / "chorale.mid", buf.getvalue())
        write(folder / "two-tracks.mid", score.dumps_midi())
    write(SEEDS / "modality-music/mixed/a.mid", buf.getvalue())
    write(SEEDS / "modality-music/mixed/b.abc", ABC)


def video_seeds() -> None:
    """Small clips: a dot bouncing in 16x16 frames (20 frames, the default clip length), as GIF, MP4 and frames."""
    from genlab.sample.video import gif_bytes, mp4_bytes

    def clip(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = np.zeros((frames, channels, 16, 16), dtype=np.uint8)
        y0, x0 = rng.integers(0, 12, 2)
        for f in range(frames):
            y, z = abs((y0 + f) % 24 - 12), abs((x0 + 2 * f) % 24 - 12)  # bounces between 0 and 12
            x[f, :, y : y + 4, z : z + 4] = rng.integers(128, 256, channels)[:, None, None]
        return x

    write(SEEDS / "clip/bouncing.gif", gif_bytes(clip(20)))
    write(SEEDS / "clip/colour.gif", gif_bytes(clip(6, 3, 1)))
    write(SEEDS / "clip/short.mp4", mp4_bytes(clip(8, 3, 2)))
    for i, frame in enumerate(clip(5, 1, 3)):
        write(SEEDS / f"clip/frames/{i:04d}.png", png(frame[0]))
    for i in range(3):  # training holds one clip out
        write(SEEDS / f"modality-video/gifs/clip-{i}.gif", gif_bytes(clip(20, 1, 10 + i)))
    write(SEEDS / "modality-video/mixed/a.gif", gif_bytes(clip(20, 1, 20)))
    write(SEEDS / "modality-video/mixed/b.mp4", mp4_bytes(clip(20, 3, 21)))
    write(SEEDS / "modality-video/mixed/c.gif", gif_bytes(clip(24, 3, 22)))


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="genlab-seeds-"))
    os.environ["GENLAB_HOME"] = str(scratch / "home")
    os.chdir(scratch)  # datasets are named relatively: no path of this machine in a manifest
    import torch

    import genlab
    from genlab.data.text import _shakespeare
    from genlab.responsible.keys import init_identity

    torch.set_num_threads(1)
    identity = init_identity(name="genlab fuzz seeds")
    shutil.rmtree(SEEDS, ignore_errors=True)
    hamlet = next(p for p in _shakespeare().files if p.name.startswith("hamlet")).read_text(encoding="utf-8")
    start = hamlet.index("Who's there?")
    Path("hamlet.txt").write_text(hamlet[start:start + 20_000], encoding="utf-8")

    # a tiny gpt run: a signed text and its sidecar, the run's own config.toml
    gpt = genlab.train("gpt", "hamlet.txt", out="gpt", overrides=TINY_GPT)
    gpt.sample(1, seed=0, prompt="HORATIO.", max_new_tokens=60).save("texts")
    write(SEEDS / "c2pa/signed-txt/sample-0000.txt", Path("texts/sample-0000.txt").read_bytes())
    write(SEEDS / "c2pa/signed-txt/sample-0000.txt.c2pa", Path("texts/sample-0000.txt.c2pa").read_bytes())
    write(SEEDS / "text-file/sample-0000.txt", Path("texts/sample-0000.txt").read_bytes())
    write(SEEDS / "config-file/run-config.toml", Path("gpt/config.toml").read_bytes())

    # a tiny ppca run on 25x25 faces: a signed, watermarked PNG (big enough to carry the image watermark)
    faces = genlab.train("ppca", "faces", out="ppca", overrides=["model.components=4", "release.track_energy=false"])
    faces.sample(1, seed=0).save("images")
    write(SEEDS / "c2pa/signed-png/sample-0000.png", Path("images/sample-0000.png").read_bytes())
    write(SEEDS / "image-file/signed-face.png", Path("images/sample-0000.png").read_bytes())
    write(SEEDS / "c2pa/unsigned-png/plain.png", pictures()["grey.png"])

    # single images and image folders (flat; two classes as sub-folders, one JPEG among them)
    pics = pictures()
    for name, data in pics.items():
        write(SEEDS / "image-file" / name, data)
    rng = np.random.default_rng(1)
    for i, shape in enumerate([(8, 8), (6, 10), (12, 9)]):
        write(SEEDS / "modality-image/flat" / f"{i}.png", png(rng.integers(0, 256, shape, dtype=np.uint8)))
    for label in ("cats", "dogs"):
        for i in range(2):
            image = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
            write(SEEDS / "modality-image/labelled" / label / f"{i}.{'jpg' if i else 'png'}",
                  png(image, fmt="JPEG" if i else "PNG"))

    # text: a .txt, .md and .py file, a folder of them, a folder of twenty
    text = Path("hamlet.txt").read_text(encoding="utf-8")
    write(SEEDS / "modality-text/hamlet.txt", text[:2500])
    write(SEEDS / "modality-text/notes.md", "# Notes\n\nSome *markdown* with `code` and a list:\n\n- one\n- two\n")
    write(SEEDS / "modality-text/corpus/act1.txt", text[2500:4000])
    write(SEEDS / "modality-text/corpus/code.py", CODE)
    for i in range(20):  # enough documents to be split by document, not inside each
        write(SEEDS / f"modality-text/twenty/scene-{i:02d}.txt", text[4000 + 80 * i : 4080 + 80 * i])
    write(SEEDS / "text-file/hello.txt", "hello, world\n")
    write(SEEDS / "text-file/unicode.txt", "naïve café — ☃ 日本語 🙂\n\ttabs and\r\nwindows lines\n")
    write(SEEDS / "code-file/module.py", CODE)
    write(SEEDS / "code-file/open-block.py", CODE + "\n\ndef unfinished(values):\n    total = (1 +\n")

    # pairs: .jsonl and .csv with source and target columns
    jsonl = "".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in PAIRS)
    write(SEEDS / "modality-pairs/pairs.jsonl", jsonl)
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["source", "target"])
    writer.writerows(PAIRS)
    write(SEEDS / "modality-pairs/pairs.csv", buf.getvalue())

    # configuration: shipped configs, and --set lines
    from genlab.settings import shipped_configs

    for name, family in (("demo", "gpt"), ("vae-mnist", "vae"), ("diffusion-mnist", "diffusion"), ("gan-mnist", "gan")):
        # a --config file says no family (the command line does): written first, as a run's config.toml has it
        write(SEEDS / "config-file" / f"{name}.toml", f'family = "{family}"\n' + shipped_configs()[name].read_text())
    write(SEEDS / "set-values/tiny-gpt.set", "\n".join(TINY_GPT) + "\n")
    write(SEEDS / "set-values/gpt.set", settings_lines("gpt", max_steps=10, lr=0.001))
    write(SEEDS / "set-values/vae.set", settings_lines("vae", batch_size=8))
    write(SEEDS / "set-values/t5.set", settings_lines("t5", grad_clip=0.5))
    write(SEEDS / "set-values/diffusion.set", settings_lines("diffusion", warmup_steps=0))

    # music: MIDI files and a folder with an ABC tune
    music_seeds()

    # trusted roots: someone else's root certificate, shared to verify their files
    write(SEEDS / "trusted-roots/one-root/trusted/seeds.pem", identity.root_pem)
    video_seeds()

    ours = [str(scratch), str(Path.home()), os.uname().nodename]
    ours = [s.encode() for s in ours if len(s) >= 6]  # a short host name would match random bytes
    leaked = [p for p in SEEDS.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in ours)]
    shutil.rmtree(scratch, ignore_errors=True)
    if leaked:
        sys.exit(f"seeds hold a path or name of this machine: {', '.join(map(str, leaked))}")
    total = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
    print(f"{sum(1 for p in SEEDS.rglob('*') if p.is_file())} seed files, {total:,} bytes, in {SEEDS}")


if __name__ == "__main__":
    main()
