"""equipment: districts, coverage reports, survey answers, campaigns, priority lists and
approvals, sponsors, specifications, suppliers, contracts, deliveries, inventory, loans, stocktaking

Revision ID: 0012
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "equipment_suppliers",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("bin", sa.String(length=12), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_table(
        "equipment_campaigns",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("goal_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("planned_unit_price_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("fund_name", sa.String(length=200), nullable=False),
        sa.Column("loan_days", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_campaigns_region_id"), "equipment_campaigns", ["region_id"], unique=False
    )
    op.create_table(
        "equipment_districts",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("region_id", "name", name="uq_equipment_districts_name"),
    )
    op.create_table(
        "equipment_coverage_reports",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column(
            "district_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("school_id", sa.String(length=64), nullable=True),
        sa.Column("schools", sa.Integer(), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.Column("with_computer", sa.Integer(), nullable=False),
        sa.Column("without_computer", sa.Integer(), nullable=False),
        sa.Column("needy_students", sa.Integer(), nullable=False),
        sa.Column("needy_families", sa.Integer(), nullable=False),
        sa.Column("uncovered_students", sa.Integer(), nullable=False),
        sa.Column("uncovered_families", sa.Integer(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("problems", sa.String(length=500), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column(
            "imported_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("imported_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_pk"],
            ["equipment_districts.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["imported_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        "ix_equipment_coverage_region_period",
        "equipment_coverage_reports",
        ["region_id", "period"],
        unique=False,
    )
    op.create_table(
        "equipment_lists",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "campaign_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column(
            "rules",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_pk"],
            ["equipment_campaigns.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint(
            "campaign_pk", "school_id", "version", name="uq_equipment_lists_version"
        ),
    )
    op.create_index(
        op.f("ix_equipment_lists_school_id"), "equipment_lists", ["school_id"], unique=False
    )
    op.create_table(
        "equipment_school_districts",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column(
            "district_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["district_pk"],
            ["equipment_districts.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.PrimaryKeyConstraint("school_id"),
    )
    op.create_index(
        op.f("ix_equipment_school_districts_district_pk"),
        "equipment_school_districts",
        ["district_pk"],
        unique=False,
    )
    op.create_table(
        "equipment_specs",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "campaign_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "minimums",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_pk"],
            ["equipment_campaigns.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_specs_campaign_pk"), "equipment_specs", ["campaign_pk"], unique=False
    )
    op.create_table(
        "equipment_sponsors",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "campaign_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("public_consent", sa.Boolean(), nullable=False),
        sa.Column("consent_document", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_pk"],
            ["equipment_campaigns.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_sponsors_campaign_pk"),
        "equipment_sponsors",
        ["campaign_pk"],
        unique=False,
    )
    op.create_table(
        "equipment_stocktakes",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("closed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column(
            "started_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.ForeignKeyConstraint(
            ["started_by"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_stocktakes_school_id"),
        "equipment_stocktakes",
        ["school_id"],
        unique=False,
    )
    op.create_table(
        "equipment_approvals",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("list_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column(
            "decided_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["list_pk"],
            ["equipment_lists.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_approvals_list_pk"), "equipment_approvals", ["list_pk"], unique=False
    )
    op.create_table(
        "equipment_contracts",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "campaign_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "supplier_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("spec_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_pk"],
            ["equipment_campaigns.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["spec_pk"],
            ["equipment_specs.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_pk"],
            ["equipment_suppliers.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_contracts_campaign_pk"),
        "equipment_contracts",
        ["campaign_pk"],
        unique=False,
    )
    op.create_table(
        "equipment_payments",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "sponsor_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("amount_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("fund_ref", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["sponsor_pk"],
            ["equipment_sponsors.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_payments_sponsor_pk"), "equipment_payments", ["sponsor_pk"], unique=False
    )
    op.create_table(
        "equipment_pledges",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "sponsor_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("amount_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("pledged_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sponsor_pk"],
            ["equipment_sponsors.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_pledges_sponsor_pk"), "equipment_pledges", ["sponsor_pk"], unique=False
    )
    op.create_table(
        "equipment_deliveries",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "contract_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("delivered_on", sa.Date(), nullable=False),
        sa.Column(
            "recorded_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["contract_pk"],
            ["equipment_contracts.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_deliveries_contract_pk"),
        "equipment_deliveries",
        ["contract_pk"],
        unique=False,
    )
    op.create_index(
        op.f("ix_equipment_deliveries_school_id"),
        "equipment_deliveries",
        ["school_id"],
        unique=False,
    )
    op.create_table(
        "equipment_list_entries",
        sa.Column("list_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column(
            "student_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Boolean(), nullable=False),
        sa.Column("family_uncovered", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_pk"],
            ["equipment_lists.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["student_pk"],
            ["students.pk"],
        ),
        sa.PrimaryKeyConstraint("list_pk", "rank"),
    )
    op.create_index(
        op.f("ix_equipment_list_entries_student_pk"),
        "equipment_list_entries",
        ["student_pk"],
        unique=False,
    )
    op.create_table(
        "equipment_answers",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "campaign_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "student_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("has_computer", sa.Boolean(), nullable=False),
        sa.Column("low_income", sa.Boolean(), nullable=False),
        sa.Column("applied_at_ms", sa.BigInteger(), nullable=False),
        sa.Column(
            "consent_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "recorded_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["campaign_pk"],
            ["equipment_campaigns.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["consent_pk"],
            ["consents.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.ForeignKeyConstraint(
            ["student_pk"],
            ["students.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("campaign_pk", "student_pk", name="uq_equipment_answers_student"),
    )
    op.create_index(
        op.f("ix_equipment_answers_school_id"), "equipment_answers", ["school_id"], unique=False
    )
    op.create_index(
        op.f("ix_equipment_answers_student_pk"), "equipment_answers", ["student_pk"], unique=False
    )
    op.create_table(
        "equipment_items",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("inventory_no", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=True),
        sa.Column(
            "supplier_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "delivery_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "campaign_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("cost_tiyn", sa.BigInteger(), nullable=False),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("added_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_pk"],
            ["equipment_campaigns.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["delivery_pk"],
            ["equipment_deliveries.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_pk"],
            ["equipment_suppliers.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("school_id", "inventory_no", name="uq_equipment_items_inventory"),
    )
    op.create_index(
        op.f("ix_equipment_items_school_id"), "equipment_items", ["school_id"], unique=False
    )
    op.create_table(
        "equipment_rejections",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "delivery_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_pk"],
            ["equipment_deliveries.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_rejections_delivery_pk"),
        "equipment_rejections",
        ["delivery_pk"],
        unique=False,
    )
    op.create_table(
        "equipment_item_events",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("item_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("by_user", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["by_user"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["item_pk"],
            ["equipment_items.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_equipment_item_events_item_pk"), "equipment_item_events", ["item_pk"], unique=False
    )
    op.create_table(
        "equipment_loans",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("item_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "student_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column(
            "campaign_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("lent_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("returned_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("condition", sa.String(length=16), nullable=False),
        sa.Column("lent_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "returned_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("act_ref", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("device_pk", sa.BigInteger(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("reminded_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_pk"],
            ["equipment_campaigns.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["item_pk"],
            ["equipment_items.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["lent_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["returned_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.ForeignKeyConstraint(
            ["student_pk"],
            ["students.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("device_pk", "seq", name="uq_equipment_loans_event"),
    )
    op.create_index(
        "ix_equipment_loans_item", "equipment_loans", ["item_pk", "returned_at_ms"], unique=False
    )
    op.create_index(
        op.f("ix_equipment_loans_school_id"), "equipment_loans", ["school_id"], unique=False
    )
    op.create_index(
        "ix_equipment_loans_student",
        "equipment_loans",
        ["student_pk", "returned_at_ms"],
        unique=False,
    )
    op.create_table(
        "equipment_stocktake_scans",
        sa.Column(
            "stocktake_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("item_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_pk"],
            ["equipment_items.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["stocktake_pk"],
            ["equipment_stocktakes.pk"],
        ),
        sa.PrimaryKeyConstraint("stocktake_pk", "item_pk"),
    )


def downgrade() -> None:
    op.drop_table("equipment_stocktake_scans")
    op.drop_index("ix_equipment_loans_student", table_name="equipment_loans")
    op.drop_index(op.f("ix_equipment_loans_school_id"), table_name="equipment_loans")
    op.drop_index("ix_equipment_loans_item", table_name="equipment_loans")
    op.drop_table("equipment_loans")
    op.drop_index(op.f("ix_equipment_item_events_item_pk"), table_name="equipment_item_events")
    op.drop_table("equipment_item_events")
    op.drop_index(op.f("ix_equipment_rejections_delivery_pk"), table_name="equipment_rejections")
    op.drop_table("equipment_rejections")
    op.drop_index(op.f("ix_equipment_items_school_id"), table_name="equipment_items")
    op.drop_table("equipment_items")
    op.drop_index(op.f("ix_equipment_answers_student_pk"), table_name="equipment_answers")
    op.drop_index(op.f("ix_equipment_answers_school_id"), table_name="equipment_answers")
    op.drop_table("equipment_answers")
    op.drop_index(op.f("ix_equipment_list_entries_student_pk"), table_name="equipment_list_entries")
    op.drop_table("equipment_list_entries")
    op.drop_index(op.f("ix_equipment_deliveries_school_id"), table_name="equipment_deliveries")
    op.drop_index(op.f("ix_equipment_deliveries_contract_pk"), table_name="equipment_deliveries")
    op.drop_table("equipment_deliveries")
    op.drop_index(op.f("ix_equipment_pledges_sponsor_pk"), table_name="equipment_pledges")
    op.drop_table("equipment_pledges")
    op.drop_index(op.f("ix_equipment_payments_sponsor_pk"), table_name="equipment_payments")
    op.drop_table("equipment_payments")
    op.drop_index(op.f("ix_equipment_contracts_campaign_pk"), table_name="equipment_contracts")
    op.drop_table("equipment_contracts")
    op.drop_index(op.f("ix_equipment_approvals_list_pk"), table_name="equipment_approvals")
    op.drop_table("equipment_approvals")
    op.drop_index(op.f("ix_equipment_stocktakes_school_id"), table_name="equipment_stocktakes")
    op.drop_table("equipment_stocktakes")
    op.drop_index(op.f("ix_equipment_sponsors_campaign_pk"), table_name="equipment_sponsors")
    op.drop_table("equipment_sponsors")
    op.drop_index(op.f("ix_equipment_specs_campaign_pk"), table_name="equipment_specs")
    op.drop_table("equipment_specs")
    op.drop_index(
        op.f("ix_equipment_school_districts_district_pk"), table_name="equipment_school_districts"
    )
    op.drop_table("equipment_school_districts")
    op.drop_index(op.f("ix_equipment_lists_school_id"), table_name="equipment_lists")
    op.drop_table("equipment_lists")
    op.drop_index("ix_equipment_coverage_region_period", table_name="equipment_coverage_reports")
    op.drop_table("equipment_coverage_reports")
    op.drop_table("equipment_districts")
    op.drop_index(op.f("ix_equipment_campaigns_region_id"), table_name="equipment_campaigns")
    op.drop_table("equipment_campaigns")
    op.drop_table("equipment_suppliers")
