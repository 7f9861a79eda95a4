"""genlab: train, generate, evaluate and release generative models on your own machine."""

from genlab.api import describe, load, train
from genlab.errors import GenlabError
from genlab.registry import FAMILIES, get_family, list_datasets
from genlab.runs import Run, list_runs

__all__ = ["FAMILIES", "GenlabError", "Run", "describe", "get_family", "list_datasets", "list_runs", "load", "train"]
