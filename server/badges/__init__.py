"""The "Elbasy Medal" youth award (seed 004, issue 17): pure level rules, working days of the
Kazakh calendar, Open Badges 3.0 credentials, certificates and integrity checks."""
