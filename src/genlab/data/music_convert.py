"""Scores to MIDI files, once: music21's corpus and the user's MusicXML, ABC and Humdrum files, cached.

music21 parses a score in about 0.1 s (a chorale) to 1 s (an ABC book of 200 tunes), so a corpus takes minutes from
cold: conversion runs in worker processes (one per core), shows a progress bar, and each score's MIDI files are kept
under ``$GENLAB_CACHE/music/music21-<version>/<key>/`` with a ``done.json`` written last, so a conversion that was
stopped resumes where it was and a finished one is never redone. A user's file is keyed by its content's SHA-256.

Two documented music21 failures are mended for the built-in corpus only (a user's file that fails is refused):
malformed repeat barlines that cannot be expanded (bwv277) lose their repeat signs, and ABC tunes whose measures
share one TimeSignature object (911 Essen tunes) get a copy per measure.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes, cache_dir
from genlab.progress import task

DONE = "done.json"  # written last in a score's cache folder: {"files": [...], "errors": [...]}
MAX_WORKERS = 8


def music21_version() -> str:
    from importlib.metadata import version

    return version("music21")


def cache_root() -> Path:
    return cache_dir() / "music" / f"music21-{music21_version()}"


def file_key(path: Path) -> str:
    """The cache key of a user's score file: its content's SHA-256 (an edited file is converted again)."""
    return "files/" + hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def convert(jobs: list[tuple[str, str, str]], *, what: str, mend: bool) -> list[list[Path]]:
    """The MIDI files of each job ``(key, kind, ref)``, in job order: kind "corpus" parses music21's corpus path
    ``ref``, "file" the user's file ``ref``; a score file holding several tunes (an ABC book) gives one file each.
    ``mend``: apply the corpus fixes and skip what still fails; else a failure is an error."""
    root = cache_root()
    pending = [job for job in jobs if not (root / job[0] / DONE).is_file()]
    if pending:
        workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1, len(pending)))
        with task(f"converting {len(pending):,} {what} to MIDI (once: cached in {root})", total=len(pending)) as step:
            if workers == 1:
                for key, kind, ref in pending:
                    _finish(key, ref, convert_one(kind, ref, str(root / key), mend), mend)
                    step()
            else:
                with ProcessPoolExecutor(workers, mp_context=_context()) as pool:
                    futures = {pool.submit(convert_one, kind, ref, str(root / key), mend): (key, ref)
                               for key, kind, ref in pending}
                    for future in as_completed(futures):
                        key, ref = futures[future]
                        _finish(key, ref, future.result(), mend)
                        step()
    return [[root / key / name for name in json.loads((root / key / DONE).read_text(encoding="utf-8"))["files"]]
            for key, _, _ in jobs]


def _context():
    """Forked workers where the platform has fork (a user's script needs no ``__main__`` guard; the workers only
    run music21, never torch), else spawned ones."""
    import multiprocessing

    return get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _finish(key: str, ref: str, result: tuple[list[str], list[str]], mend: bool) -> None:
    files, errors = result
    if errors and not mend:
        raise GenlabError(f"{ref}: cannot convert it to MIDI ({errors[0]})")
    if not files and not mend:
        raise GenlabError(f"{ref}: holds no score with notes")
    folder = cache_root() / key
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / DONE, json.dumps({"files": files, "errors": errors}, indent=1).encode())


def convert_one(kind: str, ref: str, out: str, mend: bool) -> tuple[list[str], list[str]]:
    """Worker: parse one score file (or corpus entry) and write each score in it as ``out/NNNN.mid``."""
    import warnings

    from music21 import converter, corpus, stream

    warnings.filterwarnings("ignore")  # music21 warns about every unusual ABC header; errors still raise
    try:
        parsed = corpus.parse(ref) if kind == "corpus" else converter.parse(ref)
    except Exception as e:  # music21 raises many unrelated types for a malformed file
        return [], [_short(e)]
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files, errors = [], []
    for i, score in enumerate(scores):
        name = f"{i:04d}.mid"
        try:
            if not score.flatten().notes:
                continue
            atomic_write_bytes(folder / name, _midi(score, mend))
            files.append(name)
        except Exception as e:
            errors.append(f"score {i + 1}: {_short(e)}")
    return files, errors


def _midi(score, mend: bool) -> bytes:
    """The score as MIDI bytes (repeats expanded, as music21 writes them); ``mend``: fix the two known failures."""
    from music21 import repeat
    from music21.midi.translate import music21ObjectToMidiFile

    for attempt in range(3):
        try:
            return music21ObjectToMidiFile(score).writestr()
        except Exception as e:  # noqa: PERF203 (a retry after a fix)
            if not mend or attempt == 2:
                raise
            if isinstance(e, repeat.ExpanderException):
                _drop_repeats(score)
            elif "TimeSignature" in str(e):
                _copy_shared_time_signatures(score)
            else:
                raise
    raise AssertionError("unreachable")


def _drop_repeats(score) -> None:
    from music21 import bar, repeat, stream

    for m in score.recurse().getElementsByClass(stream.Measure):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(m, side), bar.Repeat):
                setattr(m, side, bar.Barline("regular"))
    for r in list(score.recurse().getElementsByClass(repeat.RepeatExpression)):
        r.activeSite.remove(r)


def _copy_shared_time_signatures(score) -> None:
    """Give every measure its own TimeSignature (music21's ABC reader shares one object across measures)."""
    from music21 import stream

    seen: set[int] = set()
    for m in score.recurse().getElementsByClass(stream.Measure):
        ts = m.timeSignature
        if ts is not None:
            if id(ts) in seen:
                m.timeSignature = copy.deepcopy(ts)
            seen.add(id(m.timeSignature))


def _short(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:160] + ("..." if len(text) > 160 else "")
