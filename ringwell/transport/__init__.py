"""Ringwell."""
