"""Data register declarations of the keys part (see register.py): per-person data keys.

The keys part adds no table; it adds two columns to tables declared in ``catalog_core``.
"""

from __future__ import annotations

from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table

__all__ = ["EXTRA_COLUMNS", "TABLES"]

TABLES: tuple[Table, ...] = ()

# Columns this part adds to tables declared elsewhere: table name -> columns.
EXTRA_COLUMNS: dict[str, tuple[Column, ...]] = {
    "org_data_keys": (
        Column("user_id", Category.ACCOUNT, "whose media the key encrypts (none: the organisation's own key)",
               Basis.CONTRACT, Retention.CONFIGURATION, exported=False, erasure=Erasure.KEEP,
               exception="the record that the person's key was destroyed: an opaque id beside a key row that no "
                         "longer holds any key material, proof that their media can never be decrypted"),
    ),
    "blobs": (
        Column("extra_key_ids", Category.NOT_PERSONAL, "the other owners' keys of a file of several people "
               "(a recorded call): destroying any of them makes it unreadable", Basis.CONTRACT,
               Retention.CONFIGURATION, exported=False, erasure=Erasure.NONE),
    ),
}
