"""The CLI as a user runs it: real processes, exit codes, one-line errors with no traceback."""

import json
import subprocess
import sys

import pytest


def genlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_sample_streams_and_is_seeded(trained_run):
    a = genlab("sample", trained_run.path, "--prompt", "HAMLET:", "--seed", "4", "--max-new-tokens", "30")
    b = genlab("sample", trained_run.path, "--prompt", "HAMLET:", "--seed", "4", "--max-new-tokens", "30")
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout.startswith("HAMLET:")
    many = genlab("sample", trained_run.path, "--n", "3", "--seed", "4", "--max-new-tokens", "20", "--top-k", "5")
    assert many.returncode == 0 and many.stdout.count("sample ") == 3


def test_eval_json(trained_run):
    r = genlab("eval", trained_run.path, "--json")
    report = json.loads(r.stdout)
    assert r.returncode == 0 and {"val_loss", "perplexity", "bits_per_char"} <= set(report)


def test_runs_and_data_list(trained_run):
    r = genlab("runs", trained_run.path.parent)
    assert r.returncode == 0 and "gpt" in r.stdout and "200/200" in r.stdout
    d = genlab("data", "list")
    assert d.returncode == 0 and "shakespeare" in d.stdout and "pycode" in d.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "gpx", "--data", "shakespeare"], "unknown family 'gpx' (did you mean 'gpt'?)"),
        (["train", "gpt", "--data", "shakespear"], "unknown dataset 'shakespear'"),
        (["train", "gpt", "--data", "shakespeare", "--set", "model.n_layers=2"], "did you mean 'model.n_layer'"),
        (["train", "gpt", "--data", "shakespeare", "--set", "train.max_steps=x"], "cannot read 'x'"),
        (["train", "gpt", "--data", "nowhere/corpus.txt"], "no such file or folder"),
        (["train", "gpt", "--data", "shakespeare", "--resume"], "--resume needs --out"),
        (["sample", "no-such-run"], "is not a genlab run"),
        (["eval", "no-such-run"], "is not a genlab run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = genlab(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_bad_files_via_cli(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1") * 100)
    (tmp_path / "blob.txt").write_bytes(bytes(range(256)) * 10)
    for name, message in [("empty.txt", "is empty"), ("latin1.txt", "is not UTF-8"), ("blob.txt", "looks binary")]:
        r = genlab("train", "gpt", "--data", tmp_path / name, "--out", tmp_path / "run", cwd=tmp_path)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "run").exists()


def test_existing_out_without_resume(trained_run, tmp_path):
    r = genlab("train", "gpt", "--data", "shakespeare", "--out", trained_run.path, cwd=tmp_path)
    assert r.returncode == 2 and "add --resume to continue it" in r.stderr


def test_corrupted_checkpoint_via_cli(tmp_path, corpus_file):
    run = tmp_path / "r"
    args = ["train", "gpt", "--data", corpus_file, "--out", run, "--set", "train.max_steps=2",
            "--set", "model.block_size=16", "--set", "model.n_layer=1", "--set", "model.n_embd=32"]
    assert genlab(*args).returncode == 0
    (run / "checkpoint.safetensors").write_bytes(b"\x00\x01garbage")
    r = genlab(*args, "--resume")
    assert r.returncode == 2 and "truncated or corrupted" in r.stderr and "Traceback" not in r.stderr


def test_demo_end_to_end(tmp_path):
    # the `make demo` path on a few seconds of training: trains, evaluates, samples, writes the model card
    r = genlab("demo", "--minutes", "0.05", "--out", tmp_path / "demo")
    assert r.returncode == 0, r.stderr
    assert "bits per character" in r.stderr and "ROMEO:" in r.stderr
    assert (tmp_path / "demo" / "README.md").is_file() and (tmp_path / "demo" / "eval.json").is_file()


def test_sample_options_come_from_the_run_modality(trained_run):
    # an image option on a text run, and a bad value: refused by their flags, before any generation
    for args, message in [(["--label", "3"], "--label is not an option of text runs"),
                          (["--top-p", "2"], "--top-p must be in (0, 1], got 2.0")]:
        r = genlab("sample", trained_run.path, *args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
