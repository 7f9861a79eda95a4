"""Verbs about settings: config show (every key of a family's configuration), config list (shipped configs)."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from genlab import registry
from genlab.cli.common import out, print_json, table
from genlab.config import PrivacyConfig, ReleaseConfig, TrainConfig
from genlab.settings import describe, shipped_configs

Json = Annotated[bool, typer.Option("--json", help="print JSON")]


def show(
    family: Annotated[str, typer.Argument(help="model family, e.g. gpt")],
    as_json: Json = False,
) -> None:
    """Every setting of a family's runs: section, key, type, default and what it does."""
    cls = registry.get_family(family)
    modality = registry.get_modality(cls.modality)
    rows = [*describe("model", cls.Config), *describe("data", modality.DataConfig),
            *describe("train", TrainConfig, cls.train_defaults), *describe("release", ReleaseConfig),
            *(describe("privacy", PrivacyConfig) if cls.supports_privacy else [])]
    if as_json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2, default=list))
        return
    t = table(f"settings of {family} runs ([data] for {modality.name} data; set them with --set section.key=value)",
              "key", "type", "default", "what it does")
    for r in rows:
        t.add_row(f"{r.section}.{r.name}", r.type, json.dumps(r.default, default=list), r.comment)
    out.print(t)


def list_configs(as_json: Json = False) -> None:
    """The configurations genlab ships: pass a name to --config (a path to your own TOML file works too)."""
    rows = [(name, _summary(path.read_text(encoding="utf-8"))) for name, path in shipped_configs().items()]
    if as_json:
        print_json([{"name": n, "about": a} for n, a in rows])
        return
    t = table("configurations (genlab train FAMILY --data DATA --config NAME)", "name", "about")
    for row in rows:
        t.add_row(*row)
    out.print(t)


def _summary(toml: str) -> str:
    """The file's opening comment, as one line."""
    lines = []
    for line in toml.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    return " ".join(lines)
