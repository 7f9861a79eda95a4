"""Model families: one file each (``base.py`` is the contract), named in ``genlab.registry.FAMILIES``."""

from genlab.models.base import Family
from genlab.registry import FAMILIES, get_family
from genlab.train.hooks import Phase

__all__ = ["FAMILIES", "Family", "Phase", "get_family"]
