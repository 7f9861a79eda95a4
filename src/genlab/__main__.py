"""``python -m genlab``: the command line (as the ``genlab`` script)."""

from genlab.cli import main

main()
