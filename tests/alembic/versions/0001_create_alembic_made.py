"""create public.alembic_made

Revision ID: 0001
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alembic_made",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("note", sa.Text),
        schema="public",
    )


def downgrade() -> None:
    op.drop_table("alembic_made", schema="public")
