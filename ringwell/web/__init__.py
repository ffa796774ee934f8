"""The HTTP side: the REST API (``/api/v1``), the portal (``/``) and health, in one FastAPI app."""
