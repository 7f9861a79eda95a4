"""The HTTP API and the web studio: ``genlab serve`` (see docs/serving.md)."""
