"""genlab: train, generate, evaluate and release generative models on your own machine."""

from genlab.api import load, train
from genlab.data import list_datasets
from genlab.errors import GenlabError
from genlab.models import FAMILIES, get_family
from genlab.runs import Run, list_runs

__all__ = ["FAMILIES", "GenlabError", "Run", "get_family", "list_datasets", "list_runs", "load", "train"]
