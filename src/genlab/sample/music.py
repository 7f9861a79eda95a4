"""Music outputs: a generated piece (a ``symusic.ScoreTick``) as a MIDI file, a WAV file and a piano-roll PNG.

* ``midi_bytes`` writes the standard MIDI file, with optional copyright / text meta events in track 0.
* ``render_wav`` plays a MIDI file into 16-bit PCM WAV bytes: with FluidSynth and a General MIDI soundfont when
  both are installed, else with a small built-in additive synthesiser (numpy, mono). ``renderer()`` says which
  one a call would use and ``soundfont()`` which soundfont; ``GENLAB_SYNTH=builtin`` forces the built-in one.
* ``piano_roll_png`` draws the notes as bars, the prompt's part greyed out when ``prompt_end`` is given.

All functions are pure: they return bytes, write files only inside a temporary directory (for FluidSynth) and
use no global random state.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

from genlab.errors import GenlabError

# Soundfonts looked for, in order, after the ``soundfont`` argument and $GENLAB_SOUNDFONT.
SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
)
META_TYPES = ("copyright", "track_name", "text")  # the order they get at the start of track 0

_HARMONICS = (1.0, 0.5, 0.25, 0.125)  # amplitudes of the fundamental and its overtones
_ATTACK = 0.005  # s, linear fade-in of every note
_DECAY = 1.5  # s, time constant of the decay while a note is held (at middle C; higher notes decay faster)
_RELEASE = 0.05  # s, linear fade-out after a note's end
_TAIL = 0.25  # s, added after the last note's end: the release plus a little quiet
_DRUM_BURST = 0.15  # s, length of a drum hit's noise burst
_SILENCE = 0.5  # s, length of the WAV for a piece without notes
_PEAK = 0.9  # the mix is normalised to this peak (of full scale)


# ---------------------------------------------------------------------------------------------------------- MIDI


def midi_bytes(score: Any, *, text: dict[str, str] | None = None) -> bytes:
    """The score as a standard MIDI file; ``text`` maps mido meta types ("copyright", "text", "track_name")
    to strings written as meta events at time 0 of track 0 (replacing ones of the same type there)."""
    data = score.dumps_midi()
    if not text:
        return data
    import mido

    unknown = sorted(set(text) - set(META_TYPES))
    if unknown:
        raise GenlabError(f"unknown MIDI text key(s) {', '.join(unknown)} (valid: {', '.join(META_TYPES)})")
    midi = mido.MidiFile(file=io.BytesIO(data))
    if not midi.tracks:  # a score without tracks: give the meta events a track of their own
        midi.tracks.append(mido.MidiTrack())
    track = midi.tracks[0]
    # Drop the same meta types at time 0 (their delta time is 0, so removing them shifts nothing)
    head = 0
    while head < len(track) and track[head].time == 0:
        head += 1
    kept = [m for m in track[:head] if not (m.is_meta and m.type in text)]
    # MIDI text is latin-1 in mido: replace what it cannot encode rather than fail on save
    metas = [
        mido.MetaMessage(kind, **{"name" if kind == "track_name" else "text": _latin1(text[kind])}, time=0)
        for kind in META_TYPES
        if kind in text
    ]
    track[:] = metas + kept + list(track[head:])
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def _latin1(value: str) -> str:
    return str(value).encode("latin-1", "replace").decode("latin-1")


# ----------------------------------------------------------------------------------------------------------- WAV


def soundfont(path: Path | None = None) -> Path | None:
    """The General MIDI soundfont to render with: ``path``, else $GENLAB_SOUNDFONT, else the first of
    ``SOUNDFONTS`` that exists; None when there is none. A named file that is missing is an error."""
    for named, origin in ((path, "soundfont"), (os.environ.get("GENLAB_SOUNDFONT") or None, "GENLAB_SOUNDFONT")):
        if named is not None:
            if not Path(named).is_file():
                raise GenlabError(f"{origin} {named} does not exist")
            return Path(named)
    return next((p for p in SOUNDFONTS if p.is_file()), None)


def renderer(path: Path | None = None) -> str:
    """"fluidsynth" when ``render_wav`` would use FluidSynth (binary and soundfont found), else "built-in".

    $GENLAB_SYNTH picks one: "builtin" always gives the built-in synthesiser, "fluidsynth" fails when it is
    missing, "auto" (or unset) takes FluidSynth when it can.
    """
    mode = os.environ.get("GENLAB_SYNTH", "").strip().lower()
    if mode in ("builtin", "built-in"):
        return "built-in"
    if mode not in ("", "auto", "fluidsynth"):
        raise GenlabError(f"GENLAB_SYNTH={mode} is not one of builtin, fluidsynth, auto")
    found = shutil.which("fluidsynth") is not None and soundfont(path) is not None
    if mode == "fluidsynth" and not found:
        raise GenlabError("GENLAB_SYNTH=fluidsynth but the fluidsynth binary or a General MIDI soundfont is missing")
    return "fluidsynth" if found else "built-in"


_soundfont_of = soundfont  # render_wav's argument shadows the function


def render_wav(midi: bytes, *, sample_rate: int = 22050, soundfont: Path | None = None) -> bytes:
    """A WAV file (16-bit PCM) playing the MIDI file ``midi``: see ``renderer()`` for which synthesiser.

    FluidSynth writes stereo and adds its reverb tail (a few seconds); the built-in synthesiser writes mono,
    ``_TAIL`` seconds longer than the last note. A piece without notes gives 0.5 s of silence either way.
    """
    if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 192000:
        raise GenlabError(f"sample_rate must be an integer from 8000 to 192000, not {sample_rate!r}")
    score = _read_midi(midi)
    if score.note_num() == 0:
        return _wav(np.zeros(round(_SILENCE * sample_rate)), sample_rate)
    if renderer(soundfont) == "fluidsynth":
        return _fluidsynth(midi, sample_rate, _soundfont_of(soundfont), _end_seconds(score))
    return _wav(synthesize(score, sample_rate), sample_rate)


def _read_midi(midi: bytes) -> Any:
    import symusic

    try:
        return symusic.Score.from_midi(bytes(midi))
    except Exception as exc:  # symusic raises RuntimeError / ValueError with C++ messages
        said = str(exc).strip().splitlines() or [type(exc).__name__]
        raise GenlabError(f"not a readable MIDI file: {said[0]}") from None


def _end_seconds(score: Any) -> float:
    """End of the last note, in seconds (from the score's ticks and tempo map)."""
    ends = [a["time"] + a["duration"] for a in (t.notes.numpy() for t in score.to("second").tracks) if len(a["time"])]
    return max((float(e.max()) for e in ends), default=0.0)


def _fluidsynth(midi: bytes, sample_rate: int, font: Path | None, seconds: float) -> bytes:
    exe = shutil.which("fluidsynth")
    if exe is None or font is None:
        raise GenlabError("fluidsynth or a General MIDI soundfont is missing")
    timeout = 60.0 + 2.0 * seconds  # it renders far faster than real time; loading a big soundfont takes ~1 s
    with tempfile.TemporaryDirectory(prefix="genlab-fluidsynth-") as tmp:
        src, out = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        src.write_bytes(midi)
        cmd = [exe, "-ni", "-g", "1.0", "-F", str(out), "-r", str(sample_rate), str(font), str(src)]
        try:
            done = subprocess.run(cmd, check=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise GenlabError(f"fluidsynth took more than {timeout:.0f} s to render the MIDI file") from None
        except subprocess.CalledProcessError as exc:
            said = ((exc.stderr or b"") + (exc.stdout or b"")).decode(errors="replace").strip().splitlines()
            said = [line for line in said if "error" in line.lower() or "no midi" in line.lower()] or said or ["?"]
            raise GenlabError(f"fluidsynth failed (exit {exc.returncode}): {said[-1]}") from None
        except OSError as exc:
            raise GenlabError(f"could not run fluidsynth: {exc}") from None
        # A soundfont it cannot read is only a warning (exit 0), and it then plays its default soundfont instead
        if b"not a SoundFont" in done.stderr + done.stdout:
            raise GenlabError(f"fluidsynth could not load the soundfont {font}")
        # A fluidsynth built without libsndfile writes raw PCM, not WAV: check before handing it on
        data = out.read_bytes() if out.is_file() else b""
    try:
        with wave.open(io.BytesIO(data)) as w:
            w.getnframes()
    except (wave.Error, EOFError):
        raise GenlabError("fluidsynth wrote no WAV file (is it built with libsndfile?)") from None
    return data


def synthesize(score: Any, sample_rate: int) -> np.ndarray:
    """Mono float samples in [-0.9, 0.9] playing ``score`` (any symusic Score): the built-in synthesiser.

    Written by hand because pretty_midi's ``synthesize`` is a bare sine without envelope, so every note starts
    and ends with a click. Here each note is an additive tone (fundamental plus overtones at 1/2, 1/4, 1/8, those
    above Nyquist dropped) with a 5 ms attack, an exponential decay while held and a 50 ms linear release after
    its end, its amplitude velocity / 127. Drum tracks are short noise bursts, low-passed for bass drums and
    toms, high-passed for hi-hats and cymbals (a fixed-seed local generator: the same MIDI gives the same WAV).
    """
    sec = score.to("second")
    mix = np.zeros(int(math.ceil((_end_seconds(score) + _TAIL) * sample_rate)), dtype=np.float64)
    rng = np.random.default_rng(0)
    for track in sec.tracks:
        if not len(track.notes):
            continue
        arr = track.notes.numpy()
        times, durs = arr["time"].astype(np.float64), arr["duration"].astype(np.float64)
        pitches, vels = arr["pitch"].astype(np.int64), arr["velocity"].astype(np.float64)
        for start, dur, pitch, vel in zip(times, durs, pitches, vels):
            if track.is_drum:
                sound = _drum(int(pitch), sample_rate, rng)
            else:
                sound = _tone(int(pitch), float(dur), sample_rate)
            # Add the note into the mix at its onset, cut at the end of the buffer
            i = int(round(start * sample_rate))
            n = max(0, min(len(sound), len(mix) - i))
            mix[i : i + n] += (vel / 127.0) * sound[:n]
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    return mix * (_PEAK / peak) if peak > 0 else mix


def _tone(pitch: int, dur: float, sample_rate: int) -> np.ndarray:
    """One pitched note lasting ``dur`` seconds plus its release, peak amplitude about 1."""
    freq = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    t = np.arange(int(round((max(dur, 0.0) + _RELEASE) * sample_rate))) / sample_rate
    # Additive tone, overtones above Nyquist left out (they would alias)
    used = [(k, a) for k, a in enumerate(_HARMONICS, start=1) if k * freq < sample_rate / 2]
    tone = sum(a * np.sin(2 * np.pi * k * freq * t) for k, a in used) / sum(a for _, a in used)
    # Envelope: attack ramp x held decay x release ramp (continuous at the note's end, zero at the release's end)
    tau = _DECAY * 2.0 ** ((60 - pitch) / 24.0)
    env = np.clip(t / _ATTACK, 0.0, 1.0) * np.exp(-t / tau) * np.clip(1.0 - (t - dur) / _RELEASE, 0.0, 1.0)
    return tone * env


def _drum(pitch: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit (General MIDI percussion key ``pitch``): a decaying noise burst, filtered by kind."""
    t = np.arange(int(_DRUM_BURST * sample_rate)) / sample_rate
    noise = rng.standard_normal(len(t) + 64)
    if pitch in (35, 36, 41, 43, 45, 47, 48, 50):  # bass drums and toms: low-passed (moving average), longer
        width = max(1, int(sample_rate / (120 if pitch <= 36 else 400)))
        noise = np.convolve(noise, np.ones(width) / math.sqrt(width), mode="same")
        decay = 0.06
    elif pitch in (42, 44, 46, 49, 51, 52, 53, 55, 57, 59):  # hi-hats and cymbals: high-passed, short
        noise = np.diff(noise) / 2.0
        decay = 0.03
    else:  # snares, claps and the rest: plain noise
        decay = 0.04
    env = np.clip(t / 0.001, 0.0, 1.0) * np.exp(-t / decay)
    return 0.5 * noise[32 : 32 + len(t)] * env


def _wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono float samples in [-1, 1] -> 16-bit PCM WAV bytes."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


# ----------------------------------------------------------------------------------------------------- piano roll


def piano_roll_png(score: Any, *, prompt_end: float | None = None, title: str = "", bar_lines: bool = True) -> bytes:
    """A 1000 x 400 PNG of the notes: time in quarter notes on x, MIDI pitch on y, one colour per track.

    With ``prompt_end`` (in the score's ticks) the notes starting before it are the prompt: grey, on a grey
    background, a dashed line at the boundary and a "prompt" / "continuation" legend. Bar lines (from the
    time signatures, 4/4 when there are none) are drawn faintly.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if prompt_end is not None and not (isinstance(prompt_end, (int, float)) and prompt_end >= 0):
        raise GenlabError(f"prompt_end must be a tick count >= 0, not {prompt_end!r}")
    score = score.to("tick")
    tpq = float(score.ticks_per_quarter)
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if title:
        ax.set_title(title, loc="left")
    tracks = [t for t in score.tracks if len(t.notes)]
    if not tracks:
        ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", va="center", fontsize=14, color="0.4")
        ax.set_xticks([])
        ax.set_yticks([])
        return _png(fig)

    # Axis ranges: the piece (and the prompt) in time, the used pitches plus a margin
    notes = [t.notes.numpy() for t in tracks]
    low = min(int(a["pitch"].min()) for a in notes) - 2
    high = max(int(a["pitch"].max()) for a in notes) + 2
    end_q = max(float((a["time"] + a["duration"]).max()) for a in notes) / tpq
    cut = None if prompt_end is None else float(prompt_end) / tpq
    right = max(end_q, cut or 0.0, 1e-3)

    # Background: prompt shading and faint bar lines
    if cut is not None and cut > 0:
        ax.axvspan(0, cut, color="0.92", zorder=0)
    if bar_lines:
        bars = np.asarray(score.get_downbeats(), dtype=np.float64) / tpq
        ax.vlines(bars[bars <= right], low, high, colors="0.8", linewidth=0.6, zorder=1)

    # Notes: one rectangle per note, grey in the prompt, the track's colour after it
    palette = colormaps["tab10"]
    handles = []
    for i, (track, arr) in enumerate(zip(tracks, notes)):
        start, dur = arr["time"] / tpq, np.maximum(arr["duration"] / tpq, 1e-3)
        pitch = arr["pitch"].astype(np.float64)
        in_prompt = start < cut if cut is not None else np.zeros(len(start), dtype=bool)
        for mask, colour in ((in_prompt, "0.6"), (~in_prompt, palette(i % 10))):
            if mask.any():
                ax.add_collection(PolyCollection(_boxes(start[mask], dur[mask], pitch[mask]), facecolors=colour,
                                                 edgecolors="none", zorder=2))
        name = track.name or f"track {i + 1}"
        label = name if cut is None else ("continuation" if len(tracks) == 1 else f"continuation: {name}")
        handles.append(Patch(color=palette(i % 10), label=label))
    if cut is not None:
        ax.axvline(cut, color="0.3", linestyle="--", linewidth=1.0, zorder=3)
        handles.insert(0, Patch(color="0.6", label="prompt"))
    if cut is not None or len(tracks) > 1:
        # Above the axes, right-aligned, so it never hides notes (the title moves left to make room)
        ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(handles), fontsize=8,
                  frameon=False, borderaxespad=0.2)

    # Axes: C of each octave named on y
    ax.set_xlim(0, right)
    ax.set_ylim(low, high)
    cs = [p for p in range(low, high + 1) if p % 12 == 0]
    ax.set_yticks(cs, [f"C{p // 12 - 1}" for p in cs])
    ax.set_xlabel("time (quarter notes)")
    ax.set_ylabel("pitch")
    return _png(fig)


def _boxes(start: np.ndarray, dur: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(N, 4, 2) rectangle corners: [start, start + dur] x [pitch - 0.4, pitch + 0.4]."""
    x0, x1, y0, y1 = start, start + dur, pitch - 0.4, pitch + 0.4
    return np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1), np.stack([x0, y1], 1)], 1)


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    return out.getvalue()
