"""The one exception type for bad user input.

A ``GenlabError`` is a mistake the user can fix (a missing file, a bad config key, a run that already exists).
The CLI prints its message on one line and exits with code 2, without a traceback. Anything else is a bug.
"""


class GenlabError(ValueError):
    """Bad input: the message says what is wrong and what to do."""
