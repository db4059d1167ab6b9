"""A school's people: classes, students, their parents (guardians), staff, and consents."""
