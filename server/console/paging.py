"""One page of a list that can grow: counted and cut in the database (``paginate``), with the
pager the student list uses (``console/_pager.html``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class Paged:
    rows: list[Any]
    total: int
    page: int
    pages: int


def paginate(db: Session, query: Any, page: int, per_page: int = PER_PAGE) -> Paged:
    """Rows of ``page`` (1-based; past the end: the last page) of an ordered query."""
    total = int(db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = list(db.execute(query.offset((page - 1) * per_page).limit(per_page)).all())
    return Paged(rows, total, page, pages)
