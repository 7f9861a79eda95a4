"""The ``genlab`` command line: one subcommand per verb, each a thin layer over the Python API.

The verbs live by theme (``runs.py``: train, eval, export, runs, data list, demo; ``generate.py``: sample, vary,
interpolate, continue; ``release.py``: keys, verify, detect, audit, card; ``text.py``: fill, embed, complete;
``recommend.py``: recommend; ``tune.py``: tune; ``serve.py``: serve and its API keys) and are named here, once.
Bad input (``GenlabError``) prints one line and exits with code 2, without a traceback; a bad argument is named by
its flag.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.text import Text

from genlab import progress
from genlab.cli import generate, recommend, release, runs, serve, settings, text, tune
from genlab.cli.common import err
from genlab.errors import BadArgument, GenlabError

try:  # Typer 0.22 and later carry their own copy of click, whose exceptions are what a bad flag raises
    from typer._click import exceptions as click_errors
except ImportError:
    from click import exceptions as click_errors

SETTINGS = {"help_option_names": ["-h", "--help"]}


def _typer(help: str, **kwargs) -> typer.Typer:
    # markdown markup: help text is shown as written ("[model], [data]" are words here, not Rich markup tags)
    return typer.Typer(no_args_is_help=True, rich_markup_mode="markdown", context_settings=SETTINGS, help=help,
                       **kwargs)


app = _typer("Train, generate, evaluate and release generative models on your own machine.", add_completion=False,
             pretty_exceptions_enable=False)
data_app = _typer("Datasets genlab knows.")
keys_app = _typer("The local identity that signs generated files, and the API keys `genlab serve` checks.")
config_app = _typer("Settings: every key of a family's configuration, and the configurations genlab ships.")
app.add_typer(data_app, name="data")
app.add_typer(keys_app, name="keys")
app.add_typer(config_app, name="config")

def _verb(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A verb that says it was interrupted (Ctrl-C or SIGTERM) and exits 130 or 143 (Typer would exit 130 silently)."""

    @functools.wraps(fn)
    def verb(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as e:
            err.print("stopped by SIGTERM" if getattr(e, "exit_code", 130) == 143 else "interrupted", highlight=False)
            raise typer.Exit(getattr(e, "exit_code", 130)) from None

    return verb


for name, verb in (("train", runs.train), ("sample", generate.sample), ("vary", generate.vary),
                   ("interpolate", generate.interpolate), ("continue", generate.continue_), ("eval", runs.eval_),
                   ("export", runs.export), ("runs", runs.runs), ("demo", runs.demo), ("verify", release.verify),
                   ("detect", release.detect), ("audit", release.audit), ("card", release.card), ("fill", text.fill),
                   ("embed", text.embed), ("complete", text.complete), ("serve", serve.serve),
                   ("recommend", recommend.recommend), ("tune", tune.tune)):
    app.command(name)(_verb(verb))
data_app.command("list")(_verb(runs.data_list))
data_app.command("describe")(_verb(runs.data_describe))
keys_app.command("init")(_verb(release.keys_init))
keys_app.command("create-api")(_verb(serve.create_api))
keys_app.command("list-api")(_verb(serve.list_api))
keys_app.command("revoke-api")(_verb(serve.revoke_api))
config_app.command("show")(_verb(settings.show))
config_app.command("list")(_verb(settings.list_configs))


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
    from genlab.train.signals import terminate_as_interrupt

    terminate_as_interrupt()  # SIGTERM cleans up as Ctrl-C does (training: finish the step, checkpoint, stop)
    try:
        with progress.shown():  # long work draws its bars on standard error
            code = app(standalone_mode=False)  # usage errors come back here, to be said in one line
    except BadArgument as e:
        _error(e.flag())
    except GenlabError as e:
        _error(str(e))
    except click_errors.NoArgsIsHelpError as e:  # `genlab data`: the group's help, as Typer shows it
        from typer import rich_utils

        rich_utils.rich_format_error(e)
        sys.exit(e.exit_code)
    except click_errors.ClickException as e:  # a bad flag or value: one line, exit code 2, as genlab's own errors
        _error(f"{e.format_message()} (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else
               e.format_message(), code=e.exit_code)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt as e:
        err.print("interrupted", highlight=False)
        sys.exit(getattr(e, "exit_code", 130))
    if isinstance(code, int) and code:
        sys.exit(code)


def _error(message: str, code: int = 2) -> None:
    """One line, exit code 2; the message is printed as it is (a path with [brackets] keeps them)."""
    err.print(Text.assemble(("error:", "bold red"), " ", " ".join(message.split())), highlight=False, soft_wrap=True)
    sys.exit(code)
