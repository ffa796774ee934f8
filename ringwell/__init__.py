"""Ringwell: a self-hosted, privacy-first cloud phone system."""

__version__ = "0.1.0"
