"""Text-tool verbs of the command line: fill and embed (bert), complete (the code assistant)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import genlab
from genlab.cli.common import err, out, print_json, read_stdin, table
from genlab.errors import GenlabError
from genlab.sample.code import NO_REPEAT_NGRAM

# -- bert: fill, embed ------------------------------------------------------------------------------------------

def fill(
    run: Annotated[Path, typer.Argument(help="run folder of a bert model")],
    text: Annotated[str, typer.Argument(help='text with one or more [MASK], e.g. "To be or not to [MASK]"')],
    top_k: Annotated[int, typer.Option("--top-k", help="fillers to show per [MASK]")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Fill in each [MASK] of a text: the most likely tokens and their probabilities (bert runs)."""
    from rich.text import Text

    model = genlab.load(run).model
    if not hasattr(model, "fill"):
        raise GenlabError(f"{run} is not a masked language model; fill needs a bert run")
    filled = model.fill(text, top_k=top_k)
    if as_json:
        print_json([[{"token": token, "probability": p} for token, p in fillers] for fillers in filled])
        return
    for i, fillers in enumerate(filled, start=1):
        t = table(f"[MASK] {i}", "token", "probability", right=("probability",))
        for token, p in fillers:
            t.add_row(Text(repr(token)), f"{p:.4f}")
        out.print(t)


def embed(
    run: Annotated[Path, typer.Argument(help="run folder of a bert model")],
    file: Annotated[Path, typer.Argument(help="text file, one text per line")],
    out_: Annotated[Path, typer.Option("--out", help="new .npy file for the (lines, n_embd) float32 array")],
) -> None:
    """Embed each line of a file as a vector (mean of the last hidden states) into a .npy file (bert runs)."""
    import io

    import numpy as np

    from genlab.files import atomic_write

    if out_.exists():
        raise GenlabError(f"{out_} already exists; choose a new --out")
    if not file.is_file():
        raise GenlabError(f"{file}: no such file")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise GenlabError(f"{file} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not lines:
        raise GenlabError(f"{file} is empty; write one text per line")
    model = genlab.load(run).model
    if not hasattr(model, "embed"):
        raise GenlabError(f"{run} cannot embed text; embed needs a bert run")
    vectors = model.embed(lines)  # (N, n_embd)
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    atomic_write(out_, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    err.print(f"{len(lines)} vectors of {vectors.shape[1]} in {out_}", markup=False, highlight=False)


# -- code assistant: complete -----------------------------------------------------------------------------------


def complete(
    run: Annotated[Path, typer.Argument(help="run folder (a gpt trained on code)")],
    file: Annotated[str, typer.Argument(help="a .py file, or - to read the text before the cursor from stdin")],
    line: Annotated[int | None, typer.Option("--line", help="complete at this line (1-based): the model sees lines before it")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="at most this many tokens")] = 64,
    temperature: Annotated[float, typer.Option(help="0 = greedy; higher = more random")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="the same seed gives the same completion")] = None,
    no_repeat_ngram: Annotated[int, typer.Option(help="no n-gram of this many tokens twice in the completion (0 = off)")] = NO_REPEAT_NGRAM,
    watermark: Annotated[bool | None, typer.Option("--watermark/--no-watermark", help="mark the completion (default: the run's release.watermark setting, on)")] = None,
) -> None:
    """Complete Python code at a line: the rest of the statement, or the block it opens (whole lines)."""
    import sys

    from genlab.sample.code import check_options, prefix_at
    from genlab.sample.code import complete as complete_code

    check_options(max_new_tokens, temperature, no_repeat_ngram)
    if file == "-":
        if line is not None:
            raise GenlabError("--line goes with a FILE; with - the whole of standard input is the text before the cursor")
        prefix = read_stdin()
    else:
        if line is None:
            raise GenlabError("give --line N, the line to complete at (1-based)")
        prefix = prefix_at(Path(file), line)
    r = genlab.load(run)
    context = prefix.rstrip("\n").rsplit("\n", 1)[-1]
    if context.strip():
        err.print(context, style="dim", markup=False, highlight=False)
    text = complete_code(r, prefix, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                         watermark=watermark, no_repeat_ngram=no_repeat_ngram)
    if not text:
        err.print("(no complete line generated; try a larger --max-new-tokens)", style="dim")
    sys.stdout.write(text)
    sys.stdout.flush()
