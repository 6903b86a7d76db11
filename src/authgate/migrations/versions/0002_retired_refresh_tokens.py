"""retired refresh tokens: reuse detection beyond the previous token

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 16:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retired_refresh_tokens',
    sa.Column('refresh_hash', sa.String(length=64), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('refresh_hash', name=op.f('pk_retired_refresh_tokens'))
    )
    with op.batch_alter_table('retired_refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retired_refresh_tokens_session_id'), ['session_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('retired_refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retired_refresh_tokens_session_id'))
    op.drop_table('retired_refresh_tokens')
