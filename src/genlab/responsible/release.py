"""The release layer: every output of every family passes through here on its way to the user.

1. **Watermark** the content, chosen by modality (``MARKS``): text is marked while it is generated (a logits
   processor), images after (an invisible mark carrying the run id). A modality with no watermark yet (a future
   music or tabular family) passes through unchanged and is still signed.
2. **Sign** each file with a C2PA manifest (embedded in PNG/JPEG/WAV, a ``.c2pa`` sidecar for text, CSV, MIDI)
   naming the run, the weights' hash and how the output was made, then write it atomically.

A family gets all of this by declaring its ``modality``; nothing here names a family. Each run has a
``release.json`` made once: a random run id (its first 32 bits are the image payload) and the secret key of its
text watermark, so generation and detection always use the same parameters.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from genlab.errors import GenlabError
from genlab.files import Writer, atomic_write_bytes

RELEASE_FILE = "release.json"


@dataclass(frozen=True)
class RunIdentity:
    """Made once per run and never changed."""

    run_id: str  # 32 random hex digits naming the run in manifests and watermarks
    text_key: int  # secret key seeding the text watermark's green lists

    @property
    def payload(self) -> int:
        """The 32-bit image-watermark payload: the run id's first 8 hex digits."""
        return int(self.run_id[:8], 16)


def run_identity(run_dir: Path, *, create: bool = True) -> RunIdentity:
    """The run's ``release.json``; made (atomically) the first time it is needed."""
    path = Path(run_dir) / RELEASE_FILE
    if path.is_file():
        try:
            raw = json.loads(path.read_text())
            return RunIdentity(run_id=str(raw["run_id"]), text_key=int(raw["text_key"]))
        except (ValueError, KeyError, TypeError) as e:
            raise GenlabError(f"{path} is corrupted ({e}); its watermark key is lost, restore it from a backup") from None
    if not create:
        raise GenlabError(f"{run_dir} has no {RELEASE_FILE}; it has never generated anything")
    identity = RunIdentity(run_id=secrets.token_hex(16), text_key=secrets.randbits(63))
    atomic_write_bytes(path, json.dumps({"run_id": identity.run_id, "text_key": identity.text_key}, indent=2).encode())
    return identity


# -- watermarks by modality -------------------------------------------------------------------------------------
class TextMarks:
    """Text families: ``sample(..., logits_processor=)``, ``tokenizer_`` and ``vocab_size_``."""

    def __init__(self, release: Release) -> None:
        from genlab.responsible.text_watermark import TextWatermark

        cfg, model = release.config, release.run.model
        self.tokenizer = model.tokenizer_
        self.watermark = TextWatermark(model.vocab_size_, release.identity.text_key, gamma=cfg.text_gamma,
                                       delta=cfg.text_delta, z_threshold=cfg.z_threshold)

    def sample(self, model: Any, n: int, *, logits_processor: Any = None, **kwargs: Any) -> list[str]:
        """The family's sample with the mark; a caller's ``logits_processor`` (a constraint) runs first."""
        from genlab.sample.text import chain

        return model.sample(n, logits_processor=chain(logits_processor, self.watermark.processor()), **kwargs)

    def mark(self, outputs: Any) -> Any:
        raise GenlabError("text is watermarked while it is generated, not afterwards")

    def params(self) -> dict[str, Any]:
        return self.watermark.generation_params

    def detect(self, text: str, *, window: int = 100):
        """A ``Detection``: the z-test on the whole text and on sliding windows of ``window`` tokens."""
        return self.watermark.detect(self.tokenizer.encode(text).ids, window=window)


class ImageMarks:
    """Image families: ``sample`` returns uint8 (N, C, H, W); the mark carries the run's 32-bit payload."""

    def __init__(self, release: Release) -> None:
        from genlab.responsible.image_watermark import MIN_SIZE

        self.payload = release.identity.payload
        _, h, w = release.run.data.shape  # (C, H, W) of the run's images
        self.too_small = min(h, w) < MIN_SIZE  # e.g. 8x8 digits: too few pixels to carry 48 coded bits
        self.note = f"images under {MIN_SIZE}x{MIN_SIZE} pixels cannot carry the watermark; signed only" \
            if self.too_small else ""

    def sample(self, model: Any, n: int, **kwargs: Any) -> np.ndarray:
        return self.mark(model.sample(n, **kwargs))

    def mark(self, images: np.ndarray) -> np.ndarray:
        from genlab.responsible.image_watermark import MIN_SIZE, embed

        if min(images.shape[-2:]) < MIN_SIZE:
            return images  # said in the manifest (params) and by the CLI (note)
        return embed(images, self.payload)

    def params(self) -> dict[str, Any]:
        if self.too_small:
            return {"scheme": "none", "reason": self.note}
        return {"scheme": "genlab-image-v1", "payload": f"{self.payload:08x}"}

    @staticmethod
    def detect(image: np.ndarray):
        """An ``ImageMark`` (found, payload, score, p-value); the image key is public, so no run is needed."""
        from genlab.responsible.image_watermark import detect

        return detect(image)


MARKS: dict[str, type] = {"text": TextMarks, "image": ImageMarks}  # modality -> its watermark
MARKS["pairs"] = TextMarks  # seq2seq text (t5): marked while generated, like text


# -- the layer --------------------------------------------------------------------------------------------------
class Release:
    """Watermarks a run's outputs and signs the files they are written to, as its ``[release]`` config says."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.config = run.config.release
        self.identity = run_identity(run.path)

    @property
    def writes_text(self) -> bool:
        """Whether the run generates text (and so carries the text watermark): gpt, t5, ..."""
        return isinstance(self.marks, TextMarks)

    @cached_property
    def marks(self) -> TextMarks | ImageMarks | None:
        if not self.run.model.generates:  # e.g. bert fills masks: there is nothing to mark
            return None
        cls = MARKS.get(self.run.model.modality)
        return cls(self) if cls is not None else None

    def sample(self, n: int, *, watermark: bool | None = None, **kwargs: Any) -> Any:
        """The family's ``sample``, watermarked unless ``watermark=False`` (default: ``release.watermark``)."""
        on = self.config.watermark if watermark is None else watermark
        if on and self.marks is not None:
            return self.marks.sample(self.run.model, n, **kwargs)
        return self.run.model.sample(n, **kwargs)

    def mark(self, outputs: Any, *, watermark: bool | None = None) -> Any:
        """Watermark outputs made otherwise than by ``sample`` (image variations, interpolations)."""
        on = self.config.watermark if watermark is None else watermark
        return self.marks.mark(outputs) if on and self.marks is not None else outputs

    @cached_property
    def weights_sha256(self) -> str:
        from genlab.models.base import MODEL_FILE

        h = hashlib.sha256()
        with open(self.run.path / MODEL_FILE, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def generation(self, *, watermark: bool | None = None, prompt: str | None = None, **params: Any) -> dict[str, Any]:
        """What a manifest says about how an output was made (the prompt only as a hash)."""
        from genlab.version import genlab_version

        on = self.config.watermark if watermark is None else watermark
        info: dict[str, Any] = {
            "genlab_version": genlab_version(),
            "run_id": self.identity.run_id,
            "family": self.run.config.family,
            "dataset": Path(self.run.config.dataset).name,
            "weights_sha256": self.weights_sha256,
            "watermark": self.marks.params() if on and self.marks is not None else None,
        }
        if prompt is not None:
            info["prompt_sha256"] = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        info.update({k: v for k, v in params.items() if v is not None})
        return info

    def writer(self, generation: dict[str, Any], *, sign: bool | None = None) -> Writer:
        """A function that writes one output file: signed (embedded or with a sidecar) when signing is on."""
        if not (self.config.sign if sign is None else sign):
            return _plain_write
        from genlab.responsible.keys import ensure_identity
        from genlab.responsible.provenance import write_signed

        signer, _ = ensure_identity()

        def write(path: Path, data: bytes) -> Path:
            title = Path(path).name
            return write_signed(Path(path), data, identity=signer, title=title, generation=generation)

        return write


def _plain_write(path: Path, data: bytes) -> Path:
    atomic_write_bytes(path, data)
    return path
