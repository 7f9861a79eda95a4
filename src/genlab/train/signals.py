"""Stopping training exactly: Ctrl-C (SIGINT) and SIGTERM (what ``timeout``, ``kill`` and ``docker stop`` send).

Inside ``StopSignals`` the first signal only asks the loop to stop: the step under way finishes, the loop writes
its checkpoint at that step boundary and raises ``Interrupted``, so a resumed run sees exactly the batches an
uninterrupted one would. A second signal stops at once (``KeyboardInterrupt`` where the code is; no checkpoint is
written mid-step, the last one stays). Outside training, ``terminate_as_interrupt`` makes SIGTERM raise
``Interrupted`` too, so clean-up runs as it does for Ctrl-C. Handlers are only installed from the main thread.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training (or a command) stopped by a signal; ``signum`` says which, ``step`` the checkpoint written, if any."""

    def __init__(self, signum: int = signal.SIGINT, step: int | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.step = signum, step

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM


class StopSignals:
    """``with StopSignals() as stop:`` ... ``if stop.signum: checkpoint, then raise stop.interrupted(step)``."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # the second signal: stop now
            raise Interrupted(signum)
        self.signum = signum

    def interrupted(self, step: int | None) -> Interrupted:
        return Interrupted(self.signum or signal.SIGINT, step)


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise ``Interrupted`` in the main thread (as Ctrl-C raises KeyboardInterrupt)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Interrupted(signum)
