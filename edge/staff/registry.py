"""The staff page's sections, in the order the navigation shows them. A module adds its section
with one line here (see ``edge.staff.sections`` for the API)."""

from __future__ import annotations

from edge.staff.duty import SECTION as DUTY
from edge.staff.sections import Section
from edge.staff.teacher_pass import SECTION as TEACHER_PASS

SECTIONS: tuple[Section, ...] = (TEACHER_PASS, DUTY)
