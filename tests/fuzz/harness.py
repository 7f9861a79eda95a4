"""The fuzz harness: feed every reader of user data (``genlab.readers``) mutated seeds, and keep what breaks it.

The only acceptable outcomes of a reader are a result or a ``GenlabError`` whose message is one line. Anything else
is a crash: another exception (a traceback for the user), a hang (no answer within ``TIMEOUT`` seconds: SIGALRM
interrupts it), or an allocation past ``MEMORY`` bytes over what the process already holds (the soft address-space
limit is lowered for the call, so it fails as MemoryError or RuntimeError instead of exhausting the machine). A
native hang that SIGALRM cannot interrupt is ended by faulthandler (the process exits, printing where it was);
``make fuzz`` keeps the input of the example in flight in ``crashes/.inflight/`` and files it as a crash on the next
run.

``fuzz`` runs hypothesis over one reader: bounded (``make test``: derandomized, no example database, no
shrinking) or long (``make fuzz``: random seeds in rounds; a crash of a new kind is shrunk and saved as
``crashes/<reader>/<sha>.<name>`` beside a ``.crash`` note of its traceback's last lines, so it becomes a test).
"""

from __future__ import annotations

import contextlib
import faulthandler
import itertools
import os
import re
import resource
import shutil
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from genlab.errors import GenlabError

from .cases import FileCase, FolderCase, Seed, cases, crash_name, load_case, size

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds"
CRASHES = HERE / "crashes"
INFLIGHT = CRASHES / ".inflight"
NOTE = ".crash"  # the suffix of a crash's note
TIMEOUT = float(os.environ.get("GENLAB_FUZZ_TIMEOUT", "5"))  # seconds one reader call may take
MEMORY = int(os.environ.get("GENLAB_FUZZ_MEMORY_MB", "3072")) << 20  # bytes one call may add to the address space


class Hang(BaseException):
    """Raised by SIGALRM in a reader that ran past ``TIMEOUT`` (a BaseException: ``except Exception`` keeps it)."""


class Crash(Exception):
    """Makes hypothesis shrink a crash of a new kind (``make fuzz``)."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    kind: str = ""  # ok: "result" or "error"; else  # what went wrong and where, e.g. "MemoryError in images.py:images_from_folder"
    trace: str = ""  # the traceback's last lines


@dataclass
class Found:
    case: FileCase | FolderCase
    outcome: Outcome
    saved: Path | None = None


# -- one call, bounded ---------------------------------------------------------------------------------------------
def _vsize() -> int:
    """This process's address space in bytes (0 where /proc is missing)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@contextlib.contextmanager
def limits(seconds: float = TIMEOUT, memory: int = MEMORY) -> Iterator[None]:
    """At most ``seconds`` and ``memory`` more bytes of address space for the block; both restored after it."""
    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds:g} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    base = _vsize()
    if base:
        bound = base + memory
        resource.setrlimit(resource.RLIMIT_AS, (bound if hard == resource.RLIM_INFINITY else min(bound, hard), hard))
    previous = signal.signal(signal.SIGALRM, alarm)
    faulthandler.dump_traceback_later(seconds * 3 + 30, exit=True)  # the backstop for a hang in native code
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))  # an unprivileged process may raise it back to hard


def attempt(reader: Callable[[Path], Any], path: Path, seconds: float = TIMEOUT) -> Outcome:
    """Call ``reader(path)`` within the limits and judge what came out."""
    try:
        with limits(seconds):
            reader(path)
    except GenlabError as e:
        message = str(e)
        if len(message.splitlines()) == 1 and message.strip():
            return Outcome(True, "error")
        return Outcome(False, f"GenlabError not of one line{_where(e)}", _tail(e))
    except KeyboardInterrupt:
        raise
    except Hang as e:
        return Outcome(False, f"hang{_where(e)}", _tail(e))
    except BaseException as e:  # noqa: BLE001 -- every other exception is what the harness looks for
        return Outcome(False, f"{type(e).__name__}{_where(e)}", _tail(e))
    return Outcome(True, "result")


def _where(error: BaseException) -> str:
    """`` in file.py:function``: the innermost frame in genlab, stable across line edits. When the error has none
    (SIGALRM struck while an earlier error was unwinding), the error it interrupted is asked."""
    import genlab

    package = str(Path(genlab.__file__).resolve().parent) + os.sep
    cause: BaseException | None = error
    while cause is not None:
        ours = [f for f in traceback.extract_tb(cause.__traceback__) if f.filename.startswith(package)]
        if ours:
            return f" in {Path(ours[-1].filename).name}:{ours[-1].name}"
        cause = cause.__context__
    frames = traceback.extract_tb(error.__traceback__)
    return f" in {Path(frames[-1].filename).name}:{frames[-1].name}" if frames else ""


def _tail(error: BaseException, n: int = 12) -> str:
    lines = scrub("".join(traceback.format_exception(error))).rstrip().splitlines()
    return "\n".join(line[:300] for line in lines[-n:])


def scrub(text: str) -> str:
    """``text`` without this machine's paths (a note is kept in the repository): genlab's files relative to its
    source folder, libraries' to their install folder, a case's to its own folder."""
    import sysconfig

    import genlab

    roots = {str(Path(genlab.__file__).resolve().parent.parent): "", sysconfig.get_paths()["purelib"]: "site-packages",
             sysconfig.get_paths()["stdlib"]: "python", str(HERE.parent.parent): ""}
    for root, name in sorted(roots.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(root + os.sep, f"{name}{os.sep}" if name else "")
    return re.sub(r"[^\s'\"]*/case-\d+/", "", text)  # the scratch folder of the case


# -- runs ----------------------------------------------------------------------------------------------------------
def warm_up(reader: Callable[[Path], Any], seeds: list[Seed], where: Path) -> None:
    """Import every family and modality, and read each seed once, outside the limits: a first import (transformers,
    diffusers: seconds) is not a hang of the example that happens to trigger it."""
    from genlab import registry

    for name in registry.FAMILIES:
        registry.get_family(name)
    for name in registry.MODALITIES:
        registry.get_modality(name)
    by_name = {s.name: s for s in seeds}
    for seed in seeds:
        case = FolderCase(seed.name, ()) if seed.files is not None else FileCase(seed.name, seed.data)
        with contextlib.suppress(GenlabError):
            reader(case.materialize(where, by_name))
    shutil.rmtree(where, ignore_errors=True)


def seed_names(seeds: dict[str, list[Seed]]) -> tuple[str, ...]:
    """Every file name any seed holds (and a few more): what a folder case may add."""
    from genlab import runfiles

    names = {n for group in seeds.values() for s in group for n in (s.files or {s.name: b""})}
    names |= {v for k, v in vars(runfiles).items() if k.isupper() and isinstance(v, str)}
    names |= {"extra.png", "sub/extra.jpg", "sub/deeper/x.md", "lone.c2pa", ".hidden.txt", "ünï cøde.txt"}
    return tuple(sorted(names))


def fuzz(reader: Callable[[Path], Any], name: str, seeds: list[Seed], names: tuple[str, ...], scratch: Path, *,
         examples: int, seed: int | None = None, save: bool = False, seconds: float = TIMEOUT,
         tally: Counter | None = None) -> dict[str, Found]:
    """Run ``examples`` mutated cases through ``reader``; the smallest case of each kind of crash, by kind.

    ``seed`` None: derandomized, no shrinking (the bounded run). Else a random run from that seed that shrinks a
    crash of a kind not yet found (nor saved in ``crashes/<name>/`` when ``save``) and, with ``save``, files it in
    ``crashes/`` (the input of the example in flight is kept until it ends). ``tally`` counts the outcomes: results,
    errors, crashes (how deep the mutations get).
    """
    import torch

    by_name = {s.name: s for s in seeds}
    known = known_kinds(name) if save else set()
    found: dict[str, Found] = {}
    counter = itertools.count()

    @settings(max_examples=examples, derandomize=seed is None, database=None, deadline=None, print_blob=False,
              phases=(Phase.generate,) if seed is None else (Phase.generate, Phase.shrink),
              suppress_health_check=list(HealthCheck))
    @given(cases(seeds, names))
    def check(case: FileCase | FolderCase) -> None:
        where = scratch / f"case-{next(counter)}"
        if save:
            _inflight(name, case)
        try:
            outcome = attempt(reader, case.materialize(where, by_name), seconds)
        finally:
            shutil.rmtree(where, ignore_errors=True)
        if tally is not None:
            tally[outcome.kind if outcome.ok else "crash"] += 1
        if outcome.ok:
            return
        first = outcome.kind not in found
        if first or size(case) < size(found[outcome.kind].case):
            found[outcome.kind] = Found(case, outcome)
        if seed is not None and outcome.kind not in known and not outcome.kind.startswith("hang"):
            raise Crash(outcome.kind)  # shrink it (not a hang: each try would take the whole time limit)

    if seed is not None:
        check = hypothesis_seed(seed)(check)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        warm_up(reader, seeds, scratch / "warm-up")
        check()
    except Crash:
        pass  # the smallest case is in ``found``
    except Exception as e:  # noqa: BLE001 -- a long run goes on past hypothesis's own complaints (a flaky crash:
        if seed is None:  # a hang that did not repeat); a bounded run reports everything
            raise
        print(f"[fuzz {name}] hypothesis stopped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(INFLIGHT / name, ignore_errors=True)
        with contextlib.suppress(OSError):
            INFLIGHT.rmdir()  # when no other reader is in flight
    if save:
        for kind, f in found.items():
            if kind not in known:
                f.saved = save_crash(name, f.case, f.outcome)
    return found


def fuzz_long(reader: Callable[[Path], Any], name: str, seeds: list[Seed], names: tuple[str, ...], scratch: Path, *,
              examples: int, seconds: float, seed: int) -> dict[str, Found]:
    """``make fuzz``: rounds of 200 examples from seeds ``seed``, ``seed + 1``, ... until ``examples`` have run or
    ``seconds`` have passed; each new kind of crash is saved."""
    found: dict[str, Found] = {}
    tally: Counter = Counter()
    start = time.monotonic()
    for round_seed in itertools.count(seed):
        done = sum(tally.values())
        if done >= examples or time.monotonic() - start >= seconds:
            break
        n = min(200, examples - done)
        for kind, f in fuzz(reader, name, seeds, names, scratch, examples=n, seed=round_seed, save=True,
                            tally=tally).items():
            found.setdefault(kind, f)
        print(f"[fuzz {name}] seed {round_seed}: {dict(tally)}; {len(found)} kind(s) of crash so far")
    return found


# -- crash files ---------------------------------------------------------------------------------------------------
def crash_files(folder: Path = CRASHES) -> list[Path]:
    """Every saved crash input (not its note), as ``<reader>/<file>`` under ``folder``."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*/*") if p.is_file() and not p.name.endswith(NOTE)
                  and not p.parent.name.startswith("."))


def known_kinds(name: str) -> set[str]:
    """The kinds of crash already saved for reader ``name`` (each note's first line)."""
    notes = (CRASHES / name).glob(f"*{NOTE}") if (CRASHES / name).is_dir() else []
    return {p.read_text(encoding="utf-8").splitlines()[0].removeprefix("kind: ") for p in notes}


def save_crash(name: str, case: FileCase | FolderCase, outcome: Outcome, folder: Path = CRASHES) -> Path:
    """Write ``case`` as ``folder/<name>/<sha>.<...>`` and its note ``...crash`` (kind, then traceback lines)."""
    path = folder / name / crash_name(case)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(case.dump()[1])
    note = path.with_name(path.name.split(".", 1)[0] + NOTE)
    note.write_text(f"kind: {outcome.kind}\nreader: {name}\n\n{outcome.trace}\n", encoding="utf-8")
    return path


def _inflight(name: str, case: FileCase | FolderCase) -> None:
    """Keep the input of the example in flight, in case the process dies in it (``adopt_inflight`` files it)."""
    folder = INFLIGHT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / crash_name(case)).write_bytes(case.dump()[1])


def adopt_inflight() -> list[Path]:
    """File the inputs a killed ``make fuzz`` left in flight as crashes (the process died in them)."""
    adopted = []
    for path in sorted(INFLIGHT.glob("*/*")) if INFLIGHT.is_dir() else []:
        reader = path.parent.name
        case = load_case(path)
        outcome = Outcome(False, "process killed (a hang or crash in native code)",
                          "the process ended during this input; faulthandler printed where, on standard error")
        adopted.append(save_crash(reader, case, outcome))
    shutil.rmtree(INFLIGHT, ignore_errors=True)
    return adopted


def report(name: str, found: dict[str, Found]) -> str:
    """One paragraph per kind of crash: what, where its input is, the traceback's last lines."""
    parts = [f"{len(found)} kind(s) of crash in reader {name}:"]
    for kind, f in found.items():
        where = f"saved as {f.saved}" if f.saved else f"input: {f.case!r}"[:400]
        parts.append(f"- {kind} ({where})\n{f.outcome.trace}")
    return "\n".join(parts)
