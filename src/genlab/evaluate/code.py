"""How well a gpt run completes real Python code it has not trained on.

``code_report`` mines functions of 3 to 40 lines with ``ast`` from the run's held-out split (whole held-out files;
with fewer than 20 documents, functions starting in each document's held-out tail), cuts each at a seeded random
statement start inside its body, and completes it with :func:`genlab.sample.code.complete` (greedy). Figures:

- ``valid_syntax``: share of completions after which the file up to the cut, plus the completion, parses
  (``close_and_parse``: an open block is closed with ``pass``);
- ``valid_syntax_pass`` / ``valid_syntax_empty``: the same for the trivial completions ``pass`` (at the next
  statement's indentation) and nothing. The cut is at a statement start, so both are valid by construction (1.0):
  they are the ceiling, and ``valid_syntax`` says how often the model's code keeps a file valid;
- ``exact_line``: share whose first completed line equals the true next line (trailing spaces ignored);
- ``nonempty``: share with at least one whole line completed; ``valid_and_nonempty``: both (an empty
  completion is trivially valid, so this is the figure to watch);
- ``next_token_accuracy``: greedy next-token accuracy on the validation split (consecutive blocks);
- ``val_loss`` / ``perplexity`` / ``bits_per_char``: from ``genlab.evaluate.text.evaluate_lm``.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from typing import Any

from genlab.data.text import MIN_DOCS_FOR_DOC_SPLIT, _split_lines
from genlab.errors import BadArgument, GenlabError
from genlab.evaluate.text import evaluate_lm
from genlab.nets import eval_mode
from genlab.progress import task
from genlab.sample.code import NO_REPEAT_NGRAM, close_and_parse, complete, pass_line

MIN_LINES, MAX_LINES = 3, 40  # function sizes mined


@dataclass(frozen=True)
class Case:
    """One completion task: the file's text before the cut, and the true line at the cut."""

    name: str  # the function's name
    prefix: str  # all lines of the file before the cut line
    target: str  # the cut line itself


def held_out_sources(run: Any) -> list[tuple[str, int]]:
    """(document text, 0-based first held-out line) for each held-out document of the run's corpus."""
    corpus = run.modality.resolve(run.config.dataset)
    fraction = run.config.data.val_fraction
    if len(corpus.files) >= MIN_DOCS_FOR_DOC_SPLIT:
        return [(text, 0) for text in corpus.split(fraction)[1]]
    sources = []
    for path in corpus.files:
        text = corpus.read(path)
        head, _ = _split_lines(text, fraction)
        sources.append((text, head.count("\n")))
    return sources


def function_cases(text: str, first_line: int = 0) -> list[tuple[str, list[int]]]:
    """(name, candidate cut lines, 1-based) for each function of 3-40 lines starting after ``first_line``.

    Candidates are the lines where a statement of the body begins (nested ones included), at the line's start.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return []
    lines = text.splitlines()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.lineno <= first_line:
            continue
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        if not MIN_LINES <= size <= MAX_LINES:
            continue
        cuts = sorted({
            s.lineno for s in ast.walk(node)
            if isinstance(s, ast.stmt) and s is not node and s.lineno >= node.body[0].lineno
            and len(lines[s.lineno - 1]) - len(lines[s.lineno - 1].lstrip()) == s.col_offset
        })
        if cuts:
            found.append((node.name, cuts))
    return found


def sample_cases(sources: list[tuple[str, int]], n: int, seed: int) -> list[Case]:
    """``n`` functions drawn at random (seeded), each cut at a random candidate line."""
    pool = [(i, name, cuts) for i, (text, first) in enumerate(sources) for name, cuts in function_cases(text, first)]
    rng = random.Random(seed)
    rng.shuffle(pool)
    cases = []
    for i, name, cuts in pool[:n]:
        lines = sources[i][0].splitlines(keepends=True)
        cut = rng.choice(cuts)
        cases.append(Case(name, "".join(lines[: cut - 1]), lines[cut - 1]))
    return cases


def next_token_accuracy(model: Any, data: Any, *, batch_size: int = 16, max_tokens: int = 0) -> float:
    """Share of validation tokens that are the model's most likely next token (blocks as in ``evaluate_lm``)."""
    device = next(model.parameters()).device
    hits, count = 0, 0
    with eval_mode(model):
        for x, y in data.blocks("val", batch_size, max_tokens):
            pred = model(input_ids=x.to(device)).logits.argmax(-1)  # (B, T)
            hits += int((pred == y.to(device)).sum())
            count += y.numel()
    return hits / max(count, 1)


def _row(run: Any, case: Case, seed: int, max_new_tokens: int, watermark: bool, no_repeat_ngram: int) -> dict:
    """One held-out cut completed greedily, and what is true of the completion."""
    text = complete(run, case.prefix, max_new_tokens=max_new_tokens, temperature=0.0, seed=seed,
                    watermark=watermark, no_repeat_ngram=no_repeat_ngram)
    first = text.split("\n", 1)[0] if text else ""
    return {
        "function": case.name,
        "target": case.target.rstrip("\n"),
        "completion": text,
        "valid": close_and_parse(case.prefix, text),
        "valid_pass": close_and_parse(case.prefix, pass_line(case.prefix)),
        "valid_empty": close_and_parse(case.prefix, ""),
        "exact_line": bool(first.strip()) and first.rstrip() == case.target.rstrip(),
        "context": case.prefix.rstrip("\n").rsplit("\n", 1)[-1],
    }


def code_report(
    run: Any,
    *,
    n: int = 100,
    seed: int = 0,
    max_new_tokens: int = 64,
    max_tokens: int = 0,
    watermark: bool = False,
    no_repeat_ngram: int = NO_REPEAT_NGRAM,
) -> dict[str, Any]:
    """Completion quality on held-out functions, beside trivial baselines, and the LM's validation figures.

    ``max_tokens`` caps the validation tokens scored (0: all); ``watermark`` is off by default so the figures
    measure the model itself (the watermark shifts greedy choices).
    """
    if n < 1:
        raise BadArgument("n", f"must be at least 1, got {n}")
    cases = sample_cases(held_out_sources(run), n, seed)
    if not cases:
        raise GenlabError(f"no functions of {MIN_LINES}-{MAX_LINES} lines in {run.config.dataset}'s held-out split")
    rows = []
    with task(f"completing {len(cases)} held-out functions", total=len(cases)) as advance:
        for k, case in enumerate(cases):
            rows.append(_row(run, case, seed + k, max_new_tokens, watermark, no_repeat_ngram))
            advance()
    lm = evaluate_lm(run.model.model_, run.data, max_tokens=max_tokens)

    def share(key: str) -> float:
        return sum(bool(r[key]) for r in rows) / len(rows)

    return {
        "method": (
            f"{len(rows)} functions of {MIN_LINES}-{MAX_LINES} lines from the held-out split, each cut at a "
            f"random statement start in its body (seed {seed}) and completed greedily with at most "
            f"{max_new_tokens} tokens" + (f", no {no_repeat_ngram}-gram twice" if no_repeat_ngram else "")
            + f", watermark {'on' if watermark else 'off'}; valid = the file up to the cut "
            "plus the completion parses once an open block is closed with pass; baselines: 'pass' and nothing; "
            "exact_line = first completed line equals the true line; LM figures on the validation split"
            + (f" (first {max_tokens} tokens)" if max_tokens else "")
        ),
        "run": str(run.path),
        "dataset": run.config.dataset,
        "n": len(rows),
        "valid_syntax": share("valid"),
        "valid_syntax_pass": share("valid_pass"),
        "valid_syntax_empty": share("valid_empty"),
        "valid_and_nonempty": sum(bool(r["valid"] and r["completion"]) for r in rows) / len(rows),
        "exact_line": share("exact_line"),
        "nonempty": sum(bool(r["completion"]) for r in rows) / len(rows),
        "next_token_accuracy": next_token_accuracy(run.model.model_, run.data, max_tokens=max_tokens),
        "val_loss": lm["val_loss"],
        "perplexity": lm["perplexity"],
        "bits_per_char": lm["bits_per_char"],
        "val_tokens": lm["tokens"],
        "examples": rows,
    }
