"""Webhooks: signed HTTP callbacks to an org's endpoints, retried, logged, replayable."""
