"""How to use a run: the commands that work on it and the Python that does the same, for the command line's hints
and the model card's "How to use" section alike. Built from the family's own verbs (its ``hints``, whether it
generates, how its export loads) and the modality's sampling options (their ``example`` values), so a hint never
names an option or a verb the run does not have.
"""

from __future__ import annotations

import shlex
from typing import Any


def commands(family: Any, modality: Any, run: str) -> list[str]:
    """Shell commands that work for a run of ``family`` on ``modality`` in folder ``run``."""
    path = shlex.quote(run) if run != "RUN" else run
    steps = []
    if family.generates:
        steps.append(" ".join(["genlab", "sample", path, *_examples(modality, cli=True)]))
    steps += [hint.format(run=path) for hint in family.hints]
    steps.append(f"genlab eval {path}")
    return steps


def python(family: Any, modality: Any, run: str) -> str:
    """A few lines of Python that load the run and use it."""
    lines = ["import genlab", "", f"run = genlab.load({run!r})"]
    if family.generates:
        options = ", ".join(["4", "seed=0", *_examples(modality, cli=False)])
        lines += [f"outputs = run.sample({options})", "outputs.save('outputs')  # watermarked and signed files"]
    lines.append("print(run.evaluate())")
    return "\n".join(lines)


def _examples(modality: Any, *, cli: bool) -> list[str]:
    out = []
    for o in modality.sample_options:
        if not o.example:
            continue
        value = [o.example] if o.type is list else o.example
        out.append(f"--{o.name.replace('_', '-')} {shlex.quote(o.example)}" if cli else f"{o.name}={value!r}")
    return out
