"""Modalities: one plugin per kind of data (``base.py`` is the contract), named in ``genlab.registry.MODALITIES``."""

from genlab.modalities.base import Modality, Option, Outputs

__all__ = ["Modality", "Option", "Outputs"]
