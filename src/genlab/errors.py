"""The one exception type for bad user input.

A ``GenlabError`` is a mistake the user can fix (a missing file, a bad config key, a run that already exists).
The CLI prints its message on one line and exits with code 2, without a traceback. Anything else is a bug.
"""


class GenlabError(ValueError):
    """Bad input: the message says what is wrong and what to do."""


class BadArgument(GenlabError):
    """A bad value for one argument, or an argument that does not apply (a sampling option, say).

    ``param`` names it as the Python API spells it (``max_new_tokens``); the command line shows it as its flag
    (``--max-new-tokens``), the HTTP API as OpenAI's error ``param``. ``valid`` lists the arguments that do apply,
    named the same way.
    """

    def __init__(self, param: str, problem: str, *, valid: tuple[str, ...] = ()) -> None:
        self.param, self.problem, self.valid = param, problem, tuple(valid)
        super().__init__(self._text(lambda name: name))

    def flag(self) -> str:
        """The message with the arguments as command-line flags."""
        return self._text(lambda name: f"--{name.replace('_', '-')}")

    def _text(self, spell) -> str:
        listed = f" (valid: {', '.join(map(spell, self.valid)) or 'none'})" if self.valid else ""
        return f"{spell(self.param)} {self.problem}{listed}"
