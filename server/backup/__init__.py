"""Backups of the server's PostgreSQL database: a dump with a manifest of what it holds, and a
check that restores a dump into an empty database and compares (``qaqpa server backup``)."""
