"""Bad inputs of the data modalities built on the plugin shape: tables (issue 13) and music (issue 14).

Cases are added to ``bad_input_cases.CASES`` with its helpers (``bench/bad_inputs.py`` imports this module).
"""

from __future__ import annotations

import bad_input_files as f
from bad_input_cases import c, t
from bad_input_files import OK


# -- tables (issue 13) ---------------------------------------------------------------------------------------------
def tbl(name: str, content: str | bytes, family: str = "copula", extra: str = "") -> None:
    t(name, family, extra, f.files(**{"bad.csv": content}), data="bad.csv")


tbl("table-empty", "")
tbl("table-header-only", "a,b\n")
tbl("table-one-row", "a,b\n1,2\n")
tbl("table-all-missing-column", "a,b\n" + "".join(f"{i},\n" for i in range(20)))
tbl("table-mixed-types", "a,b\n" + "".join(f"{i},{i}\n" for i in range(19)) + "7,abc\n")
tbl("table-bad-dates", "a,d\n" + "".join(f"{i},2021-01-{i + 1:02d}\n" for i in range(19)) + "7,2021-13-45\n")
tbl("table-not-utf8", "a,b\n".encode() + b"".join(b"%d,caf\xe9\n" % i for i in range(20)))
t("table-target-unknown", "copula", "--set data.target=nope")
t("table-metadata-contradicts", "copula", "--set data.metadata=meta.json",
  f.files(**{"meta.json": '{"columns": {"a": {"type": "integer", "min": 0, "max": 5}, "b": {"type": "integer", '
                          '"min": 0, "max": 2}, "c": {"type": "categorical", "categories": ["x0", "x1"]}}}'}))
t("table-metadata-not-json", "copula", "--set data.metadata=meta.json", f.files(**{"meta.json": "{nope"}))
t("table-epsilon-zero", "ctgan", "--set privacy.epsilon=0")
t("table-epsilon-negative", "ctgan", "--set privacy.epsilon=-1")
t("table-epsilon-not-public", "ctgan", "--set privacy.epsilon=3")
t("table-epsilon-no-dp-family", "copula", "--set privacy.epsilon=3")
COPULA = f.run("copula")
c("sample-table-condition-unknown-column", "sample run --no-sign --condition nope=1 --out out.csv", COPULA)
c("sample-table-condition-unknown-value", "sample run --no-sign --condition sex=9 --out out.csv", COPULA)
c("sample-table-condition-continuous", "sample run --no-sign --condition age=40 --out out.csv", COPULA)
c("sample-table-condition-no-equals", "sample run --no-sign --condition sex --out out.csv", COPULA)
c("sample-table-out-txt-ok", "sample run --no-sign --n 5 --out out", COPULA, OK)
c("eval-table-real-missing", "eval run --real nope.csv", COPULA)


# -- music (issue 14) ----------------------------------------------------------------------------------------------
def midi(notes: int = 16, *, drum: bool = False, shift: int = 0) -> bytes:
    """A small valid MIDI file: a rising and falling line (or a drum pattern), 4/4 at 120."""
    import symusic

    score = symusic.Score(480)
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track("drums" if drum else "piano", 0, drum)
    track.notes.extend(symusic.Note(i * 240, 240, 60 + shift + (i % 8 if i % 16 < 8 else 8 - i % 8), 80)
                       for i in range(notes))
    score.tracks.append(track)
    return score.dumps_midi()


def tunes(**extra: bytes | str | None) -> dict[str, bytes | str | None]:
    """A folder of six good tunes (``tunes/``), plus ``extra`` files in it."""
    return {**{f"tunes__t{i}.mid": midi(32, shift=i) for i in range(6)}, **{f"tunes__{k}": v for k, v in extra.items()}}


def mus(name: str, extra: str = "", **files: bytes | str | None) -> None:
    t(name, "gpt", extra, f.files(**tunes(**files)), data="tunes")


GOOD = midi()
mus("music-midi-junk", **{"bad.mid": b"MThd" + bytes(range(64))})
mus("music-midi-truncated", **{"bad.mid": GOOD[: len(GOOD) // 2]})
mus("music-midi-not-midi", **{"bad.mid": "this is text, not MIDI\n"})
mus("music-midi-empty-file", **{"bad.mid": b""})
mus("music-midi-no-notes", **{"bad.mid": midi(0)})
mus("music-midi-drums-only", **{"bad.mid": midi(16, drum=True)})
mus("music-abc-garbage", **{"bad.abc": "X:1\nK:Q#\n%%%% ||| not a tune\n"})
mus("music-xml-garbage", **{"bad.xml": "<score-partwise><part id='P1'><measure>"})
mus("music-bpe-too-small", "--set data.bpe_vocab=100")
mus("music-transpose-too-far", "--set data.transpose=12")
t("music-empty-folder", "gpt", "", f.files(empty=None), data="empty")
t("music-one-piece", "gpt", "", f.files(**{"one__t.mid": GOOD}), data="one")
t("music-unsupported-file", "gpt", "", f.files(**{"song.wav": b"RIFF\x00\x00\x00\x00WAVE"}), data="song.wav")
MUSIC = f.run("music")
PROMPT = {"p.mid": midi(64), "long.mid": midi(400), "junk.mid": b"MThd" + bytes(30), "cut.mid": GOOD[:40],
          "silent.mid": midi(0), "drums.mid": midi(16, drum=True), "p.txt": "C D E F G"}
SETUP = f.both(MUSIC, f.files(**PROMPT))
c("sample-music-ok", "sample run --no-sign --n 1 --bars 2 --seed 1 --out out", SETUP, OK)
c("sample-music-continue-ok", "sample run --no-sign --bars 2 --prompt-midi p.mid --prompt-bars 1 --out out", SETUP, OK)
c("sample-music-bars-zero", "sample run --no-sign --bars 0 --out out", SETUP)
c("sample-music-bars-negative", "sample run --no-sign --bars -3 --out out", SETUP)
c("sample-music-bars-huge", "sample run --no-sign --bars 100000 --out out", SETUP)
c("sample-music-bars-not-int", "sample run --no-sign --bars many --out out", SETUP)
c("sample-music-prompt-missing", "sample run --no-sign --prompt-midi nope.mid --out out", SETUP)
c("sample-music-prompt-junk", "sample run --no-sign --prompt-midi junk.mid --out out", SETUP)
c("sample-music-prompt-truncated", "sample run --no-sign --prompt-midi cut.mid --out out", SETUP)
c("sample-music-prompt-no-notes", "sample run --no-sign --prompt-midi silent.mid --out out", SETUP)
c("sample-music-prompt-drums", "sample run --no-sign --prompt-midi drums.mid --out out", SETUP)
c("sample-music-prompt-text-file", "sample run --no-sign --prompt-midi p.txt --out out", SETUP)
c("sample-music-prompt-folder", "sample run --no-sign --prompt-midi . --out out", SETUP)
c("sample-music-prompt-too-long", "sample run --no-sign --prompt-midi long.mid --out out", SETUP)
c("sample-music-prompt-bars-zero", "sample run --no-sign --prompt-midi p.mid --prompt-bars 0 --out out", SETUP)
c("sample-music-prompt-bars-beyond", "sample run --no-sign --prompt-midi p.mid --prompt-bars 999 --out out", SETUP)
c("sample-music-prompt-bars-alone", "sample run --no-sign --prompt-bars 2 --out out", SETUP)
c("sample-music-text-option", "sample run --no-sign --max-new-tokens 5 --out out", SETUP)
c("eval-music-n-zero", "eval run --n 0", SETUP)
c("eval-music-bars-zero", "eval run --bars 0", SETUP)
c("eval-music-table-option", "eval run --real x.csv", SETUP)
