"""Music metrics as pure functions of note arrays: how close a set of pieces is to real music.

A piece is a ``Notes``: an (N, 4) array of onset and duration in quarter notes, MIDI pitch and velocity (drums
left out), sorted by onset then pitch, with its bar length. The measures follow Yang & Lerch 2018 ("On the
evaluation of generative models in music"): histograms of pitch classes, note durations and melodic intervals,
compared by their overlap (the shared area of two normalised histograms: 1 = the same distribution, 0 = nothing
in common), and per-piece figures (pitch range, notes per bar, the share of notes in the piece's key, found with
the Krumhansl-Kessler profiles).

Why by hand: muspy and mir_eval compute some of these but pull in much more (music21-free MIDI I/O of their own,
or audio metrics) and none computes the in-key share; the maths is a few lines of NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DURATION_EDGES = np.array([0, 0.1875, 0.375, 0.625, 0.875, 1.25, 1.75, 2.5, 3.5, 5.0, np.inf])  # quarter notes:
# about 1/8 (a 32nd), 1/4, 1/2, 3/4, 1, 1.5, 2, 3, 4 and longer
MAX_INTERVAL = 12  # melodic intervals beyond an octave count as an octave
# Krumhansl & Kessler 1982 key profiles, tonic first
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 11)}  # minor: harmonic (leading tone)
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Notes:
    """One piece's notes: (N, 4) onset, duration (quarter notes), pitch, velocity; and its bar length."""

    array: np.ndarray
    bar: float = 4.0  # quarter notes per bar (from the first time signature)

    def __len__(self) -> int:
        return len(self.array)

    def bars(self, start: float, stop: float) -> Notes:
        """The notes whose onsets fall in bars [start, stop) (0-based)."""
        on = self.array[:, 0]
        keep = (on >= start * self.bar) & (on < stop * self.bar)
        return Notes(self.array[keep], self.bar)

    @property
    def n_bars(self) -> int:
        return int(np.ceil((self.array[:, 0].max() + 1e-9) / self.bar)) if len(self) else 0


def notes_of(score: Any) -> Notes:
    """The pitched notes of a symusic score (ticks), in quarter notes."""
    tpq = float(score.ticks_per_quarter)
    rows = [(n.time / tpq, n.duration / tpq, n.pitch, n.velocity)
            for t in score.tracks if not t.is_drum for n in t.notes]
    array = np.array(rows, dtype=float).reshape(-1, 4)
    array = array[np.lexsort((array[:, 2], array[:, 0]))]
    ts = score.time_signatures
    bar = ts[0].numerator * 4.0 / ts[0].denominator if len(ts) else 4.0
    return Notes(array, bar)


# -- histograms -------------------------------------------------------------------------------------------------
def pitch_classes(notes: Notes) -> np.ndarray:
    """(12,) note counts per pitch class, C first."""
    return np.bincount(notes.array[:, 2].astype(int) % 12, minlength=12).astype(float)


def durations(notes: Notes) -> np.ndarray:
    """(10,) note counts per duration bin (``DURATION_EDGES``)."""
    return np.histogram(notes.array[:, 1], bins=DURATION_EDGES)[0].astype(float)


def melody(notes: Notes) -> np.ndarray:
    """The top line: the highest pitch at each onset, in time order."""
    if not len(notes):
        return np.zeros(0)
    on, pitch = notes.array[:, 0], notes.array[:, 2]
    starts = np.flatnonzero(np.r_[True, np.diff(on) > 1e-9])  # first note of each onset (sorted by onset)
    return np.maximum.reduceat(pitch, starts)


def intervals(notes: Notes) -> np.ndarray:
    """(25,) counts of melodic intervals of the top line, -12..+12 semitones (wider ones clipped)."""
    steps = np.clip(np.diff(melody(notes)), -MAX_INTERVAL, MAX_INTERVAL).astype(int) + MAX_INTERVAL
    return np.bincount(steps, minlength=2 * MAX_INTERVAL + 1).astype(float)


HISTOGRAMS = {"pitch_class": pitch_classes, "duration": durations, "interval": intervals}


def overlap(p: np.ndarray, q: np.ndarray) -> float:
    """Shared area of two histograms once each sums to 1 (0 when either is empty)."""
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    return float(np.minimum(p / p.sum(), q / q.sum()).sum())


# -- per-piece figures ------------------------------------------------------------------------------------------
def pitch_range(notes: Notes) -> float:
    pitch = notes.array[:, 2]
    return float(pitch.max() - pitch.min()) if len(pitch) else 0.0


def notes_per_bar(notes: Notes) -> float:
    return len(notes) / notes.n_bars if len(notes) else 0.0


def key_of(notes: Notes) -> tuple[int, str]:
    """(tonic pitch class, "major" or "minor"): the Krumhansl-Kessler profile best correlated with the piece's
    duration-weighted pitch classes."""
    weights = np.bincount(notes.array[:, 2].astype(int) % 12, weights=notes.array[:, 1], minlength=12)
    if weights.sum() <= 0 or np.ptp(weights) == 0:
        return 0, "major"
    best = max(((np.corrcoef(weights, np.roll(profile, tonic))[0, 1], tonic, mode)
                for mode, profile in (("major", MAJOR), ("minor", MINOR)) for tonic in range(12)))
    return best[1], best[2]


def key_name(key: tuple[int, str]) -> str:
    return f"{NAMES[key[0]]} {key[1]}"


def in_key(notes: Notes, key: tuple[int, str]) -> float:
    """Share of the notes whose pitch class is in ``key``'s scale (0 for no notes)."""
    if not len(notes):
        return 0.0
    scale = {(key[0] + step) % 12 for step in SCALES[key[1]]}
    return float(np.isin(notes.array[:, 2].astype(int) % 12, list(scale)).mean())


# -- sets of pieces ---------------------------------------------------------------------------------------------
def pooled(pieces: list[Notes], histogram: str) -> np.ndarray:
    fn = HISTOGRAMS[histogram]
    return sum((fn(p) for p in pieces), fn(Notes(np.zeros((0, 4)))))  # an empty piece's histogram is all zeros


def figures(pieces: list[Notes], reference: list[Notes]) -> dict[str, float]:
    """How ``pieces`` compare with ``reference`` (held-out real music): histogram overlaps (pooled over the pieces)
    and the mean per-piece figures; pieces without notes count as 0 in the means."""
    out = {f"{h}_overlap": overlap(pooled(pieces, h), pooled(reference, h)) for h in HISTOGRAMS}
    out.update(scalars(pieces))
    return out


def scalars(pieces: list[Notes]) -> dict[str, float]:
    """Mean pitch range, notes per bar and in-key share (each piece in its own detected key)."""
    if not pieces:
        return {"pitch_range": 0.0, "notes_per_bar": 0.0, "in_key_share": 0.0}
    return {"pitch_range": float(np.mean([pitch_range(p) for p in pieces])),
            "notes_per_bar": float(np.mean([notes_per_bar(p) for p in pieces])),
            "in_key_share": float(np.mean([in_key(p, key_of(p)) for p in pieces]))}


def continuation(pairs: list[tuple[Notes, Notes, Notes]]) -> dict[str, float]:
    """How continuations match the true next bars: for each (prompt, continuation, truth), the histogram overlaps
    of continuation and truth, and the share of the continuation's notes in the prompt's key; means over pairs."""
    if not pairs:
        return {}
    out = {f"continuation_{h}_overlap": float(np.mean([overlap(HISTOGRAMS[h](c), HISTOGRAMS[h](t))
                                                       for _, c, t in pairs])) for h in HISTOGRAMS}
    out["continuation_in_prompt_key"] = float(np.mean([in_key(c, key_of(p)) for p, c, _ in pairs]))
    return out
