"""Equipment module tables (seed 000): coverage reports, survey answers, campaigns, priority lists
with versions and approvals, sponsors, specifications, suppliers, contracts, deliveries, the
school's inventory, loans and stocktaking. Money in tiyn; times in ms; dates as dates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId, Json


class District(Base):
    """A district (audan) or a town of a region: the middle level of the coverage report."""

    __tablename__ = "equipment_districts"
    __table_args__ = (UniqueConstraint("region_id", "name", name="uq_equipment_districts_name"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"))
    name: Mapped[str] = mapped_column(String(100))
    # The seed's row number ("№"): the report keeps the order the region uses.
    position: Mapped[int] = mapped_column(Integer, default=0)


class SchoolDistrict(Base):
    """Which district a school of the system belongs to."""

    __tablename__ = "equipment_school_districts"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    district_pk: Mapped[int] = mapped_column(ForeignKey("equipment_districts.pk"), index=True)


class CoverageReport(Base):
    """One aggregate row as submitted: a school's report, or a district's summary of schools not
    in the system (``school_id`` None, ``schools`` > 1). A row that fails validation is kept with
    its ``problems`` and is never summed into the report."""

    __tablename__ = "equipment_coverage_reports"
    __table_args__ = (Index("ix_equipment_coverage_region_period", "region_id", "period"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"))
    period: Mapped[str] = mapped_column(String(16))
    district_pk: Mapped[int] = mapped_column(ForeignKey("equipment_districts.pk"))
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id"), default=None)
    schools: Mapped[int] = mapped_column(Integer, default=1)
    students: Mapped[int] = mapped_column(Integer)
    with_computer: Mapped[int] = mapped_column(Integer)
    without_computer: Mapped[int] = mapped_column(Integer)
    needy_students: Mapped[int] = mapped_column(Integer)
    needy_families: Mapped[int] = mapped_column(Integer)
    uncovered_students: Mapped[int] = mapped_column(Integer)
    uncovered_families: Mapped[int] = mapped_column(Integer)
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    problems: Mapped[str] = mapped_column(String(500), default="")
    source: Mapped[str] = mapped_column(String(200), default="")
    imported_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    imported_at_ms: Mapped[int] = mapped_column(BigInteger)


class Campaign(Base):
    """One campaign of a region: one device for every child who needs one, by a deadline."""

    __tablename__ = "equipment_campaigns"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(16))
    goal_tiyn: Mapped[int] = mapped_column(BigInteger, default=0)
    planned_unit_price_tiyn: Mapped[int] = mapped_column(BigInteger, default=0)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    deadline: Mapped[dt.date] = mapped_column(Date)
    fund_name: Mapped[str] = mapped_column(String(200), default="")
    loan_days: Mapped[int] = mapped_column(Integer, default=365)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class SurveyAnswer(Base):
    """A parent's answer for one child (computer at home, family income), kept only with the
    parent's consent of kind ``equipment_survey``; it is also the child's application."""

    __tablename__ = "equipment_answers"
    __table_args__ = (
        UniqueConstraint("campaign_pk", "student_pk", name="uq_equipment_answers_student"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("equipment_campaigns.pk"))
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), index=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    has_computer: Mapped[bool] = mapped_column(Boolean)
    low_income: Mapped[bool] = mapped_column(Boolean, default=False)
    applied_at_ms: Mapped[int] = mapped_column(BigInteger)
    consent_pk: Mapped[int] = mapped_column(ForeignKey("consents.pk"))
    source: Mapped[str] = mapped_column(String(16), default="console")
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class PriorityList(Base):
    """One version of a school's list for a campaign. Frozen once approved by the region; a
    change after that is a new version with a reason."""

    __tablename__ = "equipment_lists"
    __table_args__ = (
        UniqueConstraint("campaign_pk", "school_id", "version", name="uq_equipment_lists_version"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("equipment_campaigns.pk"))
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24), default="draft")
    reason: Mapped[str] = mapped_column(String(300), default="")
    rules: Mapped[dict[str, Any]] = mapped_column(Json)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class ListEntry(Base):
    __tablename__ = "equipment_list_entries"

    list_pk: Mapped[int] = mapped_column(ForeignKey("equipment_lists.pk"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), index=True)
    family: Mapped[str] = mapped_column(String(64))
    priority: Mapped[bool] = mapped_column(Boolean)
    family_uncovered: Mapped[int] = mapped_column(Integer)


class Approval(Base):
    """One step of a list's approval: proposed (school), district, region, or returned."""

    __tablename__ = "equipment_approvals"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    list_pk: Mapped[int] = mapped_column(ForeignKey("equipment_lists.pk"), index=True)
    step: Mapped[str] = mapped_column(String(24))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(300), default="")


class Sponsor(Base):
    __tablename__ = "equipment_sponsors"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("equipment_campaigns.pk"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Named on the public thank-you list only with the sponsor's written consent.
    public_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_document: Mapped[str] = mapped_column(String(200), default="")


class Pledge(Base):
    __tablename__ = "equipment_pledges"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sponsor_pk: Mapped[int] = mapped_column(ForeignKey("equipment_sponsors.pk"), index=True)
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)
    pledged_on: Mapped[dt.date] = mapped_column(Date)


class Payment(Base):
    """Money received by the charity fund from a sponsor."""

    __tablename__ = "equipment_payments"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sponsor_pk: Mapped[int] = mapped_column(ForeignKey("equipment_sponsors.pk"), index=True)
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)
    paid_on: Mapped[dt.date] = mapped_column(Date)
    fund_ref: Mapped[str] = mapped_column(String(100), default="")


class Specification(Base):
    """The minimum requirements of a device (order No. 79 of 2 March 2020), as data."""

    __tablename__ = "equipment_specs"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("equipment_campaigns.pk"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    minimums: Mapped[dict[str, Any]] = mapped_column(Json)
    source: Mapped[str] = mapped_column(String(200), default="")


class Supplier(Base):
    __tablename__ = "equipment_suppliers"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    bin: Mapped[str] = mapped_column(String(12), default="")


class Contract(Base):
    __tablename__ = "equipment_contracts"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("equipment_campaigns.pk"), index=True)
    supplier_pk: Mapped[int] = mapped_column(ForeignKey("equipment_suppliers.pk"))
    spec_pk: Mapped[int] = mapped_column(ForeignKey("equipment_specs.pk"))
    number: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_tiyn: Mapped[int] = mapped_column(BigInteger)
    signed_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)


class Delivery(Base):
    """Devices a supplier brought to a school on a date; each is checked at acceptance."""

    __tablename__ = "equipment_deliveries"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contract_pk: Mapped[int] = mapped_column(ForeignKey("equipment_contracts.pk"), index=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    delivered_on: Mapped[dt.date] = mapped_column(Date)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class Rejection(Base):
    """A delivered device refused at acceptance, with the reason (it never enters inventory)."""

    __tablename__ = "equipment_rejections"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_pk: Mapped[int] = mapped_column(ForeignKey("equipment_deliveries.pk"), index=True)
    serial: Mapped[str] = mapped_column(String(64))
    properties: Mapped[dict[str, Any]] = mapped_column(Json)
    reason: Mapped[str] = mapped_column(String(500))


class Item(Base):
    """Something on the school's balance that can be lent: a device, a textbook or a book."""

    __tablename__ = "equipment_items"
    __table_args__ = (
        UniqueConstraint("school_id", "inventory_no", name="uq_equipment_items_inventory"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # device / textbook / book
    inventory_no: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200), default="")
    serial: Mapped[str] = mapped_column(String(64), default="")
    grade: Mapped[int | None] = mapped_column(Integer, default=None)  # a textbook's grade
    supplier_pk: Mapped[int | None] = mapped_column(
        ForeignKey("equipment_suppliers.pk"), default=None
    )
    delivery_pk: Mapped[int | None] = mapped_column(
        ForeignKey("equipment_deliveries.pk"), default=None
    )
    campaign_pk: Mapped[int | None] = mapped_column(
        ForeignKey("equipment_campaigns.pk"), default=None
    )
    cost_tiyn: Mapped[int] = mapped_column(BigInteger, default=0)
    properties: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="in_stock")
    added_at_ms: Mapped[int] = mapped_column(BigInteger)


class ItemEvent(Base):
    """An item's history: accepted, lent, returned, repair, lost, written off, counted."""

    __tablename__ = "equipment_item_events"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_pk: Mapped[int] = mapped_column(ForeignKey("equipment_items.pk"), index=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(String(300), default="")
    by_user: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class Loan(Base):
    """An item in a student's hands from ``lent_at_ms`` until ``returned_at_ms``. A loan recorded
    at the school's desk arrives as a synced edge event (``device_pk``, ``seq``)."""

    __tablename__ = "equipment_loans"
    __table_args__ = (
        Index("ix_equipment_loans_student", "student_pk", "returned_at_ms"),
        Index("ix_equipment_loans_item", "item_pk", "returned_at_ms"),
        UniqueConstraint("device_pk", "seq", name="uq_equipment_loans_event"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_pk: Mapped[int] = mapped_column(ForeignKey("equipment_items.pk"))
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"))
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    campaign_pk: Mapped[int | None] = mapped_column(
        ForeignKey("equipment_campaigns.pk"), default=None
    )
    lent_at_ms: Mapped[int] = mapped_column(BigInteger)
    due_on: Mapped[dt.date] = mapped_column(Date)
    returned_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    condition: Mapped[str] = mapped_column(String(16), default="")
    lent_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    returned_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    # The signed hand-over act (a scan's reference), when the parent signed on paper.
    act_ref: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(16), default="console")
    device_pk: Mapped[int | None] = mapped_column(BigInteger, default=None)
    seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    reminded_on: Mapped[dt.date | None] = mapped_column(Date, default=None)


class Stocktake(Base):
    __tablename__ = "equipment_stocktakes"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    started_at_ms: Mapped[int] = mapped_column(BigInteger)
    closed_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    started_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class StocktakeScan(Base):
    __tablename__ = "equipment_stocktake_scans"

    stocktake_pk: Mapped[int] = mapped_column(
        ForeignKey("equipment_stocktakes.pk"), primary_key=True
    )
    item_pk: Mapped[int] = mapped_column(ForeignKey("equipment_items.pk"), primary_key=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class LoanAct(Base):
    """The scan of a hand-over act the parent signed on paper (a PDF, JPEG or PNG, size-limited
    and checked by its content), kept with its loan; a new upload replaces it."""

    __tablename__ = "equipment_loan_acts"
    __table_args__ = (UniqueConstraint("loan_pk", name="uq_equipment_loan_acts_loan"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    loan_pk: Mapped[int] = mapped_column(ForeignKey("equipment_loans.pk"))
    media_type: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at_ms: Mapped[int] = mapped_column(BigInteger)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
