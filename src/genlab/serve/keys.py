"""API keys of the HTTP API: made by ``genlab keys create-api``, shown once, stored only as their SHA-256.

A key is ``gl-`` and 43 URL-safe characters (256 random bits), so a plain hash is enough to store it (no salt or
slow hash is needed against guessing a random key). The file is ``$GENLAB_HOME/api-keys.json`` (``~/.genlab``),
readable by its owner only; a client sends ``Authorization: Bearer gl-...`` (the ``openai`` client's ``api_key``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes

PREFIX = "gl-"


def keys_path() -> Path:
    home = os.environ.get("GENLAB_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".genlab") / "api-keys.json"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def read_keys(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or keys_path()
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        keys = raw["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, dict) and isinstance(k.get("sha256"), str)
                                                 for k in keys):
            raise ValueError("keys is not a list of hashed keys")
        return keys
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise GenlabError(f"{path} is damaged ({e}); remove it and create new keys") from None


def create_key(name: str, path: Path | None = None) -> tuple[str, dict[str, Any]]:
    """A new key (returned once, never stored) and its record (stored)."""
    path = path or keys_path()
    if not name or len(name) > 64 or not name.isprintable():
        raise GenlabError("--name must be 1 to 64 printable characters")
    keys = read_keys(path)
    key = PREFIX + secrets.token_urlsafe(32)
    record = {"id": f"key-{secrets.token_hex(4)}", "name": name, "sha256": _digest(key), "created": int(time.time())}
    _write(path, [*keys, record])
    return key, record


def revoke_key(key_id: str, path: Path | None = None) -> dict[str, Any]:
    path = path or keys_path()
    keys = read_keys(path)
    found = [k for k in keys if k.get("id") == key_id]
    if not found:
        raise GenlabError(f"no API key with id {key_id} (see `genlab keys list-api`)")
    _write(path, [k for k in keys if k.get("id") != key_id])
    return found[0]


def _write(path: Path, keys: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps({"keys": keys}, indent=2).encode(), mode=0o600)


class KeyRing:
    """The hashes a server accepts, read again when the file changes (a key made or revoked takes effect)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or keys_path()
        self._stamp: Any = None
        self._hashes: list[str] = []

    def hashes(self) -> list[str]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._hashes = [k["sha256"] for k in read_keys(self.path)] if stamp else []
            self._stamp = stamp
        return self._hashes

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries a known key (compared in constant time)."""
        if not authorization or not authorization.startswith("Bearer "):
            return False
        digest = _digest(authorization[len("Bearer "):].strip())
        return any(hmac.compare_digest(digest, h) for h in self.hashes())
