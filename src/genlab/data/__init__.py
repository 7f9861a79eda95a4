"""Datasets by modality and name, tokenizers, and the user's own files."""

from genlab.data.registry import DatasetInfo, list_datasets, resolve

__all__ = ["DatasetInfo", "list_datasets", "resolve"]
