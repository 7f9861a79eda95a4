"""``python -m genlab.cli``: the same as the ``genlab`` command."""

from genlab.cli import main

main()
