"""``genlab verify FILE``: the signature and the watermark of one file, checked together.

The C2PA manifest says who signed the file and which run made it; the watermark is in the content itself and
survives what strips a manifest (a screenshot, a re-encode, a copy-paste). Each is checked on its own and then
against the other: an image whose watermark payload is not the run id in its manifest is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
TEXT_SUFFIXES = {".txt", ".md", ".py"}


@dataclass(frozen=True)
class WatermarkVerdict:
    kind: str  # "image" or "text"
    checked: bool  # False when it could not be looked for (e.g. a text whose run is not here)
    found: bool = False
    detail: dict[str, Any] = field(default_factory=dict)  # payload / z-score / p-value ...
    matches_manifest: bool | None = None  # the mark names the run the manifest names (None: nothing to compare)
    note: str = ""


@dataclass(frozen=True)
class Verdict:
    path: Path
    provenance: Any  # provenance.Verification
    watermark: WatermarkVerdict | None  # None for formats with no watermark (CSV, MIDI, ...)


def verify(path: str | Path, *, runs: str | Path | None = "runs", run: str | Path | None = None) -> Verdict:
    """Check ``path``'s C2PA manifest (embedded or sidecar) and look for a genlab watermark in its content.

    Text watermarks are keyed per run: the run is ``run`` if given, else the one under ``runs`` whose id the
    manifest names.
    """
    from genlab.responsible.provenance import verify_file

    path = Path(path)
    if path.is_dir():
        raise GenlabError(f"{path} is a folder; give the files in it (e.g. {path}/*.png)")
    if not path.is_file():
        raise GenlabError(f"{path}: no such file")
    prov = verify_file(path)
    generation = prov.generation or {}
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        mark = _image_mark(path, generation)
    elif suffix in TEXT_SUFFIXES:
        mark = _text_mark(path, generation, runs=runs, run=run)
    else:
        mark = None
    return Verdict(path, prov, mark)


def _image_mark(path: Path, generation: dict[str, Any]) -> WatermarkVerdict:
    from genlab.responsible.release import ImageMarks
    from genlab.sample.images import load_image

    found = ImageMarks.detect(load_image(path))
    detail = {"payload": f"{found.payload:08x}" if found.payload is not None else None, "score": found.score,
              "p_value": found.p_value, "bit_confidence": found.bit_confidence}
    matches = None
    if found.found and generation.get("run_id"):
        matches = generation["run_id"][:8] == f"{found.payload:08x}"
    return WatermarkVerdict("image", True, found.found, detail, matches, found.reason)


def _text_mark(path: Path, generation: dict[str, Any], *, runs, run) -> WatermarkVerdict:
    from genlab.runs import Run

    run_dir = Path(run) if run is not None else find_run(generation.get("run_id"), runs)
    if run_dir is None:
        why = "the manifest names no run" if not generation.get("run_id") else \
            f"run {generation['run_id'][:8]}... is not under {runs}"
        return WatermarkVerdict("text", False, note=f"text watermarks are keyed per run and {why}: pass --run RUN")
    r = Run.load(run_dir)
    if not r.release.writes_text:
        raise GenlabError(f"{run_dir} is a {r.model.modality} run; a text file needs a text run")
    text = read_text(path)
    det = r.detect(text)
    s = det.document
    detail = {"z": s.z, "p_value": s.p_value, "tokens_scored": s.tokens_scored, "green_fraction": s.green_fraction,
              "run": str(run_dir)}
    matches = None
    if generation.get("run_id"):
        matches = r.release.identity.run_id == generation["run_id"]
    return WatermarkVerdict("text", True, s.watermarked, detail, matches)


def find_run(run_id: str | None, runs: str | Path | None) -> Path | None:
    """The run folder under ``runs`` whose ``release.json`` holds ``run_id``."""
    import json

    from genlab.responsible.release import RELEASE_FILE

    if not run_id or runs is None or not Path(runs).is_dir():
        return None
    for f in sorted(Path(runs).rglob(RELEASE_FILE)):
        try:
            if json.loads(f.read_text()).get("run_id") == run_id:
                return f.parent
        except (OSError, ValueError):
            continue
    return None


def read_text(path: Path) -> str:
    """A text file to test for the watermark (empty, binary or non-UTF-8 files are refused, one line each)."""
    from genlab.data.text import read_text_file

    return read_text_file(Path(path))
