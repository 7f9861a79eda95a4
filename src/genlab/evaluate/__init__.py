"""Metrics as pure functions, one module per kind of output; each family's report is ``Family.evaluate``."""
