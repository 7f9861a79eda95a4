"""The fuzz harness of genlab's readers of user data (``harness.py``), its mutations (``mutate.py``), its inputs
(``cases.py``, ``seeds/``) and the crashes it has found (``crashes/``); ``tests/test_fuzz.py`` runs it."""
