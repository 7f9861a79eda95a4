"""Progress of long work (evaluations, audits, sampling many outputs), as Rich bars on standard error.

Library code marks its long loops with ``task``; nothing is drawn unless the caller asked for it with ``shown``
(the command line does, for every verb). Tasks opened inside one another share one display, each on its own line;
training draws its own bar and turns these off while it runs.

::

    with task("feature network", total=8) as advance:
        for epoch in range(8):
            ...
            advance()
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

_shown: ContextVar[bool] = ContextVar("genlab_progress_shown", default=False)
_display: ContextVar[Any] = ContextVar("genlab_progress_display", default=None)
LOGGED = "logged"  # the display of a task that writes one line to a log when it ends


@contextlib.contextmanager
def shown(on: bool = True) -> Iterator[None]:
    """Draw (or, with ``on=False``, never draw) the tasks opened inside the block."""
    token = _shown.set(on)
    try:
        yield
    finally:
        _shown.reset(token)


@contextlib.contextmanager
def task(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A bar with rate and ETA for ``total`` units of work; yields ``advance(k=1)``."""
    if not _shown.get():
        yield _nothing
        return
    display = _display.get()
    if display == LOGGED:  # inside a task of a log: only the outermost one is written
        yield _nothing
        return
    if display is not None:  # inside another task: a line of the same display
        yield from _line(display, description, total)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    console = Console(stderr=True, markup=False)  # a description may hold a path: shown as it is
    if not console.is_terminal:  # a log (a pipe, a file): one line when the work is done, no redrawing
        token = _display.set(LOGGED)
        try:
            yield from _logged(console, description, total)
        finally:
            _display.reset(token)
        return
    with Progress(*columns, console=console, transient=True) as display:
        token = _display.set(display)
        try:
            yield from _line(display, description, total)
        finally:
            _display.reset(token)


def _line(display: Any, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    line = display.add_task(description, total=total)
    try:
        yield lambda k=1: display.advance(line, k)
    finally:
        display.remove_task(line)


def _logged(console: Any, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    import time

    done, t0 = [0], time.perf_counter()

    def advance(k: int = 1) -> None:
        done[0] += k

    try:
        yield advance
    finally:
        count = f"{done[0]}/{total} " if total is not None else f"{done[0]} " if done[0] else ""  # none for a step
        console.print(f"{description}: {count}in {time.perf_counter() - t0:.1f} s", markup=False, highlight=False)


def _nothing(k: int = 1) -> None:
    return None
