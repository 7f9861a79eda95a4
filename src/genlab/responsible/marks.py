"""What every watermark scheme provides to the release layer, and the verdict ``genlab verify`` gives on a file.

A modality names its scheme (``Modality.Marks``); the release layer builds one per run and asks it to mark
outputs either while they are generated (``during``: text, through a logits processor) or after (``after``:
images). A *keyed* scheme needs the run's secret to detect (the text green list); an unkeyed one can be detected
from the file alone (the image mark, whose key is public).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class WatermarkVerdict:
    scheme: str  # the watermark scheme looked for, e.g. "genlab-image-v1"
    checked: bool  # False when it could not be looked for (e.g. a text whose run is not here)
    found: bool = False
    detail: dict[str, Any] = field(default_factory=dict)  # payload / z-score / p-value ...
    matches_manifest: bool | None = None  # the mark names the run the manifest names (None: nothing to compare)
    note: str = ""


class Marks:
    """Base of a watermark scheme bound to one run (``release``: the run's ``Release``)."""

    scheme: ClassVar[str]  # the name manifests and verdicts give the scheme
    keyed: ClassVar[bool]  # detection needs the run's secret key (`genlab detect FILE --run RUN`)
    suffixes: ClassVar[frozenset[str]]  # file types whose content this scheme can be looked for in
    note: str = ""  # said to the user when outputs cannot carry the mark (e.g. images too small)

    def during(self, model: Any, options: dict[str, Any]) -> dict[str, Any]:
        """The family's sampling options with what marks outputs while they are generated (default: none)."""
        return options

    def after(self, outputs: Any) -> Any:
        """Outputs with the mark added after generation (default: unchanged)."""
        return outputs

    def params(self) -> dict[str, Any]:
        """What a manifest records about the mark."""
        raise NotImplementedError

    def detect(self, content: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def read(path: Path) -> Any:
        """A file's content in the form ``detect`` takes."""
        raise NotImplementedError

    def verdict(self, content: Any, generation: dict[str, Any]) -> WatermarkVerdict:
        """Look for the mark in ``content`` and compare what it names with the manifest's ``generation``.

        An unkeyed scheme makes this a classmethod: ``genlab verify`` then needs no run."""
        raise NotImplementedError


# -- the two schemes genlab has ---------------------------------------------------------------------------------
TEXT_SUFFIXES = frozenset({".txt", ".md", ".py"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})  # GIFs: the video scheme


class TextMarks(Marks):
    """Kirchenbauer et al.'s green list, keyed by the run's secret: added while the text is generated.

    The family's ``sample`` takes ``logits_processor``; the model has ``tokenizer_`` and ``vocab_size_``.
    """

    scheme = "kirchenbauer-2023"
    keyed = True
    suffixes = TEXT_SUFFIXES

    def __init__(self, release: Any) -> None:
        from genlab.responsible.text_watermark import TextWatermark

        cfg, model = release.config, release.run.model
        self.identity = release.identity
        self.tokenizer = model.tokenizer_
        self.watermark = TextWatermark(model.vocab_size_, release.identity.text_key, gamma=cfg.text_gamma,
                                       delta=cfg.text_delta, z_threshold=cfg.z_threshold,
                                       scheme=release.identity.text_scheme)

    def during(self, model: Any, options: dict[str, Any]) -> dict[str, Any]:
        """The mark's processor after the caller's own ``logits_processor`` (a constraint), if any."""
        from genlab.sample.text import chain

        return {**options, "logits_processor": chain(options.get("logits_processor"), self.watermark.processor())}

    def params(self) -> dict[str, Any]:
        return self.watermark.generation_params

    def detect(self, text: str, *, window: int = 100) -> Any:
        """A ``Detection``: the z-test on the whole text and on sliding windows of ``window`` tokens."""
        return self.watermark.detect(self.tokenizer.encode(text).ids, window=window)

    @staticmethod
    def read(path: Path) -> str:
        """A text file (empty, binary or non-UTF-8 files are refused, one line each)."""
        from genlab.data.text import read_text_file

        return read_text_file(Path(path))

    def verdict(self, content: str, generation: dict[str, Any]) -> WatermarkVerdict:
        s = self.detect(content).document
        detail = {"z": s.z, "p_value": s.p_value, "tokens_scored": s.tokens_scored, "green_fraction": s.green_fraction}
        matches = None  # only a mark that was found can name a run
        if s.watermarked and generation.get("run_id"):
            matches = self.identity.run_id == generation["run_id"]
        return WatermarkVerdict(self.scheme, True, s.watermarked, detail, matches)


class ImageMarks(Marks):
    """genlab's invisible image mark carrying the run's 32-bit payload, added after the images are made.

    The family's ``sample`` returns uint8 (N, C, H, W); the run's data has ``shape`` (C, H, W).
    """

    scheme = "genlab-image-v1"
    keyed = False  # the key is public: anyone can detect the mark (and so remove or forge it)
    suffixes = IMAGE_SUFFIXES

    def __init__(self, release: Any) -> None:
        from genlab.responsible.image_watermark import MIN_SIZE

        self.payload = release.identity.payload
        h, w = release.run.data.shape[-2:]  # the run's images (C, H, W) or clips' frames (T, C, H, W)
        self.too_small = min(h, w) < MIN_SIZE  # e.g. 8x8 digits: too few pixels to carry 48 coded bits
        self.note = f"images under {MIN_SIZE}x{MIN_SIZE} pixels cannot carry the watermark; signed only" \
            if self.too_small else ""

    def after(self, images: Any) -> Any:
        """The images marked, as the same container (their outputs type and attachments kept)."""
        from genlab.responsible.image_watermark import MIN_SIZE, embed

        if min(images.shape[-2:]) < MIN_SIZE:
            return images  # said in the manifest (params) and by the CLI (note)
        out = images.copy()
        out[...] = embed(np.asarray(images), self.payload)
        return out

    def params(self) -> dict[str, Any]:
        if self.too_small:
            return {"scheme": "none", "reason": self.note}
        return {"scheme": self.scheme, "payload": f"{self.payload:08x}"}

    @staticmethod
    def detect(image: Any) -> Any:
        """An ``ImageMark`` (found, payload, score, p-value); the image key is public, so no run is needed."""
        from genlab.responsible.image_watermark import detect

        return detect(np.asarray(image))

    @staticmethod
    def read(path: Path) -> Any:
        from genlab.sample.images import load_image

        return load_image(Path(path))

    @classmethod
    def verdict(cls, content: Any, generation: dict[str, Any]) -> WatermarkVerdict:
        found = cls.detect(content)
        detail = {"payload": f"{found.payload:08x}" if found.payload is not None else None, "score": found.score,
                  "p_value": found.p_value, "bit_confidence": found.bit_confidence}
        matches = None
        if found.found and generation.get("run_id"):
            matches = generation["run_id"][:8] == f"{found.payload:08x}"
        return WatermarkVerdict(cls.scheme, True, found.found, detail, matches, found.reason)
