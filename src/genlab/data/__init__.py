"""Readers of the user's files and of the built-in datasets, and tokenizers; ``genlab.registry`` names the datasets."""

from genlab.data.dataset import DatasetInfo

__all__ = ["DatasetInfo"]
