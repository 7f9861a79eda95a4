"""The text watermark: generated text is detected, human and unmarked text is not, edits and windows behave."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import genlab

from genlab.errors import GenlabError
from genlab.responsible.release import RELEASE_FILE, TEXT_SCHEME, run_identity
from genlab.responsible.text_watermark import SCHEMES, TextWatermark


def cli(*args):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                           timeout=300)


def test_marked_text_is_detected_and_plain_text_is_not(trained_run, corpus_file):
    # setup: the same prompts and seeds with and without the mark; human text from the corpus
    kw = dict(prompt="HAMLET:", max_new_tokens=300, temperature=1.0, seed=3)
    marked = trained_run.sample(4, **kw)
    plain = trained_run.sample(4, watermark=False, **kw)
    human = corpus_file.read_text()[50_000:50_600]
    # run
    z_marked = [trained_run.detect(t).document.z for t in marked]
    z_plain = [trained_run.detect(t).document.z for t in plain]
    z_human = trained_run.detect(human).document.z
    # assert: either side of the threshold (4)
    assert min(z_marked) > 4.0, z_marked
    assert max(z_plain) < 4.0 and z_human < 4.0, (z_plain, z_human)
    assert marked != plain


@pytest.fixture(scope="module")
def adaptive_run(trained_run, tmp_path_factory) -> genlab.Run:
    """The tiny run with new runs' scheme (lefthash-2-adaptive) and the same fixed key."""
    import shutil

    out = tmp_path_factory.mktemp("adaptive") / "run"
    shutil.copytree(trained_run.path, out)
    (out / RELEASE_FILE).write_text(json.dumps({"run_id": "ad" * 16, "text_key": 20231127,
                                                "text_scheme": "lefthash-2-adaptive"}))
    return genlab.load(out)


def test_new_runs_get_the_adaptive_scheme(tmp_path):
    assert TEXT_SCHEME == "lefthash-2-adaptive" == SCHEMES[-1]
    assert run_identity(tmp_path, create=True).text_scheme == TEXT_SCHEME
    with pytest.raises(GenlabError, match="newer genlab"):
        TextWatermark(64, 1, scheme="lefthash-9")


def test_adaptive_scheme_detects_marked_text_even_edited_and_not_human_text(adaptive_run, corpus_file):
    # setup: at the sampling default (temperature 0.8), the same prompts and seeds with and without the mark
    kw = dict(prompt="HAMLET:", max_new_tokens=300, seed=3)
    marked = adaptive_run.sample(4, **kw)
    plain = adaptive_run.sample(4, watermark=False, **kw)
    human = corpus_file.read_text()[50_000:50_600]
    wm, tok = adaptive_run.release.marks.watermark, adaptive_run.model.tokenizer_
    rng = np.random.default_rng(0)
    edited = []
    for text in marked:  # 20% of the tokens replaced by random ones
        ids = tok.encode(text).ids
        for j in rng.choice(len(ids), size=len(ids) // 5, replace=False):
            ids[j] = int(rng.integers(wm.vocab_size))
        edited.append(ids)
    # run
    z_marked = [adaptive_run.detect(t).document.z for t in marked]
    z_edited = [wm.detect(ids).document.z for ids in edited]
    z_plain = [adaptive_run.detect(t).document.z for t in plain]
    z_human = adaptive_run.detect(human).document.z
    # assert
    assert wm.scheme == "lefthash-2-adaptive" and marked != plain
    assert min(z_marked) > 4.0 and min(z_edited) > 4.0, (z_marked, z_edited)
    assert max(z_plain) < 4.0 and z_human < 4.0, (z_plain, z_human)


def test_adaptive_processor_and_detector_agree(adaptive_run):
    # setup: random contexts, flat logits (every token equally likely) and one-hot logits (one token certain)
    wm = adaptive_run.release.marks.watermark
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(wm.vocab_size, (6, 5), generator=g)  # (B, T)
    certain = torch.full((6, wm.vocab_size), -1e4)
    certain[:, 0] = 0.0
    # run
    flat = wm.processor()(ids, torch.zeros(6, wm.vocab_size))  # (B, V)
    peaked = wm.processor()(ids, certain) - certain
    flags = wm.green_flags(torch.randint(wm.vocab_size, (20_000,), generator=g).tolist())
    # assert: the processor biases exactly the green list the detector counts, by 2 delta (1 - sum p^2)
    for row, out in zip(ids.tolist(), flat):
        assert torch.equal(out > 0, wm.green_mask(row[-2:]))
    assert float(flat.max()) == pytest.approx(2 * wm.delta * (1 - 1 / wm.vocab_size))
    assert float(peaked.abs().max()) < 1e-3
    assert len(flags) == 20_000 - 2 and abs(np.mean(flags) - wm.gamma) < 0.015


def test_old_runs_keep_lefthash_1_exactly(trained_run):
    # setup: trained_run's release.json has no text_scheme, like every run made before it was recorded
    from transformers import WatermarkLogitsProcessor

    wm = trained_run.release.marks.watermark
    hf = WatermarkLogitsProcessor(vocab_size=wm.vocab_size, device="cpu", greenlist_ratio=wm.gamma, bias=wm.delta,
                                  hashing_key=wm.key, seeding_scheme="lefthash", context_width=1)
    # run: the run's marked samples, and the model's own sampling with transformers' processor, same seed
    ours = trained_run.sample(2, prompt="KING:", max_new_tokens=300, temperature=1.0, seed=4)
    theirs = trained_run.model.sample(2, prompt="KING:", max_new_tokens=300, temperature=1.0, seed=4,
                                      logits_processor=hf)
    # assert: generation is unchanged, and detection finds it
    assert trained_run.release.identity.text_scheme == "lefthash-1" == wm.scheme
    assert list(ours) == list(theirs)
    assert all(trained_run.detect(t).document.z > 4.0 for t in ours)


def test_watermarked_sampling_is_seeded(trained_run):
    a = trained_run.sample(2, prompt="KING:", max_new_tokens=40, seed=5)
    b = trained_run.sample(2, prompt="KING:", max_new_tokens=40, seed=5)
    assert a == b


def test_scores_match_transformers_detector(trained_run):
    # setup: our scorer with repeats counted, against transformers' WatermarkDetector on the same ids
    from transformers import WatermarkDetector, WatermarkingConfig

    wm = trained_run.release.marks.watermark
    plain = TextWatermark(wm.vocab_size, wm.key, gamma=wm.gamma, delta=wm.delta, ignore_repeated=False)
    text = trained_run.sample(1, prompt="HAMLET:", max_new_tokens=120, seed=1)[0]
    ids = trained_run.model.tokenizer_.encode(text).ids
    config = trained_run.model.hf_config()
    detector = WatermarkDetector(config, "cpu", WatermarkingConfig(greenlist_ratio=wm.gamma, bias=wm.delta,
                                                                   hashing_key=wm.key, seeding_scheme="lefthash"))
    # run
    ours = plain.score(ids)
    theirs = detector(torch.tensor([ids]), z_threshold=4.0, return_dict=True)
    # assert
    assert ours.green == int(theirs.num_green_tokens[0]) and ours.tokens_scored == int(theirs.num_tokens_scored[0])
    assert ours.z == pytest.approx(float(theirs.z_score[0]))


def test_sliding_window_finds_a_marked_passage_in_human_text(trained_run, corpus_file):
    # setup: 600 characters of human text, then 150 watermarked ones, then 600 more human
    human = corpus_file.read_text()
    marked = trained_run.sample(1, prompt="\n", max_new_tokens=150, temperature=1.0, seed=2)[0]
    text = human[60_000:60_600] + marked + human[61_000:61_600]
    # run
    det = trained_run.detect(text, window=100)
    # assert: the best window overlaps the marked passage and is called watermarked
    best = det.best_window
    assert best.watermarked and best.start < 750 and best.end > 600
    assert sum(w.watermarked for w in det.windows) <= 3


def test_random_edits_lower_the_score(trained_run):
    wm = trained_run.release.marks.watermark
    text = trained_run.sample(1, prompt="HAMLET:", max_new_tokens=200, temperature=1.0, seed=8)[0]
    ids = trained_run.model.tokenizer_.encode(text).ids
    g = torch.Generator().manual_seed(0)
    edited = list(ids)
    for j in torch.randperm(len(ids), generator=g)[: len(ids) // 2].tolist():
        edited[j] = int(torch.randint(wm.vocab_size, (1,), generator=g))
    assert wm.score(edited).z < wm.score(ids).z


def test_release_file_is_made_once_and_checked(trained_run, tmp_path):
    # setup: the trained run has one; a fresh folder gets one only when asked to make it
    saved = json.loads((trained_run.path / RELEASE_FILE).read_text())
    with pytest.raises(GenlabError, match="has no release.json"):
        run_identity(tmp_path)
    # run
    again = run_identity(trained_run.path)
    fresh = run_identity(tmp_path, create=True)
    recorded = json.loads((tmp_path / RELEASE_FILE).read_text())
    (tmp_path / RELEASE_FILE).write_text("{not json")
    # assert: a run made before the scheme was recorded reads as lefthash-1; new runs record theirs
    assert again.run_id == saved["run_id"] and len(again.run_id) == 32 and fresh.run_id != again.run_id
    assert again.text_scheme == "lefthash-1" and recorded["text_scheme"] == fresh.text_scheme
    with pytest.raises(GenlabError, match="corrupted"):
        run_identity(tmp_path)


def test_a_detector_never_makes_a_key(trained_run, tmp_path):
    # setup: a copy of the run that lost its release.json, and a text its key marked
    import shutil

    text = trained_run.sample(1, prompt="HAMLET:", max_new_tokens=150, seed=1)[0]
    lost = tmp_path / "lost"
    shutil.copytree(trained_run.path, lost)
    (lost / RELEASE_FILE).unlink()
    # run / assert: detection refuses, and writes nothing
    with pytest.raises(GenlabError, match="has no release.json"):
        genlab.load(lost).detect(text)
    assert not (lost / RELEASE_FILE).exists()
    # generating again makes a new key, for the new outputs only
    genlab.load(lost).sample(1, max_new_tokens=5, seed=1)
    assert json.loads((lost / RELEASE_FILE).read_text())["run_id"] != trained_run.release.identity.run_id


def test_cli_sample_to_files_then_detect_and_verify(trained_run, tmp_path):
    # setup: two marked texts and one unmarked, written as signed files
    marked, plain = tmp_path / "marked", tmp_path / "plain"
    r1 = cli("sample", trained_run.path, "--n", "2", "--seed", "1", "--max-new-tokens", "200", "--temperature", "1",
             "--out", marked)
    r2 = cli("sample", trained_run.path, "--n", "1", "--seed", "1", "--max-new-tokens", "200", "--temperature", "1",
             "--no-watermark", "--out", plain)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    files = sorted(marked.glob("*.txt")) + sorted(plain.glob("*.txt"))
    # run
    det = cli("detect", *files, "--run", trained_run.path, "--json")
    ver = cli("verify", files[0], "--runs", trained_run.path.parent, "--json")
    # assert
    assert det.returncode == 0, det.stderr
    z = [d["document"]["z"] for d in json.loads(det.stdout)]
    assert z[0] > 4 and z[1] > 4 and z[2] < 4
    assert all((f.parent / (f.name + ".c2pa")).is_file() for f in files)
    v = json.loads(ver.stdout)[0]
    assert ver.returncode == 0, ver.stdout + ver.stderr
    assert v["signature"] == "trusted" and v["watermark"]["found"] and v["watermark"]["matches_manifest"]


def test_cli_detect_bad_input(trained_run, tmp_path):
    binary = tmp_path / "x.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    r = cli("detect", binary, "--run", trained_run.path)
    missing = cli("detect", tmp_path / "nope.txt", "--run", trained_run.path)
    not_a_run = cli("detect", binary, "--run", tmp_path)
    for res, msg in ((r, "looks binary"), (missing, "no such file"), (not_a_run, "not a genlab run")):
        assert res.returncode == 2 and msg in res.stderr and "Traceback" not in res.stderr, res.stderr
