"""The code assistant: prefix_at, the completion boundary, close_and_parse, complete (CLI) and code_report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY

import genlab
from genlab.errors import GenlabError
from genlab.sample.code import (
    close_and_parse,
    complete,
    cut_completion,
    fit_context,
    pass_line,
    prefix_at,
)

# -- prefix_at --------------------------------------------------------------------------------------------------


def test_prefix_at_lines(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("a = 1\nb = 2\nc = 3\n")
    assert prefix_at(f, 1) == ""
    assert prefix_at(f, 3) == "a = 1\nb = 2\n"
    assert prefix_at(f, 4) == "a = 1\nb = 2\nc = 3\n"  # one past the end: complete at the end of the file


def test_prefix_at_errors(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("a = 1\nb = 2\n")
    with pytest.raises(GenlabError, match="has 2 lines"):
        prefix_at(f, 9)
    with pytest.raises(GenlabError, match="has 2 lines"):
        prefix_at(f, 0)
    txt = tmp_path / "notes.txt"
    txt.write_text("a = 1\n")
    with pytest.raises(GenlabError, match="not a Python file"):
        prefix_at(txt, 1)
    bad = tmp_path / "latin.py"
    bad.write_bytes(b"s = '\xe9t\xe9'\n")
    with pytest.raises(GenlabError, match="not UTF-8"):
        prefix_at(bad, 1)
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"x = 1\x00\x01\n")
    with pytest.raises(GenlabError, match="binary"):
        prefix_at(binary, 1)
    with pytest.raises(GenlabError, match="no such file"):
        prefix_at(tmp_path / "missing.py", 1)


# -- the boundary -----------------------------------------------------------------------------------------------
HEADER = "import os\n\ndef f(a, b):\n"
BODY = "def f(a, b):\n    x = 1\n"


def test_block_body_is_cut_at_the_dedent():
    gen = "    x = a + b\n    return x\n\ndef g():\n    pass\n"
    assert cut_completion(HEADER, gen) == "    x = a + b\n    return x\n"


def test_block_unfinished_waits_then_keeps_whole_lines():
    gen = "    x = a + b\n    return (x +"
    assert cut_completion(HEADER, gen) is None
    assert cut_completion(HEADER, gen, final=True) == "    x = a + b\n"  # never a half line


def test_mid_statement_stops_at_its_newline():
    assert cut_completion("def f(a, b):\n    x = fo", "o(a, b)\n    return x\n") == "o(a, b)\n"
    # inside an open bracket: the statement ends when the bracket closes
    assert cut_completion("def f(a, b):\n    x = g(a,\n", "          b)\n    return x\n") == "          b)\n"
    # inside a docstring
    assert cut_completion('def f():\n    """Doc\n', '    more."""\n    return 1\n') == '    more."""\n'


def test_statement_start_gives_one_statement_or_a_whole_compound_one():
    assert cut_completion(BODY, "    y = 2\n    return y\n") == "    y = 2\n"
    gen = "    if x:\n        y = 2\n    else:\n        y = 3\n    return y\n"
    assert cut_completion(BODY, gen) == "    if x:\n        y = 2\n    else:\n        y = 3\n"
    assert cut_completion(BODY, "    if x:\n        y = 2\n") is None  # an else may follow


def test_bad_dedent_and_typed_indentation():
    assert cut_completion(BODY, "    if x:\n        y = 2\n  z\n") == "    if x:\n        y = 2\n"
    assert cut_completion("def f():\n    ", "return 1\nx = 2\n") == "return 1\n"
    assert cut_completion(BODY, "", final=True) == ""


def test_heal_suffix():
    from genlab.sample.code import heal_suffix

    assert heal_suffix("def f():\n    ") == "\n    "
    assert heal_suffix("x = 1\n") == "\n"
    assert heal_suffix("    for value in val") == " val"
    assert heal_suffix("f(") == "" and heal_suffix("\n\n") == "" and heal_suffix("abc") == ""


# -- close_and_parse --------------------------------------------------------------------------------------------


def test_close_and_parse():
    assert close_and_parse(HEADER, "")  # the empty block is closed with pass
    assert close_and_parse(HEADER, "    return a\n")
    assert close_and_parse(BODY, "    if x:\n")  # a new header is closed too
    assert close_and_parse("def f():\n    x = fo", "")  # a trailing partial line is dropped
    assert not close_and_parse(HEADER, "    return (a\n")  # an open bracket is not repaired
    assert not close_and_parse(HEADER, "return a\n")  # body not indented
    assert not close_and_parse(BODY, "      y = 2\n")  # unexpected indent
    assert pass_line(HEADER) == "    pass\n" and pass_line(BODY) == "    pass\n" and pass_line("") == "pass\n"
    assert close_and_parse(BODY, pass_line(BODY))


# -- with a model -----------------------------------------------------------------------------------------------


def _module(i: int) -> str:
    funcs = []
    for j in range(3):
        k = i * 3 + j
        funcs.append(
            f"def scale_{k}(values, factor={j + 1}):\n"
            f'    """Multiply every value by factor."""\n'
            f"    result = []\n"
            f"    for value in values:\n"
            f"        if value is None:\n"
            f"            continue\n"
            f"        result.append(value * factor)\n"
            f"    return result\n"
        )
    return "import math\n\n\n" + "\n\n".join(funcs)


@pytest.fixture(scope="module")
def code_run(tmp_path_factory) -> genlab.Run:
    corpus = tmp_path_factory.mktemp("pycorpus")
    for i in range(24):  # 24 files: whole files are held out
        (corpus / f"mod_{i:02d}.py").write_text(_module(i))
    out = tmp_path_factory.mktemp("runs") / "code"
    overrides = TINY + ["data.tokenizer=bpe", "data.vocab_size=300", "train.max_steps=40", "train.eval_every=40"]
    return genlab.train("gpt", str(corpus), out=out, overrides=overrides)


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], capture_output=True, text=True, input=stdin,
                          timeout=300, check=False)


def test_complete_cli_returns_whole_lines(code_run, tmp_path):
    f = tmp_path / "user.py"
    f.write_text("import math\n\n\ndef scale(values, factor=2):\n    result = []\n")
    p = _cli("complete", str(code_run.path), str(f), "--line", "6", "--max-new-tokens", "40", "--seed", "1")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" or p.stdout.endswith("\n")
    assert "result = []" in p.stderr  # the prefix's last line, for context
    p2 = _cli("complete", str(code_run.path), "-", "--no-watermark", stdin="def scale(values, factor=2):\n")
    assert p2.returncode == 0, p2.stderr
    assert p2.stdout == "" or p2.stdout.endswith("\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.py", "--line", "1"], "no such file"),
        (["notes.txt", "--line", "1"], "not a Python file"),
        (["user.py", "--line", "99"], "has 1 lines"),
        (["user.py"], "--line"),
        (["user.py", "--line", "1", "--max-new-tokens", "0"], "max-new-tokens"),
        (["user.py", "--line", "1", "--no-repeat-ngram", "-1"], "no-repeat-ngram"),
    ],
)
def test_complete_cli_bad_input(code_run, tmp_path, args, message):
    (tmp_path / "user.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("x = 1\n")
    args = [str(tmp_path / a) if a.endswith((".py", ".txt")) else a for a in args]
    p = _cli("complete", str(code_run.path), *args)
    assert p.returncode == 2
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_complete_api_and_long_prefix(code_run):
    from genlab.sample.code import complete

    prefix = _module(0) * 20  # far longer than the 32-token context: the normal case, not an error
    text = complete(code_run, prefix + "\n\ndef scale(values):\n", max_new_tokens=24, seed=0, watermark=False)
    assert text == "" or text.endswith("\n")
    again = complete(code_run, prefix + "\n\ndef scale(values):\n", max_new_tokens=24, seed=0, watermark=False)
    assert again == text
    with pytest.raises(GenlabError, match="longer than the model's context"):
        complete(code_run, "x = [" + ", ".join(str(i) for i in range(200)), watermark=False)


def test_fit_context_keeps_whole_lines(code_run):
    tok = code_run.model.tokenizer_
    text = _module(1)
    tail = fit_context(text, tok, budget=20, limit=32)
    assert text.endswith(tail) and (tail == "" or text[len(text) - len(tail) - 1] == "\n")
    assert len(tok.encode(tail).ids) <= 32


def test_code_report(code_run):
    from genlab.evaluate.code import code_report

    report = code_report(code_run, n=3, seed=0, max_new_tokens=16, max_tokens=2000)
    json.dumps(report)
    assert report["n"] == 3 and "method" in report
    for key in ("valid_syntax", "valid_syntax_pass", "valid_syntax_empty", "exact_line", "next_token_accuracy",
                "perplexity"):
        assert 0 <= report[key] <= (1 if key != "perplexity" else float("inf")), key
    assert report["valid_syntax_empty"] == 1.0 and report["valid_syntax_pass"] == 1.0
    assert code_report(code_run, n=3, seed=0, max_new_tokens=16, max_tokens=2000)["examples"] == report["examples"]



def test_function_cases_and_sampling():
    from genlab.evaluate.code import function_cases, sample_cases

    text = "def a():\n    x = 1\n    if x:\n        return x\n    return 0\n\n\ndef tiny(): pass\n"
    assert function_cases(text) == [("a", [2, 3, 4, 5])]  # tiny is one line: too short
    assert function_cases(text, first_line=1) == []  # starts before the held-out part
    assert function_cases("def broken(:\n") == []
    cases = sample_cases([(text, 0)], 5, seed=3)
    assert len(cases) == 1 and cases == sample_cases([(text, 0)], 5, seed=3)
    case = cases[0]
    assert text.startswith(case.prefix + case.target) and case.prefix.endswith("\n")


def test_healing_constraint_makes_the_text_begin_with_the_trim(code_run):
    from genlab.sample.code import StartsWith

    # setup: a prompt whose trailing "\n    " was left out, sampled hot so unconstrained text often strays
    tok = code_run.model.tokenizer_
    prompt = "def scale(values, factor=2):"
    heal = StartsWith(tok, "\n    ")
    logits = torch.zeros(1, tok.get_vocab_size())
    # run
    allowed = heal(torch.tensor([tok.encode(prompt).ids]), logits)[0] > float("-inf")
    texts = [code_run.sample(1, prompt=prompt, temperature=2.0, seed=s, max_new_tokens=12, watermark=s % 2 == 0,
                             logits_processor=StartsWith(tok, "\n    "))[0] for s in range(8)]
    # assert: exactly the tokens compatible with "\n    " are allowed first, and every text begins with it
    pieces = [tok.decode([i]) for i in range(tok.get_vocab_size())]
    expected = [bool(p) and ("\n    ".startswith(p) or p.startswith("\n    ")) for p in pieces]
    assert allowed.tolist() == expected and 0 < sum(expected) < len(expected)
    assert all(t.startswith("\n    ") for t in texts), texts


def test_no_repeat_in_completion_counts_only_the_generated_tokens(code_run):
    from genlab.sample.code import NoRepeatInCompletion

    # setup: a prompt of [5, 6, 5] then generated tokens [7, 8, 7]
    ban = NoRepeatInCompletion(2)
    logits = torch.zeros(1, 20)
    # run: first call sees the prompt only; later calls see prompt + generated
    first = ban(torch.tensor([[5, 6, 5]]), logits)
    later = ban(torch.tensor([[5, 6, 5, 7, 8, 7]]), logits)
    # assert: the prompt's bigram (5, 6) is not banned after 5; the completion's own (7, 8) is banned after 7
    assert torch.isfinite(first).all()
    assert later[0, 8] == float("-inf") and torch.isfinite(later[0, :8]).all() and torch.isfinite(later[0, 9:]).all()
    text = complete(code_run, "def scale(values, factor=2):\n", max_new_tokens=24, no_repeat_ngram=2, watermark=False)
    ids = code_run.model.tokenizer_.encode(text).ids
    assert text == "" or text.endswith("\n")
    assert len(set(zip(ids, ids[1:]))) == len(ids) - 1  # no bigram twice in what was generated
