"""Daily roll-ups of the events: counts per school and day, no person in them except the
presence set that makes an arrival count once (it goes with the events' months on retirement)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base


class RollupMeal(Base):
    """Meals served per school, day (the edge's local date), period and kind, with what the
    free-meal column needs: the pupil's grade and the social categories they held that day,
    as the centre knew them when the meal arrived (the policy picks the column when read)."""

    __tablename__ = "rollup_meals"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    meal: Mapped[str] = mapped_column(String(16), primary_key=True)  # free | paid | voucher
    grade: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: not known at the centre
    categories: Mapped[str] = mapped_column(String(200), primary_key=True)  # sorted codes, ","
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_tiyn: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupPresence(Base):
    """A student who arrived at the school on a local day (an entry or a manual pass inwards
    that the turnstile did not cancel): the set that counts each pupil once a day."""

    __tablename__ = "rollup_presence"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    student_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    class_pk: Mapped[int] = mapped_column(BigInteger, default=0)  # 0: not on the centre's roster


class RollupAttendance(Base):
    """Pupils present per school, class and day (the count of ``rollup_presence``)."""

    __tablename__ = "rollup_attendance"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    class_pk: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    present: Mapped[int] = mapped_column(BigInteger, default=0)
