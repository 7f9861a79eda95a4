"""The release layer: every output of every family passes through here on its way to the user.

1. **Watermark** the content with the scheme its modality names (``Modality.Marks``, ``responsible/marks.py``):
   text is marked while it is generated (a logits processor), images after (an invisible mark carrying the run
   id). A modality with no watermark yet passes through unchanged and is still signed.
2. **Attach** the release to the outputs with what a manifest says about how they were made, so that
   ``outputs.save(folder)`` can **sign** each file with a C2PA manifest (embedded in PNG/JPEG/WAV, a ``.c2pa``
   sidecar for text, CSV, MIDI) naming the run, the weights' hash and the generation's settings, written
   atomically.

A family gets all of this by declaring its ``modality``; nothing here names a family or a modality. Each run has a
``release.json`` made once: a random run id (its first 32 bits are the image payload) and the secret key of its
text watermark, so generation and detection always use the same parameters.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.files import Writer, atomic_write_bytes, write_plain
from genlab.runfiles import MODEL_FILE, RELEASE_FILE


TEXT_SCHEME = "lefthash-2-adaptive"  # the text watermark scheme of new runs (``text_watermark.SCHEMES``)


@dataclass(frozen=True)
class RunIdentity:
    """Made once per run and never changed."""

    run_id: str  # 32 random hex digits naming the run in manifests and watermarks
    text_key: int  # secret key seeding the text watermark's green lists
    text_scheme: str = "lefthash-1"  # how the green lists are seeded (runs made before it was recorded: lefthash-1)

    @property
    def payload(self) -> int:
        """The 32-bit image-watermark payload: the run id's first 8 hex digits."""
        return int(self.run_id[:8], 16)


def run_identity(run_dir: Path, *, create: bool = False) -> RunIdentity:
    """The run's ``release.json``; made (atomically) only with ``create`` and only if missing.

    Training makes it; so does generating from a run that has none. Nothing that detects or verifies ever makes
    one: a new key would call every text the lost key marked "not watermarked".
    """
    path = Path(run_dir) / RELEASE_FILE
    if path.is_file():
        try:
            raw = json.loads(path.read_text())
            run_id, key = raw["run_id"], raw["text_key"]
            if not (isinstance(run_id, str) and re.fullmatch(r"[0-9a-f]{8,64}", run_id)):
                raise ValueError(f"run_id {str(run_id)[:40]!r} is not the hex digits genlab writes")
            if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < 2**63:
                raise ValueError(f"text_key {str(key)[:40]!r} is not the integer genlab writes")
            return RunIdentity(run_id=run_id, text_key=key, text_scheme=str(raw.get("text_scheme", "lefthash-1")))
        except (ValueError, KeyError, TypeError) as e:
            raise GenlabError(f"{path} is corrupted ({e}); its watermark key is lost, restore it from a backup") from None
    if not create:
        raise GenlabError(f"{run_dir} has no {RELEASE_FILE}: the run id and watermark key of its outputs are lost, so "
                          "they can no longer be tested or matched; restore the file from a backup")
    identity = RunIdentity(run_id=secrets.token_hex(16), text_key=secrets.randbits(63), text_scheme=TEXT_SCHEME)
    record = {"run_id": identity.run_id, "text_key": identity.text_key, "text_scheme": identity.text_scheme}
    atomic_write_bytes(path, json.dumps(record, indent=2).encode(), mode=0o600)  # holds the secret text key
    return identity


# -- the layer --------------------------------------------------------------------------------------------------
class Release:
    """Watermarks a run's outputs and signs the files they are written to, as its ``[release]`` config says."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.config = run.config.release
        self._identity: RunIdentity | None = None

    @property
    def identity(self) -> RunIdentity:
        """The run's id and watermark key (``release.json``); an error when it is missing: detectors never make one."""
        if self._identity is None:
            self._identity = run_identity(self.run.path)
        return self._identity

    def _generating(self) -> None:
        """Generating from a run without ``release.json`` makes one (for the new outputs only)."""
        if self._identity is None:
            self._identity = run_identity(self.run.path, create=True)

    @cached_property
    def marks(self) -> Any:
        """The run's watermark scheme (``responsible.marks.Marks``), or None when its outputs carry none."""
        if not self.run.model.generates:  # e.g. bert fills masks: there is nothing to mark
            return None
        return self.run.modality.marks(self)

    @property
    def note(self) -> str:
        """What the user should know about this run's mark (e.g. images too small to carry it)."""
        return getattr(self.marks, "note", "") if self.marks is not None else ""

    def watermarks(self, watermark: bool | None) -> bool:
        """Whether outputs are marked: ``watermark`` if given, else ``release.watermark``; never without a scheme."""
        return (self.config.watermark if watermark is None else watermark) and self.marks is not None

    def sample(self, n: int, *, seed: int | None = None, watermark: bool | None = None, **options: Any) -> Any:
        """The family's ``sample``, watermarked unless ``watermark=False`` (default: ``release.watermark``), with
        the release attached to the outputs."""
        from genlab.modalities.base import manifest_params

        self._generating()
        on, model = self.watermarks(watermark), self.run.model
        kwargs = self.marks.during(model, dict(options)) if on else dict(options)
        outputs = self.run.modality.sample(model, n, seed=seed, data=self.run.data, **kwargs)
        if on:
            outputs = self.marks.after(outputs)
        return self.attach(outputs, watermark=on, seed=seed, **manifest_params(self.run.modality, options))

    def during(self, watermark: bool | None = None) -> dict[str, Any]:
        """The sampling options that mark outputs while they are made, for generation outside the family's
        ``sample`` (the server's continuous batch): e.g. text's ``logits_processor``; empty when unmarked."""
        self._generating()
        return self.marks.during(self.run.model, {}) if self.watermarks(watermark) else {}

    def made(self, outputs: Any, *, watermark: bool | None = None, **params: Any) -> Any:
        """Outputs made otherwise than by ``sample`` (image variations, interpolations): marked, then attached."""
        self._generating()
        on = self.watermarks(watermark)
        return self.attach(self.marks.after(outputs) if on else outputs, watermark=on, **params)

    def attach(self, outputs: Any, *, watermark: bool, **params: Any) -> Any:
        """Give ``outputs`` this release and their manifest's generation record, so they save signed."""
        outputs.release = self
        outputs.generation = self.generation(watermark=watermark, prompt=outputs.prompt, **_json_safe(params))
        return outputs

    @cached_property
    def weights_sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.run.path / MODEL_FILE, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def generation(self, *, watermark: bool | None = None, prompt: str | None = None, **params: Any) -> dict[str, Any]:
        """What a manifest says about how an output was made (the prompt only as a hash)."""
        from genlab.version import genlab_version

        info: dict[str, Any] = {
            "genlab_version": genlab_version(),
            "run_id": self.identity.run_id,
            "family": self.run.config.family,
            "dataset": Path(self.run.config.dataset).name,
            "weights_sha256": self.weights_sha256,
            "watermark": self.marks.params() if self.watermarks(watermark) else None,
        }
        if prompt is not None:
            info["prompt_sha256"] = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        info.update({k: v for k, v in params.items() if v is not None})
        return info

    def writer(self, generation: dict[str, Any], *, sign: bool | None = None) -> Writer:
        """A function that writes one output file: signed (embedded or with a sidecar) when signing is on."""
        if not (self.config.sign if sign is None else sign):
            return write_plain
        from genlab.responsible.keys import ensure_identity
        from genlab.responsible.provenance import write_signed

        signer, _ = ensure_identity()

        def write(path: Path, data: bytes) -> Path:
            return write_signed(Path(path), data, identity=signer, title=Path(path).name, generation=generation)

        return write


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a manifest can hold (numbers, strings, lists of them); arrays and callables left out."""
    out = {}
    for k, v in params.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[k] = v
    return out

