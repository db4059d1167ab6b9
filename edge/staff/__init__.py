"""The staff page: one page served by the edge daemon on the school network, with sections.

A staff member signs in with their own card at a reader (a turnstile's or a desk reader) and
their PIN (typed on the page or on the reader's keypad); the page then shows the sections their
roles allow: the teacher's pass (a lost card), and the sections other modules register
(``edge.staff.sections``). It works with the internet down, like the canteen kiosk."""

PAGE = "staff"  # the page's name in the store's web_sessions
