"""The ``genlab`` command line: one subcommand per verb, each a thin layer over the Python API.

The verbs live by theme (``runs.py``: train, eval, export, runs, data list, demo; ``generate.py``: sample, vary,
interpolate; ``release.py``: keys, verify, detect, audit, card; ``text.py``: fill, embed, complete) and are named
here, once. Bad input (``GenlabError``) prints one line and exits with code 2, without a traceback; a bad argument
is named by its flag.
"""

from __future__ import annotations

import sys

import typer

from genlab.cli import generate, release, runs, text
from genlab.cli.common import err
from genlab.errors import BadArgument, GenlabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, generate, evaluate and release generative models on your own machine.",
)
data_app = typer.Typer(no_args_is_help=True, help="Datasets genlab knows.")
keys_app = typer.Typer(no_args_is_help=True, help="The local identity that signs generated files.")
app.add_typer(data_app, name="data")
app.add_typer(keys_app, name="keys")

for name, verb in (("train", runs.train), ("sample", generate.sample), ("vary", generate.vary),
                   ("interpolate", generate.interpolate), ("eval", runs.eval_), ("export", runs.export),
                   ("runs", runs.runs), ("demo", runs.demo), ("verify", release.verify), ("detect", release.detect),
                   ("audit", release.audit), ("card", release.card), ("fill", text.fill), ("embed", text.embed),
                   ("complete", text.complete)):
    app.command(name)(verb)
data_app.command("list")(runs.data_list)
keys_app.command("init")(release.keys_init)


def main() -> None:
    try:
        app()
    except BadArgument as e:
        err.print(f"[bold red]error:[/] {e.flag()}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
    except GenlabError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; a checkpoint was saved where training stopped: continue with --resume")
        sys.exit(130)
