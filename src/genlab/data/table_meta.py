"""Table metadata: each column's type, domain and missing rate, detected from the data or read from the user's file.

The metadata is a JSON file the user can read, edit and pass back (``--set data.metadata=FILE``)::

    {"target": "diagnosis",                      # the column utility is measured on (null: none)
     "columns": {
       "age":   {"type": "integer", "min": 18, "max": 90, "missing": 0.02, "public": false},
       "sex":   {"type": "categorical", "categories": ["F", "M"], "missing": 0.0, "public": true},
       "visit": {"type": "datetime", "format": "%Y-%m-%d", "min": "2001-01-03", "max": "2019-12-30"},
       "mrn":   {"type": "id"}}}                 # unique per row: left out (change its type to keep it)

Types: ``numeric`` (real numbers), ``integer``, ``categorical``, ``boolean``, ``datetime`` and ``id``. ``public``
says the column's domain (its categories, or its min and max) is public knowledge rather than read from the
private rows: differential privacy then spends no budget on it (``responsible/privacy.py``). Detection never
"fixes" data: a column mixing numbers and text, or dates that do not parse, is refused with the row to look at.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genlab.errors import GenlabError

TYPES = ("numeric", "integer", "categorical", "boolean", "datetime", "id")
CONTINUOUS = ("numeric", "integer", "datetime")  # held as numbers; the rest as category codes
COLUMN_KEYS = {"type", "categories", "min", "max", "missing", "public", "format"}
FEW_VALUES = 5  # an integer-valued column with at most this many distinct values is categorical (0/1 flags, grades)
MOSTLY = 0.8  # a column whose values are this share numbers (or dates), but not all, is refused as mixed
BOOL_WORDS = {"true": True, "false": False}
RUN_KEYS = ("name", "n_train", "n_val", "metadata_from")  # what a run's data/meta.json adds (ignored when read back)


def detect(frame: pd.DataFrame, *, target: str | None, name: str) -> dict[str, Any]:
    """The metadata of ``frame``: every column typed, with its domain and missing rate."""
    if target is not None and target not in frame.columns:
        raise GenlabError(f"target column '{target}' is not in {name} (columns: {', '.join(map(str, frame.columns))})")
    return {"target": target, "columns": {str(c): _detect_column(frame[c], str(c), len(frame)) for c in frame.columns}}


def _detect_column(col: pd.Series, name: str, n_rows: int) -> dict[str, Any]:
    values = col.dropna()
    missing = round(1 - len(values) / n_rows, 6)
    if not len(values):
        raise GenlabError(f"column '{name}' is entirely missing; remove it from the file")
    if pd.api.types.is_bool_dtype(col) or _words(values) is not None:
        return {"type": "boolean", "categories": [False, True], "missing": missing, "public": True}
    if pd.api.types.is_datetime64_any_dtype(col):
        return _datetime_column(pd.to_datetime(values), missing)
    numbers = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_numeric_dtype(col) else values
    parsed = numbers.notna().mean()
    if MOSTLY <= parsed < 1:
        bad = values[numbers.isna()].index[0]
        raise GenlabError(f"column '{name}' mixes numbers and text (row {_row(bad)}: {str(col[bad])[:40]!r}); make "
                          "it all numbers, or declare it categorical in a metadata file")
    if parsed == 1:
        numbers = numbers.astype(float)
        if not np.isfinite(numbers).all():
            raise GenlabError(f"column '{name}' holds infinite values; a table's numbers must be finite")
        whole = bool((numbers == numbers.round()).all())
        distinct = numbers.nunique()
        if whole and distinct <= FEW_VALUES:
            cats = sorted(int(v) for v in numbers.unique())
            return {"type": "categorical", "categories": cats, "missing": missing, "public": False}
        if whole and distinct == n_rows and n_rows >= 10:
            return {"type": "id"}
        return {"type": "integer" if whole else "numeric", "min": _num(numbers.min()), "max": _num(numbers.max()),
                "missing": missing, "public": False}
    text = values.astype(str)
    dates = _dates(text)
    if dates.notna().mean() >= MOSTLY:
        if dates.isna().any():
            bad = text[dates.isna()].index[0]
            raise GenlabError(f"column '{name}' holds dates, but row {_row(bad)} does not parse as one "
                              f"({text[bad][:40]!r}); correct it, or declare the column categorical in a metadata "
                              "file")
        return _datetime_column(dates, missing)
    if text.nunique() == n_rows and n_rows >= 10:
        return {"type": "id"}
    return {"type": "categorical", "categories": sorted(text.unique().tolist()), "missing": missing, "public": False}


def _datetime_column(dates: pd.Series, missing: float) -> dict[str, Any]:
    midnight = bool((dates == dates.dt.normalize()).all())
    fmt = "%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S"
    return {"type": "datetime", "format": fmt, "min": dates.min().strftime(fmt), "max": dates.max().strftime(fmt),
            "missing": missing, "public": False}


def _words(values: pd.Series) -> dict | None:
    """{text: bool} when every value is true/false (any case), else None."""
    if pd.api.types.is_numeric_dtype(values):
        return None
    lower = set(values.astype(str).str.strip().str.lower().unique())
    return BOOL_WORDS if lower and lower <= set(BOOL_WORDS) else None


def _dates(text: pd.Series) -> pd.Series:
    """Each value parsed as a date-time (NaT where it does not parse); only text with digits and separators tries."""
    looks = text.str.fullmatch(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?")
    if looks.mean() < MOSTLY:
        return pd.Series(pd.NaT, index=text.index)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it infers the format per element
        return pd.to_datetime(text, errors="coerce", format="mixed")


def _num(value: Any) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _row(index: Any) -> str:
    """A data row's number as a spreadsheet shows it (header = row 1) when the index is the default one."""
    return str(index + 2) if isinstance(index, (int, np.integer)) else repr(index)


# -- a user's metadata file ---------------------------------------------------------------------------------------
def read_metadata(path: Path) -> dict[str, Any]:
    """A metadata JSON file, its shape checked (not yet against the data)."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenlabError(f"{path}: no such metadata file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GenlabError(f"{path} is not a readable JSON metadata file ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("columns"), dict) or not meta["columns"]:
        raise GenlabError(f"{path}: a metadata file is an object with a non-empty \"columns\" object")
    unknown = set(meta) - {"target", "columns", *RUN_KEYS}
    if unknown:
        raise GenlabError(f"{path}: unknown key '{sorted(unknown)[0]}' (keys: target, columns)")
    for name, col in meta["columns"].items():
        where = f"{path}: column '{name}'"
        if not isinstance(col, dict) or col.get("type") not in TYPES:
            raise GenlabError(f"{where} needs a \"type\", one of {', '.join(TYPES)}")
        extra = set(col) - COLUMN_KEYS
        if extra:
            raise GenlabError(f"{where}: unknown key '{sorted(extra)[0]}' (keys: {', '.join(sorted(COLUMN_KEYS))})")
        kind = col["type"]
        if kind in ("categorical", "boolean"):
            cats = col.get("categories")
            if not isinstance(cats, list) or not cats or len(set(map(repr, cats))) != len(cats):
                raise GenlabError(f"{where} needs a list of distinct \"categories\"")
        if kind in ("numeric", "integer"):
            for key in ("min", "max"):
                v = col.get(key)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise GenlabError(f"{where} needs a finite number as \"{key}\"")
            if col["min"] > col["max"]:
                raise GenlabError(f"{where}: min ({col['min']}) is above max ({col['max']})")
        if kind == "datetime":
            for key in ("min", "max", "format"):
                if not isinstance(col.get(key), str):
                    raise GenlabError(f"{where} needs \"{key}\" as text (a date, and a strftime format)")
        missing = col.get("missing", 0.0)
        if kind != "id" and (isinstance(missing, bool) or not isinstance(missing, (int, float))
                             or not 0 <= missing < 1):
            raise GenlabError(f"{where}: \"missing\" is a share of rows in [0, 1)")
    target = meta.get("target")
    if target is not None and (target not in meta["columns"] or meta["columns"][target]["type"] == "id"):
        raise GenlabError(f"{path}: target '{target}' is not one of its (non-id) columns")
    return {k: v for k, v in meta.items() if k not in RUN_KEYS}


def check_against(meta: dict[str, Any], frame: pd.DataFrame, source: str) -> None:
    """Refuse metadata that contradicts the data: a column missing on either side, a value outside its domain."""
    cols = meta["columns"]
    for name in frame.columns:
        if str(name) not in cols:
            raise GenlabError(f"column '{name}' of {source} is not in the metadata; add it (type \"id\" leaves it out)")
    for name, col in cols.items():
        if name not in frame.columns:
            raise GenlabError(f"the metadata's column '{name}' is not in {source}")
        if col["type"] == "id":
            continue
        values = frame[name].dropna()
        if not len(values) and len(frame):
            raise GenlabError(f"column '{name}' is entirely missing; remove it from the file and the metadata")
        kind, bad = col["type"], None
        if kind in ("categorical", "boolean"):
            known = {category_key(c) for c in col["categories"]}
            off = values[~values.map(category_key).isin(known)]
            if len(off):
                bad = f"holds {str(off.iloc[0])[:40]!r}, which is not among its categories"
        elif kind in ("numeric", "integer"):
            numbers = pd.to_numeric(values, errors="coerce")
            if numbers.isna().any():
                bad = f"holds {str(values[numbers.isna()].iloc[0])[:40]!r}, which is not a number"
            elif kind == "integer" and not (numbers == numbers.round()).all():
                bad = f"holds {numbers[numbers != numbers.round()].iloc[0]}, which is not a whole number"
            elif len(numbers) and (numbers.min() < col["min"] or numbers.max() > col["max"]):
                bad = f"holds values from {numbers.min()} to {numbers.max()}, outside its range " \
                      f"[{col['min']}, {col['max']}]"
        elif kind == "datetime":
            dates = pd.to_datetime(values.astype(str), errors="coerce", format="mixed")
            if dates.isna().any():
                bad = f"holds {str(values[dates.isna()].iloc[0])[:40]!r}, which does not parse as a date"
            elif len(dates) and (dates.min() < pd.Timestamp(col["min"]) or dates.max() > pd.Timestamp(col["max"])):
                bad = f"holds dates from {dates.min()} to {dates.max()}, outside [{col['min']}, {col['max']}]"
        if bad:
            raise GenlabError(f"column '{name}' {bad} in the metadata; the metadata contradicts {source}")


def category_key(value: Any) -> str:
    """A category's identity across types: 1, 1.0 and '1' are the same category; True and 'true' too."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return value.strip().lower()
    try:
        number = float(value)
        return repr(int(number)) if number.is_integer() else repr(number)
    except (TypeError, ValueError):
        return str(value)
