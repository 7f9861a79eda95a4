"""The music modality: real chorales through tokens and back, a tiny gpt trained on them, pieces that are valid MIDI
with a WAV and a piano roll, continuations that begin with the prompt, metrics, and every bad input's one line."""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
import symusic
from PIL import Image

import genlab
from genlab.data.music import (MusicDataConfig, decode, encode, new_midi_tokenizer, pitched, prepare_music,
                               read_midi_file, source_from_path)
from genlab.errors import BadArgument, GenlabError
from genlab.modalities.music import MUSIC
from genlab.responsible.verify import verify
from genlab.sample.music_compose import compose
from genlab.train.loop import Trainer

TINY = ["model.n_layer=2", "model.n_head=2", "model.n_embd=64", "model.block_size=128", "train.batch_size=8",
        "train.lr=3e-3", "train.warmup_steps=5", "train.max_steps=40", "train.eval_every=40", "train.eval_batches=4",
        "train.checkpoint_every=40", "train.precision=fp32", "release.track_energy=false"]


@pytest.fixture(scope="session")
def chorales(tmp_path_factory) -> Path:
    """Twenty Bach chorales from music21's corpus, as a user's folder of MIDI files."""
    return Path(MUSIC.example(tmp_path_factory.mktemp("music")))


@pytest.fixture(scope="session")
def music_run(chorales, tmp_path_factory) -> genlab.Run:
    return genlab.train("gpt", str(chorales), out=tmp_path_factory.mktemp("runs") / "bach", overrides=TINY)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def notes(score) -> list[tuple[float, int]]:
    """(onset in quarter notes, pitch) of every note, sorted."""
    tpq = score.ticks_per_quarter
    return sorted((round(n.time / tpq, 4), n.pitch) for t in score.tracks for n in t.notes)


def quarters(score) -> list[tuple[float, float, int]]:
    """(onset, duration, pitch) of every note, in quarter notes."""
    tpq = score.ticks_per_quarter
    return sorted((n.time / tpq, n.duration / tpq, n.pitch) for t in score.tracks for n in t.notes)


def midi_file(path: Path, *, drum: bool = False, notes_: bool = True) -> Path:
    score = symusic.Score(480)
    track = symusic.Track("drums" if drum else "piano", 0, drum)
    if notes_:
        track.notes.extend(symusic.Note(i * 480, 480, 36 + i, 90) for i in range(8))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


# -- tokens ---------------------------------------------------------------------------------------------------------
def test_a_chorale_round_trips_through_tokens(chorales):
    # Setup: a real chorale, its four voices merged into one part
    original = pitched(read_midi_file(sorted(chorales.glob("*.mid"))[0]), programs=False)
    tok = new_midi_tokenizer(programs=False)

    # Run
    ids = encode(tok, original)
    back = decode(tok, ids)

    # Assert: the same notes (onsets and pitches) come back, and exactly what miditok's quantisation keeps
    assert len(ids) > 500
    assert notes(back) == notes(original)
    kept = tok.preprocess_score(original)
    assert quarters(back) == quarters(kept)


def test_split_by_piece_bpe_and_transposition(chorales, tmp_path):
    # Setup, Run: BPE merges and transposed copies of the training pieces
    source = source_from_path(chorales)
    plain = prepare_music(source, MusicDataConfig(), tmp_path / "plain")
    data = prepare_music(source, MusicDataConfig(bpe_vocab=600, transpose=1), tmp_path / "bpe")

    # Assert: whole pieces held out, never trained on; transpositions come after the originals, the held-out split
    # has none; BPE shortens pieces and decodes back to the same notes
    held = data.music["held_out"]
    assert held and all(name not in held for name, _ in source.pieces() if name not in held)
    assert data.music["pieces"] == plain.music["pieces"] and data.music["augmented"] >= data.music["pieces"]["train"]
    assert len(data.pieces("train")) == data.music["pieces"]["train"] and len(data.pieces("val")) == len(held)
    ratio = plain.n_tokens("val") / data.n_tokens("val")
    assert ratio > 2, ratio
    for mine, theirs in zip(data.pieces("val"), plain.pieces("val")):
        assert notes(data.decode(mine)) == notes(plain.decode(theirs))


# -- training and generating ------------------------------------------------------------------------------------------
def test_training_lowers_the_loss(music_run):
    # Setup: the same network untrained
    fresh = type(music_run.model)(music_run.config.model, modality="music")
    fresh.build(music_run.data, seed=music_run.config.train.seed)

    # Run
    before = Trainer(fresh, music_run.data, music_run.config.train, progress=False).validate()
    after = Trainer(music_run.model, music_run.data, music_run.config.train, progress=False).validate()

    # Assert
    assert music_run.config.modality == "music"
    assert after < before - 1.0, (before, after)


def test_pieces_are_valid_midi_with_a_wav_and_a_piano_roll(music_run, tmp_path, monkeypatch):
    # Setup: the built-in synthesiser, whose length is exact
    monkeypatch.setenv("GENLAB_SYNTH", "builtin")

    # Run
    pieces = music_run.sample(2, seed=5, bars=4)
    again = genlab.load(music_run.path).sample(2, seed=5, bars=4)
    folder = pieces.save(tmp_path / "out")

    # Assert: the same seed gives the same music; each piece is a MIDI file mido reads, naming the run
    assert [notes(p) for p in pieces] == [notes(p) for p in again]
    for i, score in enumerate(pieces):
        midi = mido.MidiFile(folder / f"sample-{i:04d}.mid")
        meta = {m.type: m for m in midi.tracks[0] if m.is_meta}
        assert music_run.release.identity.run_id in meta["copyright"].text
        assert score.note_num() > 0 and (folder / f"sample-{i:04d}.mid.c2pa").is_file()
        # the WAV lasts as long as the piece (plus the release tail) and is not silent
        with wave.open(str(folder / f"sample-{i:04d}.wav")) as w:
            seconds = w.getnframes() / w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        end = max(n.end for t in score.to("second").tracks for n in t.notes)  # the last note's end
        assert end <= seconds <= end + 0.6, (seconds, end)
        assert np.sqrt(np.mean((samples / 32768.0) ** 2)) > 0.01
        assert Image.open(folder / f"sample-{i:04d}.png").size == (1000, 400)
    # every file is signed for this run, and `genlab verify` trusts it
    for f in sorted(p for p in folder.iterdir() if p.suffix != ".c2pa"):
        verdict = verify(f, runs=music_run.path.parent)
        assert verdict.provenance.status == "trusted", (f, verdict.provenance.failures)
        assert verdict.provenance.generation["run_id"] == music_run.release.identity.run_id


def test_sampling_stops_after_the_bars_asked_for(music_run):
    # Run
    rows = compose(music_run.model, music_run.data, [], n=3, bars=2, seed=1)

    # Assert: at most 2 bar lines in each piece (the third would start bar 3)
    assert all(int(music_run.data.bars_in[r].sum()) <= 2 for r in rows)


def test_a_continuation_begins_with_the_prompts_notes(music_run, chorales, tmp_path):
    # Setup: a held-out chorale as the user's prompt; its first 2 bars as the tokenizer keeps them
    name = music_run.data.music["held_out"][0]
    prompt = chorales / name
    score = pitched(read_midi_file(prompt), programs=False)
    first = score.clip(0, int(score.get_downbeats()[2]))

    # Run
    piece = music_run.sample(1, seed=2, bars=2, prompt_midi=str(prompt), prompt_bars=2)[0]

    # Assert: the piece opens with exactly those notes, and goes on after them
    head = piece.clip(0, piece.get_downbeats()[2])
    assert notes(head)[: len(notes(first))] == notes(first)
    assert piece.note_num() >= first.note_num()


def test_evaluation_places_the_model_between_floor_and_ceiling(music_run):
    # Run
    report = music_run.evaluate(n=3, bars=2, save=False)

    # Assert: every figure has the floor's and the ceiling's beside it; tokens decode; overlaps are shares
    for key in ("pitch_class_overlap", "duration_overlap", "interval_overlap", "pitch_range", "notes_per_bar",
                "in_key_share", "valid_midi_share"):
        assert key in report and key in report["floor"] and key in report["ceiling"], key
    assert 0 <= report["pitch_class_overlap"] <= 1 and report["valid_midi_share"] > 0
    assert report["ceiling"]["pitch_class_overlap"] > report["floor"]["pitch_class_overlap"]
    assert report["floor"]["token_error_share"] > report["token_error_share"]


def test_the_audit_compares_copies_with_held_out_music(music_run):
    # Run
    report = music_run.audit(n=2, seed=0, save=False)

    # Assert: n-grams of 1, 2 and 4 bars, generated beside held-out, and a verdict
    memo = report["memorisation"]
    assert len(memo["by_size"]) == 3 and memo["generated"]["sequences"] == 2
    assert all(0 <= row["generated_share"] <= 1 for row in memo["by_size"].values())
    assert report["verdict"].startswith("Verdict:") and "bias" not in report


def test_bert_learns_music_tokens_and_fills_them(chorales, tmp_path):
    # Setup, Run: a masked language model on the same tokens (a family other than gpt that takes tokens)
    run = genlab.train("bert", str(chorales), out=tmp_path / "bert", overrides=[*TINY, "train.max_steps=30"])
    filled = run.model.fill("Bar_None TimeSig_4/4 Position_0 Pitch_60 [MASK] Duration_1.0.8", top_k=3)

    # Assert: its own figures, music token names as fillers, and a one-line refusal where it writes no music
    assert run.config.modality == "music" and "mlm_loss" in run.evaluate(save=False)
    assert len(filled) == 1 and all(name in run.data.names for name, _ in filled[0])
    with pytest.raises(GenlabError, match="writes no music"):
        run.audit(n=2, save=False)


# -- bad input ------------------------------------------------------------------------------------------------------
def test_bad_music_files_get_one_specific_line(chorales, tmp_path):
    # Setup
    real = sorted(chorales.glob("*.mid"))[0].read_bytes()
    cases = {
        "cut.mid": (real[: len(real) // 2], "not a readable MIDI file"),
        "junk.mid": (b"MThd" + bytes(range(40)), "not a readable MIDI file"),
        "silent.mid": (None, "holds no notes"),
        "drums.mid": (None, "holds only drum tracks"),
    }
    for name, (content, message) in cases.items():
        folder = tmp_path / name.replace(".", "-")
        folder.mkdir()
        (folder / "good.mid").write_bytes(real)
        path = folder / name
        if content is None:
            midi_file(path, drum=name == "drums.mid", notes_=name != "silent.mid")
        else:
            path.write_bytes(content)
        kept = path.read_bytes()

        # Run, Assert: the bad file is named, nothing is left behind, the user's file is untouched
        with pytest.raises(GenlabError, match=message) as e:
            genlab.train("gpt", str(folder), out=tmp_path / f"run-{name}", overrides=TINY)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        assert not (tmp_path / f"run-{name}").exists() and path.read_bytes() == kept
    (tmp_path / "song.wav").write_bytes(b"RIFF")
    with pytest.raises(GenlabError, match="not a music file"):
        source_from_path(tmp_path / "song.wav")


def test_bad_sampling_requests_get_one_line(music_run, tmp_path):
    # Setup: a prompt far longer than the 128-token context; a file of another kind
    long = tmp_path / "long.mid"
    long.write_bytes(sorted(Path(music_run.config.dataset).glob("*.mid"))[0].read_bytes())
    (tmp_path / "notes.txt").write_text("C D E")

    # Run, Assert
    with pytest.raises(GenlabError, match="longer than the model's context of 128; continue from fewer bars"):
        music_run.sample(1, prompt_midi=str(long))
    with pytest.raises(BadArgument, match="bars"):
        music_run.sample(1, bars=0)
    with pytest.raises(BadArgument, match="only"):
        music_run.sample(1, prompt_midi=str(long), prompt_bars=10_000)
    with pytest.raises(GenlabError, match="not a music file"):
        music_run.sample(1, prompt_midi=str(tmp_path / "notes.txt"))


def test_cli_bad_music_inputs_exit_2_in_one_line(music_run, tmp_path):
    # Setup
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["train", "gpt", "--data", empty, "--out", tmp_path / "r1"], "no"),
        (["sample", music_run.path, "--bars", "0", "--out", tmp_path / "s1"], "bars"),
        (["sample", music_run.path, "--prompt-midi", tmp_path / "nope.mid", "--out", tmp_path / "s2"], "no such file"),
    ]
    for args, message in cases:
        # Run
        done = cli(*args)

        # Assert: exit 2, one line, nothing left behind
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert not any((tmp_path / n).exists() for n in ("r1", "s1", "s2"))


def test_a_midi_prompt_reads_from_bytes_too():
    # Setup: a MIDI file in memory, as the HTTP API receives one
    buf = io.BytesIO()
    mido.MidiFile(type=1).save(file=buf)

    # Run, Assert: a file with no tracks is a MIDI with no notes, said in one line
    from genlab.data.music import read_midi

    with pytest.raises(GenlabError, match="holds no notes"):
        read_midi(buf.getvalue(), "upload.mid")
