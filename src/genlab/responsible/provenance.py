"""C2PA content credentials for generated files: sign them with the local identity, and verify them offline.

Images, audio and PDF carry the manifest inside the file. Every other file (text, CSV, MIDI, JSON, archives,
weights) stays byte-identical and gets a detached manifest beside it, ``FILE.c2pa``, bound to a sha256 of the
whole file. Verification never touches the network: no remote manifest fetch, no OCSP.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa

from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes
from genlab.responsible.keys import (
    Identity,
    has_identity,
    identity_folder,
    leaf_certificate,
    load_identity,
    trusted_roots,
)
from genlab.version import genlab_version

# formats c2pa embeds a manifest into (each one checked to sign and verify here)
EMBEDDABLE = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".wav": "audio/wav",
    ".pdf": "application/pdf",
}
# the format named in a detached manifest (informational: the binding is a hash of the whole file)
SIDECAR_FORMATS = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".mid": "audio/midi",
    ".midi": "audio/midi",
    ".zip": "application/zip",
}
DEFAULT_SIDECAR_FORMAT = "application/octet-stream"
SIDECAR_SUFFIX = ".c2pa"
GENERATION_LABEL = "org.genlab.generation"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
STATUSES = ("trusted", "untrusted", "tampered", "unsigned")
UNREADABLE_MANIFEST = "manifest.unreadable"

# leading bytes of each embeddable format: a file that lacks them is not that format (an error, not tampering)
_MAGIC: dict[str, tuple[tuple[int, bytes], ...]] = {
    "image/png": ((0, b"\x89PNG\r\n\x1a\n"),),
    "image/jpeg": ((0, b"\xff\xd8\xff"),),
    "image/webp": ((0, b"RIFF"), (8, b"WEBP")),
    "image/gif": ((0, b"GIF8"),),
    "image/tiff": ((0, b"II*\x00"),),  # or big-endian, below
    "audio/wav": ((0, b"RIFF"), (8, b"WAVE")),
    "application/pdf": ((0, b"%PDF"),),
}

# offline: never fetch a remote manifest or an OCSP response; no thumbnail (it would dwarf a 28x28 image)
_OFFLINE: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                            "builder": {"thumbnail": {"enabled": False}}}


@dataclass(frozen=True)
class Verification:
    """What ``verify_file`` found.

    ``status`` is one of: ``trusted`` (intact, and signed by your identity or a root in ``keys/trusted``),
    ``untrusted`` (intact, but the signer is unknown here, or its certificate expired), ``tampered`` (the file,
    the manifest or the signature does not match) or ``unsigned`` (no manifest at all).
    """

    status: str
    manifest: dict | None = None
    generation: dict | None = None
    signer: str | None = None
    failures: list[str] = field(default_factory=list)
    sidecar: Path | None = None


def sidecar_path(path: Path) -> Path:
    """Where the detached manifest of ``path`` lives: ``story.txt`` -> ``story.txt.c2pa``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def embeds(suffix: str) -> bool:
    """Whether files with this suffix carry their manifest inside."""
    return suffix.lower() in EMBEDDABLE


def format_for(suffix: str) -> str:
    """The MIME type c2pa is given for a file with this suffix."""
    suffix = suffix.lower()
    return EMBEDDABLE.get(suffix) or SIDECAR_FORMATS.get(suffix, DEFAULT_SIDECAR_FORMAT)


def build_manifest(*, title: str, mime: str, generation: dict) -> dict:
    """The manifest definition: who made the file (genlab, an AI model) and how (``generation``)."""
    return {
        "claim_generator_info": [{"name": "genlab", "version": genlab_version()}],
        "title": title,
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions",
             "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]}},
            {"label": GENERATION_LABEL, "data": generation},
        ],
    }


def sign_bytes(data: bytes, *, suffix: str, identity: Identity, title: str,
               generation: dict) -> tuple[bytes, bytes | None]:
    """Sign ``data`` (a file with this suffix): ``(asset bytes, detached manifest or None)``.

    Embeddable formats come back with the manifest inside and no sidecar; any other comes back unchanged, with
    the manifest to write beside it.
    """
    _check_not_expired(identity)
    mime = format_for(suffix)
    detached = not embeds(suffix)
    if not detached:
        _check_magic(data, mime, f"the data to sign as {suffix}")
    manifest = build_manifest(title=title, mime=mime, generation=json.loads(json.dumps(generation)))
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, identity.chain_pem, identity.key_pem, None)
    out = io.BytesIO()
    try:
        with c2pa.Context.from_dict(_OFFLINE) as ctx, c2pa.Signer.from_info(info) as signer, \
                c2pa.Builder(manifest, context=ctx) as builder:
            if detached:
                builder.set_no_embed()
            manifest_bytes = builder.sign(signer, mime, io.BytesIO(data), out)
    except c2pa.C2paError as e:
        raise GenlabError(f"could not sign {title!r} ({suffix}): {_one_line(e)}") from None
    if detached:
        return data, manifest_bytes
    return out.getvalue(), None


def write_signed(path: Path, data: bytes, *, identity: Identity, title: str, generation: dict) -> Path:
    """Sign ``data`` and write it to ``path`` (the sidecar first, then the asset, each atomically).

    An empty output (a model that ended its text at once) has no bytes to hash, so C2PA cannot sign it: it is
    written unsigned, and ``genlab verify`` reports it as such.
    """
    path = Path(path)
    if not data:
        atomic_write_bytes(path, data)
        sidecar_path(path).unlink(missing_ok=True)
        return path
    asset, manifest = sign_bytes(data, suffix=path.suffix, identity=identity, title=title, generation=generation)
    sidecar = sidecar_path(path)
    if manifest is not None:
        atomic_write_bytes(sidecar, manifest)
    atomic_write_bytes(path, asset)
    if manifest is None:
        sidecar.unlink(missing_ok=True)  # a stale one from an earlier file of the same name would only confuse
    return path


def verify_file(path: Path, *, identity: Identity | None = None) -> Verification:
    """Check the file's content credentials: the embedded manifest, else ``FILE.c2pa``. Offline."""
    path = Path(path)
    data = _read_asset(path)
    mime = format_for(path.suffix)
    with c2pa.Context.from_dict(_settings(_anchors(identity))) as ctx:
        if embeds(path.suffix):
            _check_magic(data, mime, str(path))
            found = _read(ctx, mime, data, None, sidecar=None)
            if found is not None:
                return found
        sidecar = sidecar_path(path)
        if not sidecar.is_file():
            return Verification("unsigned")
        try:
            manifest_bytes = sidecar.read_bytes()
        except OSError as e:
            raise GenlabError(f"cannot read {sidecar}: {e.strerror or e}") from None
        found = _read(ctx, mime, data, manifest_bytes, sidecar=sidecar)
        return found or Verification("tampered", failures=[f"{UNREADABLE_MANIFEST}: no manifest in the sidecar"],
                                     sidecar=sidecar)


def _read(ctx: c2pa.Context, mime: str, data: bytes, manifest_bytes: bytes | None, *,
          sidecar: Path | None) -> Verification | None:
    """Validate one manifest; None when there is none. A manifest c2pa cannot parse reads as tampered."""
    if manifest_bytes is not None and not manifest_bytes:
        return Verification("tampered", failures=[f"{UNREADABLE_MANIFEST}: the sidecar is empty"], sidecar=sidecar)
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), manifest_bytes, context=ctx)
        if reader is None:
            return None
        with reader:
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
            manifest = reader.get_active_manifest()
    except (c2pa.C2paError, KeyError, ValueError) as e:
        return Verification("tampered", failures=[f"{UNREADABLE_MANIFEST}: {_one_line(e)}"], sidecar=sidecar)
    failures = [f.get("code", "?") for f in (results.get("activeManifest") or {}).get("failure", [])]
    return Verification(status=_status(state, failures), manifest=manifest, generation=_generation(manifest),
                        signer=_signer(manifest), failures=failures, sidecar=sidecar)


def _status(state: str | None, failures: list[str]) -> str:
    """Map c2pa's validation state to ours; a problem with the signer's certificate alone is not tampering."""
    if state == "Trusted" and not failures:
        return "trusted"
    credential_only = all(code.startswith("signingCredential.") for code in failures)
    if (state == "Valid" or (state == "Invalid" and failures)) and credential_only:
        return "untrusted"
    return "tampered"


def _generation(manifest: dict | None) -> dict | None:
    for assertion in (manifest or {}).get("assertions", []):
        if assertion.get("label") == GENERATION_LABEL:
            return assertion.get("data")
    return None


def _signer(manifest: dict | None) -> str | None:
    info = (manifest or {}).get("signature_info") or {}
    return info.get("common_name") or info.get("issuer")


def _anchors(identity: Identity | None) -> bytes | None:
    """Our root plus the roots in ``keys/trusted``; without an identity, only the latter (maybe none)."""
    if identity is None:
        folder = identity_folder()
        if has_identity(folder):
            identity = load_identity(folder)
    roots = [identity.root_pem] if identity is not None else []
    roots += trusted_roots(identity.folder if identity is not None else identity_folder())
    return b"".join(r if r.endswith(b"\n") else r + b"\n" for r in roots) or None


def _settings(anchors: bytes | None) -> dict[str, Any]:
    settings = dict(_OFFLINE)
    if anchors:
        settings["trust"] = {"user_anchors": anchors.decode("ascii")}
    return settings


def _read_asset(path: Path) -> bytes:
    if path.name.endswith(SIDECAR_SUFFIX) and path.is_file():
        original = path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
        raise GenlabError(f"{path} is a detached C2PA manifest; verify the file it describes: {original}")
    if not path.exists():
        raise GenlabError(f"no such file: {path}")
    if not path.is_file():
        raise GenlabError(f"{path} is not a file")
    from genlab.memory import require

    require(2 * path.stat().st_size, f"checking {path}", "genlab reads a file whole to check its manifest")
    try:
        return path.read_bytes()
    except OSError as e:
        raise GenlabError(f"cannot read {path}: {e.strerror or e}") from None


def _check_magic(data: bytes, mime: str, what: str) -> None:
    expected = _MAGIC.get(mime, ())
    ok = all(data[at:at + len(magic)] == magic for at, magic in expected)
    if mime == "image/tiff":
        ok = ok or data[:4] == b"MM\x00*"
    if not ok:
        raise GenlabError(f"{what} is not a valid {mime} file")


def _check_not_expired(identity: Identity) -> None:
    until = leaf_certificate(identity).not_valid_after_utc
    if until <= dt.datetime.now(dt.UTC):
        raise GenlabError(f"the signing certificate in {identity.folder} expired on {until:%Y-%m-%d}; "
                          "create a new one with `genlab keys init --force`")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
