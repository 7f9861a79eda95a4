"""genlab's installed version, as recorded in saved models, manifests and model cards."""

from importlib.metadata import PackageNotFoundError, version


def genlab_version() -> str:
    try:
        return version("genlab")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
