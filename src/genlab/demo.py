"""``genlab demo``: a small GPT on Shakespeare in a few minutes, then its figures and three samples."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.text import Text

from genlab.api import train
from genlab.errors import GenlabError
from genlab.runfiles import CONFIG_TOML

PROMPTS = ("ROMEO:\n", "To be, or not", "KING HENRY:\nWhat news")


def run_demo(out: Path, *, minutes: float, console: Console) -> None:
    if out.exists():
        if not (out / CONFIG_TOML).exists():
            raise GenlabError(f"{out} exists and is not a genlab run; choose another --out")
        shutil.rmtree(out)  # the demo's own folder: each demo starts afresh
    config = resources.files("genlab") / "configs" / "demo.toml"
    console.print(Text.assemble(("genlab demo", "bold"), f": training a GPT on Shakespeare for about {minutes:g} "
                                "minutes ..."))
    with resources.as_file(config) as cfg:
        run = train("gpt", "shakespeare", out=out, config_file=cfg, overrides=[f"train.max_minutes={minutes}"],
                    progress=True)
    report = run.evaluate()  # the whole held-out split, as the model card reports it
    console.print(Text.assemble(
        "\nvalidation: ", (f"{report['bits_per_char']:.3f} bits per character", "bold"),
        f" (loss {report['val_loss']:.3f} nats; a model with no context scores {report['unigram_entropy']:.2f})\n"))
    for prompt, text in zip(PROMPTS, run.sample(1, prompt=PROMPTS[0], max_new_tokens=250, seed=0) +
                            run.sample(1, prompt=PROMPTS[1], max_new_tokens=250, seed=1) +
                            run.sample(1, prompt=PROMPTS[2], max_new_tokens=250, seed=2)):
        console.rule(style="dim")
        console.print(prompt + text, markup=False, highlight=False)
    console.rule(style="dim")
    console.print(f"\nthe run is in {out} (loss curve: {out / 'loss.png'}, model card: {out / 'README.md'}); "
                  "the samples above carry the run's text watermark. Try next:", markup=False, highlight=False)
    for line in (
        f"genlab sample {out} --prompt 'JULIET:' --temperature 0.7 --seed 3",
        f"genlab eval {out}",
        f"genlab sample {out} --n 2 --out demo-texts && genlab detect demo-texts/*.txt --run {out}   # watermark",
        f"genlab audit {out}   # memorisation and bias",
        f"genlab train gpt --data shakespeare --out {out} --resume --set train.max_steps=4000   # train longer",
        "genlab train gpt --data pycode --set data.tokenizer=bpe --out runs/code   # a code model",
        f"genlab export {out} exported-demo   # load it with transformers",
    ):
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
