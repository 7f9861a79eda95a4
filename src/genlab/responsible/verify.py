"""``genlab verify FILE``: the signature and the watermark of one file, checked together.

The C2PA manifest says who signed the file and which run made it; the watermark is in the content itself and
survives what strips a manifest (a screenshot, a re-encode, a copy-paste). Each is checked on its own and then
against the other: an image whose watermark payload is not the run id in its manifest is reported as such.

Which watermark to look for follows from the file type: each modality names its scheme, each scheme the file types
its content can be read from. A keyed scheme (text) needs the run that holds the key: ``run``, or the run under
``runs`` whose id the manifest names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab import registry
from genlab.errors import GenlabError
from genlab.responsible.marks import WatermarkVerdict


@dataclass(frozen=True)
class Verdict:
    path: Path
    provenance: Any  # provenance.Verification
    watermark: WatermarkVerdict | None  # None for formats with no watermark (CSV, MIDI, ...)


def verify(path: str | Path, *, runs: str | Path | None = "runs", run: str | Path | None = None) -> Verdict:
    """Check ``path``'s C2PA manifest (embedded or sidecar) and look for a genlab watermark in its content."""
    from genlab.responsible.provenance import verify_file

    path = Path(path)
    if path.is_dir():
        raise GenlabError(f"{path} is a folder; give the files in it (e.g. {path}/*.png)")
    if not path.is_file():
        raise GenlabError(f"{path}: no such file")
    prov = verify_file(path)
    scheme = scheme_for(path.suffix.lower())
    mark = None
    if scheme is not None:
        try:
            mark = _look(scheme, path, prov.generation or {}, runs=runs, run=run)
        except GenlabError as e:  # the content cannot be read (a truncated image) or its run not opened: say so
            mark = WatermarkVerdict(scheme.scheme, False, note=str(e))
    return Verdict(path, prov, mark)


def scheme_for(suffix: str) -> type | None:
    """The watermark scheme whose content a file of this type holds (the first modality naming one that reads it)."""
    for name in registry.MODALITIES:
        marks = registry.get_modality(name).Marks
        if marks is not None and suffix in marks.suffixes:
            return marks
    return None


def _look(scheme: type, path: Path, generation: dict[str, Any], *, runs, run) -> WatermarkVerdict:
    if not scheme.keyed:
        return scheme.verdict(scheme.read(path), generation)
    from genlab.runs import Run

    run_dir = Path(run) if run is not None else find_run(generation.get("run_id"), runs)
    if run_dir is None:
        why = "the manifest names no run" if not generation.get("run_id") else \
            f"run {generation['run_id'][:8]}... is not under {runs}"
        return WatermarkVerdict(scheme.scheme, False, note=f"this watermark is keyed per run and {why}: pass --run RUN")
    r = Run.load(run_dir)
    marks = r.release.marks
    if marks is None or type(marks) is not scheme:
        raise GenlabError(f"{run_dir} is a {r.config.family} run, whose outputs do not carry this file's watermark")
    verdict = marks.verdict(scheme.read(path), generation)
    return WatermarkVerdict(verdict.scheme, verdict.checked, verdict.found, {**verdict.detail, "run": str(run_dir)},
                            verdict.matches_manifest, verdict.note)


def find_run(run_id: str | None, runs: str | Path | None) -> Path | None:
    """The run folder under ``runs`` whose ``release.json`` holds ``run_id``."""
    import json

    from genlab.runfiles import RELEASE_FILE

    if not run_id or runs is None or not Path(runs).is_dir():
        return None
    for f in sorted(Path(runs).rglob(RELEASE_FILE)):
        try:
            if json.loads(f.read_text()).get("run_id") == run_id:
                return f.parent
        except (OSError, ValueError):
            continue
    return None
