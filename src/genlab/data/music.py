"""Symbolic music: Bach's chorales and the Essen folk songs (music21's corpus), or the user's MIDI, MusicXML and ABC
files, as miditok tokens that a token family (gpt) learns like text.

1. **Pieces**: each score becomes MIDI (``music_convert.py``, cached); each MIDI file is read with symusic and
   checked (unreadable, no notes, drums only: a one-line error naming the file). Drum tracks are left out; unless
   ``data.programs``, every pitched track is merged into one piano part.
2. **Split by piece**, by a stable hash of the piece's name, so no piece is on both sides.
3. **Tokens**: miditok's REMI (Huang & Yang 2020), with BPE merges learned on the training pieces when
   ``data.bpe_vocab`` is set; the tokenizer is saved with the run (``data/miditok.json``). Training pieces may
   also be added transposed (``data.transpose``), after every original.
4. **Files**: each split is a flat token file, pieces separated by ``<|endoftext|>``, read through a word-level
   ``tokenizers`` vocabulary whose id *i* is miditok's token *i* (``Pitch_60``; a BPE token is its base tokens
   joined by ``+``), so the gpt family trains, samples and exports unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from genlab.data.dataset import DatasetInfo
from genlab.data.tokenizers import EOT, eot_id
from genlab.data.tokens import TextData
from genlab.errors import GenlabError
from genlab.files import atomic_write, atomic_write_bytes
from genlab.progress import task

MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".abc", ".krn")  # converted by music21
MUSIC_SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES
KINDS = "MIDI (.mid, .midi), MusicXML (.xml, .musicxml, .mxl), ABC (.abc) or Humdrum (.krn)"
MIDI_TOKENIZER_FILE = "miditok.json"  # in the run's data folder
BAR = "Bar_None"


@dataclass(frozen=True)
class MusicDataConfig:
    """How scores become tokens."""

    bpe_vocab: int = 0  # 0 = plain REMI tokens; else BPE merges learned on the training pieces up to this vocabulary
    programs: bool = False  # keep each track's instrument (Program tokens); false merges the pitched tracks into one
    transpose: int = 0  # augmentation: each training piece also transposed by +-1..+-transpose semitones (0 = off)
    val_fraction: float = 0.1  # share of the pieces held out (whole pieces)

    limits: ClassVar[dict[str, str]] = {"bpe_vocab": "[0, 65536]", "transpose": "[0, 6]", "val_fraction": "(0, 0.5)"}


# -- sources ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MusicSource:
    """Pieces to read: the user's MIDI files as they are, and score files to convert first (``music_convert``)."""

    name: str  # dataset name, or the user's path
    midi: tuple[Path, ...] = ()  # MIDI files read as they are
    jobs: tuple[tuple[str, str, str], ...] = ()  # (cache key, "corpus" or "file", reference) of scores to convert
    mend: bool = False  # a built-in corpus: mend music21's known failures and leave out what still fails
    what: str = "scores"  # what the jobs are, for the progress bar
    root: Path | None = None  # the user's folder: pieces are named relative to it

    def pieces(self) -> list[tuple[str, Path]]:
        """(piece name, MIDI file) of every piece, sorted by name."""
        from genlab.data.music_convert import convert

        named = [(self._name(p), p) for p in self.midi]
        converted = convert(list(self.jobs), what=self.what, mend=self.mend) if self.jobs else []
        for (key, _, ref), files in zip(self.jobs, converted):
            base = key if self.mend else self._name(Path(ref))  # the corpus by key, the user's files by path
            named += [(base if len(files) == 1 else f"{base}#{f.stem}", f) for f in files]
        return sorted(named)

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if self.root else path.name


def source_from_path(path: Path) -> MusicSource:
    """The user's music file, or folder of them (searched recursively; other files are left alone)."""
    from genlab.data.music_convert import file_key

    if path.is_file():
        files, root = [path], path.parent
        if path.suffix.lower() not in MUSIC_SUFFIXES:
            raise GenlabError(f"{path}: not a music file genlab reads; give {KINDS} files")
    else:
        root = path
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MUSIC_SUFFIXES)
        if not files:
            raise GenlabError(f"{path}: no music files in this folder; give a folder of {KINDS} files")
    midi = tuple(p for p in files if p.suffix.lower() in MIDI_SUFFIXES)
    try:
        jobs = tuple((file_key(p), "file", str(p)) for p in files if p.suffix.lower() in SCORE_SUFFIXES)
    except OSError as e:
        raise GenlabError(f"cannot read {e.filename}: {e.strerror}") from None
    return MusicSource(str(path), midi=midi, jobs=jobs, root=root)


def _music21_installed() -> bool:
    return importlib.util.find_spec("music21") is not None


def _chorales() -> MusicSource:
    from music21 import corpus

    names = sorted({str(p) for p in corpus.chorales.Iterator(returnType="filename")})  # 371 entries, 350 chorales
    return MusicSource("chorales", jobs=tuple((f"chorales/{n.replace('/', '_')}", "corpus", n) for n in names),
                       mend=True, what="chorales")


def _folk() -> MusicSource:
    from music21 import corpus

    books = sorted(str(p) for p in corpus.getPaths(fileExtensions=["abc"]) if "essenFolksong" in Path(p).parts)
    return MusicSource("folk", jobs=tuple((f"folk/{Path(b).stem}", "file", b) for b in books), mend=True,
                       what="books of Essen folk songs")


CHORALES = DatasetInfo(
    name="chorales",
    description="Bach's four-part chorales (Riemenschneider), from music21's corpus",
    size="350 chorales, about 1,000 REMI tokens each",
    licence="public domain scores; music21's corpus encodings are BSD-licensed",
    install="pip install music21",
    installed=_music21_installed,
    load=_chorales,
    license_id="bsd-3-clause",
)

FOLK = DatasetInfo(
    name="folk",
    description="the Essen folk-song collection (European, mostly German, melodies), from music21's corpus",
    size="8,514 tunes in 31 ABC books, about 240 REMI tokens each",
    licence="free for research use (Essen Associative Code collection, Schaffrath 1995); music21's corpus",
    install="pip install music21",
    installed=_music21_installed,
    load=_folk,
)


# -- reading ----------------------------------------------------------------------------------------------------
def read_midi(data: bytes, what: str) -> Any:
    """A MIDI file's score (symusic, in ticks), refused when unreadable, without notes or with only drums."""
    import symusic

    try:
        score = symusic.Score.from_midi(data)
    except (RuntimeError, ValueError) as e:
        reason = " ".join(str(e).replace("MiniMidi:", "").replace(": iostream error", "").split())[:120]
        raise GenlabError(f"{what}: not a readable MIDI file ({reason or 'damaged or cut short'})") from None
    tracks = [t for t in score.tracks if len(t.notes)]
    if not tracks:
        raise GenlabError(f"{what}: holds no notes")
    if all(t.is_drum for t in tracks):
        raise GenlabError(f"{what}: holds only drum tracks (MIDI channel 10); genlab's music models learn pitched "
                          "parts")
    return score


def read_midi_file(path: Path) -> Any:
    """The reader of one user's MIDI file (also the fuzz harness's)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise GenlabError(f"cannot read {path}: {e.strerror}") from None
    return read_midi(data, str(path))


def pitched(score: Any, programs: bool) -> Any:
    """The score's pitched tracks (drums left out); merged into one piano track unless ``programs``."""
    import symusic

    keep = [t for t in score.tracks if len(t.notes) and not t.is_drum]
    out = symusic.Score(score.ticks_per_quarter)
    out.time_signatures, out.tempos, out.key_signatures = score.time_signatures, score.tempos, score.key_signatures
    if programs:
        out.tracks = keep
        return out
    merged = symusic.Track("piano", 0, False)
    for t in keep:
        merged.notes.extend(t.notes)
    merged.notes.sort()
    out.tracks.append(merged)
    return out


# -- tokens -----------------------------------------------------------------------------------------------------
def new_midi_tokenizer(programs: bool) -> Any:
    """miditok's REMI: pitches 21-108, 8 positions per beat, 32 velocities, time signatures; with ``programs``, one
    stream for all tracks with a Program token before each note."""
    from miditok import REMI, TokenizerConfig

    return REMI(TokenizerConfig(use_programs=programs, use_time_signatures=True))


def load_midi_tokenizer(path: Path) -> Any:
    from miditok import REMI

    if not path.is_file():  # miditok takes a missing path for a hub id and tries the network
        raise GenlabError(f"{path}: the run's music tokenizer is missing; the run folder is incomplete")
    try:
        return REMI(params=path)
    except Exception as e:  # a damaged file fails in many ways inside miditok
        raise GenlabError(f"{path}: cannot read the music tokenizer ({type(e).__name__}: {e})") from None


def encode(tok: Any, score: Any) -> list[int]:
    """A score (already ``pitched``) as token ids (BPE-merged when the tokenizer learned merges)."""
    seq = tok.encode(score)
    seq = seq[0] if isinstance(seq, list) else seq  # one track: one sequence
    return list(seq.ids)


def decode(tok: Any, ids: list[int]) -> Any:
    """Token ids back to a score (symusic, in ticks); never mutates ``ids``."""
    ids = [int(i) for i in ids]
    return tok.decode(ids if tok.one_token_stream else [ids])


def token_names(tok: Any) -> list[str]:
    """The name of every id: ``Pitch_60``; a BPE token, its base tokens joined by ``+``."""
    if not tok.is_trained:
        names = [""] * len(tok.vocab)
        for name, i in tok.vocab.items():
            names[i] = name
        return names
    names = [""] * len(tok.vocab_model)
    for chars, i in sorted(tok.vocab_model.items(), key=lambda kv: kv[1]):
        name = "+".join(tok._vocab_learned_bytes_to_tokens[chars])  # miditok keeps this map private
        names[i] = name if name not in names else f"{name}#{i}"  # a bar's start marker doubles one base token
    return names


def word_tokenizer(names: list[str]) -> Any:
    """A ``tokenizers`` vocabulary where id i is ``names[i]``, with ``<|endoftext|>`` last; text is names joined
    by spaces."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({n: i for i, n in enumerate(names)}, unk_token=names[0]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([EOT])
    return tok


# -- preparing --------------------------------------------------------------------------------------------------
def split_pieces(pieces: list[tuple[str, Path]], val_fraction: float, name: str) -> tuple[list, list]:
    """(train, held-out) by a stable hash of each piece's name; at least one piece on each side."""
    if len(pieces) < 2:
        raise GenlabError(f"{name}: {len(pieces)} piece; give at least 2 (one is held out for evaluation)")
    frac = {p: int(hashlib.sha256(p.encode()).hexdigest()[:12], 16) / 16**12 for p, _ in pieces}
    val = [pc for pc in pieces if frac[pc[0]] < val_fraction] or [min(pieces, key=lambda pc: frac[pc[0]])]
    train = [pc for pc in pieces if pc not in val]
    if not train:
        raise GenlabError(f"{name}: every piece fell in the held-out split; lower data.val_fraction")
    return train, val


def prepare_music(source: MusicSource, cfg: MusicDataConfig, folder: Path) -> MusicData:
    """Read and check every piece, split by piece, fit the tokenizer on the training pieces, write both splits."""
    pieces = source.pieces()
    train, val = split_pieces(pieces, cfg.val_fraction, source.name)
    scores: dict[str, Any] = {}
    with task(f"reading {len(pieces):,} pieces", total=len(pieces)) as step:
        for name, path in pieces:
            scores[name] = pitched(read_midi_file(path), cfg.programs)
            step()
    tok = new_midi_tokenizer(cfg.programs)
    if cfg.bpe_vocab:
        _learn_bpe(tok, [scores[n] for n, _ in train], cfg.bpe_vocab)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(folder, filename=MIDI_TOKENIZER_FILE)
    names = token_names(tok)
    ids: dict[str, list[list[int]]] = {"train": [], "val": []}
    with task(f"tokenizing {len(pieces):,} pieces", total=len(pieces)) as step:
        for split, part in (("train", train), ("val", val)):
            for name, _ in part:
                ids[split].append(encode(tok, scores[name]))
                step()
    originals = len(ids["train"])
    for k in [s * k for k in range(1, cfg.transpose + 1) for s in (1, -1)]:  # 3. augmentation, after every original
        for name, _ in train:
            moved = scores[name].shift_pitch(k)
            if all(21 <= n.pitch <= 108 for t in moved.tracks for n in t.notes):
                ids["train"].append(encode(tok, moved))
    bars = _tokens_per_bar(ids["train"][:originals], names)
    music = {"pieces": {"train": originals, "val": len(val)}, "augmented": len(ids["train"]) - originals,
             "held_out": [n for n, _ in val], "tokenizer": "REMI+BPE" if cfg.bpe_vocab else "REMI",
             "tokens_per_bar": bars}
    write_splits(ids, len(names) + 1, folder, music)
    return MusicData(word_tokenizer(names), folder)


def _learn_bpe(tok: Any, scores: list[Any], vocab: int) -> None:
    if vocab <= len(tok.vocab):
        raise GenlabError(f"data.bpe_vocab = {vocab} must exceed the {len(tok.vocab)} base REMI tokens (or be 0)")
    with tempfile.TemporaryDirectory() as tmp, task(f"learning BPE merges up to {vocab:,} tokens"):
        paths = []
        for i, score in enumerate(scores):  # miditok learns from files: the pieces as they are tokenized
            paths.append(Path(tmp) / f"{i}.mid")
            score.dump_midi(str(paths[-1]))
        tok.train(vocab_size=vocab, model="BPE", files_paths=paths)


def _tokens_per_bar(pieces: list[list[int]], names: list[str]) -> dict[str, float]:
    """Tokens between bar lines in the training pieces: the median and the 99th percentile (sampling budgets)."""
    counts = np.array([n.count(BAR) for n in names])
    lengths = [len(p) / max(1, int(counts[p].sum())) for p in pieces if len(p)]
    return {"median": float(np.median(lengths)), "p99": float(np.percentile(lengths, 99))}


def write_splits(ids: dict[str, list[list[int]]], vocab: int, folder: Path, music: dict) -> None:
    """Each split's pieces as one flat token file, ``<|endoftext|>`` (the last id) between pieces."""
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    meta: dict = {"dtype": np.dtype(dtype).name, "vocab_size": vocab, "splits": {}, "music": music}
    for split, pieces in ids.items():
        flat = np.fromiter((t for i, p in enumerate(pieces) for t in ([vocab - 1] if i else []) + p), dtype=dtype)
        atomic_write(folder / f"{split}.bin", flat.tofile)
        meta["splits"][split] = {"tokens": len(flat), "pieces": len(pieces)}
    atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=1).encode())


@dataclass
class MusicData(TextData):
    """Token files of music pieces, the word vocabulary the family reads, and the miditok tokenizer behind it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.music = self.meta.get("music")
        if not isinstance(self.music, dict) or "pieces" not in self.music:
            raise GenlabError(f"{self.folder / 'meta.json'} has no music section; the run folder is damaged")

    @cached_property
    def midi_tokenizer(self) -> Any:
        return load_midi_tokenizer(self.folder / MIDI_TOKENIZER_FILE)

    @cached_property
    def names(self) -> list[str]:
        vocab = self.tokenizer.get_vocab()
        names = [""] * len(vocab)
        for name, i in vocab.items():
            names[i] = name
        return names

    @cached_property
    def eot(self) -> int:
        """The id between pieces (``<|endoftext|>``; a family may add tokens after it, as bert adds [MASK])."""
        return eot_id(self.tokenizer)

    @cached_property
    def bars_in(self) -> np.ndarray:
        """(V,) how many bar lines each token holds (a BPE token may hold one)."""
        return np.array([n.count(BAR) for n in self.names])

    def pieces(self, split: str) -> list[list[int]]:
        """The split's pieces as token ids (training: the originals, not their transpositions)."""
        arr = np.asarray(self.arrays[split], dtype=np.int64)
        eot = self.eot
        cuts = np.flatnonzero(arr == eot)
        pieces = [p.tolist() for p in np.split(arr, cuts) if len(p)]
        pieces = [p[1:] if p[0] == eot else p for p in pieces]
        return pieces[: int(self.music["pieces"]["train"])] if split == "train" else pieces

    def decode(self, ids: list[int]) -> Any:
        return decode(self.midi_tokenizer, ids)

    def encode(self, score: Any) -> list[int]:
        return encode(self.midi_tokenizer, pitched(score, self.midi_tokenizer.config.use_programs))
