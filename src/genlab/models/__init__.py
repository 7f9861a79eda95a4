"""Model families: one file each, registered here by name."""

from __future__ import annotations

import difflib
import importlib

from genlab.errors import GenlabError
from genlab.models.base import Family, Phase

# name -> "module:Class". Adding a family is one file plus one line here.
FAMILIES: dict[str, str] = {
    "gpt": "genlab.models.gpt:GPT",
    "gan": "genlab.models.gan:GAN",
    "vae": "genlab.models.vae:VAE",
    "diffusion": "genlab.models.diffusion:Diffusion",
    "t5": "genlab.models.t5:T5",
    "bert": "genlab.models.bert:BERT",
}


def get_family(name: str) -> type[Family]:
    if name not in FAMILIES:
        match = difflib.get_close_matches(name, list(FAMILIES), n=1)
        hint = f"did you mean '{match[0]}'?" if match else f"families: {', '.join(sorted(FAMILIES))}"
        raise GenlabError(f"unknown family '{name}' ({hint})")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["FAMILIES", "Family", "Phase", "get_family"]
