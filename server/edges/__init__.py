"""The schools' edge devices in the console: list, revoke a stolen or retired one, and issue
the one-time enrolment token of its replacement."""
