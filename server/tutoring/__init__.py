"""Tutoring (seed 001, "Birgemiz: Bilim"): a volunteer tutoring project's directions, volunteers,
groups, sessions and attendance, pre- and post-tests, the needs survey, the expert council and
the growth table."""
