"""genlab's installed version, as recorded in saved models, manifests and model cards."""

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache  # read from the installed metadata once per process (every manifest and served answer names it)
def genlab_version() -> str:
    try:
        return version("genlab")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
