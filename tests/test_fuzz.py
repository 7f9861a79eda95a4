"""Fuzzing of every reader of user data (``genlab.readers``), and a test for every crash fuzzing has found.

``make test`` runs a bounded, deterministic pass: ``GENLAB_FUZZ_EXAMPLES`` (default 30) mutated inputs per reader,
derandomized, without an example database. ``make fuzz`` sets ``GENLAB_FUZZ=1``: random rounds per reader until
``GENLAB_FUZZ_EXAMPLES`` (default 20,000) inputs or ``GENLAB_FUZZ_SECONDS`` (default 300) seconds, from
``GENLAB_FUZZ_SEED`` (default: the clock); every new kind of crash is shrunk and saved in ``tests/fuzz/crashes/``,
which ``test_crash`` replays, one test per file. Seeds: ``tests/fuzz/seeds/<reader>/`` (``tests/fuzz/make_seeds.py``
writes them); run folders are trained here, once per session: too big for the repository.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from genlab import registry
from genlab.errors import GenlabError
from genlab.readers import all_readers
from fuzz.cases import Edit, FileCase, FolderCase, Seed, crash_name, folder_seed, load_case, load_seeds
from fuzz.harness import CRASHES, MEMORY, NOTE, SEEDS, adopt_inflight, attempt, crash_files, fuzz, fuzz_long, report, \
    save_crash, seed_names

LONG = os.environ.get("GENLAB_FUZZ") == "1"
EXAMPLES = int(os.environ.get("GENLAB_FUZZ_EXAMPLES", "20000" if LONG else "30"))
SECONDS = float(os.environ.get("GENLAB_FUZZ_SECONDS", "300"))
SEED = int(os.environ.get("GENLAB_FUZZ_SEED", str(int(time.time()))))
READERS = all_readers()
TINY_RUN = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=16", "train.batch_size=4",
            "train.max_steps=3", "train.eval_every=0", "train.eval_batches=1", "train.warmup_steps=1",
            "train.precision=fp32", "train.threads=1"]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> list[Path]:
    """Two runs, every file a run folder holds: a gpt of one layer trained 3 steps on the text seed and evaluated
    (text, tokens, a tokenizer), and a ppca fitted to 24 random 24x24 images (images, no tokenizer)."""
    import numpy as np
    from PIL import Image

    import genlab

    folder = tmp_path_factory.mktemp("fuzz-runs")
    genlab.train("gpt", str(SEEDS / "modality-text" / "hamlet.txt"), out=folder / "tiny-gpt",
                 overrides=TINY_RUN).evaluate()
    rng = np.random.default_rng(0)
    (folder / "pictures").mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(folder / "pictures" / f"{i}.png")
    genlab.train("ppca", str(folder / "pictures"), out=folder / "tiny-ppca",
                 overrides=["model.components=2", "data.size=24", "release.track_energy=false"])
    return [folder / "tiny-gpt", folder / "tiny-ppca"]


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory) -> Path:
    """A runs folder the request bodies name (``tests/fuzz/seeds/http-request``): one tiny run per kind of
    endpoint (text, image, bert, t5, table, music), each trained a few steps on the seeds in the repository."""
    import numpy as np
    from PIL import Image

    import genlab

    folder = tmp_path_factory.mktemp("served-runs")
    few = [o for o in TINY_RUN if not o.startswith("model.")]
    text = str(SEEDS / "modality-text" / "hamlet.txt")
    rng = np.random.default_rng(0)
    pictures = tmp_path_factory.mktemp("served-pictures")
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(pictures / f"{i}.png")
    for name, family, data in (("text", "gpt", text), ("bert", "bert", text), ("music", "gpt", str(SEEDS /
                               "modality-music" / "two")), ("t5", "t5", str(SEEDS / "modality-pairs" / "pairs.jsonl")),
                               ("table", "copula", str(SEEDS / "modality-table" / "patients.csv")),
                               ("image", "ppca", str(pictures))):
        family_cls = registry.get_family(family)
        sizes = [*TINY_RUN, *(["model.block_size=64"] if name == "text" else [])] if family == "gpt" else \
            [*family_cls.example.get("set", ()), *few]
        sizes = sizes if family_cls.iterative else ["release.track_energy=false", *family_cls.example.get("set", ())]
        if family == "ppca":
            sizes = ["model.components=2", "data.size=24", "release.track_energy=false"]
        genlab.train(family, data, out=folder / name, overrides=sizes)
    return folder


@pytest.fixture(scope="session")
def seeds_of(request, tmp_path_factory):
    """``seeds_of(reader)``: its seeds; a run folder's are made here, and a modality without seeds in the repo
    gets the example dataset it writes (``Modality.example``)."""
    made: dict[str, list[Seed]] = {}
    if LONG:
        adopt_inflight()

    def get(name: str) -> list[Seed]:
        if name not in made:
            made[name] = load_seeds(SEEDS / name)
            if name == "http-request":  # the bodies name runs of this folder
                os.environ["GENLAB_SERVE_RUNS"] = str(request.getfixturevalue("served_runs"))
            if name == "run-folder" and not made[name]:
                made[name] = [folder_seed(path) for path in request.getfixturevalue("tiny_runs")]
            reader = READERS[name]
            if not made[name] and reader.modality:
                path = Path(registry.get_modality(reader.ref).example(tmp_path_factory.mktemp(f"example-{name}")))
                if path.exists():
                    made[name] = [folder_seed(path) if path.is_dir() else Seed(path.name, data=path.read_bytes())]
        return made[name]

    return get


@pytest.fixture(scope="session")
def names(seeds_of) -> tuple[str, ...]:
    return seed_names({name: seeds_of(name) for name in READERS if name != "run-folder"})


def test_every_modality_has_a_reader():
    assert {f"modality-{m}" for m in registry.MODALITIES} <= set(READERS)
    for name, reader in READERS.items():
        assert reader.kind in ("file", "folder", "any"), name
        if not reader.modality:
            assert callable(registry.load(reader.ref)), name


@pytest.mark.parametrize("name", sorted(READERS))
def test_seeds_are_read(name, seeds_of, tmp_path):
    """Every seed is a valid input: its reader returns a result for it, not even an error."""
    reader, seeds = READERS[name], seeds_of(name)
    assert seeds, f"reader {name} has no seeds: add valid inputs to {SEEDS / name}/ (see tests/fuzz/make_seeds.py)"
    for seed in seeds:
        is_folder = seed.files is not None
        assert reader.kind == "any" or (reader.kind == "folder") == is_folder, f"{name}: seed {seed.name} kind"
        path = tmp_path / seed.name
        if is_folder:
            for rel, data in seed.files.items():
                (path / rel).parent.mkdir(parents=True, exist_ok=True)
                (path / rel).write_bytes(data)
        else:
            path.write_bytes(seed.data)
        reader(path)


@pytest.mark.parametrize("name", sorted(READERS))
def test_fuzz_reader(name, seeds_of, names, tmp_path):
    """Mutated seeds give a result or a one-line GenlabError: no other exception, no hang, no allocation past the
    bound. A failure lists each kind of crash, its input saved (bounded run: under tmp_path)."""
    seeds = seeds_of(name)
    if not seeds:
        pytest.fail(f"reader {name} has no seeds: add valid inputs to {SEEDS / name}/")
    scratch = tmp_path / "cases"
    if LONG:
        found = fuzz_long(READERS[name], name, seeds, names, scratch, examples=EXAMPLES, seconds=SECONDS, seed=SEED)
        new = {kind: f for kind, f in found.items() if f.saved}
        assert not new, report(name, new)
        return
    found = fuzz(READERS[name], name, seeds, names, scratch, examples=EXAMPLES)
    for f in found.values():
        f.saved = save_crash(name, f.case, f.outcome, folder=tmp_path / "crashes")
    assert not found, report(name, found)


@pytest.mark.parametrize("path", crash_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_crash(path, seeds_of, tmp_path):
    """A crash fuzzing found, replayed: it must now give a result or a one-line GenlabError."""
    name = path.parent.name
    assert name in READERS, f"{path} is a crash of reader {name}, which is no longer registered; delete it"
    case = load_case(path)
    seeds = {s.name: s for s in seeds_of(name)}
    outcome = attempt(READERS[name], case.materialize(tmp_path / "case", seeds))
    note = path.with_name(path.name.split(".", 1)[0] + NOTE)
    assert outcome.ok, f"{outcome.kind}\n{outcome.trace}\n(found as: {note.read_text() if note.exists() else '?'})"


def test_crash_folder_holds_only_readers():
    """Crash files sit in ``crashes/<reader>/`` under a registered reader's name."""
    assert all(p.parent.parent == CRASHES and p.parent.name in READERS for p in crash_files())


# -- the harness itself --------------------------------------------------------------------------------------------
def answers(path: Path) -> int:
    return 1


def refuses(path: Path) -> None:
    raise GenlabError(f"{path}: not a thing genlab reads")


def says_two_lines(path: Path) -> None:
    raise GenlabError("first line\nsecond line")


def breaks(path: Path) -> None:
    raise KeyError("a traceback for the user")


def sleeps(path: Path) -> None:
    time.sleep(30)


def allocates(path: Path) -> None:
    bytearray(2 * MEMORY)  # twice the bound: refused by the address-space limit before any page is touched


def test_the_harness_tells_crashes_from_results(tmp_path):
    assert attempt(answers, tmp_path).kind == "result"
    assert attempt(refuses, tmp_path).kind == "error"
    assert not attempt(says_two_lines, tmp_path).ok
    assert attempt(breaks, tmp_path).kind.startswith("KeyError in test_fuzz.py:breaks")
    assert attempt(sleeps, tmp_path, seconds=0.2).kind.startswith("hang")
    assert attempt(allocates, tmp_path).kind.startswith("MemoryError")


def test_crash_files_read_back_as_their_cases(tmp_path):
    cases = [FileCase("pairs.csv", b"source,target\n\x00"),
             FolderCase("tiny-gpt", (Edit("config.toml", "write", b"\xff"), Edit("data", "symlink", b"/")))]
    for case in cases:
        (tmp_path / crash_name(case)).write_bytes(case.dump()[1])
        assert load_case(tmp_path / crash_name(case)) == case
    with pytest.raises(ValueError, match="leaves the case folder"):
        FolderCase("s", (Edit("../escape.txt", "write"),)).materialize(tmp_path, {"s": Seed("s", files={})})
