"""Responsible release: watermarks, provenance, audits, energy accounting and model cards, for every family."""
