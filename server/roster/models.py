"""Tables of the roster module: uploaded imports awaiting confirmation, and the classes a staff
member teaches (what an edge needs to let a class teacher authorise a manual pass)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, Json


class ImportPreview(Base):
    """A checked upload shown to its user; confirming applies exactly these rows.

    ``token`` goes into the confirm form together with the file's SHA-256, so a confirmation
    can only apply the file that was previewed, by the user who uploaded it. Deleted when
    applied or after an hour (it holds children's data).
    """

    __tablename__ = "roster_import_previews"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    file_name: Mapped[str] = mapped_column(String(200))
    file_sha256: Mapped[str] = mapped_column(String(64))
    encoding: Mapped[str] = mapped_column(String(32), default="")
    rows: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    # The plan shown (what would be created / updated / left as it is), to refuse a confirmation
    # if the roster changed in between.
    plan_digest: Mapped[str] = mapped_column(String(64))
    error_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class StaffClass(Base):
    """A class a staff member teaches (``StaffRecord.classes`` at the edge)."""

    __tablename__ = "roster_staff_classes"

    staff_pk: Mapped[int] = mapped_column(
        ForeignKey("staff_members.pk", ondelete="CASCADE"), primary_key=True
    )
    class_pk: Mapped[int] = mapped_column(
        ForeignKey("school_classes.pk", ondelete="CASCADE"), primary_key=True
    )
