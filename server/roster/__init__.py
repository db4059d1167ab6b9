"""The roster: a school's students, classes, guardians and staff, and the roster import.

- ``rules``: pure functions (no database): ``parse_file(name, data) -> ParsedRoster`` reads a
  CSV (UTF-8 with or without BOM, Windows-1251, KZ-1048; comma, semicolon or tab) or an XLSX
  and ``check_rows`` checks its lines; every problem is a ``RowError(line, column, reason)``.
- ``service``: the same against the database: ``import_rows(db, school_id, rows, who=None)
  -> ImportResult`` (all rows or none; consent first; one downlink version per import),
  ``check``/``apply_plan`` for the console's preview and confirmation, and the single edits
  (student, guardian, class, staff member), each publishing what the school's edges need.
- ``routes``: the console pages /students, /students/{pk}, /classes, /staff, /roster/import.
"""
