"""Text-tool verbs of the command line: fill and embed (bert), complete (the code assistant)."""

from __future__ import annotations

from genlab.cli import app, err, out  # noqa: F401  (each verb below registers on the one app)

# -- bert: fill, embed ------------------------------------------------------------------------------------------

# -- code assistant: complete -----------------------------------------------------------------------------------
