"""The ``genlab`` command line: one subcommand per verb, each a thin layer over the Python API.

The verbs live by theme (``runs.py``: train, eval, export, runs, data list, demo; ``generate.py``: sample, vary,
interpolate; ``release.py``: keys, verify, detect, audit, card; ``text.py``: fill, embed, complete) and are named
here, once. Bad input (``GenlabError``) prints one line and exits with code 2, without a traceback; a bad argument
is named by its flag.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from genlab import progress
from genlab.cli import generate, release, runs, settings, text
from genlab.cli.common import err
from genlab.errors import BadArgument, GenlabError

SETTINGS = {"help_option_names": ["-h", "--help"]}


def _typer(help: str, **kwargs) -> typer.Typer:
    # markdown markup: help text is shown as written ("[model], [data]" are words here, not Rich markup tags)
    return typer.Typer(no_args_is_help=True, rich_markup_mode="markdown", context_settings=SETTINGS, help=help,
                       **kwargs)


app = _typer("Train, generate, evaluate and release generative models on your own machine.", add_completion=False,
             pretty_exceptions_enable=False)
data_app = _typer("Datasets genlab knows.")
keys_app = _typer("The local identity that signs generated files.")
config_app = _typer("Settings: every key of a family's configuration, and the configurations genlab ships.")
app.add_typer(data_app, name="data")
app.add_typer(keys_app, name="keys")
app.add_typer(config_app, name="config")

for name, verb in (("train", runs.train), ("sample", generate.sample), ("vary", generate.vary),
                   ("interpolate", generate.interpolate), ("eval", runs.eval_), ("export", runs.export),
                   ("runs", runs.runs), ("demo", runs.demo), ("verify", release.verify), ("detect", release.detect),
                   ("audit", release.audit), ("card", release.card), ("fill", text.fill), ("embed", text.embed),
                   ("complete", text.complete)):
    app.command(name)(verb)
data_app.command("list")(runs.data_list)
keys_app.command("init")(release.keys_init)
config_app.command("show")(settings.show)
config_app.command("list")(settings.list_configs)


def _version(value: bool) -> None:
    if value:
        from genlab.version import genlab_version

        print(f"genlab {genlab_version()}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="print genlab's version and exit", is_eager=True,
                                                callback=_version)] = False) -> None:
    """Train, generate, evaluate and release generative models on your own machine."""


def main() -> None:
    try:
        with progress.shown():  # long work draws its bars on standard error
            app()
    except BadArgument as e:
        _error(e.flag())
    except GenlabError as e:
        _error(str(e))
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)


def _error(message: str) -> None:
    """One line, exit code 2; the message is printed as it is (a path with [brackets] keeps them)."""
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    sys.exit(2)
