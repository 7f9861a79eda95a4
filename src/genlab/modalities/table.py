"""The table modality: rows of mixed types in, synthetic rows out.

Data: a built-in medical table (``breast-cancer``, ``diabetes``, ``medexp``, ``nhefs``) or the user's CSV or Parquet
file, typed into metadata (``data/table_meta.py``), split and cached as numbers (``data/tables.py``). Outputs: a
synthetic table (``Table``), written as CSV or Parquet with a signed C2PA sidecar. Sampling takes conditions
(``--condition sex=F``). Evaluation compares synthetic rows with the held-out rows the model never saw: fidelity,
utility and privacy (``evaluate/tables.py``), each beside a Gaussian copula fitted on the same rows, with an HTML
page of plots (``RUN/report.html``). Tables carry no watermark: a mark hidden in values would change the statistics
the data is for; their provenance is the signed manifest.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genlab.data.table_meta import category_key
from genlab.data.tables import TABLE_SUFFIXES, TableData, TableDataConfig, TableSource, decode, kept, \
    prepare_table, read_table
from genlab.errors import BadArgument, GenlabError
from genlab.modalities.base import Modality, Option, Outputs, own_options

MAX_TRIES = 50  # batches of draws a conditional sample may take before its condition is called too rare
REPORT_FILE = "report.html"


class Table(Outputs):
    """Synthetic rows: ``rows`` float64 (n, C) as ``data/tables.py`` holds them, ``frame`` the table they decode to."""

    modality = "table"

    def __init__(self, meta: dict[str, Any], rows: np.ndarray) -> None:
        self.meta = meta
        self.rows = np.asarray(rows, dtype=np.float64)  # (n, C)
        self._frame = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def frame(self) -> Any:
        """The rows as a pandas DataFrame (categories, integers and dates restored)."""
        if self._frame is None:
            self._frame = decode(self.rows, self.meta)
        return self._frame

    def csv_bytes(self) -> bytes:
        frame = self.frame.copy()
        for name, col in kept(self.meta).items():
            if col["type"] == "datetime":  # written as the source wrote them
                frame[name] = frame[name].dt.strftime(col["format"])
        return frame.to_csv(index=False).encode("utf-8")

    def parquet_bytes(self) -> bytes:
        buf = io.BytesIO()
        frame = self.frame.copy()
        for name, col in kept(self.meta).items():
            if col["type"] in ("categorical", "boolean"):  # one type per column, as Parquet requires
                kinds = {type(c) for c in col["categories"]}
                frame[name] = frame[name].astype("boolean" if kinds == {bool} else object if kinds == {str}
                                                  else "Float64" if float in kinds else "Int64")
        frame.to_parquet(buf, index=False)
        return buf.getvalue()

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        yield f"{prefix}.csv", self.csv_bytes()

    def save(self, path: str | Path, *, sign: bool | None = None, prefix: str = "sample") -> Path:
        """Into a new ``.csv`` or ``.parquet`` file (with its signed sidecar), or ``{prefix}.csv`` in a new folder."""
        path = Path(path)
        if path.suffix.lower() not in TABLE_SUFFIXES:
            return super().save(path, sign=sign, prefix=prefix)
        if path.exists():
            raise GenlabError(f"{path} already exists; choose a new file for the synthetic table")
        if not path.parent.is_dir():
            raise GenlabError(f"{path.parent}: no such folder")
        data = self.csv_bytes() if path.suffix.lower() == ".csv" else self.parquet_bytes()
        self.writer(sign)(path, data)
        return path


def parse_conditions(items: list[str] | dict[str, Any] | None, meta: dict[str, Any]) -> dict[str, int] | None:
    """``["sex=F", ...]`` (or, from Python, ``{"sex": "F"}``) -> {column: category index}, refused for an unknown
    column or value."""
    if not items:
        return None
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    if isinstance(items, str):
        items = [items]
    cols = kept(meta)
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise BadArgument("condition", f"{item!r} is not column=value (e.g. --condition sex=female)")
        if name not in cols:
            raise BadArgument("condition", f"names the unknown column '{name}' (columns: {_listed(cols)})")
        col = cols[name]
        if col["type"] not in ("categorical", "boolean"):
            article = "an" if col["type"][0] in "aeiou" else "a"
            raise BadArgument("condition", f"'{name}' is {article} {col['type']} column; conditions take categorical "
                                           "and boolean columns")
        keys = [category_key(c) for c in col["categories"]]
        if category_key(value) not in keys:
            raise BadArgument("condition", f"'{name}' has no value {value!r} (values: {_listed(col['categories'])})")
        out[name] = keys.index(category_key(value))
    return out


def _listed(values: Any, most: int = 12) -> str:
    values = [str(v) for v in values]
    return ", ".join(values[:most]) + (f" ... ({len(values)} in all)" if len(values) > most else "")


def conditioned(draw: Callable[[int, int], np.ndarray], n: int, condition: dict[str, int] | None,
                meta: dict[str, Any], seed: int | None) -> np.ndarray:
    """``n`` rows from ``draw(m, seed) -> (m, C)`` that meet ``condition`` (every row when None), drawn in
    batches with seeds derived from ``seed`` and kept by rejection."""
    if n < 1:
        raise BadArgument("n", f"must be at least 1, got {n}")
    base = int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is not None else None
    if not condition:
        return draw(n, base if base is not None else int(np.random.SeedSequence().generate_state(1)[0]))
    index = {name: j for j, name in enumerate(kept(meta))}
    found, drawn, matched = [], 0, 0
    for attempt in range(MAX_TRIES):
        m = max(64, 2 * (n - matched))
        s = int(np.random.SeedSequence([base if base is not None else np.random.SeedSequence().entropy,
                                        attempt]).generate_state(1)[0])
        rows = draw(m, s)
        keep = np.ones(len(rows), dtype=bool)
        for name, k in condition.items():
            keep &= rows[:, index[name]] == k
        found.append(rows[keep])
        drawn, matched = drawn + m, matched + int(keep.sum())
        if matched >= n:
            return np.concatenate(found)[:n]
    wanted = ", ".join(f"{k}={kept(meta)[k]['categories'][v]}" for k, v in condition.items())
    raise GenlabError(f"condition {wanted} is too rare for this model: {matched} of {drawn} draws matched; ask for "
                      "fewer rows or a more common value")


class TableModality(Modality):
    name = "table"
    endpoint = "tables"  # POST /v1/tables/generations
    data_interface = "table"
    DataConfig = TableDataConfig
    Marks = None  # no watermark in values: provenance is the signed manifest
    unit, unit_name = "row", "row"
    counts = "rows"  # n rows go into one file
    audit_samples = 2000
    pipeline_tag = "tabular-classification"
    path_hint = "a .csv (UTF-8) or .parquet file with a header row"
    sample_options = (
        Option("condition", list, "only rows with this value: column=value (repeatable; categorical or boolean "
                                  "columns)"),
    )
    eval_options = (
        Option("real", str, "a CSV or Parquet file of real rows to compare with (default: the held-out split)",
               path=True),
        Option("n", int, "synthetic rows to generate (default: as many as the training rows)"),
    )
    intended_use = (
        ("A synthesiser of tables like its training table: for sharing data that keeps the table's statistics "
         "(for teaching, method development, software testing, or a first look before access to the real data is "
         "granted), measured for fidelity, utility and privacy risk before release."),
        ("Without a differential-privacy budget ([privacy] epsilon) there is no formal guarantee: synthetic rows can "
         "sit close to real patients' rows and a membership attack can sometimes tell who was in the training set. "
         "Read the privacy figures of `genlab eval` before sharing; with a budget, the guarantee is the epsilon "
         "spent, for the training rows only."),
        "Do not use synthetic rows for decisions about real individuals.",
    )

    def output_bytes(self, model: Any, n: int, options: dict[str, Any]) -> int:
        return n * len(kept(model.meta_)) * 8 * 8  # rows, their encodings and decoding copies

    def prepare(self, source: TableSource, config: TableDataConfig, folder: Path) -> TableData:
        return prepare_table(source, config, folder)

    def load(self, config: TableDataConfig, folder: Path) -> TableData:
        return TableData(folder)

    def from_path(self, path: Path) -> TableSource:
        return TableSource(path.name, read_table(path))

    def describe(self, source: TableSource, *, target: str | None = None) -> dict[str, Any]:
        from genlab.data.table_meta import detect

        source.frame.columns = [str(c) for c in source.frame.columns]
        return detect(source.frame, target=target or source.target, name=source.name)

    def claims(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in TABLE_SUFFIXES

    def example(self, folder: Path) -> str:
        return "diabetes"  # 442 patients x 11 columns (scikit-learn)

    def sample(self, model: Any, n: int, *, data: Any = None, **options: Any) -> Table:
        condition = parse_conditions(options.pop("condition", None), model.meta_)
        return model.sample(n, condition=condition, **options)

    def check_sample(self, model: Any, options: dict[str, Any]) -> None:
        parse_conditions(options.get("condition"), model.meta_)

    def check_evaluate(self, model: Any, options: dict[str, Any]) -> None:
        """The options are the modality's (it evaluates every table family itself), and a seed."""
        own_options(self, "evaluate", options, "seed")

    def evaluate(self, model: Any, data: TableData, **options: Any) -> dict[str, Any]:
        from genlab.modalities.table_eval import evaluate_table

        return evaluate_table(model, data, **options)

    def partial(self, options: dict[str, Any], data: TableData) -> str | None:
        return "compared with the rows of --real, not the held-out split" if options.get("real") else None

    def card_notes(self, meta: dict[str, Any]) -> list[str]:
        cols = kept(meta) if "columns" in meta else {}
        ids = [n for n, c in meta.get("columns", {}).items() if c["type"] == "id"]
        notes = [f"Learned from {meta.get('n_train', '?')} rows x {len(cols)} columns; {meta.get('n_val', '?')} rows "
                 "were held out for evaluation and never trained on."]
        if ids:
            notes.append(f"Identifier columns left out (never seen by the model): {', '.join(ids)}.")
        return notes

    def audit(self, run: Any, *, n: int, seed: int, out: Path | None) -> dict:
        from genlab.modalities.table_eval import audit_table

        return audit_table(run, n=n, seed=seed, out=out)


TABLE = TableModality()
