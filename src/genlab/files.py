"""Writing files without ever leaving a half-written one behind: write to a temporary file, then rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from genlab.errors import GenlabError

Writer = Callable[[Path, bytes], object]  # (path, content) -> writes one file atomically (plain, or signed)


def _umask() -> int:
    """The process's umask (read once; os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()  # temporary files are made private (0600); what is renamed into place gets the usual 0644 / 0755


def cache_dir() -> Path:
    """Where genlab keeps what it can make again (converted corpora, feature networks): ``$GENLAB_CACHE``, else
    ``~/.cache/genlab``."""
    return Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab"))


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data), mode=mode)


def write_plain(path: Path, data: bytes) -> Path:
    """A ``Writer`` that writes unsigned: ``data`` to ``path``, atomically; returns the path."""
    atomic_write_bytes(path, data)
    return path


def atomic_write(path: Path, write: Callable[[Path], object], *, mode: int | None = None) -> None:
    """Call ``write(tmp)`` on a temporary path in the same folder, fsync it, then rename it onto ``path``.

    The file gets ``mode`` (default: 0666 less the umask, as a plain write would); secrets pass 0600.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise GenlabError(f"{path} is a folder; genlab writes a file there: move the folder away")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise GenlabError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK if mode is None else mode)
        os.replace(tmp, path)
    except OSError as e:  # a full disk, a read-only folder: the user's to fix, and nothing half-written is left
        tmp.unlink(missing_ok=True)
        raise GenlabError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_folder(path: Path, write: Callable[[Path], object]) -> None:
    """Build a folder under a temporary name beside ``path``, then rename it into place (``path`` must not exist)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~UMASK)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
