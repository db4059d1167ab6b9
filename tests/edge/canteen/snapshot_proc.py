"""A child process that applies one snapshot (JSON in a file) to a store and prints ``APPLIED``.
The fault test SIGKILLs it at a downlink failpoint (``QAQPA_CRASH_AT``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edge.store import EdgeStore
from protocol.messages import SyncSnapshot
from tests.support.canteen_school import SCHOOL


async def main(path: Path, snap: Path) -> None:
    store = await EdgeStore.open(path, school=SCHOOL, device="edge-1")
    await store.apply_snapshot(SyncSnapshot.model_validate_json(snap.read_text()))
    print("APPLIED", flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
