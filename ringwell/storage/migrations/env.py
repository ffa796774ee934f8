"""Alembic environment: runs on the connection Ringwell hands over, or on ``-x url=...``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import ringwell.storage.models  # noqa: F401 - registers every table on Base.metadata
from ringwell.storage.base import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///schema.db")
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
