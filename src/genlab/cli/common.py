"""What the verbs of the command line share: the consoles, tables, folders for outputs, and options built from the
modalities' schemas (one ``--flag`` per schema option, grouped by the modalities that take it)."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from genlab import registry
from genlab.errors import GenlabError

# Into a file or a pipe, tables take the width their content needs: nothing is cut or wrapped for an 80-column
# terminal that is not there. In a terminal, cells wrap (fold) within its width rather than cut.
# Everything is printed as plain text (markup=False): a path, a run name or a config key such as "[train]" is shown
# as it is, never read as Rich markup; styled words are built as rich.text.Text.
out = Console(markup=False) if sys.stdout.isatty() else Console(width=1000, markup=False)
err = Console(stderr=True, markup=False) if sys.stderr.isatty() else Console(stderr=True, width=1000, markup=False)


def with_options(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a verb one ``--flag`` per option of every modality's ``kind`` schema ("sample" or "evaluate").

    The verb receives them as keyword arguments, None when not given; it hands them to the run's modality, which
    refuses the ones that are not its own and adds its defaults.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)  # the verb's own annotations, resolved
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        for option, owners in schema_options(kind):
            panel = f"Options for {' and '.join(owners)} runs"
            helps = {o.help for o in owners.values()}
            text = next(iter(helps)) if len(helps) == 1 else "; ".join(f"{m}: {o.help}" for m, o in owners.items())
            defaults = {m: o.default for m, o in owners.items() if o.default not in (None, "")}
            if defaults and "default" not in text:
                same = len(set(map(repr, defaults.values()))) == 1 and len(defaults) == len(owners)
                text += f" [default: {next(iter(defaults.values()))}]" if same else \
                    " [default: " + "; ".join(f"{m}: {d}" for m, d in defaults.items()) + "]"
            kind_ = Optional[list[str]] if option.type is list else Optional[option.type]
            flag = typer.Option(f"--{option.name.replace('_', '-')}", help=text, rich_help_panel=panel,
                                show_default=False)
            params.append(inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=Annotated[kind_, flag]))

        @functools.wraps(fn)
        def verb(**kwargs: Any) -> Any:
            return fn(**kwargs)

        verb.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        verb.__annotations__ = {p.name: p.annotation for p in params}
        return verb

    return decorate


def schema_options(kind: str) -> list[tuple[Any, dict[str, Any]]]:
    """Each option name's first declaration, with each modality's own declaration of it (in registry order)."""
    owners: dict[str, dict[str, Any]] = {}
    for name in registry.MODALITIES:
        for option in registry.get_modality(name).options(kind):
            seen = owners.setdefault(option.name, {})
            if seen and next(iter(seen.values())).type is not option.type:
                raise TypeError(f"option {option.name} has two types across modalities")  # a genlab bug
            seen[name] = option
    return [(next(iter(by.values())), by) for by in owners.values()]


def given(options: dict[str, Any], modality: Any, kind: str) -> dict[str, Any]:
    """The options the user set, checked against the run's modality, with its defaults; "-" read from stdin."""
    chosen = modality.check_options(kind, {k: v for k, v in options.items() if v is not None})
    for option in modality.options(kind):
        value = chosen.get(option.name)
        if option.stdin and value is not None:
            chosen[option.name] = [read_stdin() if v == "-" else v for v in value] if isinstance(value, list) \
                else (read_stdin() if value == "-" else value)
    return chosen


def read_stdin() -> str:
    """Standard input as text: UTF-8, refused with one line when it is not."""
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GenlabError(f"standard input is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None


def check_new(folder: Optional[Path]) -> None:
    """Refuse an existing --out before any work is done."""
    if folder is not None and folder.exists():
        raise GenlabError(f"{folder} already exists; choose a new --out folder")


def fresh(prefix: Path) -> Path:
    """A new folder name: ``prefix`` with the time appended."""
    return prefix.with_name(f"{prefix.name}-{time.strftime('%Y%m%d-%H%M%S')}")


def announce_identity(r: Any, sign: Optional[bool]) -> None:
    """Make the signing identity now if this run signs and none exists yet, and say where it is."""
    from genlab.responsible.keys import ensure_identity

    if r.config.release.sign if sign is None else sign:
        identity, created = ensure_identity()
        if created:
            err.print(f"created a signing identity in {identity.folder} (see `genlab keys init`)")


def say_watermark(r: Any, watermark: Optional[bool]) -> None:
    """The release layer's note on this run's mark (e.g. images too small to carry it), when marking is on."""
    if r.release.note and r.release.watermarks(watermark):
        err.print(f"note: {r.release.note}")


def saved(outputs: Any, folder: Path, sign: Optional[bool], prefix: str = "sample") -> Path:
    """Write the outputs into the new ``folder`` and say what is there."""
    names = [name for name, _ in outputs.files(prefix)]
    folder = outputs.save(folder, sign=sign, prefix=prefix)
    if folder.is_file():  # one file (a table's .csv or .parquet), with its sidecar manifest when signed
        from genlab.responsible.provenance import sidecar_path

        manifest = sidecar_path(folder)
        err.print(f"wrote {folder}" + (f" and its signed manifest {manifest}" if manifest.is_file() else ""),
                  markup=False, highlight=False)
        return folder
    shown = ", ".join(names) if len(names) <= 3 else f"{names[0]} ... {names[-1]}"
    err.print(f"{len(names)} files in {folder}: {shown}", markup=False, highlight=False)
    return folder


def table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A table whose cells wrap rather than cut: a run name, a dataset or a file name is never shortened."""
    t = Table(title=title)
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left", overflow="fold")
    return t


def write_text(text: str) -> None:
    """Text exactly as generated (no wrapping, no markup), then a newline."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def rule(title: str) -> None:
    """A header line between outputs: a rule across the terminal, or a short plain line in a file or a pipe."""
    if sys.stdout.isatty():
        out.rule(title, style="dim")
    else:
        write_text(f"--- {title} ---")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


RunArg = Annotated[Path, typer.Argument(help="run folder")]
