"""``python -m server.notify``: the same as ``qaqpa server notify``."""

from server.cli import main

raise SystemExit(main(["notify"]))
