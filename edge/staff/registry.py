"""The staff page's sections, in the order the navigation shows them. A module adds its section
with one line here (see ``edge.staff.sections`` for the API)."""

from __future__ import annotations

from edge.staff.cards_desk import SECTION as CARDS_DESK
from edge.staff.duty import SECTION as DUTY
from edge.staff.library_desk import SECTION as LIBRARY_DESK
from edge.staff.sections import Section
from edge.staff.teacher_pass import SECTION as TEACHER_PASS

SECTIONS: tuple[Section, ...] = (TEACHER_PASS, CARDS_DESK, DUTY, LIBRARY_DESK)
