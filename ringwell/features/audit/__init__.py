"""Audit events: who signed in, changed or (as staff) read what. Append-only."""
