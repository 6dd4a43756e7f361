"""Alembic environment: run migrations on the connection ``Database.upgrade`` hands in.

There is no ``alembic.ini`` and no URL here: ``node.storage.Database.upgrade`` builds the
Config in code, opens one write transaction (``BEGIN IMMEDIATE`` on SQLite, an advisory
lock on PostgreSQL) and passes its connection in ``config.attributes["connection"]``.
Every migration therefore runs inside that single transaction: on both backends DDL is
transactional, so a failed upgrade leaves the schema as it was.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "Watan migrations run only through node.storage.Database.upgrade(), "
        "which passes the connection in config.attributes['connection']"
    )
# No target_metadata: migrations are hand-written and spell out every constraint name,
# so no naming convention may rewrite them (and they never depend on ``_schema``).
# tests/node/test_storage.py compares ``_schema`` with the migrated database instead.
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
