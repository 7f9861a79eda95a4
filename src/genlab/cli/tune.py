"""The verb ``tune``: adapt a trained gpt run to a person's own writing (the ``lora`` family), leaving it unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

import genlab
from genlab.cli.common import RunArg, err, out, table
from genlab.numbers import duration

FULL_LR = ["train.lr=3e-4", "train.min_lr=3e-5"]  # every weight moves: a tenth of the adapters' rate


def tune(
    run: RunArg,
    data: Annotated[str, typer.Option("--data", help="the person's own text: a .txt file or a folder of them")],
    out_: Annotated[Path, typer.Option("--out", help="the new run folder (the base run is never modified)")],
    full: Annotated[bool, typer.Option("--full", help="fine-tune every weight instead of low-rank adapters")] = False,
    rank: Annotated[Optional[int], typer.Option(help="model.rank: the adapters' rank (default 8)")] = None,
    steps: Annotated[Optional[int], typer.Option(help="train.max_steps: optimizer steps (default 300)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="train.seed: the same seed gives the same run")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. model.alpha=32 (repeat it)")]
    = None,
) -> None:
    """Tune a gpt run to your own writing with low-rank adapters (LoRA); the new run stores only the adapter,
    samples like any run, and exports merged weights. Prints held-out perplexity before and after."""
    overrides = [*(FULL_LR if full else ()), *(set_ or ())]
    shorthands = {"model.full": "true" if full else None, "model.rank": rank, "train.max_steps": steps,
                  "train.seed": seed}
    overrides += [f"{k}={v}" for k, v in shorthands.items() if v is not None]
    child = genlab.train("lora", data, out=out_, overrides=overrides, parent=run, progress=True)
    report = child.evaluate()
    s = child.summary()
    t = table(f"tuned {Path(run).name} on {Path(data).name} (held-out perplexity)", "text", "before", "after",
              right=("before", "after"))
    t.add_row("the person's", f"{report['person_ppl_before']:.3f}", f"{report['person_ppl_after']:.3f}")
    t.add_row("the base corpus", f"{report['base_ppl_before']:.3f}", f"{report['base_ppl_after']:.3f}")
    out.print(t)
    kind = "weights (full fine-tuning)" if full else "adapter parameters"
    err.print(Text.assemble(("done", "bold green"), f": {s['steps']} steps in {duration(s['wall_s'])}; "
                            f"{report['adapter_params']:,} {kind} beside the base's {report['base_params']:,}; "
                            f"run in {child.path}"), highlight=False)
