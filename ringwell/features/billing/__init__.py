"""Billing: the double-entry ledger of prepaid credit, credit reservations and payments."""
