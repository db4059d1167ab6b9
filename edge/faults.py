"""Failpoints for fault tests: ``QAQPA_CRASH_AT=after_commit:3`` SIGKILLs the process the 3rd time
the pipeline reaches ``after_commit``. Inert unless the variable is set."""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("QAQPA_CRASH_AT", "")
_POINT, _, _NTH = _SPEC.partition(":")
_COUNT = {"n": 0}

# The pipeline's points (tests/integration/test_kill.py kills the daemon at each). The store's
# downlink has two more: ``downlink_writing`` (inside a transaction that moves money, before it
# commits) and ``downlink_written`` (committed, memory not yet told).
POINTS = ("after_read", "after_identify", "after_decide", "after_commit", "after_actuate")


def crash_point(name: str) -> None:
    if name != _POINT:
        return
    _COUNT["n"] += 1
    if _COUNT["n"] >= int(_NTH or "1"):
        os.kill(os.getpid(), signal.SIGKILL)
