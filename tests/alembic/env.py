"""Alembic environment gated by pg_repair: before any migration runs, the database itself is
asked whether migrations are allowed here, as this user (repair.assert_migrations_allowed).
A replica, an undeclared role, prod without confirmation, or a non-executor raises an error
and nothing is migrated.

DATABASE_URL: the SQLAlchemy URL (postgresql://user@host:port/db).
REPAIR_CONFIRM_PROD=1: confirm a run on a database declared prod.
"""

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

GATE_SQL = "SELECT repair.assert_migrations_allowed(%s)"


def confirm_prod() -> bool:
    return os.environ.get("REPAIR_CONFIRM_PROD", "").strip().lower() in ("1", "true", "yes", "on")


def database_url() -> str:
    # A libpq URL (postgresql://...) means psycopg2 here, whatever SQLAlchemy's default driver.
    url = os.environ["DATABASE_URL"]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def run_migrations_offline() -> None:
    # The generated script starts with the gate, so psql -v ON_ERROR_STOP=1 stops there.
    context.configure(url=database_url(), literal_binds=True)
    with context.begin_transaction():
        context.execute(
            "SELECT repair.assert_migrations_allowed(%s)" % ("true" if confirm_prod() else "false")
        )
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            # Same transaction as the migrations: a refusal raises before anything changes.
            connection.exec_driver_sql(GATE_SQL, (confirm_prod(),))
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
