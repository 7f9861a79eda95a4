"""One process trains in a run folder at a time: a lock held while it does, and the leftovers of killed ones.

``RunLock`` takes an exclusive ``flock`` on ``RUN/.lock``. The kernel releases it when its process dies, however it
dies, so a stale lock from a killed process is simply taken over; a live one refuses the second process with its
pid and start time. (The lock file is removed on release; ``acquire`` checks that the file it locked is still the
one at that path, so a release racing an acquire cannot hand the lock to two processes.)

``clean_leftovers`` runs under the lock at every start: it removes the temporary files an atomic write was cut
short in (``.NAME.XXXX.tmp``, files or folders), which no live process can be writing, since it holds the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

LOCK_FILE = ".lock"


class RunLock:
    """``with RunLock(folder):`` the caller is the only genlab process training in ``folder`` (made if missing)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        path = self.folder / LOCK_FILE
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # only a release racing this acquire makes it go round again
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _lock(fd)
            except BlockingIOError:
                holder = _holder(path)
                os.close(fd)
                raise GenlabError(f"{self.folder} is in use: another genlab process is training in it ({holder}); "
                                  "wait for it to finish or stop it, or choose another --out") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
                self._fd = fd
                return
            os.close(fd)  # the file was removed by its releasing holder: lock the new one
        raise GenlabError(f"{self.folder}: could not take the run's lock; try again")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            (self.folder / LOCK_FILE).unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)  # closing releases the flock
        self._fd = None


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: a byte-range lock on the file does the same
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise BlockingIOError from None
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {int(info['pid'])} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said which"


def clean_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary files and folders interrupted atomic writes left in ``folder``; returns them."""
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp")):
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            continue
        removed.append(path)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
